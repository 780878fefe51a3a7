"""Interactive sessions on a hijacked stream: the terminal, the detach keys, the
signal proxy and the copy loop, all in one thread.

One ``select`` loop moves bytes stdin -> socket and socket -> stdout/stderr and
reacts to signals through a wakeup pipe, so no threads are started (cheaper, and
signal handling stays deterministic).  It follows the docker CLI's hijacked
streamer:

* stdin EOF -> half-close the socket (the daemon closes the process's stdin and
  keeps streaming); no stdin at all -> half-close at once;
* output EOF -> the session is over, whatever stdin is doing;
* with a tty, stdin goes through the detach-key detector (default ctrl-p
  ctrl-q): the keys are swallowed, a partial match is held back until it either
  completes or fails, and on a match the connection is dropped while the
  container keeps running;
* signals: SIGWINCH -> ``resize`` (and, through the sig-proxy, ``kill?signal=
  WINCH``); every other catchable signal -> ``kill?signal=NAME`` when the
  sig-proxy is on.  Handlers only record the signal; the loop does the HTTP.

``_signal`` (the C module) is used instead of ``signal``: the latter imports
``enum`` (milliseconds of start-up on every ``pybox run``).
"""

from __future__ import annotations

import fcntl
import os
import select
import termios

from pybox.cli.pybox.stdcopy import Demuxer

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import signal as _signal  # (mypy knows signal's types; _signal is its C core)
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import Any

    from pybox.cli.pybox.client import RawStream
else:
    import _signal

#: Signals the sig-proxy forwards: all catchable ones but SIGCHLD, SIGPIPE and
#: SIGURG (docker's list: it catches everything and skips those three).
PROXIED = ("HUP", "INT", "QUIT", "ABRT", "USR1", "USR2", "ALRM", "TERM", "CONT", "TSTP",
           "TTIN", "TTOU", "WINCH", "XCPU", "XFSZ", "VTALRM", "PROF", "IO", "PWR", "SYS",
           "TRAP", "STKFLT")

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def signal_number(name: str) -> int | None:
    return getattr(_signal, "SIG" + name, None)


def signal_name(number: int) -> str:
    for name in PROXIED:
        if getattr(_signal, "SIG" + name, None) == number:
            return name
    return str(number)


