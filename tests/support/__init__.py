"""What the test directories share, written once.

tests/ is on sys.path when pytest runs (tests/conftest.py puts it there), so
every test directory imports these as ``support``, ``support.pyboxd`` ...:

* ``support.wait``: ``wait_for`` (poll a predicate with a bounded wait) and
  ``settle`` (the same with a short default, for "should be gone by now").
* ``support.names``: unique names, and ``NameBook``, the ``names`` fixtures'
  body (unique container and network names, removed when the test ends).
* ``support.paths``: where the checkout, its sources, the Python and the docker
  CLI are; ``pybox_argv`` (the pybox CLI for this checkout) and the busybox
  tarball every daemon imports.
* ``support.host``: what the host shows of a test's leftovers (mounts,
  cgroups, processes) and how to remove them without touching anyone else's.
* ``support.unixhttp``: a unix-socket HTTP client for a daemon's API.
* ``support.pyboxd``: the private pyboxd (one implementation; tests/engine,
  network, procview, security and crash use it).
* ``support.dockerd``: the private Debian dockerd (tests/clients, engine's
  reference daemon, compat's docker with --add-runtime, benchmarks).
* ``support.pty``: a client on a real pseudo-terminal (type, read, resize).
* ``support.install``: Debian packages a directory needs, apt-get installed
  as root, or a skip that says why.
* ``support.fixtures``: the pytest fixtures built on them, which the
  directories' conftest.py files make their own by binding them by name
  (``pyboxd = fixtures.pyboxd``: pytest collects a conftest's names).
* ``support.v2vm``: running a test subset inside the cgroup v2 VM (tests/v2vm).
"""

from support.names import unique_name
from support.wait import settle, wait_for

__all__ = ["settle", "unique_name", "wait_for"]
