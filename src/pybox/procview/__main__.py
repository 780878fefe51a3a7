import sys

from pybox.procview.server import main

sys.exit(main())
