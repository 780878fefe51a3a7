"""docker's ``local`` log driver format, and docker's copier (shared with syslog).

Each entry is moby's ``logdriver.LogEntry`` protobuf message (source, time_nano,
line, partial, partial_log_metadata, attrs), framed by its length as a big-endian
uint32 before and after it (the trailing copy lets a reader walk back from the
end for ``--tail``).  The few protobuf fields are encoded here by hand; proto3
leaves zero values out, as gogo-protobuf does.  The line is stored without its
newline; the reader adds it back unless the entry is an unfinished partial.

The copier splits a stream as moby's logger.Copier does: one message per line
(newline dropped); a line that fills the 16 KiB buffer goes out in partial
pieces sharing a random id, ordinals from 1 and the first piece's time, the
piece that ends the line marked last; what is left at EOF is a partial piece.
"""

from __future__ import annotations

import os
import time

from pybox.monitor.logfile import RotatingFile

TYPE_CHECKING = False  # (typing is not imported: the monitors' zygote loads this module)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Protocol

    # (partial id, ordinal, last) of a piece of a long line, or None
    PartialMeta = tuple[str, int, bool] | None

    class Sink(Protocol):
        """Where the copier's messages go (a log driver)."""

        def log(self, stream: str, line: bytes, ts_ns: int, partial: PartialMeta) -> None: ...

        def close(self) -> None: ...

BUF_SIZE = 16 * 1024  # moby's logger.defaultBufSize
DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_MAX_FILES = 5
DEFAULT_COMPRESS = True
MAX_MSG_LEN = 1_000_000  # moby's maxMsgLen: a bigger frame is corruption


