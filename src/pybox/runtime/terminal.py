"""Terminals, as runc's docs/terminals.md describes them.

process.terminal = true: the container's process gets a new pseudo-terminal
from the container's own devpts instance (/dev/ptmx after pivot_root), as its
controlling terminal and stdio.  The master side goes to whoever asked:

- ``--console-socket PATH`` (detached: containerd-shim, conmon): the runtime
  connects to PATH before fork; init sends the master fd over it with SCM_RIGHTS
  (the message data is the slave's path, as runc sends it);
- a foreground ``run``/``exec`` with no console socket: the runtime keeps the
  master itself and relays it to its own stdio, with the caller's terminal in
  raw mode and the window size copied on start and on every SIGWINCH.

ioctl numbers are the generic Linux ones (x86_64, aarch64).

Imported only by a container with a terminal; within it, what only one side
needs (fcntl, termios, select) is imported where it is used.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import _socket
    import signal as _signal
    from typing import Any

    from pybox.linux.syscalls import Syscalls
else:
    import _signal  # the C module, loaded at start-up: signal.py's enums cost time

TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def _winsize(rows: int, cols: int) -> bytes:
    return (rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + b"\0\0\0\0")


def open_pty() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path) from /dev/ptmx in our mount namespace."""
    import fcntl  # noqa: PLC0415 -- preloaded before pivot_root (init._preload)

    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")  # unlockpt
        n = int.from_bytes(fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"), "little")
        path = f"/dev/pts/{n}"
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave, path


def setup_console(console_sock: _socket.socket, process: dict[str, Any],
                  sc: Syscalls | None = None) -> None:
    """In the container (after pivot_root, before dropping privileges): make a
    pty, hand its master to ``console_sock``, and make the slave our controlling
    terminal and stdio.  The caller must already be a session leader.

    With ``sc`` (the container's init, not exec) the slave is also bind-mounted
    on /dev/console, as runc's mountConsole does and the runtime-spec asks
    (config-linux.md, "/dev/console")."""
    import _socket  # noqa: PLC0415 -- preloaded before pivot_root (init._preload)
    import fcntl  # noqa: PLC0415 -- preloaded before pivot_root (init._preload)

    master, slave, path = open_pty()
    try:
        size = process.get("consoleSize")
        if size and size.get("height") and size.get("width"):
            fcntl.ioctl(master, TIOCSWINSZ, _winsize(size["height"], size["width"]))
        if sc is not None:
            _mount_console(sc, path)
        uid = (process.get("user") or {}).get("uid", 0)
        os.fchown(slave, uid, -1)
        console_sock.sendmsg([path.encode()],
                             [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                               master.to_bytes(4, "little"))])
    finally:
        os.close(master)
        console_sock.close()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)  # dup2 makes 0-2 inheritable: they survive exec
    if slave > 2:
        os.close(slave)


def _mount_console(sc: Syscalls, slave_path: str) -> None:
    """/dev/console: an empty file (mode 0666, kept if already there) with the
    pty slave bind-mounted on it."""
    old = os.umask(0)
    try:
        os.close(os.open("/dev/console", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666))
    finally:
        os.umask(old)
    sc.mount(slave_path, "/dev/console", "bind", 0x1000)  # MS_BIND


def receive_master(sock: _socket.socket) -> int:
    """Parent side of an internal console socket: the master fd init sends."""
    import _socket  # noqa: PLC0415 -- the caller made the socket: a dict lookup

    _, anc, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(4))
    for level, kind, data in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            fd = int.from_bytes(data[:4], "little")
            os.set_inheritable(fd, False)
            return fd
    from pybox.errors import ProcessSetupError  # noqa: PLC0415 -- loaded already: a dict lookup

    raise ProcessSetupError("no terminal master received from the container")


def copy_window_size(src_fd: int, dst_fd: int) -> None:
    import fcntl  # noqa: PLC0415 -- a C module: only terminals need it

    try:
        size = fcntl.ioctl(src_fd, TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, TIOCSWINSZ, size)
    except OSError:
        pass  # src is not a terminal


class Relay:
    """Copy between our stdio and a pty master until the container side closes.
    Puts a terminal stdin into raw mode (keys such as ctrl-C travel to the
    container's line discipline) and restores it afterwards."""

    def __init__(self, master: int) -> None:
        self.master = master
        self._saved: list[Any] | None = None

    def __enter__(self) -> Relay:
        if os.isatty(0):
            import termios  # noqa: PLC0415 -- a C module: only a terminal stdin needs it

            self._saved = termios.tcgetattr(0)
            attrs = termios.tcgetattr(0)
            # cfmakeraw
            attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                          | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
            attrs[1] &= ~termios.OPOST
            attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                          | termios.IEXTEN)
            attrs[2] &= ~(termios.CSIZE | termios.PARENB)
            attrs[2] |= termios.CS8
            attrs[6][termios.VMIN] = 1
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(0, termios.TCSANOW, attrs)
        copy_window_size(0, self.master)
        _signal.signal(_signal.SIGWINCH, lambda *_: copy_window_size(0, self.master))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios  # noqa: PLC0415 -- loaded by __enter__: a dict lookup

            termios.tcsetattr(0, termios.TCSAFLUSH, self._saved)

    def run(self) -> None:
        """Relay until the pty's slave side is closed by every process."""
        import select  # noqa: PLC0415 -- a C module: only the foreground relay needs it

        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        stdin_open = True
        try:
            poller.register(0, select.POLLIN)
        except (OSError, ValueError):
            stdin_open = False
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self.master:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: no slave left
                        data = b""
                    if not data:
                        return
                    _write_all(1, data)
                elif stdin_open:
                    data = os.read(0, 65536) if ev & (select.POLLIN | select.POLLHUP) else b""
                    if not data:
                        poller.unregister(0)
                        stdin_open = False
                        continue
                    _write_all(self.master, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
