"""Frames on a monitor's socket.

A client (pyboxd) connects to DIR/monitor.sock and sends one JSON request line:

    {"op": "attach", "stdin": bool, "stdout": bool, "stderr": bool}
    {"op": "wait"}                      -> one JSON line when the container exited
    {"op": "resize", "h": H, "w": W}    -> "ok"
    {"op": "info"}                      -> {"pid", "exited"}
    {"op": "start"}                     -> "ok" or {"error"} (request had defer_start)
    {"op": "abort"}                     -> "ok" (an unstarted container is undone) or
                                           "started" (too late)
    {"op": "reopen_log"}                -> "ok" or {"error"} (the cri log driver opens its
                                           path anew: kubelet rotated the file)

monitor/client.py is the client side (pyboxd's).

After an attach request both sides exchange frames: one type byte, a 4-byte
big-endian length, the payload.  Monitor -> client: STDOUT, STDERR (raw container
output; a tty's merged output comes as STDOUT), EXIT (the exit JSON, last).
Client -> monitor: STDIN (bytes for the container), STDIN_EOF (close its stdin if
the container was created with StdinOnce), RESIZE ("H W").
"""

from __future__ import annotations

STDIN = 0
STDOUT = 1
STDERR = 2
EXIT = 3
RESIZE = 4
STDIN_EOF = 5

HEADER = 5


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes((kind,)) + len(payload).to_bytes(4, "big") + payload


class FrameReader:
    """Incremental parser: feed bytes, get complete (kind, payload) frames."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while len(self.buf) >= HEADER:
            size = int.from_bytes(self.buf[1:HEADER], "big")
            if len(self.buf) < HEADER + size:
                break
            out.append((self.buf[0], self.buf[HEADER:HEADER + size]))
            self.buf = self.buf[HEADER + size:]
        return out