# -- protobuf, by hand ----------------------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def encode_entry(source: str, ts_ns: int, line: bytes, partial: PartialMeta,
                 attrs: list[tuple[str, str]]) -> bytes:
    """One framed LogEntry: uint32 size, message, uint32 size."""
    msg = b""
    if source:
        msg += _field(1, source.encode())
    if ts_ns:
        msg += b"\x10" + _varint(ts_ns)
    if line:
        msg += _field(3, line)
    if partial is not None:
        pid, ordinal, last = partial
        meta = b""
        if last:
            meta += b"\x08\x01"
        if pid:
            meta += _field(2, pid.encode())
        if ordinal:
            meta += b"\x18" + _varint(ordinal)
        msg += b"\x20\x01" + _field(5, meta)
    for key, value in attrs:
        kv = (_field(1, key.encode()) if key else b"") + (_field(2, value.encode()) if value else b"")
        msg += _field(6, kv)
    size = len(msg).to_bytes(4, "big")
    return size + msg + size


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for
    length-delimited fields (fixed 32/64-bit ones are skipped)."""
    i, end = 0, len(data)
    while i < end:
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            yield num, value
        elif wire == 2:
            n, i = _read_varint(data, i)
            if i + n > end:
                raise ValueError("truncated field")
            yield num, data[i:i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


class Entry:
    """A decoded LogEntry (the reader's view: ``line`` ends with the newline
    unless it is an unfinished partial piece)."""

    __slots__ = ("source", "time_ns", "line", "partial", "attrs")

    def __init__(self, source: str, time_ns: int, line: bytes, partial: PartialMeta,
                 attrs: list[tuple[str, str]]) -> None:
        self.source = source
        self.time_ns = time_ns
        self.line = line
        self.partial = partial
        self.attrs = attrs


def decode_entry(msg: bytes) -> Entry:
    source, ts, line = "", 0, b""
    is_partial = False
    meta: PartialMeta = None
    attrs: list[tuple[str, str]] = []
    for num, value in _fields(msg):
        if num == 1 and isinstance(value, bytes):
            source = value.decode("utf-8", "replace")
        elif num == 2 and isinstance(value, int):
            ts = value - (1 << 64) if value >= 1 << 63 else value
        elif num == 3 and isinstance(value, bytes):
            line = value
        elif num == 4 and isinstance(value, int):
            is_partial = bool(value)
        elif num == 5 and isinstance(value, bytes):
            last, pid, ordinal = False, "", 0
            for n, v in _fields(value):
                if n == 1 and isinstance(v, int):
                    last = bool(v)
                elif n == 2 and isinstance(v, bytes):
                    pid = v.decode("utf-8", "replace")
                elif n == 3 and isinstance(v, int):
                    ordinal = v
            meta = (pid, ordinal, last)
        elif num == 6 and isinstance(value, bytes):
            kv = {n: v for n, v in _fields(value) if isinstance(v, bytes)}
            attrs.append((kv.get(1, b"").decode("utf-8", "replace"),
                          kv.get(2, b"").decode("utf-8", "replace")))
    if not is_partial:
        meta = None
    if meta is None or meta[2]:
        line += b"\n"
    return Entry(source, ts, line, meta, attrs)


def read_frames(f: IO[bytes]) -> Iterator[tuple[Entry, int]]:
    """(entry, end offset) for each whole frame from ``f``'s position; stops at a
    torn frame (being written), leaving ``f`` where that frame starts."""
    pos = f.tell()
    while True:
        head = f.read(4)
        if len(head) < 4:
            f.seek(pos)
            return
        size = int.from_bytes(head, "big")
        if size > MAX_MSG_LEN:
            raise ValueError(f"log message is too large ({size} > {MAX_MSG_LEN})")
        body = f.read(size + 4)
        if len(body) < size + 4:
            f.seek(pos)
            return
        pos += size + 8
        try:
            entry = decode_entry(body[:size])
        except ValueError:
            continue
        yield entry, pos


# -- the copier ----------------------------------------------------------------------
class _Stream:
    __slots__ = ("buf", "pid", "ordinal", "ts")

    def __init__(self) -> None:
        self.buf = b""
        self.pid = ""  # the partial line's id ("" when none is going on)
        self.ordinal = 0
        self.ts = 0


class Copier:
    """The monitor's log writer for drivers other than json-file: container
    output in, moby's messages out to each sink."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.streams = {"stdout": _Stream(), "stderr": _Stream()}

    def _emit(self, stream: str, line: bytes, ts: int, partial: PartialMeta) -> None:
        for sink in self.sinks:
            try:
                sink.log(stream, line, ts, partial)
            except OSError:
                pass  # (moby logs the driver's error and goes on)

    def write(self, stream: str, data: bytes) -> None:
        st = self.streams[stream]
        buf = st.buf + data
        p = 0
        while True:
            q = buf.find(b"\n", p, p + BUF_SIZE)
            if q < 0:
                if len(buf) - p >= BUF_SIZE:
                    self._partial(stream, st, buf[p:p + BUF_SIZE])
                    p += BUF_SIZE
                    continue
                break
            if st.pid:
                self._emit(stream, buf[p:q], st.ts, (st.pid, st.ordinal, True))
                st.pid = ""
            else:
                self._emit(stream, buf[p:q], time.time_ns(), None)
            p = q + 1
        st.buf = buf[p:]

    def _partial(self, stream: str, st: _Stream, piece: bytes) -> None:
        if not st.pid:
            st.pid = os.urandom(32).hex()
            st.ts = time.time_ns()
            st.ordinal = 1
        self._emit(stream, piece, st.ts, (st.pid, st.ordinal, False))
        st.ordinal += 1

    def flush(self) -> None:
        """EOF: what is left of a line goes out as a partial piece (moby's copier)."""
        for stream, st in self.streams.items():
            if st.buf:
                self._partial(stream, st, st.buf)
                st.buf = b""

    def close(self) -> None:
        self.flush()
        for sink in self.sinks:
            try:
                sink.close()
            except OSError:
                pass


class LocalSink:
    """The local driver: framed LogEntry messages in a rotated file."""

    def __init__(self, path: str, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES, compress: bool = DEFAULT_COMPRESS,
                 attrs: list[tuple[str, str]] | None = None) -> None:
        self.file = RotatingFile(path, max_size, max_files, compress)
        self.attrs = sorted(attrs or [])

    def log(self, stream: str, line: bytes, ts_ns: int, partial: PartialMeta) -> None:
        self.file.write(encode_entry(stream, ts_ns, line, partial, self.attrs), ts_ns)

    def close(self) -> None:
        self.file.close()
