"""Exec sessions (docker exec): one more process in a running container.

pyboxd runs ``pybox-runtime exec`` (a subprocess: forking the threaded daemon
itself would be unsafe) with a process.json built from the container's own
config.json process (its resolved user, environment, capabilities) and the
exec's overrides.  Non-tty: pipes.  Tty: a pty of pyboxd's as the runtime's
stdio; the runtime relays it to the container's pty, and a resize here is a new
window size on our master plus SIGWINCH to the runtime, which copies it on.
The exit code is recorded before the client's stream is closed (the CLI reads
it with one inspect right after EOF).

Two Tty flags, as dockerd has them: the exec-create one decides whether the
process gets a terminal; the exec-start one only how its output is framed on
the client's stream (false: docker's multiplexed frames; true: raw, and then a
pipe process's stderr is not sent at all).  A client that sends different ones
gets what dockerd sends it.

A start that fails (an unknown user, a program that is not there) ends the
exec as dockerd 28 ends it: ExitCode 126 (127 for a program not found, as its
setExitCodeFromError), Running false, and the error -- on an attached start as
one line on the stream's stdout, on a detached one as the HTTP error.  (Docker
29 refuses an unknown user at create already; pybox speaks API 1.44.)
"""

from __future__ import annotations

import fcntl
import os
import secrets
import select
import signal
import socket
import subprocess
import termios
import threading
from typing import IO, Any

from pybox.crashpoints import crashpoint
from pybox.engine.attach import (
    DEFAULT_DETACH_KEYS,
    KeyMatcher,
    parse_detach_keys,
    stdcopy,
    wait_until_read,
)
from pybox.engine.events import EventBus, attributes
from pybox.engine.runner import Runner
from pybox.engine.spec import SpecError, resolve_user
from pybox.engine.store import Container
from pybox.errors import BadRequest, Conflict, PyboxError
from pybox.formats import fastjson
from pybox.linux.caps import CAPABILITY_NAMES, last_cap
from pybox.oci.state import write_atomic

# dockerd's exit codes for an exec that could not start (daemon/errors.go)
EXIT_EACCES = 126
EXIT_NOT_FOUND = 127
EXIT_UNKNOWN = 128

ERROR_WAIT = 1.0  # seconds a start failure's message waits for the client to read the 101

# dockerd's isInvalidCommand: the runtime's words for "no such program"
_NOT_FOUND = ("executable file not found", "no such file or directory",
              "system cannot find the file specified", "failed to run runc create/exec call")


class ExecStartError(PyboxError):
    """The exec's process could not be started (HTTP 500, as dockerd's
    errdefs.Unknown and its plain errors)."""


class ExecConfigError(ExecStartError, BadRequest):
    """The runtime refused the program itself (not found, not executable): a
    400, as dockerd's startInvalidConfigError."""

    http_status = 400


def runtime_failure(message: str) -> tuple[int, ExecStartError]:
    """The runtime's error (``pybox-runtime: ...`` on its stderr) -> the exit
    code and the error dockerd 28's setExitCodeFromError makes of runc's."""
    message = message.strip().removeprefix("pybox-runtime: ").strip() or "exec failed"
    desc = f"OCI runtime exec failed: exec failed: unable to start container process: {message}: unknown"
    low = desc.lower()
    if "permission denied" in low:
        return EXIT_EACCES, ExecConfigError(desc)
    if "is a directory" in low:  # (docker/cli looks for "permission denied")
        return EXIT_EACCES, ExecConfigError(desc + ": permission denied")
    if "not a directory" in low:
        return EXIT_NOT_FOUND, ExecConfigError(
            desc + ": Are you trying to mount a directory onto a file (or vice-versa)? Check if "
            "the specified host path exists and is the expected type")
    if any(words in low for words in _NOT_FOUND):
        return EXIT_NOT_FOUND, ExecConfigError(desc)
    return EXIT_UNKNOWN, ExecStartError(desc)


