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
monitor.py) with the report pipe's write end attached (SCM_RIGHTS).  The zygote
double-forks so the monitor is re-parented to init and runs in its own session:
it survives pyboxd and the zygote.  The zygote dies with pyboxd (PDEATHSIG).
"""

import os


def preload():
    """Import what monitors run, so their code pages and objects are shared."""
    import _signal  # noqa: F401
    import fcntl  # noqa: F401
    import select  # noqa: F401
    import socket  # noqa: F401
    import termios  # noqa: F401

    from pybox import cgroups  # noqa: F401
    from pybox.cgroups import base, hybrid, layout, paths, resources, v1, v2  # noqa: F401
    from pybox.linux import syscalls
    from pybox.monitor import jsonlog, monitor, protocol  # noqa: F401
    from pybox.oci import spec  # noqa: F401
    from pybox.runtime import container, hooks, init, launch, process, rootfs, terminal  # noqa: F401

    try:
        from pybox.runtime import seccomp  # noqa: F401
        import seccomp as _libseccomp  # noqa: F401
    except ImportError:
        pass
    syscalls.real()  # loads ctypes and libc once


def serve(listener, parent_pid=None):
    """Fork a monitor for every request on ``listener``.  Never returns."""
    import gc
    import _socket

    from pybox.linux import constants as C
    from pybox.linux import syscalls
    from pybox.monitor import monitor
    from pybox.oci import fastjson

    preload()
    sc = syscalls.real()
    sc.prctl(C.PR_SET_PDEATHSIG, 15)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)  # pyboxd died before PDEATHSIG was armed
    gc.collect()
    gc.freeze()
    while True:
        try:
            conn, _ = listener.accept()
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
                if os.fork() != 0:
                    os._exit(0)
                monitor.run(request, report_fd)  # never returns
            finally:
                os._exit(1)
        os.waitpid(pid, 0)
        if report_fd >= 0:
            os.close(report_fd)
        try:
            conn.sendall(b"ok\n")
        except OSError:
            pass
        conn.close()


class ZygoteClient:
    """pyboxd's side: ask the zygote for a monitor, read the monitor's report."""

    def __init__(self, path):
        self.path = path

    def spawn(self, request, timeout=60.0):
        """-> the monitor's report dict ({"ok": True, "pid": N} or an error)."""
        import select
        import socket

        from pybox.errors import PyboxError
        from pybox.oci import fastjson

        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                s.sendmsg([fastjson.dumps(request).encode() + b"\n"],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, w.to_bytes(4, "little"))])
                os.close(w)
                w = -1
                s.recv(16)  # the zygote forked
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
            return fastjson.loads(buf.split(b"\n", 1)[0])
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)


def start(path):
    """Fork the zygote from the (still single-threaded) caller, listening on
    ``path``.  Returns its pid."""
    import socket

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            # nothing of pyboxd's (its API socket, client connections) stays open here
            keep = listener.fileno()
            for fd in range(3, 1024):
                if fd != keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            if devnull > 2:
                os.close(devnull)
            serve(listener, parent_pid=parent)
        finally:
            os._exit(1)
    listener.close()
    return pid
