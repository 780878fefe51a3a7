"""A monitor per running container -- or per pod: the parent of its init, owner
of its stdio.

Forked (already warm) by the zygote and detached into its own session, so it
outlives pyboxd.  For each container it holds (a ``Monitor``) it

1. sets up the container's stdio: pipes, or a console socket that receives the
   pty master from the runtime;
2. creates and starts the container through the runtime library, in-process (no
   interpreter start), as a child subreaper so init is re-parented to it;
3. reports {"ok", "pid"} (or the error) to pyboxd on the report fd;
4. loops: container output -> the log driver + attached clients; attached stdin ->
   container; resize; wait requests; init's exit (a pidfd) -> waitpid, drain the
   output, OOM check, DIR/exit.json (written atomically, before anyone is told),
   exit frames to attachers, answers to waiters; then it exits.

Everything is single-threaded and event driven (select.poll, one ``Loop`` per
process), so a fork from the zygote touches few pages: the PSS of a monitor
stays small.

Groups (a pod's containers, as containerd groups its shim per pod): a request
naming a ``group_socket`` makes the monitor listen there too, and the next
containers of the group are handed to it (pyboxd sends the same request line
and report fd on that socket: ``adopt``) instead of to the zygote.  Each
container keeps its own run directory -- socket, pid file, exit file, log --
so pyboxd's view of it is unchanged (a restarted pyboxd reaches each as
before); the process ends with the last of its containers.  A container's
set-up (the runtime's create, its start) runs in the loop, so the others'
output waits in their pipes meanwhile (tens of milliseconds).

Imports: what the monitor's loop runs is imported at the top (the zygote
preloads this module, so it costs a monitor nothing); the runtime library is
imported only where it runs -- in the short-lived creator child, or for a tty
(the console) -- so its pages are never in the zygote.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import select
import time

from pybox.crashpoints import crashpoint
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.linux import unixsock
from pybox.linux.wait import UNKNOWN_EXIT, become_subreaper, exit_code
from pybox.monitor import protocol as P
from pybox.monitor.logdrivers import LogDriverError, open_writer
from pybox.oci.state import write_atomic

TYPE_CHECKING = False  # (typing is not imported in the zygote; mypy reads this as true)
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any, TypedDict

    from pybox.monitor.crilog import CRILogWriter
    from pybox.monitor.jsonlog import LogWriter
    from pybox.monitor.locallog import Copier

    class MonitorRequest(TypedDict, total=False):
        """What pyboxd asks the zygote for (one JSON line): the container, its
        bundle and run directory, its stdio and log."""

        id: str
        bundle: str
        runtime_root: str
        dir: str  # the run directory: monitor.sock, monitor.pid, exit.json
        systemd_cgroup: bool
        log: dict[str, Any] | None  # the log driver (pybox.engine.logs.monitor_log)
        log_path: str | None  # (before log: a json-file log)
        log_max_size: int | None
        log_max_files: int | None
        tty: bool
        open_stdin: bool
        stdin_once: bool
        console_size: list[int] | None  # [height, width]
        defer_start: bool  # wait for a {"op": "start"} before the program runs
        procview_socket: str | None  # where seccomp notify fds go (the /proc view)
        group_socket: str | None  # the pod's monitor: where its next containers come
else:
    import _signal  # signal's C core: the signal module would load more for the monitors

EXIT_FILE = "exit.json"
SOCKET = "monitor.sock"
PID_FILE = "monitor.pid"
DRAIN_SECONDS = 2.0


class _Failure(Exception):
    """An error reported by the creator child (message and errno)."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(report.get("error") or "failed")
        self.errno = report.get("errno")


def _failure(exc: BaseException) -> bytes:
    errno = getattr(exc, "errno", None)
    return fastjson.dumps({"ok": False, "error": str(exc) or exc.__class__.__name__,
                           "errno": errno if isinstance(errno, int) else None}).encode() + b"\n"


class Client:
    """One connection to the monitor's socket."""

    __slots__ = ("sock", "fd", "mode", "stdout", "stderr", "stdin", "reader", "buf", "out")

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.mode: str | None = None  # None (request pending), "attach", "wait"
        self.stdout = self.stderr = self.stdin = False
        self.reader: P.FrameReader | None = None
        self.buf = b""
        self.out = b""  # pending output (the socket was full)


