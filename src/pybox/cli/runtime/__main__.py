"""python -m pybox.cli.runtime: the same as the pybox-runtime launcher."""

import sys

from pybox.cli.runtime import main

sys.exit(main())
