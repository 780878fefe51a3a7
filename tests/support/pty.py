"""A client on a real pseudo-terminal, as its controlling terminal (what a
person at a terminal has): type into it, read what it prints, resize it,
collect its exit status.  How tests/clients drive ``pybox run -it``, ``exec
-it`` and ``attach``, and tests/compat docker's and podman's ``run -it``."""

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time


class PtyProcess:
    def __init__(self, argv, env=None, rows: int = 24, cols: int = 80):
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execvpe(argv[0], argv, env or os.environ)
            finally:
                os._exit(127)
        self.output = b""
        self.pos = 0  # where the next expect() starts looking
        self.status: int | None = None

    def send(self, data) -> None:
        if isinstance(data, str):
            data = data.encode()
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size; the kernel sends SIGWINCH to the foreground
        process group (the client)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout: float) -> bool:
        if self.master < 0:
            return False
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        self.output += data
        return bool(data)

    def expect(self, needle, timeout: float = 60.0) -> str:
        """Read until ``needle`` appears after the previous match; -> the text
        between the two."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.output[self.pos:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen; got {self.output[self.pos:]!r}")
            if not self._read(0.2) and self.poll() is not None:
                while self._read(0.2):  # what is still in the pty after the exit
                    pass
                if needle not in self.output[self.pos:]:
                    raise AssertionError(f"{needle!r} not seen before exit "
                                         f"({self.status}); got {self.output[self.pos:]!r}")
        end = self.output.index(needle, self.pos) + len(needle)
        text, self.pos = self.output[self.pos:end], end
        return text.decode(errors="replace")

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float = 60.0) -> int:
        """Drain the terminal until the client exits -> its exit status."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("the client did not exit; output: "
                                     f"{self.output[-500:]!r}")
            self._read(0.1)
        while self._read(0.05):
            pass
        self._close_master()
        return self.status

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -9

    def close(self) -> None:
        """Kill the client if it still runs; release the terminal (idempotent)."""
        self.kill()
        self._close_master()

    def _close_master(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