class Monitor:
    """One container's monitoring: its stdio, its clients, its exit.  Its fds
    are polled by the process's ``Loop`` (shared with a pod's other
    containers), which hands it their events (``event``)."""

    def __init__(self, request: MonitorRequest, loop: Loop) -> None:
        self.req = request
        self.loop = loop
        self.dir = request["dir"]
        self.tty = bool(request.get("tty"))
        self.open_stdin = bool(request.get("open_stdin"))
        self.stdin_once = bool(request.get("stdin_once"))
        self.clients: dict[int, Client] = {}
        self.stdin_w: int | None = None
        self.stdin_buf = b""  # for the container, not yet taken by it
        self.stdin_eof_pending = False  # close its stdin once stdin_buf is written
        self.stdin_polled = False  # POLLOUT wanted on the stdin fd
        self.master: int | None = None
        self.outputs: dict[int, str] = {}  # fd -> stream name
        self.log: LogWriter | Copier | CRILogWriter | None = None
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.exit_info: dict[str, Any] | None = None
        self.started = False
        self.creator: int | None = None
        self.creator_pidfd: int | None = None
        self.creator_result: int | None = None
        self.creator_go: int | None = None
        self.notify_fds: set[int] = set()  # seccomp listeners kept for the /proc view
        self.listener: _socket.socket | None = None
        self.socket_ino: int | None = None
        self.exited_at: float | None = None  # init reaped: the output drains until then + DRAIN
        self.finish_by: float | None = None  # finished: its last frames leave until then

    # -- set-up -------------------------------------------------------------
    def open_log(self) -> None:
        """The log driver, before the container is made: a driver that cannot
        start (a syslog server that refuses) fails the start, as in dockerd."""
        spec = self.req.get("log")
        if spec is None and self.req.get("log_path"):
            spec = {"driver": "json-file", "path": self.req.get("log_path"),
                    "max_size": self.req.get("log_max_size"),
                    "max_files": self.req.get("log_max_files")}
        if spec:
            try:
                self.log = open_writer(spec)
            except LogDriverError as e:
                raise LogDriverError(f"failed to initialize logging driver: {e}") from None

    def start_container(self) -> None:
        """Container stdio in the monitor; the runtime's create (and later start)
        in a short-lived child, the *creator*: the pages the runtime touches are
        copied into the creator, not into the long-lived monitor, whose memory
        stays shared with the zygote (and every other monitor).  init reaches us
        anyway: we are the subreaper when the runtime's stage1 exits."""

        req = self.req
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        console: _socket.socket | None = None
        theirs: _socket.socket | None = None
        child_stdio = [devnull, devnull, devnull]
        opened: list[int] = []
        try:
            if self.tty:
                console, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            else:
                if self.open_stdin:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    child_stdio[0] = r
                    opened.append(r)
                    self.stdin_w = w
                for fd, name in ((1, "stdout"), (2, "stderr")):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    child_stdio[fd] = w
                    opened.append(w)
                    self.outputs[r] = name
            result_r, result_w = os.pipe2(os.O_CLOEXEC)
            go_r, go_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:
                self._creator(child_stdio, theirs, result_w, go_r)  # never returns
            os.close(result_w)
            os.close(go_r)
            self.creator = pid
            self.creator_pidfd = os.pidfd_open(pid)
            self.creator_result = result_r
            self.creator_go = go_w
            for fd in opened:
                os.close(fd)
            opened = []
            if theirs is not None:
                theirs.close()
                theirs = None
            crashpoint("monitor.creator_forked")
            report = self._creator_reply()
            if not report.get("ok"):
                raise _Failure(report)
            self.pid = pid = report["pid"]
            crashpoint("monitor.created")
            if console is not None:  # (a tty)
                # (the runtime library, for a tty only: see the module's docstring)
                from pybox.runtime.terminal import receive_master  # noqa: PLC0415

                self.master = receive_master(console)
                size = req.get("console_size")
                if size and size[0] and size[1]:
                    self._resize(size[0], size[1])
                self.outputs[self.master] = "stdout"
            self.pidfd = os.pidfd_open(pid)
            if not self.req.get("defer_start"):
                self.start_program()
        finally:
            for fd in opened:
                os.close(fd)
            os.close(devnull)
            for s in (console, theirs):
                if s is not None:
                    s.close()

    def _creator(self, stdio: list[int], console_sock: _socket.socket | None, result_w: int,
                 go_r: int) -> None:
        """In the creator child: create, report, wait for the go, start, report."""
        # the runtime library, in the creator child only (see the module's docstring)
        from pybox.runtime import container as rt  # noqa: PLC0415

        code = 1
        try:
            # as forked by the zygote: SIGCHLD's default, no wakeup fd (a pod's
            # monitor has them; the fd is closed below, and the runtime waits
            # for its own children)
            _signal.set_wakeup_fd(-1)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            for fd, src in enumerate(stdio):
                os.dup2(src, fd)  # what init inherits
            # Nothing else of the monitor's may live on in the creator: holding
            # the write end of the go pipe (or pyboxd's report fd, the monitor's
            # socket...) the creator would never see the monitor die and would
            # wait for its "go" forever, keeping pyboxd's read of the report open.
            keep = {result_w, go_r}
            if console_sock is not None:
                keep.add(console_sock.fileno())
            low = 3
            for fd in sorted(keep):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, 1 << 20)
            req = self.req
            crashpoint("creator.before_create")
            try:
                c = rt.create(req["runtime_root"], req["id"], req["bundle"],
                              console_sock=console_sock,
                              systemd_cgroup=req.get("systemd_cgroup", False))
            except BaseException as e:  # noqa: BLE001
                os.write(result_w, _failure(e))
                return
            crashpoint("creator.created")
            if console_sock is not None:
                console_sock.close()
            try:
                os.write(result_w, fastjson.dumps({"ok": True, "pid": c.pid}).encode() + b"\n")
                go = os.read(go_r, 1)
            except OSError:
                go = b""  # the monitor is gone (EPIPE): nobody would ever start it
            if not go:
                try:
                    c.delete(force=True)  # the monitor gave up before the start
                except BaseException:  # noqa: BLE001
                    pass
                return
            crashpoint("creator.before_start")
            try:
                c.start()
            except BaseException as e:  # noqa: BLE001
                try:
                    c.delete(force=True)
                except BaseException:  # noqa: BLE001 - the start error is what matters
                    pass
                os.write(result_w, _failure(e))
                return
            crashpoint("creator.started")
            os.write(result_w, b'{"ok":true}\n')
            code = 0
        finally:
            os._exit(code)

    def _creator_reply(self) -> dict[str, Any]:
        # The creator's death is watched through its pidfd, not only the
        # pipe's EOF: the container's init is forked from it and holds the
        # pipe's write end until it execs (a creator killed after the create
        # left the monitor waiting for ever).
        result, pidfd = self.creator_result, self.creator_pidfd
        assert result is not None and pidfd is not None  # (the creator was forked)
        buf = b""
        poller = select.poll()
        poller.register(result, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while not buf.endswith(b"\n"):
            ready = {fd for fd, _ in poller.poll()}
            if result in ready:
                chunk = os.read(result, 65536)
                if chunk:
                    buf += chunk
                    continue
            elif pidfd in ready:
                os.set_blocking(result, False)
                try:
                    chunk = os.read(result, 65536)  # its last words
                except BlockingIOError:
                    chunk = b""
                finally:
                    os.set_blocking(result, True)
                if chunk:
                    buf += chunk
                    continue
            return {"ok": False, "error": "the runtime's creator process died"}
        return fastjson.loads(buf)

    def start_program(self) -> None:
        """Let init exec the program (the creator runs the runtime's start; on
        failure it deletes the container and the error comes back)."""
        if self.started:
            return
        go, result, pidfd = self.creator_go, self.creator_result, self.creator_pidfd
        if go is None or result is None or pidfd is None:
            raise _Failure({"error": "the container's start was aborted"})
        os.write(go, b"g")
        os.close(go)
        self.creator_go = None
        crashpoint("monitor.go_sent")
        report = self._creator_reply()
        os.close(result)
        self.creator_result = None
        os.close(pidfd)
        self.creator_pidfd = None
        if not report.get("ok"):
            raise _Failure(report)
        self.started = True
        crashpoint("monitor.started")

    def abort(self) -> None:
        """Undo a start nobody will finish (its starter, pyboxd, died between
        the runtime's create and start): the creator, its go pipe closed,
        deletes the runtime's container; init dies and the monitor ends as
        it does at any exit."""
        if self.started or self.creator_go is None:
            return
        os.close(self.creator_go)
        self.creator_go = None

    def _resize(self, h: int, w: int, req: int | None = None) -> None:
        if self.master is None:
            return
        # (a tty's: receive_master loaded the module; see the module's docstring)
        from pybox.runtime.terminal import TIOCSWINSZ  # noqa: PLC0415

        fcntl.ioctl(self.master, req or TIOCSWINSZ,
                    int(h).to_bytes(2, "little") + int(w).to_bytes(2, "little") + b"\0" * 4)

    # -- events ---------------------------------------------------------------
    def activate(self, listener: _socket.socket) -> None:
        """Set up, reported: its socket, output, stdin and init join the loop."""
        self.listener = listener
        loop = self.loop
        loop.register(listener.fileno(), select.POLLIN, self)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            loop.register(fd, select.POLLIN, self)
        pidfd = self.pidfd
        assert pidfd is not None  # (start_container opened it)
        loop.register(pidfd, select.POLLIN, self)
        if self.pid is not None:
            loop.by_pid[self.pid] = self
        if self.stdin_w is not None:
            os.set_blocking(self.stdin_w, False)
        try:  # (see _unlink_socket)
            self.socket_ino = os.stat(os.path.join(self.dir, SOCKET)).st_ino
        except OSError:
            self.socket_ino = None

    def event(self, fd: int, ev: int) -> None:
        """One of its fds is ready."""
        if fd == self.pidfd:
            self._init_ended()
        elif self.listener is not None and fd == self.listener.fileno():
            self._accept()
        elif fd == self._stdin_fd() and (ev & select.POLLOUT or fd not in self.outputs):
            self._flush_stdin()
            if fd in self.outputs and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._read_output(fd)  # (a pty master: also the output)
        elif fd in self.outputs:
            self._read_output(fd)
        elif fd in self.clients:
            self._client_event(self.clients[fd], ev)
        elif fd in self.notify_fds:
            self.loop.unregister(fd)  # its filter has no task left
            self.notify_fds.discard(fd)
            os.close(fd)

    def deadline(self) -> float | None:
        """When ``tick`` has something to do without an event (monotonic)."""
        if self.finish_by is not None:
            return self.finish_by
        if self.exited_at is not None:
            return self.exited_at + DRAIN_SECONDS
        return None

    def tick(self, now: float) -> None:
        """After the loop's events: an exited container whose output is drained
        (or whose drain time is up) is finished; a finished one whose last
        frames left (or whose time for them is up) is let go."""
        if self.finish_by is None and self.exited_at is not None and \
                (not self.outputs or now - self.exited_at >= DRAIN_SECONDS):
            self._finish()
            now = time.monotonic()
        if self.finish_by is not None and \
                (now >= self.finish_by or not any(c.out for c in self.clients.values())):
            self._release()

    def _init_ended(self) -> None:
        """init's pidfd is readable: collect its status (the loop's sweep may
        have collected it already)."""
        pid = self.pid
        try:
            got, status = os.waitpid(pid, os.WNOHANG) if pid else (-1, 0)
        except ChildProcessError:
            got, status = -1, 0
        if got == 0:
            time.sleep(0.001)  # pidfd fired but the zombie is not reapable yet
            return
        self.on_exit(status if got > 0 else None)

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self.loop.unregister(fd)
            stream = self.outputs.pop(fd)
            if fd != self.master:
                os.close(fd)
            return
        stream = self.outputs[fd]
        if self.log is not None:
            self.log.write(stream, data)
        kind = P.STDOUT if stream == "stdout" else P.STDERR
        payload = P.frame(kind, data)
        for c in list(self.clients.values()):
            if c.mode == "attach" and (c.stdout if kind == P.STDOUT else c.stderr):
                self._send(c, payload)

    def _send(self, c: Client, data: bytes) -> None:
        """Queue output for a client; a client that falls 4 MiB behind is cut off
        (it must not stall the container: output is never blocked on a reader)."""
        c.out += data
        try:
            n = c.sock.send(c.out)
            c.out = c.out[n:]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(c)
            return
        if len(c.out) > 4 * 1024 * 1024:
            self._drop(c)
            return
        self.loop.poller.modify(c.fd, select.POLLIN | (select.POLLOUT if c.out else 0))

    def _accept(self) -> None:
        assert self.listener is not None  # (serve set it)
        try:
            sock = accept(self.listener)
        except OSError:
            return
        sock.setblocking(False)
        c = Client(sock)
        self.clients[c.fd] = c
        self.loop.register(c.fd, select.POLLIN, self)

    def _client_event(self, c: Client, ev: int) -> None:
        if ev & select.POLLOUT and c.out:
            self._send(c, b"")
            if c.fd not in self.clients:
                return
        if not ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            return
        try:
            if c.mode is None:
                # a first message may carry fds: the runtime's seccomp notify fd
                data, anc, _, _ = c.sock.recvmsg(65536, 64)
                if anc:
                    self._keep_listener_fds(anc)
                    self._drop(c)
                    return
            else:
                data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if c.mode == "attach" and c.stdin:
                self._stdin_eof()
            self._drop(c)
            return
        if c.mode is None:
            c.buf += data
            if b"\n" not in c.buf:
                return
            line, _, rest = c.buf.partition(b"\n")
            c.buf = b""
            self._request(c, line, rest)
        elif c.mode == "attach":
            self._attach_input(c, data)

    def _keep_listener_fds(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        """The runtime sent a seccomp notify fd (linux.seccomp.listenerPath is
        this socket: the /proc view intercepts sysinfo).  The monitor keeps it
        for the container's life -- so the filter's notifications survive a
        restart of the server, which takes copies back with pidfd_getfd -- and
        passes a copy to the server now.  Dropped when its filter has no task
        left (POLLHUP: an exec'd process ended)."""
        fds: list[int] = []
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds.extend(int.from_bytes(data[i:i + 4], "little")
                           for i in range(0, len(data) - len(data) % 4, 4))
        for fd in fds:
            self.notify_fds.add(fd)
            self.loop.register(fd, 0, self)  # POLLHUP only: the server answers
        path = self.req.get("procview_socket")
        if not path or not fds:
            return
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(1.0)
            unixsock.call(sock.connect, path)
            sock.sendmsg([b'{"id":"%s"}' % self.req["id"].encode()],
                         [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                           b"".join(fd.to_bytes(4, "little") for fd in fds))])
        except OSError:
            pass  # no server now: the next one collects the fds from us
        finally:
            sock.close()

    def _request(self, c: Client, line: bytes, rest: bytes) -> None:
        try:
            req = fastjson.loads(line)
            op = req.get("op")
        except ValueError:
            self._drop(c)
            return
        if op == "attach":
            c.mode = "attach"
            c.stdin = bool(req.get("stdin")) and (self.open_stdin or self.tty)
            c.stdout = bool(req.get("stdout", True))
            c.stderr = bool(req.get("stderr", True))
            c.reader = P.FrameReader()
            if self.exit_info is not None:
                self._send(c, P.frame(P.EXIT, fastjson.dumps(self.exit_info).encode()))
            if rest:
                self._attach_input(c, rest)
        elif op == "wait":
            c.mode = "wait"
            if self.exit_info is not None:
                self._send(c, fastjson.dumps(self.exit_info).encode() + b"\n")
        elif op == "resize":
            try:
                self._resize(req["h"], req["w"])
                self._send(c, b"ok\n")
            except (OSError, KeyError, TypeError, ValueError) as e:
                self._send(c, f"error {e}\n".encode())
        elif op == "start":
            # deferred start: pyboxd connected its attach sessions first, so no
            # early output of the program is missed by a client
            if self.started:
                self._send(c, b"ok\n")
                return
            try:
                self.start_program()
                self._send(c, b"ok\n")
            except BaseException as e:  # noqa: BLE001 - told to pyboxd
                self._send(c, fastjson.dumps({"error": str(e)}).encode() + b"\n")
        elif op == "info":
            self._send(c, fastjson.dumps({"pid": self.pid, "started": self.started,
                                          "exited": self.exit_info is not None}).encode()
                       + b"\n")
        elif op == "reopen_log":
            self._send(c, self._reopen_log())
        elif op == "abort":
            if self.started:
                self._send(c, b"started\n")
                return
            self.abort()
            self._send(c, b"ok\n")
        else:
            self._drop(c)

    def _reopen_log(self) -> bytes:
        """The answer to a reopen_log (CRI's ReopenContainerLog, after kubelet
        renamed the file): "ok" once the path is open anew, or {"error"}."""
        if self.exit_info is not None:
            return b'{"error":"container is not running"}\n'
        if self.log is None:  # (no log path: nothing to reopen, as containerd's discard)
            return b"ok\n"
        reopen = getattr(self.log, "reopen", None)
        if reopen is None:
            return b'{"error":"the container\'s log driver cannot reopen its log"}\n'
        try:
            reopen()
        except OSError as e:
            return fastjson.dumps({"error": f"failed to create and open log file: {e}"}
                                  ).encode() + b"\n"
        return b"ok\n"

    def _attach_input(self, c: Client, data: bytes) -> None:
        if c.reader is None:  # (never: an attach request made one)
            return
        for kind, payload in c.reader.feed(data):
            if kind == P.STDIN and c.stdin:
                self._write_stdin(payload)
            elif kind == P.STDIN_EOF and c.stdin:
                self._stdin_eof()
            elif kind == P.RESIZE:
                try:
                    h, w = payload.split()
                    self._resize(int(h), int(w))
                except (ValueError, OSError):
                    pass

    def _stdin_fd(self) -> int | None:
        return self.master if self.tty else self.stdin_w

    def _write_stdin(self, data: bytes) -> None:
        """Queue bytes for the container's stdin and write what it takes now.  The
        monitor never blocks on it: a program that does not read (yet: stdin sent
        before the start) must not stall the loop, its output and its start."""
        if self._stdin_fd() is None:
            return
        self.stdin_buf += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self._stdin_fd()
        while self.stdin_buf and fd is not None:
            try:
                n = os.write(fd, self.stdin_buf)
            except BlockingIOError:
                break
            except OSError:  # EPIPE, EIO: nobody reads it any more
                self.stdin_buf = b""
                break
            self.stdin_buf = self.stdin_buf[n:]
        if fd is None:
            self.stdin_buf = b""
        self._poll_stdin(bool(self.stdin_buf))
        if not self.stdin_buf and self.stdin_eof_pending:
            self.stdin_eof_pending = False
            self._stdin_eof()

    def _poll_stdin(self, want: bool) -> None:
        """POLLOUT on the stdin fd while bytes wait (a pty master is polled for
        output anyway: only its mask changes)."""
        fd = self._stdin_fd()
        if want == self.stdin_polled or fd is None:
            return
        self.stdin_polled = want
        try:
            if fd in self.outputs:
                self.loop.poller.modify(fd, select.POLLIN | (select.POLLOUT if want else 0))
            elif want:
                self.loop.register(fd, select.POLLOUT, self)
            else:
                self.loop.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def _stdin_eof(self) -> None:
        """A client closed its stdin: with StdinOnce the container's stdin closes
        (its reads see EOF) once what was sent before is written; otherwise the
        next attach may write more."""
        if self.stdin_buf:
            self.stdin_eof_pending = True
            return
        if self.stdin_once and self.stdin_w is not None:
            self._poll_stdin(False)
            self.loop.unregister(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = None

    def _drop(self, c: Client) -> None:
        self.clients.pop(c.fd, None)
        self.loop.unregister(c.fd)
        try:
            c.sock.close()
        except OSError:
            pass

    # -- exit ---------------------------------------------------------------
    def on_exit(self, status: int | None) -> None:
        """init is gone (``status`` from waitpid; None when it was not ours to
        wait for): its exit, then the output drains (``tick``)."""
        if self.exit_info is not None:
            return
        self.loop.by_pid.pop(self.pid or 0, None)
        if self.pidfd is not None:
            self.loop.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        code = UNKNOWN_EXIT if status is None else exit_code(status)
        oom = code == 137 and self._oom_killed()
        self.exit_info = {"exit_code": code, "oom_killed": oom, "pid": self.pid,
                          "finished_at": rfc3339_nano_fixed()}
        crashpoint("monitor.reaped")
        self.exited_at = time.monotonic()

    def _oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended it (its cgroup's count), asked
        of a short-lived child: the runtime library it takes stays out of a
        monitor that lives on (a pod's) -- best effort: no cgroup, no OOM."""
        try:
            pid = os.fork()
        except OSError:
            return False
        if pid == 0:
            code = 0
            try:
                _signal.set_wakeup_fd(-1)
                # the runtime library, at the exit of an OOM-killed candidate only
                from pybox.runtime.container import Container  # noqa: PLC0415

                mgr = Container.load(self.req["runtime_root"], self.req["id"]).cgroup_manager()
                code = 1 if mgr and mgr.oom_kill_count() > 0 else 0
            except BaseException:  # noqa: BLE001 - best effort
                code = 0
            finally:
                os._exit(code)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return False
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1

    def _finish(self) -> None:
        for fd in list(self.outputs):
            self.loop.unregister(fd)
            if fd != self.master:
                os.close(fd)
        self.outputs.clear()
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.exit_info is None:  # (defensive) finished without a reap
            self.on_exit(None)
        body = fastjson.dumps(self.exit_info).encode()
        crashpoint("monitor.before_exit_file")
        # the exit file first: whoever is told about the exit can read it
        try:
            write_atomic(os.path.join(self.dir, EXIT_FILE), body, mode=0o644, durable=True)
        except OSError:
            pass  # its run directory is gone (a recovery removed an orphan's): nobody reads it
        crashpoint("monitor.exit_file")
        # The socket's name goes before anyone is told: told, pyboxd may start
        # the container again at once, and that run's monitor binds this very
        # path.  Unlinked at the end (after up to a second of last frames to a
        # slow attach client), it took the next run's socket: a running
        # container with no monitor to reach (attach, resize, a restarted
        # pyboxd's recovery, its start).
        self._unlink_socket()
        for c in list(self.clients.values()):
            if c.mode == "attach":
                self._send(c, P.frame(P.EXIT, body))
            elif c.mode == "wait":
                self._send(c, body + b"\n")
        # the last frames leave through the loop (bounded: tick)
        self.finish_by = time.monotonic() + 1.0

    def _release(self) -> None:
        """The end of its monitoring: every fd of it closed, out of the loop
        (a pod's monitor goes on with the others; a process with none left
        ends)."""
        loop = self.loop
        for c in list(self.clients.values()):
            self._drop(c)
        if self.listener is not None:
            loop.unregister(self.listener.fileno())
            self.listener.close()
            self.listener = None
        for fd in (self.master, self.stdin_w, self.pidfd, self.creator_go, self.creator_result,
                   self.creator_pidfd, *self.notify_fds):
            if fd is not None:
                loop.unregister(fd)
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.stdin_w = self.pidfd = None
        self.creator_go = self.creator_result = self.creator_pidfd = None
        self.notify_fds.clear()
        loop.by_pid.pop(self.pid or 0, None)
        if self in loop.monitors:
            loop.monitors.remove(self)

    def _unlink_socket(self) -> None:
        """Remove DIR/monitor.sock if it is still this monitor's (the inode
        seen when serving began), never a newer monitor's."""
        path = os.path.join(self.dir, SOCKET)
        try:
            if os.stat(path).st_ino == self.socket_ino:
                os.unlink(path)
        except OSError:
            pass


class Loop:
    """The monitor process's one event loop: the containers it holds (one, or a
    pod's), its children's SIGCHLD, and a group's socket (``adopt``)."""

    def __init__(self) -> None:
        self.poller = select.poll()
        self.owners: dict[int, Monitor] = {}  # fd -> the container it is of
        self.monitors: list[Monitor] = []
        self.by_pid: dict[int, Monitor] = {}  # a container's init -> its Monitor
        self.sigchld = -1
        self.group: _socket.socket | None = None
        self.group_path: str | None = None
        self.group_ino: int | None = None

    def register(self, fd: int, mask: int, owner: Monitor) -> None:
        self.poller.register(fd, mask)
        self.owners[fd] = owner

    def unregister(self, fd: int) -> None:
        self.owners.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except (KeyError, ValueError):
            pass

    # -- a container in ----------------------------------------------------------------
    def setup(self, mon: Monitor, report_fd: int) -> bool:
        """Bind its socket, open its log, create the container (and start it
        unless deferred), report to pyboxd on ``report_fd`` (closed here), and
        serve it.  False when it failed (reported, nothing of it left)."""
        path = os.path.join(mon.dir, SOCKET)
        try:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                unixsock.call(listener.bind, path)
                os.chmod(path, 0o600)
                listener.listen(16)
                listener.setblocking(False)
            except BaseException:
                listener.close()
                raise
            crashpoint("monitor.listening")
            try:
                mon.open_log()
                mon.start_container()
            except BaseException:
                listener.close()
                try:
                    os.unlink(path)
                except OSError:
                    pass
                raise
        except BaseException as e:  # noqa: BLE001 - reported to pyboxd
            try:
                os.write(report_fd, fastjson.dumps({
                    "ok": False, "error": str(e) or e.__class__.__name__,
                    "log_driver": isinstance(e, LogDriverError),
                    "errno": getattr(e, "errno", None) if isinstance(getattr(e, "errno", None),
                                                                     int) else None,
                }).encode() + b"\n")
            except OSError:
                pass
            os.close(report_fd)
            if mon.log is not None:
                mon.log.close()
                mon.log = None
            mon._release()
            return False
        self.monitors.append(mon)
        # never half-written; not fsynced: the run root is a tmpfs
        write_atomic(os.path.join(mon.dir, PID_FILE), str(os.getpid()), mode=0o644)
        crashpoint("monitor.pid_file")
        try:
            os.write(report_fd, fastjson.dumps({"ok": True, "pid": mon.pid}).encode() + b"\n")
        except OSError:
            # pyboxd died while it waited for us (EPIPE).  A running container
            # is served for the restarted pyboxd to adopt (exiting here
            # orphaned it); one whose start pyboxd was to order will never be
            # started: undone now (the creator deletes it, init dies, we end
            # as usual), whether or not the new pyboxd already saw us.
            if not mon.started:
                mon.abort()
        os.close(report_fd)
        crashpoint("monitor.reported")
        mon.activate(listener)
        return True

    # -- a pod's monitor ----------------------------------------------------------------
    def listen_group(self, path: str) -> None:
        """Be the monitor of a group (a pod): its next containers come on
        ``path``.  A path another live monitor holds is left to it (this one
        then serves its own container alone); one left by a dead monitor is
        taken over.  Best effort: without it each container gets a monitor."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            try:
                unixsock.call(sock.bind, path)
            except OSError:
                probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    unixsock.call(probe.connect, path)
                    return  # (a live monitor has it)
                except ConnectionRefusedError:
                    os.unlink(path)  # (its monitor is gone)
                finally:
                    probe.close()
                unixsock.call(sock.bind, path)
            os.chmod(path, 0o600)
            sock.listen(16)
            sock.setblocking(False)
            self.group_ino = os.stat(path).st_ino
        except OSError:
            sock.close()
            return
        self.group, self.group_path = sock, path

    def adopt(self) -> None:
        """A container of the group, sent by pyboxd as the zygote gets one (the
        request line, the report fd): "ok" once it is this monitor's, then
        set up as the first one was."""
        assert self.group is not None
        try:
            conn = accept(self.group)
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            data, anc, _, _ = conn.recvmsg(1 << 20, _socket.CMSG_SPACE(4))
            for level, kind, d in anc:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    fds.extend(int.from_bytes(d[i:i + 4], "little")
                               for i in range(0, len(d) - len(d) % 4, 4))
            request = fastjson.loads(data.split(b"\n", 1)[0])
            if len(fds) != 1 or not _is_request(request):
                raise ValueError("not a monitor request")
            conn.sendall(b"ok\n")
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        conn.close()
        self.setup(Monitor(request, self), fds[0])

    def _close_group(self) -> None:
        """The last container is gone: the group's socket goes first (if it
        is still this monitor's), so pyboxd's next start of the group asks
        the zygote; a connection already queued is refused by the close."""
        if self.group is None:
            return
        try:
            if self.group_path and os.stat(self.group_path).st_ino == self.group_ino:
                os.unlink(self.group_path)
        except OSError:
            pass
        self.group.close()
        self.group = None

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Serve until no container is left."""
        self.sigchld = _watch_children()
        self.poller.register(self.sigchld, select.POLLIN)
        if self.group is not None:
            self.poller.register(self.group.fileno(), select.POLLIN)
        self.reap()  # whatever ended before the watch began
        while self.monitors:
            timeout = None
            deadlines = [d for d in (m.deadline() for m in self.monitors) if d is not None]
            if deadlines:
                timeout = max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)
            for fd, ev in self.poller.poll(timeout):
                if fd == self.sigchld:
                    try:
                        while os.read(self.sigchld, 512):
                            pass
                    except BlockingIOError:
                        pass
                    self.reap()
                elif self.group is not None and fd == self.group.fileno():
                    if self.monitors:
                        self.adopt()
                else:
                    owner = self.owners.get(fd)
                    if owner is not None:
                        owner.event(fd, ev)
            now = time.monotonic()
            for mon in list(self.monitors):
                mon.tick(now)
        self._close_group()

    def reap(self) -> None:
        """Reap every ended child: a container's init is its Monitor's exit;
        the creators, once their program runs, and processes re-parented to
        the monitor (the subreaper: a --pid host container's orphans) are
        just reaped -- unreaped they stayed zombies for the container's life."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            mon = self.by_pid.get(pid)
            if mon is not None:
                mon.on_exit(status)


def _is_request(value: Any) -> bool:
    """A JSON value that can be a MonitorRequest (what setup reads first)."""
    return isinstance(value, dict) and isinstance(value.get("dir"), str) and \
        isinstance(value.get("id"), str)


def accept(listener: _socket.socket) -> _socket.socket:
    """The next connection on a unix ``listener``, as socket.socket's accept
    gives it (close-on-exec, blocking) but through _socket alone: the socket
    module would bring enum, selectors and collections into the zygote, pages
    every monitor maps (and its enum conversions would copy them into each)."""
    fd, _ = listener._accept()  # type: ignore[attr-defined]  # (_socket's; typeshed omits it)
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)


def _watch_children() -> int:
    """SIGCHLD -> a byte on a pipe the loop polls (the handler itself does
    nothing).  -> the pipe's read end."""
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    _signal.signal(_signal.SIGCHLD, lambda signum, frame: None)
    _signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    return r


def run(request: MonitorRequest, report_fd: int) -> None:
    """Monitor main, in the forked (and detached) child.  Never returns."""
    code = 1
    try:
        become_subreaper()  # (the zygote built the syscalls' libc: see zygote.preload)
        loop = Loop()
        group = request.get("group_socket")
        if group:
            loop.listen_group(group)
        mon = Monitor(request, loop)
        fd, report_fd = report_fd, -1
        if loop.setup(mon, fd):
            loop.run()
            code = 0
        else:
            loop._close_group()
    finally:
        if report_fd >= 0:
            try:
                os.close(report_fd)
            except OSError:
                pass
        os._exit(code)
