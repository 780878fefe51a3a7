"""The work behind the streaming server's exec, attach and port-forward
sessions, whatever carries them (SPDY streams or websocket channels).

Why here and not in the engine: the engine's exec and attach serve a Docker
API client on ONE socket (docker's stdcopy frames, or raw bytes for a tty);
Kubernetes' clients want stdout, stderr, the error channel and the resizes
each on its own channel.  So each session gets the engine one end of a
socketpair and this module demultiplexes the other end onto the channels --
the engine's exec and attach (its monitors, detach and tty handling, exit
codes) stay the only implementation.

What the client sees is what kubelet's streaming server sends it with
containerd behind it: on the error channel a metav1.Status (v4 protocols) --
Success, NonZeroExitCode with an ExitCode cause, or InternalError -- or, for
older protocols, the bare error text.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pybox.engine.engine import Engine
from pybox.engine.execs import ExecSession
from pybox.errors import PyboxError
from pybox.network import netns

RESIZE_WAIT = 10.0  # seconds a resize waits for the exec's terminal to exist
FIRST_RESIZE_WAIT = 1.0  # seconds a tty exec waits for the client's first terminal size
PORT_FORWARD_LINGER = 1.0  # seconds the other direction may go on after one ends (containerd's)
START_FAILURE_CODES = (126, 127, 128)  # the engine's exit codes for an exec that never ran


class Channel(Protocol):
    """One direction-pair of a session: an SPDY stream or a websocket channel."""

    def read(self, timeout: float | None = None) -> bytes: ...

    def write(self, data: bytes) -> bool: ...

    def close(self) -> None: ...


@dataclass
class StreamSet:
    """The channels a client opened for one exec or attach session."""

    error: Channel | None = None
    stdin: Channel | None = None
    stdout: Channel | None = None
    stderr: Channel | None = None
    resize: Channel | None = None
    status_json: bool = True  # v4 protocols: a metav1.Status; older ones: the error's text
    client_gone: threading.Event | None = None  # set when the client's connection ends


def _drop_when_gone(streams: StreamSet, sock: socket.socket) -> None:
    """The client went away mid-session: the engine's end of the socketpair
    sees its hang-up (an attach then leaves the container's monitor at once;
    an exec's process runs on unwatched, as docker's does)."""
    gone = streams.client_gone
    if gone is None:
        return

    def watch() -> None:
        gone.wait()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    _start_threads(watch)


# -- statuses (metav1.Status as Go's encoding/json writes it) -----------------------------


def status_success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def status_exit_code(cmd: Sequence[str], code: int) -> dict[str, Any]:
    """kubelet's status for a command that exited non-zero; the message wraps
    containerd's error for it ("error executing command [sh -c exit 3], exit
    code 3")."""
    inner = f"error executing command [{' '.join(cmd)}], exit code {code}"
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {inner}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_internal(message: str) -> dict[str, Any]:
    """apierrors.NewInternalError(err), as kubelet writes a failed exec or attach."""
    return {"metadata": {}, "status": "Failure",
            "message": f"Internal error occurred: {message}", "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


def write_status(streams: StreamSet, status: dict[str, Any]) -> None:
    """The session's end on the error channel: the status (v4), or -- older
    protocols -- the error's text and nothing on success (kubelet's
    v1WriteStatusFunc)."""
    err = streams.error
    if err is None:
        return
    if streams.status_json:
        err.write(json.dumps(status, separators=(",", ":")).encode())
    elif status.get("status") != "Success":
        text = status.get("message", "")
        if status.get("reason") == "NonZeroExitCode":  # the error's own text
            text = text.removeprefix("command terminated with non-zero exit code: ")
        elif status.get("reason") == "InternalError":
            text = text.removeprefix("Internal error occurred: ")
        err.write(text.encode())
    err.close()


# -- relays ------------------------------------------------------------------------------


class Demux:
    """The engine's side of the socketpair -> the client's stdout and stderr:
    docker's stdcopy frames (8-byte header: stream, 0, 0, 0, length) without a
    tty, raw bytes (all stdout) with one."""

    def __init__(self, tty: bool, out: Callable[[int, bytes], None]) -> None:
        self.tty = tty
        self.out = out
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        if self.tty:
            self.out(1, data)
            return
        self.buf += data
        while len(self.buf) >= 8:
            length = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + length:
                return
            stream = self.buf[0]
            payload = bytes(self.buf[8:8 + length])
            del self.buf[:8 + length]
            self.out(2 if stream == 2 else 1, payload)


def pump_stdin(stdin: Channel, sock: socket.socket) -> None:
    """Client stdin -> the engine's socket; its end is a half-close (the
    engine closes the process's stdin)."""
    try:
        while True:
            data = stdin.read()
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class ResizeReader:
    """The resize channel's JSON values ({"Width": w, "Height": h}, one after
    another, as client-go's json.Encoder writes them; Go's field names match
    case-insensitively) -> (height, width)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.done = False

    def next(self, timeout: float | None = None) -> tuple[int, int] | None:
        """The next size; None at the channel's end; queue.Empty after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.buf = self.buf.lstrip()
            if self.buf:
                try:
                    value, end = self.decoder.raw_decode(self.buf)
                except json.JSONDecodeError:
                    value, end = None, -1  # (the rest comes in the next chunk)
                if end >= 0:
                    self.buf = self.buf[end:]
                    size = _size(value)
                    if size is not None:
                        return size
                    continue
            if self.done:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            data = self.channel.read(left)
            if not data:
                self.done = True
                return None
            self.buf += data.decode(errors="replace")

    def follow(self, apply: Callable[[int, int], None]) -> None:
        """apply(height, width) for every size until the channel ends."""
        while True:
            size = self.next()
            if size is None:
                return
            try:
                apply(*size)
            except (PyboxError, OSError):
                pass


def _size(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, dict):
        return None
    size = {str(k).lower(): v for k, v in value.items()}
    w, h = size.get("width"), size.get("height")
    if isinstance(w, int) and isinstance(h, int) and 0 <= w < 65536 and 0 <= h < 65536:
        return h, w
    return None


def _relay_output(sock: socket.socket, tty: bool, streams: StreamSet,
                  hold: Callable[[], bool] | None = None) -> bytes:
    """The engine's output -> the client's stdout/stderr channels until the
    engine closes its end.  While ``hold()`` is true stdout is kept back (an
    exec whose process has not started yet: what comes then is the engine's
    start error) and returned if still held at the end."""
    held = bytearray()

    def out(stream: int, data: bytes) -> None:
        if stream == 1 and hold is not None and (held or hold()):
            held.extend(data)
            if not hold():  # started after all: release in order
                chunk = bytes(held)
                held.clear()
                if streams.stdout is not None:
                    streams.stdout.write(chunk)
            return
        target = streams.stdout if stream == 1 else streams.stderr
        if target is not None:
            target.write(data)

    demux = Demux(tty, out)
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if not data:
            break
        demux.feed(data)
    return bytes(held)


def _start_threads(*targets: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=t, name="cri-stream", daemon=True) for t in targets]
    for t in threads:
        t.start()
    return threads