def exec_detach_keys(spec: str | None) -> bytes:
    """An exec's DetachKeys -> the key bytes (none: ctrl-p,ctrl-q); a bad one
    is dockerd's error at exec create (a 500, its words)."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(spec)
    except ValueError:
        raise ExecStartError(f"Invalid escape keys ({spec}) provided") from None


class _Output:
    """The client's end of an attached exec, framed as the exec-START request
    asked: multiplexed (stdcopy) unless its Tty is true, then raw stdout and no
    stderr (dockerd gives the process no stderr writer then).  Streams the
    exec was created without (AttachStdout/AttachStderr false) are dropped.
    No client (a detached exec on a terminal): everything is dropped, and a
    start failure is only kept (``failure``) for the start to raise."""

    def __init__(self, client: socket.socket | None, raw: bool, stdout: bool, stderr: bool
                 ) -> None:
        self.client = client
        self.raw = raw
        self.want = {1: stdout, 2: stderr and not raw}
        self.gone = client is None
        self.failure: ExecStartError | None = None

    def write(self, stream: int, data: bytes) -> None:
        if self.want.get(stream):
            self._send(data if self.raw else stdcopy(stream, data))

    def error(self, err: ExecStartError) -> None:
        """dockerd's `fmt.Fprintf(stdout, "%v\\r\\n", err)`: on stdout, whatever
        the exec attached."""
        self.failure = err
        if self.gone:
            return
        data = f"{err}\r\n".encode()
        self._wait_read()
        self._send(data if self.raw else stdcopy(1, data))

    def _wait_read(self) -> None:
        """The 101 read by the client before the error follows it (docker-py's
        exec_start returned b"" for a failure found at once: attach.wait_until_read)."""
        wait_until_read(self.client, ERROR_WAIT)

    def _send(self, data: bytes) -> None:
        if self.gone or self.client is None:
            return
        try:
            self.client.sendall(data)
        except OSError:
            self.gone = True


class ExecSession:
    def __init__(self, runner: Runner, events: EventBus, container: Container,
                 body: dict[str, Any]) -> None:
        self.runner = runner
        self.events = events
        self.container = container
        self.id = secrets.token_hex(32)
        self.body = body
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.master: int | None = None
        self.started = False
        self.lock = threading.Lock()
        self.console_size: list[int] | None = None  # [height, width] for a terminal
        # checked at create (exec_detach_keys), so valid here; none: dockerd's default
        self.detach_keys = exec_detach_keys(body.get("DetachKeys"))

    @property
    def command_line(self) -> str:
        """As dockerd's events name the exec: entrypoint, a space, the arguments."""
        cmd = self.body["Cmd"]
        return cmd[0] + " " + " ".join(cmd[1:])

    def inspect(self) -> dict[str, Any]:
        b = self.body
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": bool(b.get("Tty")), "entrypoint": b["Cmd"][0],
                              "arguments": b["Cmd"][1:], "privileged": bool(b.get("Privileged")),
                              "user": b.get("User") or ""},
            "OpenStdin": bool(b.get("AttachStdin")), "OpenStderr": bool(b.get("AttachStderr")),
            "OpenStdout": bool(b.get("AttachStdout")), "CanRemove": False,
            "ContainerID": self.container.id, "DetachKeys": b.get("DetachKeys") or "",
            "Pid": self.pid,
        }

    def _process_json(self) -> str:
        rundir = self.runner.run_dir(self.container.id)
        config = fastjson.load_file(os.path.join(rundir, "config.json"))
        process = dict(config["process"])
        b = self.body
        process["args"] = list(b["Cmd"])
        process["terminal"] = bool(b.get("Tty"))
        process.pop("consoleSize", None)
        if process["terminal"] and self.console_size and all(self.console_size):
            # set in the container before the program runs (the runtime's copy of
            # our pty's size comes after: a program asking at once saw 0x0)
            process["consoleSize"] = {"height": self.console_size[0],
                                      "width": self.console_size[1]}
        env = list(process.get("env") or [])
        for entry in b.get("Env") or ():
            key = entry.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key]
            if "=" in entry:  # a bare NAME unsets (docker's rule)
                env.append(entry)
        process["env"] = env
        if b.get("WorkingDir"):
            process["cwd"] = b["WorkingDir"]
        if b.get("User"):
            uid, gid, extra = resolve_user(config["root"]["path"], b["User"])
            process["user"] = {"uid": uid, "gid": gid, "additionalGids": extra}
        if b.get("Privileged"):
            caps = list(CAPABILITY_NAMES[:last_cap() + 1])
            process["capabilities"] = {k: list(caps) for k in
                                       ("bounding", "effective", "permitted")}
        path = os.path.join(rundir, f"exec-{self.id}.json")
        write_atomic(path, fastjson.dumps(process))
        return path

    def _argv(self, process_file: str, pid_file: str, detach: bool) -> list[str]:
        return self.runner.exec_argv(self.container.id, process_file, pid_file, detach)

    def start(self, client: socket.socket | None = None, detach: bool = False,
              tty: bool | None = None, console_size: list[int] | None = None) -> None:
        """Run the exec: detached (no client), or attached to ``client`` with
        its output framed per ``tty``, the start request's Tty (None: the
        create's).  ``console_size``: the start's [height, width] (else the
        create's), the terminal's size before the program runs.  A failure to
        start ends the exec (126/127/128) and is raised when detached, written
        on the stream when attached."""
        self.check_container()
        with self.lock:
            if self.exit_code is not None or self.started and not self.running:
                raise Conflict(f"exec command {self.id} has already run")
            if self.started:
                raise Conflict(f"exec command {self.id} is already running")
            self.started = True
            self.running = True  # (dockerd's: from the start request on)
        self.console_size = console_size or self.body.get("ConsoleSize") or None
        c = self.container
        out = None
        if client is not None and not detach:
            raw = bool(self.body.get("Tty")) if tty is None else tty
            out = _Output(client, raw, bool(self.body.get("AttachStdout")),
                          bool(self.body.get("AttachStderr")))
        self.events.emit("container", "exec_start: " + self.command_line, c.id,
                         attributes(c, execID=self.id))
        rundir = self.runner.run_dir(c.id)
        try:
            process_file = self._process_json()
        except SpecError as e:  # the user or group is not in the container's files
            self._failed(EXIT_EACCES)
            err = ExecStartError(str(e))
            if out is None:
                raise err from None
            out.error(err)
            return
        except (OSError, ValueError, KeyError, TypeError) as e:
            self._failed(EXIT_EACCES)
            err = ExecStartError(f"cannot read the container's process: {e}")
            if out is None:
                raise err from None
            out.error(err)
            return
        crashpoint("engine.exec.prepared")
        pid_file = os.path.join(rundir, f"exec-{self.id}.pid")
        try:
            if out is None and self.body.get("Tty"):
                self._start_detached_tty(process_file, pid_file)
            elif out is None:
                self._start_detached(process_file, pid_file)
            elif self.body.get("Tty"):
                self._run_tty(out, process_file, pid_file)
            else:
                self._run_pipes(out, process_file, pid_file)
        finally:
            try:
                os.unlink(process_file)
            except OSError:
                pass

    def check_container(self) -> None:
        """The exec's container must be running (dockerd's getExecConfig: its
        not-running, paused or restarting error, before any stream opens)."""
        c = self.container
        c.state.check_exec(c.id)

    def _failed(self, code: int) -> None:
        """The exec never ran: dockerd's deferred cleanup (126 unless the
        runtime's error said otherwise)."""
        self.exit_code = code if self.exit_code is None else self.exit_code
        self.running = False

    def _read_pid(self, pid_file: str) -> int:
        try:
            with open(pid_file) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        finally:
            try:
                os.unlink(pid_file)
            except OSError:
                pass

    def _start_detached(self, process_file: str, pid_file: str) -> None:
        """Start the process and return once the runtime has (docker exec -d).

        The process inherits the runtime's stderr -- the pipe that carries the
        runtime's error message -- so waiting for that pipe's end (as
        subprocess.run does) waited for the process itself: `docker exec -d`
        hung until the program ended.  The runtime's exit is awaited instead and
        the pipe drained (output discarded, as docker's -d does) until the
        process closes it; closing it under the process would kill it with
        SIGPIPE at its first message."""
        proc = subprocess.Popen(self._argv(process_file, pid_file, True),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        code = proc.wait()
        crashpoint("engine.exec.detached")
        assert proc.stderr is not None  # (stderr=PIPE)
        if code != 0:
            os.set_blocking(proc.stderr.fileno(), False)
            try:
                message = proc.stderr.read() or b""
            except OSError:
                message = b""
            proc.stderr.close()
            self._read_pid(pid_file)
            exit_code, err = runtime_failure(message.decode(errors="replace")
                                             or f"exit status {code}")
            self._failed(exit_code)
            raise err

        def drain(pipe: IO[bytes] = proc.stderr) -> None:
            try:
                while pipe.read(65536):
                    pass
            except (OSError, ValueError):
                pass
            finally:
                pipe.close()

        threading.Thread(target=drain, name=f"exec-drain-{self.id[:12]}", daemon=True).start()
        self.pid = self._read_pid(pid_file)

        def watch() -> None:
            try:
                fd = os.pidfd_open(self.pid)
                select.select([fd], [], [])
                os.close(fd)
            except OSError:
                pass
            self.running = False
            self.exit_code = 0 if self.exit_code is None else self.exit_code
            self._die()

        threading.Thread(target=watch, daemon=True).start()

    def _start_detached_tty(self, process_file: str, pid_file: str) -> None:
        """docker exec -d -t: the process on a terminal no client reads (its
        output dropped, as dockerd's with nobody attached; a resize still
        works); returns once it runs, or raises why it could not start."""
        out = _Output(None, True, False, False)
        ready = threading.Event()
        threading.Thread(target=self._run_tty, args=(out, process_file, pid_file, ready),
                         name=f"exec-tty-{self.id[:12]}", daemon=True).start()
        ready.wait()
        if out.failure is not None:
            raise out.failure

    def _finish(self, out: _Output, code: int, started: bool, early_stderr: bytes) -> None:
        """The runtime has exited: the exec's exit code, or -- when its process
        never started -- dockerd's failure (the error on the stream)."""
        if not started and code != 0:
            exit_code, err = runtime_failure(early_stderr.decode(errors="replace")
                                             or f"exit status {code}")
            self._failed(exit_code)
            out.error(err)
            return
        if early_stderr:
            out.write(2, early_stderr)
        self.exit_code = code
        self.running = False
        self._die()

    def _run_pipes(self, out: _Output, process_file: str, pid_file: str) -> None:
        b = self.body
        client = out.client
        assert client is not None  # (an attached start's)
        stdin = subprocess.PIPE if b.get("AttachStdin") else subprocess.DEVNULL
        proc = subprocess.Popen(self._argv(process_file, pid_file, False), stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc = proc
        assert proc.stdout is not None and proc.stderr is not None  # (PIPE)
        outs = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
        poller = select.poll()
        for fd in outs:
            poller.register(fd, select.POLLIN)
        if proc.stdin is not None:
            poller.register(client.fileno(), select.POLLIN)
        early_stderr = b""
        while outs:
            for fd, _ev in poller.poll(200):
                if fd in outs:
                    data = os.read(fd, 65536)
                    if not data:
                        poller.unregister(fd)
                        del outs[fd]
                        continue
                    if not self.pid:
                        self.pid = self._peek_pid(pid_file)
                    if outs[fd] == 2 and not self.pid:
                        early_stderr += data  # maybe the runtime's own error
                        continue
                    out.write(outs[fd], data)
                else:
                    try:
                        data = client.recv(65536)
                    except OSError:
                        data = b""
                    assert proc.stdin is not None  # (polled only with stdin=PIPE)
                    if not data:
                        poller.unregister(client.fileno())
                        try:
                            proc.stdin.close()
                        except OSError:
                            pass
                        continue
                    try:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                    except OSError:
                        pass
        code = proc.wait()
        started = bool(self.pid or self._peek_pid(pid_file))
        self._read_pid(pid_file)
        self._finish(out, code, started, early_stderr)

    def _run_tty(self, out: _Output, process_file: str, pid_file: str,
                 ready: threading.Event | None = None) -> None:
        """The process on a terminal.  The runtime relays it on its stdin and
        stdout (our pty's slave); its stderr, a pipe, carries only its own
        error.  Client input goes through the detach keys (dockerd's escape
        proxy): after them the client's connection is closed and the process
        goes on, its output discarded, until it exits."""
        client = out.client
        # (the runtime puts our slave in raw mode)
        master, slave = os.openpty()
        self.master = master
        if self.console_size and all(self.console_size):  # (the runtime copies it on)
            _set_size(master, *self.console_size)
        proc = subprocess.Popen(self._argv(process_file, pid_file, False), stdin=slave,
                                stdout=slave, stderr=subprocess.PIPE, start_new_session=True)
        os.close(slave)
        self.proc = proc
        assert proc.stderr is not None  # (PIPE)
        err_fd = proc.stderr.fileno()
        early_stderr = b""
        poller = select.poll()
        poller.register(master, select.POLLIN)
        poller.register(err_fd, select.POLLIN)
        stdin_open = client is not None and bool(self.body.get("AttachStdin"))
        # the client is always polled: POLLHUP (mask 0) when it went away
        if client is not None:
            poller.register(client.fileno(), select.POLLIN if stdin_open else 0)
        client_polled = client is not None
        keys = KeyMatcher(self.detach_keys)
        done = False
        while not done:
            events = poller.poll(200)
            if not self.pid:
                self.pid = self._peek_pid(pid_file)
            if self.pid and ready is not None:
                ready.set()  # (docker exec -d -t: running)
            for fd, ev in events:
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        done = True
                        break
                    if not self.pid:
                        self.pid = self._peek_pid(pid_file)
                    out.write(1, data)
                elif fd == err_fd:
                    data = os.read(err_fd, 65536)
                    if not data:
                        poller.unregister(err_fd)
                    elif self.pid or self._peek_pid(pid_file):
                        out.write(1, data)
                    else:
                        early_stderr += data
                elif client is None:
                    continue  # (not polled)
                elif not stdin_open:
                    # POLLHUP: the client is gone; the process goes on unwatched
                    poller.unregister(client.fileno())
                    client_polled = False
                    out.gone = True
                else:
                    try:
                        data = client.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        stdin_open = False
                        poller.modify(client.fileno(), 0)
                        if ev & (select.POLLHUP | select.POLLERR):
                            poller.unregister(client.fileno())
                            client_polled = False
                        continue
                    keep, detached = keys.feed(data)
                    if keep:
                        _write_all(master, keep)
                    if detached:
                        self._detach(out)
                        if client_polled:
                            poller.unregister(client.fileno())
                            client_polled = False
                        stdin_open = False
            if not done and not events and proc.poll() is not None:
                break
        code = proc.wait()
        try:
            early_stderr += proc.stderr.read() if not self.pid else b""
        except OSError:
            pass
        proc.stderr.close()
        started = bool(self.pid or self._peek_pid(pid_file))
        self.pid = self.pid or self._read_pid(pid_file)
        self._read_pid(pid_file)
        os.close(master)
        self.master = None
        self._finish(out, code, started, early_stderr)
        if ready is not None:
            ready.set()  # (after a failure: the start raises it)

    def _detach(self, out: _Output) -> None:
        """The client typed the detach keys: its connection ends now (as
        dockerd's), the exec runs on."""
        out.gone = True
        try:
            if out.client is not None:
                out.client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c = self.container
        self.events.emit("container", "exec_detach", c.id, attributes(c, execID=self.id))

    def _peek_pid(self, pid_file: str) -> int:
        try:
            with open(pid_file) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _die(self) -> None:
        c = self.container
        self.events.emit("container", "exec_die", c.id,
                         attributes(c, execID=self.id, exitCode=str(self.exit_code)))

    def resize(self, h: int, w: int) -> None:
        if self.master is None or self.proc is None:
            raise Conflict(f"Exec {self.id} is not running with a terminal")
        _set_size(self.master, h, w)
        try:
            self.proc.send_signal(signal.SIGWINCH)
        except OSError:
            pass


def _set_size(fd: int, h: int, w: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ,
                int(h).to_bytes(2, "little") + int(w).to_bytes(2, "little") + b"\0" * 4)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return
        data = data[n:]
