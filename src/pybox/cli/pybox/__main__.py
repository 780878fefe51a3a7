"""``python -m pybox.cli.pybox``: the pybox CLI."""

import sys

from pybox.cli.pybox import main

sys.exit(main())