def run_exec(engine: Engine, container_id: str, cmd: Sequence[str], tty: bool,
             streams: StreamSet) -> None:
    """One exec session: the command through the engine's exec, its output on
    the channels, its exit code on the error channel."""
    body: dict[str, Any] = {"Cmd": list(cmd), "Tty": tty, "AttachStdin": streams.stdin is not None,
                            "AttachStdout": streams.stdout is not None,
                            "AttachStderr": streams.stderr is not None and not tty}
    resizes = ResizeReader(streams.resize) if streams.resize is not None and tty else None
    if resizes is not None:
        # the client sends its terminal's size at once: the program starts with it
        # (a resize after the start reaches it with SIGWINCH, maybe after its first look)
        try:
            first = resizes.next(timeout=FIRST_RESIZE_WAIT)
        except queue.Empty:
            first = None
        if first is not None and all(first):
            body["ConsoleSize"] = list(first)
    try:
        session = engine.get_exec(engine.exec_create(container_id, body))
    except PyboxError as e:
        _end(streams, status_internal(f"error executing command in container: {e}"))
        return
    # no detach keys: kubelet's exec has none (docker's ctrl-p ctrl-q would end the
    # client's stream and leave the process running)
    session.detach_keys = b""
    ours, theirs = socket.socketpair()
    failure: list[str] = []

    def start() -> None:
        try:
            session.start(client=theirs, tty=tty)
        except PyboxError as e:
            failure.append(str(e))
        finally:
            try:
                theirs.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    workers = _start_threads(start)
    _drop_when_gone(streams, ours)
    stdin = streams.stdin
    if stdin is not None:
        _start_threads(lambda: pump_stdin(stdin, ours))
    if resizes is not None:
        _start_threads(lambda: resizes.follow(lambda h, w: _resize_exec(session, h, w)))
    held = _relay_output(ours, tty, streams, hold=lambda: not session.pid)
    for t in workers:
        t.join()
    ours.close()
    theirs.close()
    code = session.exit_code
    if failure:
        _end(streams, status_internal(f"error executing command in container: {failure[0]}"))
    elif held and not session.pid and code in START_FAILURE_CODES:
        # the engine's words for a process that never started (written as its stdout)
        _end(streams, status_internal("error executing command in container: "
                                      + held.decode(errors="replace").strip()))
    else:
        if held and streams.stdout is not None:
            streams.stdout.write(held)
        _end(streams, status_success() if not code else status_exit_code(cmd, code or 0))


