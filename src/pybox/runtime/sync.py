"""The parent <-> init protocol of ``create``: small JSON messages over pipes.

Each message is a 4-byte big-endian length and a JSON object with a "type".  The
child side reports every failure as {"type": "error", "message", "errno", "kind"}
before exiting, so the user sees the real reason (with its errno) instead of "the
child died".  End of file without "ready" means the child died without a word.

Messages (child -> parent):  pid {pid}, userns (maps wanted), hooks (run prestart/
createRuntime now), ready, error {...}.   Parent -> child: mapped, go.
"""

import os

from pybox.errors import PyboxError
from pybox.oci import fastjson


class ChannelClosed(PyboxError):
    pass


class Channel:
    """One direction each way: ``rfd`` to read, ``wfd`` to write."""

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd

    @staticmethod
    def pair():
        """Two connected channels: (parent_side, child_side)."""
        p_r, c_w = os.pipe()
        c_r, p_w = os.pipe()
        return Channel(p_r, p_w), Channel(c_r, c_w)

    def send(self, msg_type, **fields):
        fields["type"] = msg_type
        body = fastjson.dumps(fields).encode()
        data = len(body).to_bytes(4, "big") + body
        while data:
            n = os.write(self.wfd, data)
            data = data[n:]

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = os.read(self.rfd, n - len(buf))
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            buf += chunk
        return buf

    def recv(self):
        size = int.from_bytes(self._read_exact(4), "big")
        return fastjson.loads(self._read_exact(size))

    def expect(self, kind):
        msg = self.recv()
        if msg.get("type") != kind:
            raise PyboxError(f"protocol error: expected {kind!r}, got {msg.get('type')!r}")
        return msg

    def close(self):
        for fd in (self.rfd, self.wfd):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1

    def send_error(self, exc):
        """Report an exception to the parent: class name, message and errno."""
        errno = getattr(exc, "errno", None)
        try:
            self.send("error", message=str(exc) or exc.__class__.__name__,
                      errno=errno if isinstance(errno, int) else None,
                      kind=exc.__class__.__name__)
        except OSError:
            pass
