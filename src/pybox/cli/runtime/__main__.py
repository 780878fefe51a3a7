"""python -m pybox.cli.runtime: the same as the pybox-runtime launcher."""

from __future__ import annotations

import sys

from pybox.cli.runtime import main

sys.exit(main())
