"""The private dockerd of the client tests: tests/support/dockerd.py (one
implementation, shared with tests/engine, tests/compat and benchmarks/).

Also usable by hand while developing:

    python tests/clients/dockerd.py start      # prints BASE; socket is BASE/docker.sock
    python tests/clients/dockerd.py stop BASE
"""

import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:  # run as a script
    sys.path.insert(0, TESTS)

from support.dockerd import PREFIX, DockerdError, PrivateDockerd, main  # noqa: E402,F401
from support.host import pids_mentioning  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
