"""Attach sessions: a client's hijacked socket joined to a container's monitor.

The docker CLI attaches *before* start (run, start -a) and may send stdin before
the container exists (run -i); a session therefore waits, buffering stdin, until
the engine's start connects it to the new monitor -- before the program is let
go, so no output is missed.  Then it relays: container output to the client
(stdcopy frames, or raw for a tty), client input to the container.

A client's EOF (CloseWrite) means "no more stdin", not "gone": without stdin it
is ignored; with StdinOnce the container's stdin is closed and output goes on;
otherwise (tty, or stdin without StdinOnce) it ends the session -- that is how
the CLI's ctrl-p ctrl-q detach reaches the daemon -- and the container keeps
running.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pybox.engine.events import attributes
from pybox.engine.logs import replay_entries
from pybox.engine.store import Container
from pybox.errors import BadRequest
from pybox.monitor import protocol as P

if TYPE_CHECKING:
    from pybox.engine.engine import Engine


HEAD_READ_WAIT = 1.0  # seconds the first bytes after a 101 wait for the client to read it


def wait_until_read(client: socket.socket | None, timeout: float = HEAD_READ_WAIT) -> None:
    """Wait (``timeout`` at most) until the client has read what was sent on
    its socket -- the 101 -- before more follows.  docker-py reads a hijacked
    stream from the raw socket under http.client's buffered reader: bytes that
    arrive together with the 101 go into that buffer and are lost (attach with
    logs and no stream, an exec that fails at once: b"").  dockerd gets away with
    it by its slower first write; on a unix socket the bytes the peer has not
    read yet are TIOCOUTQ's, so pyboxd waits for them to be read instead."""
    try:
        if client is None or client.family != socket.AF_UNIX:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queued = fcntl.ioctl(client.fileno(), termios.TIOCOUTQ, b"\0" * 4)
            if int.from_bytes(queued, sys.byteorder) == 0:
                return
            time.sleep(0.005)
    except (OSError, ValueError):
        return


def stdcopy(stream: int, data: bytes) -> bytes:
    """docker's multiplexed framing: [stream, 0, 0, 0, big-endian uint32 length]."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


# moby/term's ASCII table: "ctrl-@" is 0, "ctrl-a" 1, ... "ctrl-_" 31
_CTRL_NAMES = ["ctrl-@"] + [f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)] + [
    "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q: dockerd's when a client names none


def parse_detach_keys(spec: str) -> bytes:
    """"ctrl-p,ctrl-q" -> b"\\x10\\x11", as moby/term's ToBytes: each
    comma-separated key one character, a lower-case ``ctrl-X`` name or ``DEL``;
    ValueError for anything else ("" is one empty key: invalid too)."""
    out = bytearray()
    for key in spec.split(","):
        raw = key.encode()
        if len(raw) == 1:  # (Go's len: bytes, so one non-ASCII character is not one)
            out += raw
        elif key in _CTRL_NAMES:
            out.append(_CTRL_NAMES.index(key))
        elif key == "DEL":
            out.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


def attach_detach_keys(spec: str | None) -> bytes:
    """An attach's detachKeys query -> the key bytes (none given: dockerd's
    ctrl-p,ctrl-q); BadRequest with dockerd's words for a bad one."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(spec)
    except ValueError:
        raise BadRequest(f"Invalid detach keys ({spec}) provided") from None


class KeyMatcher:
    """moby/term's escape proxy on a tty session's input: bytes that may begin
    the detach sequence are held back; the whole sequence means detach (the
    bytes before it in the same read still go through); a broken one releases
    what was held."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.pos = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """-> (the bytes for the process, whether the sequence is complete)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.pos]:
                self.pos += 1
                if self.pos == len(self.keys):
                    return bytes(out), True
                continue
            if self.pos:
                out += self.keys[:self.pos]
                self.pos = 0
            out.append(byte)
        return bytes(out), False


