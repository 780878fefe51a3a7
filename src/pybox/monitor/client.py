"""The client side of a monitor's protocol (protocol.py), for pyboxd.

One object per container run directory: the engine's start, watch, attach,
resize and recovery paths all reach the monitor through it, so the request
lines, the one-line answers and the exit file are read in one place.  Every
failure to reach the monitor (nobody listens, it closed or died mid-answer)
comes back as None rather than an exception: to the engine a gone monitor is a
state to handle (the exit file, a restart), not an error.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from pybox.formats import fastjson
from pybox.linux import unixsock
from pybox.monitor.monitor import EXIT_FILE, PID_FILE, SOCKET

if TYPE_CHECKING:
    from typing import Any

_CHUNK = 4096


class MonitorClient:
    """Requests to the monitor listening on ``run_dir``/monitor.sock."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.socket_path = os.path.join(run_dir, SOCKET)
        self.exit_path = os.path.join(run_dir, EXIT_FILE)
        self.pid_path = os.path.join(run_dir, PID_FILE)

    def connect(self, timeout: float | None = None) -> socket.socket | None:
        """A socket connected to the monitor, or None when nobody listens.
        The run directory of a container can make the socket's path longer
        than sun_path holds: unixsock reaches it through the directory."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if timeout is not None:
            s.settimeout(timeout)
        try:
            unixsock.call(s.connect, self.socket_path)
        except OSError:
            s.close()
            return None
        return s

    @staticmethod
    def _read_line(s: socket.socket) -> bytes | None:
        """The first line the monitor sends (without its newline), or None
        when it closes first.  Raises OSError (a timeout among them)."""
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(_CHUNK)
            if not chunk:
                return None
            buf += chunk
        return buf.split(b"\n", 1)[0]

    def call(self, request: dict[str, Any], timeout: float = 10.0) -> Any:
        """One request line, one answer line: "ok", the answer's JSON value,
        the raw line as text when it is not JSON (e.g. "started", "error ..."),
        or None if the monitor is gone or closed without answering."""
        s = self.connect(timeout)
        if s is None:
            return None
        try:
            s.sendall(fastjson.dumps(request).encode() + b"\n")
            line = self._read_line(s)
        except OSError:
            return None
        finally:
            s.close()
        if line is None:
            return None
        if line == b"ok":
            return "ok"
        try:
            return fastjson.loads(line)
        except ValueError:
            return line.decode(errors="replace")

    def wait_exit(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the container exits: the monitor's exit JSON ({"exit_code",
        "oom_killed", "pid", "finished_at"}), or None when the monitor went
        away without an answer (or answered something that is not one); the
        exit file may then still tell (read_exit_file)."""
        s = self.connect(timeout)
        if s is None:
            return None
        try:
            s.sendall(b'{"op":"wait"}\n')
            line = self._read_line(s)
            info = fastjson.loads(line) if line is not None else None
        except (OSError, ValueError):
            return None
        finally:
            s.close()
        return info if isinstance(info, dict) else None

    def wait_gone(self, timeout: float | None = None) -> None:
        """Block until the monitor has closed its end (it answers a wait at its
        exit and then closes): its end, not only its container's."""
        s = self.connect(timeout)
        if s is None:
            return
        try:
            s.sendall(b'{"op":"wait"}\n')
            while s.recv(_CHUNK):
                pass
        except OSError:
            pass
        finally:
            s.close()

    def read_exit_file(self) -> dict[str, Any] | None:
        """run_dir/exit.json, written by the monitor before it tells anyone;
        None if absent, unreadable or not a JSON object."""
        try:
            info = fastjson.load_file(self.exit_path)
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def pid(self) -> int:
        """The monitor's pid (run_dir/monitor.pid), or 0 when there is none: no
        file, or its process is gone, or its socket is (a reused pid is not
        this run directory's monitor any more).  For killing a monitor that
        does not answer."""
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return 0
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                f.read()
        except OSError:
            return 0
        return pid if os.path.exists(self.socket_path) else 0

    def start(self, timeout: float = 60.0) -> Any:
        """Start a container created with defer_start: "ok" or {"error"}."""
        return self.call({"op": "start"}, timeout=timeout)

    def resize(self, h: int, w: int) -> Any:
        """The tty's size: "ok" or "error ..." (text)."""
        return self.call({"op": "resize", "h": int(h), "w": int(w)})

    def info(self, timeout: float = 10.0) -> Any:
        """{"pid", "started", "exited"}."""
        return self.call({"op": "info"}, timeout=timeout)

    def reopen_log(self, timeout: float = 10.0) -> Any:
        """The cri log driver opens its file anew: "ok", {"error"}, or None
        when the monitor is gone."""
        return self.call({"op": "reopen_log"}, timeout=timeout)

    def abort(self, timeout: float = 10.0) -> Any:
        """Undo a start never finished: "ok", or "started" when too late."""
        return self.call({"op": "abort"}, timeout=timeout)

    def attach(self, stdin: bool, stdout: bool, stderr: bool,
               timeout: float | None = None) -> socket.socket | None:
        """A socket attached to the container's streams (frames as protocol.py
        describes them follow on it), or None when the monitor is gone."""
        s = self.connect(timeout)
        if s is None:
            return None
        req = {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}
        try:
            s.sendall(fastjson.dumps(req).encode() + b"\n")
        except OSError:
            s.close()
            return None
        return s