def _resize_exec(session: ExecSession, h: int, w: int) -> None:
    """A terminal size for the exec: the first one may come before its
    terminal exists (then it waits a little for it)."""
    deadline = time.monotonic() + RESIZE_WAIT
    while session.master is None and session.exit_code is None:
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    if session.exit_code is None:
        session.resize(h, w)


def run_attach(engine: Engine, container_id: str, tty: bool, streams: StreamSet) -> None:
    """One attach session on the container's stdio (the engine's attach:
    until the container exits or the client's stdin ends it)."""
    ours, theirs = socket.socketpair()
    failure: list[str] = []

    def attach() -> None:
        try:
            engine.attach(container_id, theirs, stdin=streams.stdin is not None,
                          stdout=streams.stdout is not None,
                          stderr=streams.stderr is not None and not tty)
        except PyboxError as e:
            failure.append(str(e))
        finally:
            try:
                theirs.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    try:
        container = engine.get(container_id)
    except PyboxError as e:
        _end(streams, status_internal(f"error attaching to container: {e}"))
        return
    if not container.state.running:
        # (the engine's attach would wait for the next start, as docker start -a does;
        # containerd refuses a container that is not running)
        _end(streams, status_internal(f"error attaching to container: container {container_id} "
                                      "is not running"))
        return
    container_tty = bool(container.config.get("Tty"))
    workers = _start_threads(attach)
    _drop_when_gone(streams, ours)
    stdin = streams.stdin
    if stdin is not None:
        _start_threads(lambda: pump_stdin(stdin, ours))
    if streams.resize is not None and tty:
        resizes = ResizeReader(streams.resize)
        _start_threads(lambda: resizes.follow(lambda h, w: engine.resize(container_id, h, w)))
    _relay_output(ours, container_tty, streams)
    for t in workers:
        t.join()
    ours.close()
    theirs.close()
    if failure:
        _end(streams, status_internal(f"error attaching to container: {failure[0]}"))
    else:
        _end(streams, status_success())


def _end(streams: StreamSet, status: dict[str, Any]) -> None:
    """Output channels closed first (the client's copies end), then the status."""
    for ch in (streams.stdout, streams.stderr):
        if ch is not None:
            ch.close()
    write_status(streams, status)


# -- port forward --------------------------------------------------------------------------


def dial_in_pod(netns_path: str | None, port: int) -> socket.socket:
    """A TCP connection to localhost:PORT inside the pod's network namespace
    (None: the host's, a host-network pod), IPv4 then IPv6 as containerd dials;
    OSError with both reasons."""

    def dial() -> socket.socket:
        errors = []
        for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect((addr, port))
                s.settimeout(None)
                return s
            except OSError as e:
                s.close()
                errors.append(e.strerror or str(e))
        raise OSError(f"IPv4: {errors[0]} IPv6 {errors[1]} ")

    if netns_path is None:
        return dial()
    return netns.run_in(netns_path, dial)


def forward(conn: socket.socket, data: Channel) -> None:
    """Relay between the pod's connection and the client's data channel until
    one side ends, then let the other finish (PORT_FORWARD_LINGER at most)."""
    done: queue.SimpleQueue[str] = queue.SimpleQueue()

    def to_pod() -> None:
        try:
            while True:
                chunk = data.read()
                if not chunk:
                    break
                conn.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            done.put("to_pod")

    def to_client() -> None:
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk or not data.write(chunk):
                    break
        except OSError:
            pass
        finally:
            done.put("to_client")

    _start_threads(to_pod, to_client)
    first = done.get()
    try:
        if first == "to_client":
            done.get(timeout=PORT_FORWARD_LINGER)
        else:
            done.get(timeout=PORT_FORWARD_LINGER * 30)  # the pod's answer to a half-close
    except queue.Empty:
        pass
    data.close()
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def run_port_forward(pod_id: str, netns_path: str | None, port: int, data: Channel,
                     error: Channel | None) -> None:
    """One forwarded connection: kubelet's words on the error channel when the
    pod's port cannot be reached."""
    try:
        conn = dial_in_pod(netns_path, port)
    except (OSError, PyboxError) as e:
        if error is not None:
            error.write(f"error forwarding port {port} to pod {pod_id}, uid : failed to connect "
                        f'to localhost:{port} inside namespace "{pod_id}", {e}'.encode())
            error.close()
        data.close()
        return
    try:
        forward(conn, data)
    finally:
        if error is not None:
            error.close()
