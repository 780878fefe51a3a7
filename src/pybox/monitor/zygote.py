"""The monitor zygote: a warm, single-threaded process that forks monitors.

pyboxd serves its API with threads, and forking a threaded Python process is
unsafe (another thread may hold the import lock or an allocator lock in the
child).  So pyboxd forks this zygote once at start-up, before any thread exists.
The zygote imports everything a monitor and the runtime library need, freezes
the garbage collector's view of those objects (gc.freeze: collections in the
children do not touch, and so do not copy, the shared pages), and then forks one
monitor per request: a container start costs a fork, not an interpreter start
(~7 ms) plus imports (~10 ms), and every monitor shares the zygote's pages.

Requests arrive on a unix socket: one JSON line (the monitor request, see
monitor.py) with the report pipe's write end attached (SCM_RIGHTS).  Each monitor
runs in its own session and is re-parented to init when the zygote goes: it
survives pyboxd and the zygote.  The zygote dies with pyboxd (PDEATHSIG).

Imports: this module is loaded by pyboxd and by the zygote, so its top holds only
what the zygote preloads for the monitors anyway; what only pyboxd runs
(subprocess) is imported where it is used.
"""

from __future__ import annotations

import _socket
import gc
import os
import select
import sys
import time

from pybox.crashpoints import crashpoint
from pybox.errors import PyboxError
from pybox.formats import fastjson
from pybox.linux import constants as C
from pybox.linux import syscalls, unixsock
from pybox.monitor import monitor

TYPE_CHECKING = False  # (typing is not imported in the zygote; mypy reads this as true)
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
    from typing import Any
else:
    import _signal  # signal's C core: the signal module would load more for the monitors


def preload() -> None:
    """Import what the monitor's own loop runs -- and nothing more.  Every page of
    the zygote that a monitor touches is copied into it, so the zygote stays
    small: the runtime library is imported by each monitor's short-lived creator
    child (see monitor.start_container), whose copies die with it.  The
    modules come with monitor.py's own imports (at this module's top): what is
    left is the syscalls' ctypes libc and its prctl (the monitor's
    become_subreaper), built once, here: a monitor that built them would copy
    ~200 KiB of pages for that alone."""
    syscalls.real()  # (serve's PDEATHSIG prctl then looks prctl up, in the zygote too)


def serve(listener: _socket.socket, parent_pid: int | None = None) -> None:
    """Fork a monitor for every request on ``listener``.  Never returns."""
    preload()
    sc = syscalls.real()
    sc.prctl(C.PR_SET_PDEATHSIG, 15)
    # monitors are our direct children, reaped by the kernel (no zombies) and
    # re-parented to init when we go: one fork per container, not two
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)  # pyboxd died before PDEATHSIG was armed
    gc.collect()
    gc.freeze()
    while True:
        try:
            conn = monitor.accept(listener)
        except InterruptedError:
            continue
        try:
            data, anc, _, _ = conn.recvmsg(1 << 20, _socket.CMSG_SPACE(4))
            fds = [int.from_bytes(d[:4], "little") for lvl, kind, d in anc
                   if lvl == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS]
            request = fastjson.loads(data.split(b"\n", 1)[0])
        except (OSError, ValueError):
            conn.close()
            continue
        report_fd = fds[0] if fds else -1
        pid = os.fork()
        if pid == 0:
            try:
                listener.close()
                conn.close()
                os.setsid()
                sc.prctl(C.PR_SET_PDEATHSIG, 0)
                _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # it reaps its own
                monitor.run(request, report_fd)  # never returns
            finally:
                os._exit(1)
        if report_fd >= 0:
            os.close(report_fd)
        crashpoint("zygote.forked")
        try:
            conn.sendall(b"ok\n")
        except OSError:
            pass
        conn.close()


class ZygoteClient:
    """pyboxd's side: ask the zygote for a monitor, read the monitor's report."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _connect(self, s: _socket.socket, wait: float = 10.0) -> None:
        """Connect, waiting while pyboxd's keeper starts a new zygote (the old one
        died: its socket refuses, or is gone until the new one binds it)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                unixsock.call(s.connect, self.path)
                return
            except (ConnectionRefusedError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def spawn(self, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """-> the monitor's report dict ({"ok": True, "pid": N} or an error)."""
        report = _ask(self.path, request, timeout, self._connect, need_ack=False)
        assert report is not None  # (only an adoption is refused)
        return report


def adopt(path: str, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any] | None:
    """Hand a container to the monitor of its group (a pod's, listening on
    ``path``: monitor.Loop.adopt) rather than to the zygote: its report as
    ``ZygoteClient.spawn``'s, or None when no monitor took it (none listens,
    or it was ending): then the zygote forks one."""

    def connect(s: _socket.socket) -> None:
        unixsock.call(s.connect, path)

    try:
        return _ask(path, request, timeout, connect, need_ack=True)
    except (ConnectionRefusedError, FileNotFoundError):
        return None


def _ask(path: str, request: dict[str, Any], timeout: float,
         connect: Callable[[_socket.socket], None], need_ack: bool) -> dict[str, Any] | None:
    """The request line and the report pipe's write end to ``path``; its "ok";
    then the monitor's report from the pipe.  None when ``need_ack`` and the
    other side closed without its "ok"."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            connect(s)
            s.settimeout(timeout)
            try:
                s.sendmsg([fastjson.dumps(request).encode() + b"\n"],
                          [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, w.to_bytes(4, "little"))])
                os.close(w)
                w = -1
                ack = s.recv(16)  # the zygote forked; a group's monitor took it
            except OSError:
                if need_ack:
                    return None  # (it was ending: its close reset us)
                raise
            if need_ack and ack != b"ok\n":
                return None
        finally:
            s.close()
        buf = b""
        poller = select.poll()
        poller.register(r, select.POLLIN)
        while b"\n" not in buf:
            if not poller.poll(int(timeout * 1000)):
                raise PyboxError("the container monitor did not report in time")
            chunk = os.read(r, 65536)
            if not chunk:
                raise PyboxError("the container monitor died before reporting")
            buf += chunk
        report: dict[str, Any] = fastjson.loads(buf.split(b"\n", 1)[0])
        return report
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def start(path: str) -> int:
    """Start the zygote as a fresh interpreter (python -IS) listening on ``path``:
    a fork of pyboxd would carry pyboxd's whole heap (the API, the image store)
    into every monitor.  Returns its pid."""
    import subprocess  # noqa: PLC0415 -- pyboxd only: kept out of the zygote

    pkg_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [pkg_dir] + [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    code = (f"import sys; sys.path[:0] = {paths!r}; from pybox.monitor.zygote import main; "
            f"main({path!r}, {os.getpid():d})")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    proc = subprocess.Popen([sys.executable, "-IS", "-c", code], stdin=subprocess.DEVNULL,
                            close_fds=True)
    # ready when the socket exists
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the monitor zygote did not start")
        time.sleep(0.005)
    return proc.pid


def main(path: str, parent_pid: int) -> None:
    """Entry point of the exec'd zygote."""
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    tmp = f"{path}.tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    unixsock.call(listener.bind, tmp)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.rename(tmp, path)  # appears only when it accepts
    serve(listener, parent_pid=parent_pid)
