"""SPDY/3.1 framing and a server-side SPDY session, as Kubernetes' streaming
clients (client-go's remotecommand and portforward over moby/spdystream) speak it.

Why SPDY at all: kubelet's streaming server -- which a CRI runtime serves for
Exec, Attach and PortForward -- upgrades its HTTP/1.1 connection to SPDY/3.1
and carries each of stdin, stdout, stderr, the error channel and the terminal's
resizes (or each port-forward request's data and error) as its own SPDY
stream.  crictl, critest and kubectl (through the API server) all speak it.

The wire (draft-mbelshe-httpbis-spdy-00, version 3):

- a control frame: ``1 | version(15) | type(16) | flags(8) | length(24) |
  payload``; a data frame: ``0 | stream id(31) | flags(8) | length(24) |
  data``; all integers big-endian;
- a header block (SYN_STREAM, SYN_REPLY, HEADERS): ``count(32)`` then, per
  header, ``len(32) name len(32) value`` (lower-case names, several values
  joined by NUL), zlib-compressed with the SPDY/3 dictionary as ONE deflate
  stream per direction over the whole session, each block ending in a sync
  flush (spdystream's framer reads each block's exact length from that stream).

moby/spdystream has no flow control (it ignores WINDOW_UPDATE and never sends
one), so neither does this session; a ping from the client (an odd id) is
echoed, a GOAWAY ends the session as it ends spdystream's read loop.
"""

from __future__ import annotations

import collections
import enum
import queue
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from pybox.cri.stream_http import IdleWatch

