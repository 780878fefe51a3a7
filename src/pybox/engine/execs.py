"""Exec sessions (docker exec): one more process in a running container.

pyboxd runs ``pybox-runtime exec`` (a subprocess: forking the threaded daemon
itself would be unsafe) with a process.json built from the container's own
config.json process (its resolved user, environment, capabilities) and the
exec's overrides.  Non-tty: pipes, relayed as stdcopy frames.  Tty: a pty of
pyboxd's as the runtime's stdio; the runtime relays it to the container's pty,
and a resize here is a new window size on our master plus SIGWINCH to the
runtime, which copies it on.  The exit code is recorded before the client's
stream is closed (the CLI reads it with one inspect right after EOF).
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
from pybox.engine.attach import stdcopy
from pybox.engine.events import EventBus, attributes
from pybox.engine.runner import Runner
from pybox.engine.spec import resolve_user
from pybox.engine.store import Container
from pybox.errors import Conflict
from pybox.formats import fastjson
from pybox.linux.caps import CAPABILITY_NAMES, last_cap
from pybox.oci.state import write_atomic


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

    def start(self, client: socket.socket | None = None, detach: bool = False) -> None:
        with self.lock:
            if self.started:
                raise Conflict(f"Error: Exec command {self.id} has already run")
            self.started = True
        c = self.container
        c.state.check_running(c.id)
        rundir = self.runner.run_dir(c.id)
        process_file = self._process_json()
        crashpoint("engine.exec.prepared")
        pid_file = os.path.join(rundir, f"exec-{self.id}.pid")
        self.events.emit("container", "exec_start: " + " ".join(self.body["Cmd"]), c.id,
                         attributes(c, execID=self.id))
        try:
            if detach or client is None:
                self._start_detached(process_file, pid_file)
            elif self.body.get("Tty"):
                self._run_tty(client, process_file, pid_file)
            else:
                self._run_pipes(client, process_file, pid_file)
        finally:
            for path in (process_file,):
                try:
                    os.unlink(path)
                except OSError:
                    pass

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
            self.exit_code = 126
            os.set_blocking(proc.stderr.fileno(), False)
            try:
                message = proc.stderr.read() or b""
            except OSError:
                message = b""
            proc.stderr.close()
            raise Conflict(message.decode(errors="replace").strip().removeprefix(
                "pybox-runtime: ") or f"exec failed ({code})")

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
        self.running = True

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

    def _run_pipes(self, client: socket.socket, process_file: str, pid_file: str) -> None:
        b = self.body
        stdin = subprocess.PIPE if b.get("AttachStdin") else subprocess.DEVNULL
        proc = subprocess.Popen(self._argv(process_file, pid_file, False), stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc = proc
        self.running = True
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
                    self._send(client, outs[fd], data)
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
        if not started and code != 0:
            message = early_stderr.decode(errors="replace").strip().removeprefix(
                "pybox-runtime: ")
            code = 127 if ("not found" in message or "no such file" in message) else 126
            self._send(client, 2, (f"OCI runtime exec failed: exec failed: {message}: "
                                   "unknown\r\n").encode())
        elif early_stderr:
            self._send(client, 2, early_stderr)
        self.exit_code = code
        self.running = False
        self._die()

    def _run_tty(self, client: socket.socket, process_file: str, pid_file: str) -> None:
        # (the runtime puts our slave in raw mode)
        master, slave = os.openpty()
        self.master = master
        proc = subprocess.Popen(self._argv(process_file, pid_file, False), stdin=slave,
                                stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.proc = proc
        self.running = True
        poller = select.poll()
        poller.register(master, select.POLLIN)
        poller.register(client.fileno(), select.POLLIN)
        client_open = True
        while True:
            events = poller.poll(200)
            done = False
            for fd, _ev in events:
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        done = True
                        break
                    try:
                        client.sendall(data)
                    except OSError:
                        pass
                elif client_open:
                    try:
                        data = client.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        poller.unregister(client.fileno())
                        client_open = False
                        continue
                    os.write(master, data)
            if done or (proc.poll() is not None and not events):
                break
        code = proc.wait()
        self.pid = self.pid or self._read_pid(pid_file)
        os.close(master)
        self.master = None
        self.exit_code = code
        self.running = False
        self._die()

    def _peek_pid(self, pid_file: str) -> int:
        try:
            with open(pid_file) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _send(self, client: socket.socket, stream: int, data: bytes) -> None:
        try:
            client.sendall(stdcopy(stream, data))
        except OSError:
            pass

    def _die(self) -> None:
        c = self.container
        self.events.emit("container", "exec_die", c.id,
                         attributes(c, execID=self.id, exitCode=str(self.exit_code)))

    def resize(self, h: int, w: int) -> None:
        if self.master is None or self.proc is None:
            raise Conflict(f"Exec {self.id} is not running with a terminal")
        fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                    int(h).to_bytes(2, "little") + int(w).to_bytes(2, "little") + b"\0" * 4)
        try:
            self.proc.send_signal(signal.SIGWINCH)
        except OSError:
            pass
