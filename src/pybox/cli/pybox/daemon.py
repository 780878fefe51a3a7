"""Start pyboxd in the background when the default socket has no daemon.

The contract with pyboxd: ``pyboxd`` is an executable on PATH that serves the
Docker Engine API on the socket given by ``-H unix://PATH`` (default
/run/pybox/pybox.sock), removes a stale socket file itself, and keeps running
after the client that started it exits.

Only the default address autostarts: a socket chosen with ``-H`` or
``$PYBOX_HOST`` may belong to another daemon (a dockerd, a test's pyboxd), and
starting a pyboxd there would be wrong.  Starting is serialised with a lock
file next to the socket, so several clients at once start one daemon; the
daemon runs in its own session (setsid), stdin from /dev/null, stdout and stderr
appended to /var/log/pybox/pyboxd.log (or /run/pybox/pyboxd.log when /var/log
is not writable).  The client waits for ``/_ping`` to answer, up to
``PYBOX_AUTOSTART_TIMEOUT`` seconds (default 30), and fails with the log's path
if the daemon exits first -- unless it exited because another pyboxd holds the
roots it would use (one being started by hand, or one that is up but slow to
answer): pyboxd locks its data root and exec root and a second one leaves at
once without touching the first's socket, so the client waits for that one's
ping instead, and there is never more than one daemon.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import time

from pybox.cli.pybox.client import parse_host
from pybox.errors import DaemonUnreachable
from pybox.linux.unixsock import call
from pybox.locations import daemon_holding_default_roots

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

LOG_DIRS = ("/var/log/pybox", "/run/pybox")


def find_executable(name: str) -> str | None:
    for directory in os.get_exec_path():
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def ping(socket_path: str, timeout: float = 1.0) -> bool:

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        call(sock.connect, socket_path)
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\n"
                     b"Connection: close\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        sock.close()


def autostart_hook(host: str) -> Callable[[], bool]:
    """A connect hook for APIClient: called once when connecting failed."""

    def hook() -> bool:
        return start_daemon(host)
    return hook


def _open_log() -> tuple[str, BinaryIO]:
    for directory in LOG_DIRS:
        try:
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, "pyboxd.log")
            return path, open(path, "ab")
        except OSError:
            continue
    return os.devnull, open(os.devnull, "wb")


def start_daemon(host: str) -> bool:
    socket_path = parse_host(host)
    pyboxd = find_executable("pyboxd")
    if pyboxd is None:
        raise DaemonUnreachable(
            f"Cannot connect to the pybox daemon at {host}. Is pyboxd running? "
            "(pyboxd was not found on PATH to start it)")
    run_dir = os.path.dirname(socket_path)
    try:
        os.makedirs(run_dir, exist_ok=True)
        lock = open(os.path.join(run_dir, "autostart.lock"), "a")
    except OSError as err:
        raise DaemonUnreachable(
            f"Cannot connect to the pybox daemon at {host}, and cannot start one: "
            f"{run_dir}: {err.strerror}") from None
    import subprocess  # noqa: PLC0415 -- subprocess costs ~5 ms of imports; only an autostart spawns pyboxd
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ping(socket_path):
            return True         # another client started it while we waited
        log_path, log = _open_log()
        with log:
            proc = subprocess.Popen([pyboxd, "-H", f"unix://{socket_path}"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)
        timeout = float(os.environ.get("PYBOX_AUTOSTART_TIMEOUT", "30"))
        deadline = time.monotonic() + timeout
        delay = 0.005
        other = False  # another pyboxd has the roots: wait for its answer instead
        while time.monotonic() < deadline:
            if ping(socket_path):
                proc.returncode = 0   # detached on purpose: no ResourceWarning
                return True
            if not other and proc.poll() is not None:
                if daemon_holding_default_roots(socket_path) is None:
                    raise DaemonUnreachable(
                        f"pyboxd exited with status {proc.returncode} before serving "
                        f"{host}; see {log_path}")
                other = True
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        proc.returncode = proc.returncode or 0
        if other:
            raise DaemonUnreachable(
                f"pyboxd (pid {daemon_holding_default_roots(socket_path) or '?'}) holds the pybox roots "
                f"but did not answer on {host} within {timeout:g} s; see {log_path}")
        raise DaemonUnreachable(f"pyboxd did not answer on {host} within {timeout:g} s; "
                                f"see {log_path}")