class AttachSession:
    def __init__(self, engine: Engine, container: Container, client: socket.socket | None, *,
                 stdin: bool, stdout: bool, stderr: bool, tty: bool, stdin_once: bool,
                 detach_keys: str | None = None) -> None:
        self.monitor_client = engine.runner.monitor(container.id)
        self.c = container
        self.client = client
        self.want_stdin = stdin
        self.want_stdout = stdout
        self.want_stderr = stderr
        self.tty = tty
        self.stdin_once = stdin_once
        # a tty session's detach keys (dockerd's default when none are given)
        self.keys = KeyMatcher(attach_detach_keys(detach_keys))
        self.pending_stdin = b""
        self.stdin_closed = False
        self.eof_sent = False
        self.monitor: socket.socket | None = None
        self.started = threading.Event()
        # wakes _wait_for_start's poll the moment the start (or the removal)
        # happens; a poll timeout alone held `docker run`'s output back ~0.1 s
        # (made by run(), before the session can be started)
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self.gone = False
        self.client_left = False  # the client closed its socket (not just its stdin)
        self.detached = False  # the client typed the detach keys
        self.events = engine.events

    # -- called by the engine's start path (under the container's lock) -----------
    def container_started(self) -> None:
        try:
            self.monitor = self._connect()
        finally:
            self.started.set()
            self._wake()

    def container_gone(self) -> None:
        self.gone = True
        self.started.set()
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")  # type: ignore[arg-type]  # None: TypeError, caught
        except (OSError, TypeError):  # full (woken already), closed or never made
            pass

    def _connect(self) -> socket.socket | None:
        mon = self.monitor_client.attach(self.want_stdin, self.want_stdout, self.want_stderr)
        if mon is None:
            return None
        if self.pending_stdin:
            mon.sendall(P.frame(P.STDIN, self.pending_stdin))
            self.pending_stdin = b""
        if self.stdin_closed and self.want_stdin:
            mon.sendall(P.frame(P.STDIN_EOF))
            self.eof_sent = True
        return mon

    # -- the session ------------------------------------------------------------
    def replay_logs(self) -> None:
        wait_until_read(self.client)  # the 101 first (docker-py's attach(logs=True))
        for stream, data in replay_entries(self.c):  # (json-file, local, a syslog cache)
            if (stream == "stdout" and self.want_stdout) or (
                    stream == "stderr" and self.want_stderr):
                self._out(1 if stream == "stdout" else 2, data)

    def run(self, open_client: Callable[[], socket.socket] | None = None,
            replay: bool = False) -> None:
        """Register with the container (joined to its monitor now, or at its next
        start), then -- only then -- get the client (``open_client``: the API's
        hijack, whose 101 tells the CLI it may start the container), replay the
        log if asked, and relay until the end."""
        c = self.c
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        with c.lock:
            if c.state.running:
                self.monitor = self._connect()
                self.started.set()
            else:
                c.attachers.append(self)
        try:
            if open_client is not None:
                self.client = open_client()
            if replay:
                self.replay_logs()
            if not self.started.is_set():
                self._wait_for_start()
            if self.monitor is not None and not self.client_left:
                self._relay()
        finally:
            with c.lock:  # (under the lock the start path wakes us with)
                if self in c.attachers:
                    c.attachers.remove(self)
                for fd in (self._wake_r, self._wake_w):
                    if fd is not None:
                        os.close(fd)
                self._wake_r = self._wake_w = None
            for s in (self.monitor,):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            self.close_client()

    def _wait_for_start(self) -> None:
        """Buffer stdin until the container starts (or is removed)."""
        assert self.client is not None and self._wake_r is not None  # (run() made them)
        poller = select.poll()
        reading = self.want_stdin
        # without POLLIN the poll still reports POLLHUP: a client gone entirely (a
        # half-close, the CLI's "no more stdin", does not raise it)
        poller.register(self.client.fileno(), select.POLLIN if reading else 0)
        poller.register(self._wake_r, select.POLLIN)
        while not self.started.is_set():
            if self.c.removed:
                return
            for fd, _ev in poller.poll(200):
                if fd == self._wake_r:
                    continue  # the loop's test sees why
                if not reading:
                    self.client_left = True
                    return
                try:
                    data = self.client.recv(65536)
                except OSError:
                    data = b""
                with self.c.lock:  # (the start's _connect takes them under it)
                    if data:
                        self.pending_stdin += data
                    else:
                        self.stdin_closed = True
                if not data:
                    reading = False
                    poller.modify(self.client.fileno(), 0)

    def _relay(self) -> None:
        mon = self.monitor
        assert mon is not None and self.client is not None  # (run() checked)
        # stdin that came after the start's _connect took the buffer (between the
        # start and this thread seeing it)
        with self.c.lock:
            pending, self.pending_stdin = self.pending_stdin, b""
            eof = self.want_stdin and self.stdin_closed and not self.eof_sent
        if pending:
            mon.sendall(P.frame(P.STDIN, pending))
        if eof:
            mon.sendall(P.frame(P.STDIN_EOF))
        reader = P.FrameReader()
        poller = select.poll()
        poller.register(mon.fileno(), select.POLLIN)
        client_open = self.want_stdin and not self.stdin_closed
        # the client is always polled: POLLHUP (mask 0) when it went away
        poller.register(self.client.fileno(), select.POLLIN if client_open else 0)
        while True:
            for fd, ev in poller.poll():
                if fd == mon.fileno():
                    try:
                        data = mon.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    for kind, payload in reader.feed(data):
                        if kind == P.EXIT:
                            return
                        if kind == P.STDOUT and self.want_stdout:
                            self._out(1, payload)
                        elif kind == P.STDERR and self.want_stderr:
                            self._out(2, payload)
                    if self.client_left:
                        return
                elif not client_open:
                    return  # POLLHUP/POLLERR: the client is gone
                else:
                    try:
                        data = self.client.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        poller.modify(self.client.fileno(), 0)
                        client_open = False
                        if self.want_stdin:
                            mon.sendall(P.frame(P.STDIN_EOF))
                            if self.tty or not self.stdin_once:
                                return  # detach: the container keeps running
                        if ev & (select.POLLHUP | select.POLLERR):
                            return  # not a half-close: the client is gone
                        continue
                    keep, detached = self._check_detach(data)
                    if keep:
                        mon.sendall(P.frame(P.STDIN, keep))
                    if detached:
                        self.detached = True
                        self.events.emit("container", "detach", self.c.id, attributes(self.c))
                        return

    def _check_detach(self, data: bytes) -> tuple[bytes, bool]:
        """Strip (and report) the detach key sequence in a tty session."""
        if not self.tty:
            return data, False
        return self.keys.feed(data)

    def _out(self, stream: int, payload: bytes) -> None:
        assert self.client is not None
        try:
            if self.tty:
                self.client.sendall(payload)
            else:
                self.client.sendall(stdcopy(stream, payload))
        except OSError:
            self.client_left = True

    def close_client(self) -> None:
        """Tell the client the output is over (a half-close: its stdin may
        still be on the way; after the detach keys the connection ends, as
        dockerd closes it)."""
        if self.client is None:
            return
        try:
            self.client.shutdown(socket.SHUT_RDWR if self.detached else socket.SHUT_WR)
        except OSError:
            pass
