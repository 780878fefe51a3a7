"""Starting, finding and stopping a procview server (used by pyboxd and tests).

A server owns one directory (pyboxd: EXEC_ROOT/procview) and holds an exclusive
flock on DIR/server.lock for its whole life, so:

- "is it running?" is one non-blocking flock attempt (no pid file to go stale);
- "wait until it dies" is a blocking shared flock, which returns the moment
  the kernel drops the dead server's lock -- ``Supervisor`` restarts it then;
- "ready" is: the lock is held and DIR/mnt is a live FUSE mount.

The server runs as ``python -IS`` in its own session (apart from pyboxd, which
may stop or restart without touching it); its output goes to DIR/server.log.
"""

from __future__ import annotations

import errno
import fcntl
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from pybox.errors import ProcViewError, PyboxError

if TYPE_CHECKING:
    from collections.abc import Callable

READY_TIMEOUT = 20.0
SUPERVISOR_LOCK = "supervisor.lock"


def supervised(directory: str) -> bool:
    """Does anything hold DIR/supervisor.lock (a pyboxd, a test)?"""
    try:
        fd = os.open(os.path.join(directory, SUPERVISOR_LOCK), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def unavailable_reason() -> str | None:
    """Why a server cannot run on this machine, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (the fuse kernel module is not loaded)"
    try:
        if importlib.util.find_spec("pyfuse3") is None:
            return "pyfuse3 is not installed (Debian: python3-pyfuse3)"
    except (ImportError, ValueError):
        return "pyfuse3 is not installed (Debian: python3-pyfuse3)"
    return None


class Server:
    """A server directory: its state, and starting/stopping its process."""

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        self.mnt = os.path.join(self.dir, "mnt")
        self.lock_path = os.path.join(self.dir, "server.lock")
        self.log_path = os.path.join(self.dir, "server.log")
        # the Popen of a server we started (to reap it)
        self.process: subprocess.Popen[bytes] | None = None

    # -- state ---------------------------------------------------------------------
    def running(self) -> bool:
        """True while a server holds the lock."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _pid_file(self) -> tuple[int | None, int | None]:
        """(pid, device of its mount) the running server wrote once mounted."""
        try:
            with open(os.path.join(self.dir, "server.pid")) as f:
                fields = f.read().split()
            return int(fields[0]), int(fields[1]) if len(fields) > 1 else None
        except (OSError, ValueError, IndexError):
            return None, None

    def pid(self) -> int | None:
        return self._pid_file()[0]

    def mounted(self) -> bool:
        """DIR/mnt is the live mount of the server that wrote server.pid (not a
        dead predecessor's, whose attributes the kernel may still have cached)."""
        pid, dev = self._pid_file()
        if pid is None or dev is None:
            return False
        try:
            os.kill(pid, 0)
            return os.stat(self.mnt).st_dev == dev
        except OSError:
            return False

    def ready(self) -> bool:
        return self.running() and self.mounted()

    # -- supervision -------------------------------------------------------------
    def claim(self) -> int:
        """Declare a supervisor (pyboxd; a test): a shared flock on
        DIR/supervisor.lock, held until ``unclaim``.  A server with no
        supervisor and no container using it exits by itself."""
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        fd = os.open(os.path.join(self.dir, SUPERVISOR_LOCK),
                     os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd

    @staticmethod
    def unclaim(fd: int | None) -> None:
        if fd is not None:
            os.close(fd)

    def source(self, view: str, name: str) -> str:
        """The file a container binds: DIR/mnt/VIEW/NAME (VIEW: the container id)."""
        return f"{self.mnt}/{view}/{name}"

    # -- life ----------------------------------------------------------------------
    def spawn(self) -> int:
        """Start a server process (without waiting for it)."""
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        pkg_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = [pkg_dir] + [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
        for extra in ("/usr/lib/python3/dist-packages",):
            if extra not in paths and os.path.isdir(extra):
                paths.append(extra)
        code = (f"import sys; sys.path[:0] = {paths!r}; from pybox.procview.server import main; "
                f"sys.exit(main(['--dir', {self.dir!r}]))")
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            process = self.process = subprocess.Popen(
                [sys.executable, "-IS", "-c", code], stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, close_fds=True, start_new_session=True, cwd="/")
        finally:
            os.close(log)
        return process.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process is not None and self.process.poll() is not None and \
                    not self.running():
                raise ProcViewError(f"the /proc view server exited "
                                    f"({self.process.returncode}): {self.log_tail()}")
            if time.monotonic() > deadline:
                raise ProcViewError(f"the /proc view server did not come up in {timeout} s: "
                                    f"{self.log_tail()}")
            time.sleep(0.01)

    def ensure(self, timeout: float = READY_TIMEOUT) -> None:
        """A running, mounted server: the one there, or a new one."""
        if self.ready():
            return
        if not self.running():
            reason = unavailable_reason()
            if reason:
                raise ProcViewError(f"the /proc view cannot run: {reason}")
            self.spawn()
        self.wait_ready(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM the running server and wait until it has unmounted and exited."""
        pid = self.pid()
        if pid is not None and self.running():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.reap()
        return not self.running()

    def reap(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.process = None

    def wait_for_death(self) -> None:
        """Block until no server holds the lock (returns at once if none does)."""
        fd = os.open(self.lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                    break
                except OSError as e:
                    if e.errno != errno.EINTR:
                        raise
        finally:
            os.close(fd)  # releases the shared lock

    def log_tail(self, size: int = 2000) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:].strip()
        except OSError:
            return ""


class Supervisor:
    """Keeps a server running: starts it, and restarts it whenever it dies
    (a thread blocked on the server's lock wakes when the kernel drops it).
    Restarts are spaced out when a server keeps dying young."""

    def __init__(self, server: Server, log: Callable[[str], object] | None = None) -> None:
        self.server = server
        self.log = log or (lambda text: sys.stderr.write(text + "\n"))
        self.stopping = False
        self.restarts = 0
        self._claim: int | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure(self) -> None:
        with self._lock:
            self.server.ensure()

    def start(self) -> None:
        self._claim = self.server.claim()
        try:
            self.ensure()
        except BaseException:
            self.server.unclaim(self._claim)
            self._claim = None
            raise
        self._thread = threading.Thread(target=self._watch, name="procview-supervisor",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        delay = 0.0
        while not self.stopping:
            started = time.monotonic()
            self.server.wait_for_death()
            if self.stopping:
                return
            self.server.reap()
            lived = time.monotonic() - started
            delay = 0.0 if lived > 10 else min(max(delay * 2, 0.1), 10.0)
            self.log("the /proc view server is gone; restarting it"
                     + (f" in {delay:.1f} s" if delay else ""))
            time.sleep(delay)
            if self.stopping:
                return
            try:
                self.ensure()
                self.restarts += 1
            except PyboxError as e:
                self.log(f"cannot restart the /proc view server: {e}")
                time.sleep(1.0)

    def stop_server(self) -> bool:
        """Stop supervising and stop the server."""
        self.stopping = True
        try:
            return self.server.stop()
        finally:
            self.server.unclaim(self._claim)
            self._claim = None

    def detach(self) -> None:
        """Stop supervising; the server keeps serving running containers (and
        exits by itself once none uses it, unless a pyboxd supervises again)."""
        self.stopping = True
        self.server.unclaim(self._claim)
        self._claim = None
