"""docker's stdcopy framing, read side.

A container (or exec) without a tty has its stdout and stderr multiplexed on one
stream: every write is an 8-byte header ``[stream, 0, 0, 0, size (uint32 big
endian)]`` followed by ``size`` bytes.  Stream 1 is stdout, 2 stderr, 0 stdin
(never sent by daemons), 3 an error from the daemon itself.  With a tty the
stream is raw; the client decides which from the container's ``Config.Tty`` (or
the exec's), not from the Content-Type, exactly as the docker CLI does.
"""

from __future__ import annotations

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER_SIZE = 8


class StreamError(Exception):
    """A frame for stream 3: the daemon reports an error inside the stream."""


class Demuxer:
    """Incremental: ``feed(bytes)`` returns the complete frames seen so far as
    ``[(stream, payload), ...]``; a partial frame waits for the next feed."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        frames = []
        buf = self.buf
        pos = 0
        n = len(buf)
        while n - pos >= HEADER_SIZE:
            stream = buf[pos]
            size = int.from_bytes(buf[pos + 4:pos + 8], "big")
            if n - pos - HEADER_SIZE < size:
                break
            start = pos + HEADER_SIZE
            payload = bytes(buf[start:start + size])
            pos = start + size
            if stream == SYSTEMERR:
                raise StreamError(f"error from daemon in stream: {payload.decode(errors='replace')}")
            if stream not in (STDIN, STDOUT, STDERR):
                raise StreamError(f"Unrecognized input header: {stream}")
            frames.append((stream, payload))
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        return len(self.buf)


def frame(stream: int, payload: bytes) -> bytes:
    """The write side, for tests and fakes."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload
