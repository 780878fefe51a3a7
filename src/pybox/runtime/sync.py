"""The parent <-> init protocol of ``create``: small JSON messages over an AF_UNIX
socketpair, which can also carry file descriptors (SCM_RIGHTS): the seccomp
notify fd travels from init to the parent this way.

Each message is a 4-byte big-endian length and a JSON object with a "type".  The
child side reports every failure as {"type": "error", "message", "errno", "kind"}
before exiting, so the user sees the real reason (with its errno) instead of "the
child died".  End of file without "ready" means the child died without a word.

Messages (child -> parent):  pid {pid}, userns (maps wanted), hooks (run prestart/
createRuntime now), seccomp (+ the notify fd), ready, error {...}.
Parent -> child: cgroup (it exists, join it), mapped, go.
The fields each message carries: pybox.runtime.records.Message.
"""

from __future__ import annotations

import os

from pybox.errors import ChannelClosed, PyboxError
from pybox.formats import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import _socket
    from collections.abc import Sequence

    from pybox.runtime.records import Message


class Channel:
    """One end of the socketpair."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock: _socket.socket | None = sock
        self._fds: list[int] = []  # fds received with the current message

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        """Two connected channels: (parent_side, child_side).  Both ends are
        close-on-exec; the children use theirs through fork."""
        import _socket  # noqa: PLC0415 -- a C module; only create/exec need it

        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        return Channel(a), Channel(b)

    def send(self, msg_type: str, fds: Sequence[int] = (), **fields: object) -> None:
        import _socket  # noqa: PLC0415 -- loaded by pair() already: a dict lookup

        assert self.sock is not None, "send on a closed channel"
        fields["type"] = msg_type
        body = fastjson.dumps(fields).encode()
        data = len(body).to_bytes(4, "big") + body
        if fds:
            anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                    b"".join(int(fd).to_bytes(4, "little", signed=True) for fd in fds))]
            n = self.sock.sendmsg([data], anc)
            data = data[n:]
        if data:
            self.sock.sendall(data)

    def _read_exact(self, n: int) -> bytes:
        import _socket  # noqa: PLC0415 -- loaded by pair() already: a dict lookup

        assert self.sock is not None, "recv on a closed channel"
        buf = b""
        while len(buf) < n:
            chunk, anc, _, _ = self.sock.recvmsg(n - len(buf), _socket.CMSG_SPACE(4 * 16))
            for level, kind, payload in anc:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % 4
                    for i in range(0, usable, 4):
                        fd = int.from_bytes(payload[i:i + 4], "little", signed=True)
                        os.set_inheritable(fd, False)
                        self._fds.append(fd)
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            buf += chunk
        return buf

    def recv(self) -> Message:
        """The next message; fds that came with it are in msg["fds"]."""
        self._fds = []
        size = int.from_bytes(self._read_exact(4), "big")
        msg: Message = fastjson.loads(self._read_exact(size))
        msg["fds"] = self._fds
        return msg

    def expect(self, kind: str) -> Message:
        msg = self.recv()
        if msg.get("type") != kind:
            if msg.get("type") == "error":
                raise PyboxError(msg.get("message") or "error from the other side")
            raise PyboxError(f"protocol error: expected {kind!r}, got {msg.get('type')!r}")
        return msg

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def send_error(self, exc: BaseException) -> None:
        """Report an exception to the parent: class name, message and errno."""
        errno = getattr(exc, "errno", None)
        try:
            self.send("error", message=str(exc) or exc.__class__.__name__,
                      errno=errno if isinstance(errno, int) else None,
                      kind=exc.__class__.__name__)
        except OSError:
            pass