def detach_key_bytes(spec: str) -> bytes:
    """docker's detach-key syntax: comma-separated ``ctrl-<a-z@[\\]^_>`` or
    single characters -> bytes.  Raises ValueError with docker's wording."""
    out = bytearray()
    for key in spec.split(","):
        if len(key) > 1 and key.lower().startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            if c in _CTRL_SPECIAL:
                out.append(_CTRL_SPECIAL[c])
                continue
            raise ValueError(f"Invalid detach keys ({spec}) provided")
        if len(key) != 1:
            raise ValueError(f"Invalid detach keys ({spec}) provided")
        out.append(ord(key))
    if not out:
        raise ValueError(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class DetachDetector:
    """moby/term's escape proxy: bytes that could start the key sequence are held
    back; a complete sequence means 'detach'; a broken one releases them."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """-> (bytes to forward, detached?)"""
        out = bytearray()
        for b in data:
            if b == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += self.keys[:self.matched]
                self.matched = 0
                if b == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(b)
        return bytes(out), False


# -- the terminal -----------------------------------------------------------------
def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(height, width) of the terminal on ``fd``, or None."""
    try:
        data = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows = int.from_bytes(data[0:2], "little")
    cols = int.from_bytes(data[2:4], "little")
    return (rows, cols) if rows and cols else None


class RawTerminal:
    """Put ``fd`` in raw mode as moby/term's MakeRaw does (no echo, no line
    editing, no signals from keys, no output processing, 8-bit, byte at a time);
    ``restore()`` is idempotent, so every exit path can call it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = termios.tcgetattr(fd)
        attrs = termios.tcgetattr(fd)
        attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                      | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                      | termios.IEXTEN)
        attrs[2] &= ~(termios.CSIZE | termios.PARENB)
        attrs[2] |= termios.CS8
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)

    def restore(self) -> None:
        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
            except OSError:
                pass
            self.saved = None


# -- signals ------------------------------------------------------------------------
class SignalCatcher:
    """Catch ``names``; the handlers only queue the number and wake the loop."""

    def __init__(self, names: Sequence[str]) -> None:
        self.pending: list[int] = []
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.previous_wakeup = _signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.previous: dict[int, object] = {}
        for name in names:
            num = signal_number(name)
            if num is None:
                continue
            try:
                self.previous[num] = _signal.signal(num, self._handler)
            except (OSError, ValueError, RuntimeError):
                pass

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.pending.append(signum)

    def take(self) -> list[int]:
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass
        taken, self.pending = self.pending, []
        return taken

    def close(self) -> None:
        for num, handler in self.previous.items():
            try:
                _signal.signal(num, handler)  # type: ignore[arg-type]  # what signal() gave back
            except (OSError, ValueError, TypeError):
                pass
        self.previous = {}
        if self.read_fd >= 0:
            _signal.set_wakeup_fd(self.previous_wakeup)
            os.close(self.read_fd)
            os.close(self.write_fd)
            self.read_fd = self.write_fd = -1


# -- the copy loop ------------------------------------------------------------------
def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def pump(stream: RawStream, *, tty: bool, stdin_fd: int | None = None, stdout_fd: int = 1,
         stderr_fd: int = 2, detach_keys: bytes | None = None,
         signals: SignalCatcher | None = None,
         on_signals: Callable[[list[int]], object] | None = None) -> str:
    """Copy until the output ends.  Returns "eof" or "detached".

    ``stream``: a client.RawStream.  ``stdin_fd``: None when stdin is not
    attached (the socket is half-closed at once).  ``detach_keys``: bytes, only
    honoured with a tty.  ``signals``: a SignalCatcher whose queued signals are
    handed to ``on_signals(list)`` from the loop."""
    demux = None if tty else Demuxer()
    detector = DetachDetector(detach_keys) if (tty and detach_keys and stdin_fd is not None) \
        else None
    if stdin_fd is None:
        stream.close_write()
    sock_fd = stream.fileno()
    stdout_ok = True

    def emit(data: bytes) -> None:
        nonlocal stdout_ok
        if demux is None:
            if stdout_ok:
                try:
                    write_all(stdout_fd, data)
                except BrokenPipeError:
                    stdout_ok = False
            return
        for which, payload in demux.feed(data):
            fd = stderr_fd if which == 2 else stdout_fd
            try:
                write_all(fd, payload)
            except BrokenPipeError:
                pass

    if stream.initial:
        emit(stream.recv())
    while True:
        readers = [sock_fd]
        if stdin_fd is not None:
            readers.append(stdin_fd)
        if signals is not None:
            readers.append(signals.read_fd)
        if signals is not None and signals.pending and on_signals is not None:
            on_signals(signals.take())
        ready, _, _ = select.select(readers, [], [])
        if signals is not None and (signals.read_fd in ready or signals.pending):
            taken = signals.take()
            if taken and on_signals is not None:
                on_signals(taken)
        if sock_fd in ready:
            try:
                data = stream.recv()
            except ConnectionResetError:
                data = b""
            if not data:
                return "eof"
            emit(data)
        if stdin_fd is not None and stdin_fd in ready:
            try:
                data = os.read(stdin_fd, 32768)
            except OSError:
                data = b""
            if not data:
                stdin_fd = None
                stream.close_write()
                continue
            detached = False
            if detector is not None:
                data, detached = detector.feed(data)
            if data:
                try:
                    stream.sendall(data)
                except OSError:
                    stdin_fd = None
            if detached:
                return "detached"
