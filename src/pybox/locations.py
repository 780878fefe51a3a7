"""Where a pybox daemon lives by default, and who holds its roots.

Shared by pyboxd (which takes the locks), the image store's command-line tools
and the pybox client (which, after a failed autostart, says which pyboxd holds
the roots): the client must not import the daemon to learn a path, so these
sit on the floor with errors.py, standard library only.
"""

from __future__ import annotations

import fcntl
import os
import struct

DEFAULT_DATA_ROOT = "/var/lib/pybox"
DEFAULT_EXEC_ROOT = "/run/pybox"
DEFAULT_SOCKET = "/run/pybox/pybox.sock"
DEFAULT_HOST = "unix://" + DEFAULT_SOCKET
LOCK_NAME = "pyboxd.lock"  # in the data root and in the exec root
PID_NAME = "pyboxd.pid"  # the default pidfile, in the exec root

# struct flock on 64-bit Linux: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad)
_FLOCK = "hhqqi4x"


def holder(path: str) -> int | None:
    """The pid of the process holding the lock on ``path`` (0: one whose pid
    this namespace cannot see), None when nobody holds it.  Only looks: a
    probe that took the lock, even for an instant, could make a starting
    daemon think the root was in use."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        return holder_fd(fd)
    finally:
        os.close(fd)


def holder_fd(fd: int) -> int | None:
    """As holder(), for an open lock file."""
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    return None if l_type == fcntl.F_UNLCK else max(pid, 0)


def daemon_holding_default_roots(socket_path: str) -> int | None:
    """The pid of a pyboxd holding the default roots, when ``socket_path`` is the
    default socket such a daemon serves; None otherwise."""
    if os.path.abspath(socket_path) != DEFAULT_SOCKET:
        return None
    for root in (DEFAULT_EXEC_ROOT, DEFAULT_DATA_ROOT):
        pid = holder(os.path.join(root, LOCK_NAME))
        if pid is not None:
            return pid
    return None
