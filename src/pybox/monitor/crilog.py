"""The CRI log format: a Kubernetes container's log, written where kubelet asks.

kubelet reads a container's log itself (``kubectl logs``, its rotation) from the
file it named in the container's config (LogDirectory/LogPath), in the format
of the CRI's logging spec, one entry per line::

    2016-10-06T00:17:09.669794202Z stdout F message
    2016-10-06T00:17:09.669794203+01:00 stderr P first 16 KiB of a longer line

-- a timestamp (Go's RFC3339Nano in local time: the fraction's trailing zeros
dropped, ``Z`` when the zone's offset is 0), the stream, a tag (``F`` a line's
full end, ``P`` a part of a line cut because it is longer than the maximum,
or because the stream ended without a newline), the content without its
newline.  As containerd's cio writes it (pkg/cri/io/logger.go): a line's
``\\n`` or ``\\r\\n`` is dropped, an empty line is an entry, a line longer than
``max_line`` bytes (containerd's max_container_log_line_size, 16 KiB; 0 or
less: no limit) goes in ``max_line`` pieces tagged P with its last piece F, a
tty's output is all stdout.  The file is created with its parent directory
(0755) and opened 0640 in append mode, as containerd's openLogFile.

Rotation is kubelet's: it renames the file, then asks the runtime to reopen
(ReopenContainerLog): ``reopen`` opens the path anew; the part of a line not
yet written continues in the new file.
"""

from __future__ import annotations

import os
import time

MAX_LINE = 16 * 1024
PERMS = 0o640
_NS = 10**9


def _zone(offset: int) -> bytes:
    """Go's ``Z07:00``."""
    if offset == 0:
        return b"Z"
    sign = b"+" if offset > 0 else b"-"
    offset = abs(offset)
    return sign + b"%02d:%02d" % (offset // 3600, offset // 60 % 60)


class _Clock:
    """RFC3339Nano local timestamps, the date part built once a second."""

    __slots__ = ("secs", "head", "zone")

    def __init__(self) -> None:
        self.secs = -1
        self.head = b""
        self.zone = b""

    def stamp(self, ns: int | None = None) -> bytes:
        secs, frac = divmod(time.time_ns() if ns is None else ns, _NS)
        if secs != self.secs:
            t = time.localtime(secs)
            self.head = time.strftime("%Y-%m-%dT%H:%M:%S", t).encode()
            self.zone = _zone(t.tm_gmtoff)
            self.secs = secs
        if frac:
            return self.head + (b".%09d" % frac).rstrip(b"0") + self.zone
        return self.head + self.zone


def open_log_file(path: str) -> int:
    """containerd's openLogFile: the parent directory made (0755), the file
    opened for appending (created 0640).  Raises OSError."""
    if not os.path.isabs(path):
        raise OSError(f"the CRI log path {path!r} is not absolute")
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PERMS)


class CRILogWriter:
    """One container's CRI log: ``write(stream, data)`` as the monitor reads
    the container's output, ``reopen()`` after kubelet's rename, ``close()``
    at the exit (a last line without its newline is written, tagged P)."""

    def __init__(self, path: str, max_line: int | None = MAX_LINE) -> None:
        self.path = path
        self.max_line = max_line if max_line is not None and max_line > 0 else 0
        self.partial = {"stdout": b"", "stderr": b""}
        self.clock = _Clock()
        self.fd = open_log_file(path)

    def write(self, stream: str, data: bytes) -> None:
        """Every complete line (and every piece of ``max_line`` bytes of a
        longer one) becomes an entry; the rest waits for more output."""
        buf = self.partial.get(stream, b"") + data
        out: list[bytes] = []
        tag = stream.encode()
        start = 0
        limit = self.max_line
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # (\r\n)
            while limit and end - start > limit:
                out.append(self._entry(tag, b"P", buf[start:start + limit]))
                start += limit
            out.append(self._entry(tag, b"F", buf[start:end]))
            start = nl + 1
        # a line longer than the maximum is written in pieces now -- unless
        # what exceeds it is a lone \r, which may be the start of a \r\n
        while limit and len(buf) - start > limit and \
                not (len(buf) - start == limit + 1 and buf[-1] == 13):
            out.append(self._entry(tag, b"P", buf[start:start + limit]))
            start += limit
        self.partial[stream] = buf[start:]
        if out:
            self._write(b"".join(out))

    def _entry(self, stream: bytes, tag: bytes, content: bytes) -> bytes:
        return self.clock.stamp() + b" " + stream + b" " + tag + b" " + content + b"\n"

    def _write(self, data: bytes) -> None:
        """One write per batch of entries (O_APPEND: whole lines, never
        interleaved); a failed write is dropped and the container's output
        still drained, as containerd continues on write errors."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            pass

    def flush(self) -> None:
        """The streams ended: what is left of a line without its newline is
        written as a partial entry (containerd's at EOF)."""
        out: list[bytes] = []
        for stream, buf in self.partial.items():
            limit = self.max_line or len(buf) or 1
            for i in range(0, len(buf), limit):
                out.append(self._entry(stream.encode(), b"P", buf[i:i + limit]))
            self.partial[stream] = b""
        if out:
            self._write(b"".join(out))

    def reopen(self) -> None:
        """Open the path anew (kubelet renamed the file: entries go on in a new
        one); the old file is closed once the new one is open.  OSError when
        the new file cannot be made: the old one stays in use."""
        fd = open_log_file(self.path)
        old, self.fd = self.fd, fd
        os.close(old)

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