VERSION = 3
MAX_DATA = 32 * 1024  # bytes per DATA frame we send (the protocol allows 2**24 - 1)
MAX_FRAME = (1 << 24) - 1
MAX_HEADER_BLOCK = 256 * 1024  # bytes a decompressed header block may have

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    """RST_STREAM's status codes (SPDY/3 section 2.6.3)."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class SpdyError(Exception):
    """A frame that breaks the protocol (the session ends)."""


def _dictionary() -> bytes:
    """SPDY/3's header-compression dictionary (spec section 2.6.10.1): the
    spec's words, each with its 32-bit length, then its run of status codes,
    reason phrases, dates and common values."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status").split() + [
        "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    out = bytearray()
    for word in words:
        out += struct.pack(">I", len(word)) + word.encode()
    out += (
        b"100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        b"502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        b"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        b"501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        b"Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        b"image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        b"charset=iso-8859-1,utf-,*,enq=0.")
    return bytes(out)


DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


def encode_header_block(headers: Mapping[str, list[str]]) -> bytes:
    """The uncompressed block: names lower-cased, values NUL-joined."""
    out = bytearray(struct.pack(">I", len(headers)))
    for name, values in headers.items():
        n = name.lower().encode()
        v = "\0".join(values).encode()
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return bytes(out)


def decode_header_block(block: bytes) -> Headers:
    """The uncompressed block -> {lower-case name: values}; SpdyError when it
    is cut short or names a header twice (spdystream's DuplicateHeaders)."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode("latin-1").lower()
            pos += 4 + n
            (m,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + m].decode("latin-1")
            if pos + 4 + m > len(block):
                raise SpdyError("header block cut short")
            pos += 4 + m
            if name in headers:
                raise SpdyError("multiple headers with same name")
            headers[name] = value.split("\0")
    except struct.error:
        raise SpdyError("header block cut short") from None
    return headers


class HeaderCompressor:
    """One direction's header compression: a single zlib stream with the
    dictionary, flushed (Z_SYNC_FLUSH) at the end of each block."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                   zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Mapping[str, list[str]]) -> bytes:
        raw = encode_header_block(headers)
        return self._z.compress(raw) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The other direction's: the peer's single zlib stream, one block at a time."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(15, DICTIONARY)

    def decompress(self, block: bytes) -> Headers:
        try:
            raw = self._z.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise SpdyError(f"header decompression: {e}") from None
        if self._z.unconsumed_tail:
            raise SpdyError("header block too large")
        return decode_header_block(raw)


# -- frames -------------------------------------------------------------------------------


@dataclass
class DataFrame:
    stream_id: int
    flags: int
    data: bytes


@dataclass
class SynStream:
    stream_id: int
    associated_id: int
    priority: int
    flags: int
    headers: Headers


@dataclass
class SynReply:
    stream_id: int
    flags: int
    headers: Headers


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Settings:
    flags: int
    entries: list[tuple[int, int, int]]  # (flags, id, value)


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int


@dataclass
class HeadersFrame:
    stream_id: int
    flags: int
    headers: Headers


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass
class UnknownControl:
    type: int
    flags: int
    payload: bytes


Frame = (DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame
         | WindowUpdate | UnknownControl)


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise SpdyError("frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


class Framer:
    """Encodes frames for one side and decodes the peer's, each direction with
    its own header-compression stream.  ``feed`` takes bytes as they come and
    yields the whole frames among them."""

    def __init__(self) -> None:
        self._out = HeaderCompressor()
        self._in = HeaderDecompressor()
        self._buf = bytearray()

    # -- encoding ----------------------------------------------------------------
    def data(self, stream_id: int, data: bytes, fin: bool = False) -> bytes:
        if not 0 < stream_id < 1 << 31 or len(data) > MAX_FRAME:
            raise SpdyError("invalid data frame")
        return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def syn_stream(self, stream_id: int, headers: Mapping[str, list[str]], *, fin: bool = False,
                   associated_id: int = 0, priority: int = 0) -> bytes:
        block = self._out.compress(headers)
        return _control(FrameType.SYN_STREAM, FLAG_FIN if fin else 0,
                        struct.pack(">IIBB", stream_id, associated_id, (priority & 7) << 5, 0)
                        + block)

    def syn_reply(self, stream_id: int, headers: Mapping[str, list[str]], fin: bool = False
                  ) -> bytes:
        block = self._out.compress(headers)
        return _control(FrameType.SYN_REPLY, FLAG_FIN if fin else 0,
                        struct.pack(">I", stream_id) + block)

    def headers(self, stream_id: int, headers: Mapping[str, list[str]], fin: bool = False) -> bytes:
        block = self._out.compress(headers)
        return _control(FrameType.HEADERS, FLAG_FIN if fin else 0,
                        struct.pack(">I", stream_id) + block)

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return _control(FrameType.RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return _control(FrameType.PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good_stream_id: int, status: int = 0) -> bytes:
        return _control(FrameType.GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))

    def window_update(self, stream_id: int, delta: int) -> bytes:
        return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))

    def settings(self, entries: list[tuple[int, int, int]], flags: int = 0) -> bytes:
        payload = struct.pack(">I", len(entries)) + b"".join(
            struct.pack(">II", (f << 24) | i, v) for f, i, v in entries)
        return _control(FrameType.SETTINGS, flags, payload)

    # -- decoding ----------------------------------------------------------------
    def feed(self, data: bytes) -> Iterator[Frame]:
        self._buf += data
        while len(self._buf) >= 8:
            first, word = struct.unpack_from(">II", self._buf, 0)
            length = word & 0xFFFFFF
            if len(self._buf) < 8 + length:
                return
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = word >> 24
            if not first & 0x80000000:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyError("stream id zero is disallowed")
                yield DataFrame(stream_id, flags, payload)
                continue
            version = (first >> 16) & 0x7FFF
            if version != VERSION:
                raise SpdyError(f"unsupported SPDY version {version}")
            yield self._parse_control(first & 0xFFFF, flags, payload)

    def _parse_control(self, ftype: int, flags: int, p: bytes) -> Frame:
        try:
            if ftype == FrameType.SYN_STREAM:
                sid, assoc, prio, _slot = struct.unpack_from(">IIBB", p, 0)
                if sid & 0x7FFFFFFF == 0:
                    raise SpdyError("stream id zero is disallowed")
                return SynStream(sid & 0x7FFFFFFF, assoc & 0x7FFFFFFF, prio >> 5, flags,
                                 self._in.decompress(p[10:]))
            if ftype in (FrameType.SYN_REPLY, FrameType.HEADERS):
                (sid,) = struct.unpack_from(">I", p, 0)
                headers = self._in.decompress(p[4:])
                if ftype == FrameType.SYN_REPLY:
                    return SynReply(sid & 0x7FFFFFFF, flags, headers)
                return HeadersFrame(sid & 0x7FFFFFFF, flags, headers)
            if ftype == FrameType.RST_STREAM:
                sid, status = struct.unpack_from(">II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status)
            if ftype == FrameType.SETTINGS:
                (n,) = struct.unpack_from(">I", p, 0)
                entries = []
                for i in range(n):
                    fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                    entries.append((fid >> 24, fid & 0xFFFFFF, value))
                return Settings(flags, entries)
            if ftype == FrameType.PING:
                (pid,) = struct.unpack_from(">I", p, 0)
                return Ping(pid)
            if ftype == FrameType.GOAWAY:
                last, status = struct.unpack_from(">II", p, 0)
                return GoAway(last & 0x7FFFFFFF, status)
            if ftype == FrameType.WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", p, 0)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error:
            raise SpdyError(f"control frame {ftype} cut short") from None
        return UnknownControl(ftype, flags, p)


# -- a server-side session ----------------------------------------------------------------

_EOF = b""
INBOX_LIMIT = 4 * 1024 * 1024  # bytes a stream holds that its reader has not taken yet
MAX_STREAMS = 1024  # streams one session may have open (more are refused)


class Inbox:
    """A stream's received data for its reader: b"" marks the end.  Data
    beyond INBOX_LIMIT waits (the session's reading thread with it, so the
    client's TCP window closes, as spdystream's unbuffered channel does); the
    end never waits.  ``get`` raises queue.Empty after its timeout."""

    def __init__(self, limit: int = INBOX_LIMIT) -> None:
        self.limit = limit
        self.items: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.ended = False
        self.cond = threading.Condition()

    def put(self, data: bytes) -> None:
        with self.cond:
            while self.size >= self.limit and not self.ended:
                self.cond.wait()
            if self.ended:
                return  # (the reader gave up: dropped)
            self.items.append(data)
            self.size += len(data)
            self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def get(self, timeout: float | None = None) -> bytes:
        with self.cond:
            if not self.cond.wait_for(lambda: self.items or self.ended, timeout):
                raise queue.Empty
            if not self.items:
                return _EOF
            data = self.items.popleft()
            self.size -= len(data)
            self.cond.notify_all()
            return data


@dataclass(eq=False)
class Stream:
    """One client-made stream: its headers, the data the client sends (read
    until b"" -- its FIN or a reset), and our writes back."""

    session: SpdySession
    id: int
    headers: Headers
    _inbox: Inbox = field(default_factory=Inbox)
    remote_closed: bool = False  # the reader saw the end
    remote_done: bool = False  # the client's FIN or RST came (or the session ended)
    local_closed: bool = False
    reset: bool = False

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def read(self, timeout: float | None = None) -> bytes:
        """The next chunk the client sent, b"" at its end (FIN, reset, session
        over); queue.Empty after ``timeout``."""
        data = self._inbox.get(timeout=timeout)
        if not data:
            self.remote_closed = True
        return data

    def write(self, data: bytes) -> bool:
        """Send ``data`` (in frames of MAX_DATA at most); False once the stream
        or the session is closed."""
        if self.local_closed or self.reset:
            return False
        for i in range(0, len(data), MAX_DATA):
            if not self.session.send(self.session.framer.data(self.id, data[i:i + MAX_DATA])):
                return False
        return True

    def close(self) -> None:
        """Our half ends (an empty DATA frame with FIN, as spdystream's Close)."""
        if self.local_closed or self.reset:
            return
        self.local_closed = True
        self.session.send(self.session.framer.data(self.id, b"", fin=True))
        self._forget_if_done()

    def do_reset(self, status: int = RstStatus.CANCEL) -> None:
        """Abort the stream (RST_STREAM), as spdystream's Reset of an unfinished one."""
        if self.reset or self.local_closed:
            return
        self.reset = True
        self.session.send(self.session.framer.rst_stream(self.id, status))
        self._remote_end()

    def _deliver(self, data: bytes) -> None:
        if data:
            self._inbox.put(data)

    def _remote_end(self) -> None:
        self.remote_done = True
        self._inbox.end()
        self._forget_if_done()

    def _forget_if_done(self) -> None:
        """Both halves over: the session no longer counts it (MAX_STREAMS)."""
        if self.remote_done and (self.local_closed or self.reset):
            self.session.streams.pop(self.id, None)


class SpdySession:
    """The server's side of one upgraded connection.  ``on_stream`` is called
    (on the reading thread) with each stream the client opens, before its
    SYN_REPLY; it returns False to refuse it (a reset, as kubelet's rejected
    streams get); an accepted one then comes out of ``accepted``.  ``run``
    reads frames until the client's GOAWAY, the connection's end or
    ``close``; writers on other threads share one lock."""

    def __init__(self, sock: socket.socket, on_stream: Callable[[Stream], bool],
                 initial: bytes = b"", idle: IdleWatch | None = None) -> None:
        self.sock = sock
        self.idle = idle if idle is not None else IdleWatch(0)
        self.framer = Framer()
        self.on_stream = on_stream
        self.initial = initial
        self.streams: dict[int, Stream] = {}
        # each accepted stream once its SYN_REPLY is out (the client drops data on a
        # stream it has no reply for); None when the session is over
        self.accepted: queue.SimpleQueue[Stream | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.last_id = 0
        self.closed = False
        self.ended = threading.Event()

    def send(self, frame: bytes) -> bool:
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(frame)
                self.idle.touch()
                return True
            except OSError:
                self.closed = True
                return False

    def send_frame(self, make: Callable[[Framer], bytes]) -> bool:
        """A frame whose encoding uses the header compressor (its zlib stream
        must see blocks in the order they go out: built under the lock)."""
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(make(self.framer))
                self.idle.touch()
                return True
            except OSError:
                self.closed = True
                return False

    def run(self) -> None:
        try:
            if self.initial:
                if not self._handle(self.initial):
                    return
            while True:
                if not self.idle.wait_readable(self.sock):
                    self.close()  # idle: as kubelet's connection closes then
                    return
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return
                self.idle.touch()
                if not data or not self._handle(data):
                    return
        except SpdyError:
            self.send(self.framer.goaway(self.last_id, 1))  # PROTOCOL_ERROR
        finally:
            for s in list(self.streams.values()):
                s._remote_end()
            self.ended.set()
            self.accepted.put(None)

    def _handle(self, data: bytes) -> bool:
        for frame in self.framer.feed(data):
            if isinstance(frame, SynStream):
                self._syn_stream(frame)
            elif isinstance(frame, DataFrame):
                s = self.streams.get(frame.stream_id)
                if s is None:
                    continue
                s._deliver(frame.data)
                if frame.flags & FLAG_FIN:
                    s._remote_end()
            elif isinstance(frame, RstStream):
                s = self.streams.get(frame.stream_id)
                if s is not None:
                    s.reset = True
                    s._remote_end()
            elif isinstance(frame, HeadersFrame):
                s = self.streams.get(frame.stream_id)
                if s is not None and frame.flags & FLAG_FIN:
                    s._remote_end()
            elif isinstance(frame, Ping):
                if frame.id & 1:  # the client's (odd); ours would be even
                    self.send(self.framer.ping(frame.id))
            elif isinstance(frame, GoAway):
                return False
            # SETTINGS, WINDOW_UPDATE, SYN_REPLY (we open no streams): ignored as spdystream does
        return True

    def _syn_stream(self, frame: SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self.last_id:  # spdystream's validateStreamId
            self.send(self.framer.rst_stream(sid, RstStatus.PROTOCOL_ERROR))
            return
        self.last_id = sid
        if len(self.streams) >= MAX_STREAMS:
            self.send(self.framer.rst_stream(sid, RstStatus.REFUSED_STREAM))
            return
        stream = Stream(self, sid, frame.headers)
        if frame.flags & FLAG_FIN:
            stream._remote_end()
        self.streams[sid] = stream
        if not self.on_stream(stream):
            stream.do_reset(RstStatus.REFUSED_STREAM)
            return
        self.send_frame(lambda f: f.syn_reply(sid, {}))
        self.accepted.put(stream)

    def close(self) -> None:
        """kubelet's connection Close: unfinished streams reset, a GOAWAY, then
        the socket's end."""
        for s in list(self.streams.values()):
            if not s.local_closed:
                s.do_reset()
        self.send(self.framer.goaway(self.last_id))
        with self.lock:
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
