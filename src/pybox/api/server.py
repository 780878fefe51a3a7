"""HTTP/1.1 on unix sockets for the Docker Engine API, with h11.

Handlers get a Request (method, path, query, headers, a body read as a stream,
possibly chunked) and answer through a Response: a JSON/empty reply, a chunked
stream flushed per write (events, logs -f, wait, progress), or a hijack (101
UPGRADED, then the raw socket: attach, exec start).  Errors raised as pybox
errors become docker's JSON error replies with the matching status code.

Threads.  A client may keep thousands of connections open (keep-alive pools, a
tool that leaks them, `docker run`s waiting for their containers, an attacker);
whatever they do, ordinary requests (ps, create, start, inspect) must still be
served.  So no request holds one of the threads that serve them while it waits
on its client:

* One poller (the thread that calls serve_forever) owns the listening sockets
  and every connection not being served, in an epoll set with one-shot
  registrations.  When bytes arrive on a connection it goes to a worker, which
  reads without blocking and gives the connection back to the poller when it
  has read all there is: a request head, and the body of every request but
  the few that stream theirs (archive PUT, image load and import), are
  collected in pieces between which the client holds no thread, and only a
  complete request is dispatched.  A JSON body is at most 4 MiB, so that is
  what a connection can make pyboxd hold.
* Workers come from a pool that starts empty, grows on demand to ``workers``
  (64) threads doing ordinary work, and shrinks again when idle.  A request
  that goes on to wait on its client -- a streamed body that has not arrived
  yet, a chunked stream that lasts as long as the client listens (events,
  logs -f, stats), a hijacked attach or exec, a reply the client does not read
  -- leaves that count for its life and another thread takes its place, so
  such requests never starve ordinary ones.  There may be ``long_lived``
  (1,024) of them, each on a thread with a 1 MiB stack (STACK_SIZE, why
  there); one more, or one for which the system has no thread, gets 503 --
  LONG_LIVED says why CPython cannot have many more threads than that.
* A response that waits on the engine, not on its client, is parked: the
  handler returns leaving its connection with the poller (which notices a
  client that hangs up) and a callback that resumes it on a worker when the
  engine has the answer.  `POST /containers/ID/wait` works so: ten thousand
  `docker run`s waiting on their containers cost no thread.

Requests on one connection are served in order (keep-alive), connections in
parallel -- a `docker run` keeps three open at once and a blocked `wait` must
not hold up its `start`.

Limits, dockerd's where it has one: a request head (request line and headers)
of at most 1 MiB (Go's http.DefaultMaxHeaderBytes), else 431; a request h11
cannot parse gets 400 (501 for a transfer coding other than chunked), as Go's
net/http answers, with ``Connection: close``; a target that is not UTF-8 once
percent-decoded gets 400.  A JSON body is read whole, so it is capped at 4 MiB
(moby caps at 4 MiB the bodies it hands to authorization plugins, the only body
limit it has; its JSON decoder streams) and a larger one gets 413 without being
read.  Bodies that can be large (archive PUT, image load and import, build) are
read as a stream (Request.body_chunks) and go to disk.  A body a handler did not
read is discarded up to 256 KiB (Go's maxPostHandlerReadBytes); past that the
reply says ``Connection: close`` and the connection is closed.  A request (head
and buffered body) must arrive whole within 5 minutes of its first byte, and a
connection may stay idle between requests as long (dockerd's
ReadHeaderTimeout); a streamed body that stops arriving for 5 minutes closes
its connection too.
"""

import collections
import errno
import os
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import IO, Any, overload

import h11

from pybox import errors
from pybox.api.schema import parse_filters
from pybox.errors import RequestTooLarge, Unavailable
from pybox.formats import fastjson

Headers = Iterable[tuple[str, str]]
Handler = Callable[..., None]  # handler(req, resp, **path parameters)

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
SERVER = "pybox/{version} (linux)"

HEAD_LIMIT = 1 << 20  # request line + headers (Go: http.DefaultMaxHeaderBytes)
JSON_LIMIT = 4 << 20  # a JSON body (moby: pkg/authorization's maxBodySize)
DRAIN_LIMIT = 256 << 10  # unread body discarded before a reply (Go: maxPostHandlerReadBytes)
IDLE_TIMEOUT = 300.0  # a request not whole this long after it began: closed (ReadHeaderTimeout)
BODY_TIMEOUT = 300.0  # a streamed body that stops arriving for this long: connection closed
STALLED_WRITE = 30.0  # a reply not read for this long, on an ordinary worker: connection closed
WORKERS = 64  # threads doing ordinary requests at once
RESERVED = 2  # ordinary threads kept alive whatever else holds threads
# Threads for requests that wait on their client, besides WORKERS; past this a
# new one gets 503.  CPython cannot run many more: N threads woken at once (an
# event to N `docker events`, N clients gone together) take the interpreter
# lock in turn, and each hand-over costs more the more threads wait, so the
# daemon stalls for a time that grows faster than N -- measured on 2 cores:
# an event to 1,000 streams 0.2 s, to 2,000 5 s; 2,000 uploads whose clients
# all left 1.4 s, 3,000 8 s, 4,000 35 s, 6,000 over 5 minutes.
LONG_LIVED = 1024
# The pool's threads' stacks.  Python raises RecursionError at 1,000 frames, and
# the deepest C stack that can take here (recursion through C calls, as
# any(genexpr) or a class instantiation, to that limit; a JSON body nested as
# deep is less) needs 352-384 KiB with CPython 3.11 on x86-64: 1 MiB leaves
# room (and a thread costs ~30 KiB of RSS either way: only touched pages count),
# where glibc's 8 MiB default reserves 8 GiB of address space for 1,024 streams.
STACK_SIZE = 1 << 20
RECV_SIZE = 65536
# routes whose handlers read the body as it arrives (to disk, or extracted on
# the fly) rather than whole: their body is not collected before dispatch
STREAMED_BODIES = frozenset({("PUT", "/containers/{id}/archive"), ("POST", "/images/load"),
                             ("POST", "/images/create"), ("POST", "/build")})
# after a reply, how long a worker waits for the client's next request before
# handing the connection back to the poller: clients send requests in bursts
# (docker run: create, attach, wait, start), and each hand-over costs two
# thread wake-ups
KEEPALIVE_LINGER = 0.002

_EPOLL_CLIENT = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT
_EPOLL_PARKED = select.EPOLLRDHUP | select.EPOLLONESHOT  # (HUP and ERR come anyway)

# a connection's states (_Client.state), changed under Server._lock
_IDLE = "idle"  # with the poller, waiting for (the rest of) a request
_BUSY = "busy"  # a worker has it
_PARKED = "parked"  # with the poller, its response waiting on the engine
_CLOSED = "closed"


class ClientGone(ConnectionError):
    """The client closed its connection, or stopped sending mid-request: the
    connection is dropped without a reply (nobody would read it)."""


def status_for(exc: errors.PyboxError) -> int:
    """The HTTP status of a pybox error: its class says (``http_status``)."""
    return exc.http_status


def parse_bool(value: str | None) -> bool:
    """dockerd's rule: false iff "", 0, no, false or none (any case)."""
    return value is not None and value.strip().lower() not in ("", "0", "no", "false", "none")


def _phrase(status: int) -> str:
    """The reason phrase Go's net/http writes after the code ("200 OK")."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise errors.BadRequest(f"invalid {what}: not UTF-8") from None


def _unquote(text: str, what: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise errors.BadRequest(f"invalid {what}: percent-encoded bytes that are not "
                                "UTF-8") from None


class Request:
    """One request: its head parsed (``parse``), its body read on demand, as a
    stream (``body_chunks``) or, capped, whole (``body``, ``json``).  The body
    of a request whose route does not stream it is collected before dispatch
    (``collect``): handlers read it from memory."""

    def __init__(self, conn: h11.Connection, sock: socket.socket, event: h11.Request,
                 on_wait: Callable[[], bool] = lambda: True) -> None:
        self.conn = conn
        self.sock = sock
        self.event = event
        self.method = event.method.decode("ascii")  # h11: a token, ASCII only
        self._on_wait = on_wait  # the worker now waits on its client (see _Pool)
        self._body_done = False
        self._collected: collections.deque[bytes] = collections.deque()  # body read ahead
        self._cut = False  # collection stopped at JSON_LIMIT: the rest is not read
        self.received = 0  # body bytes read so far
        self.route: tuple[Callable[..., Any], dict[str, str]] | None = None
        self.streamed = False  # the handler reads the body as it arrives
        self.error: errors.PyboxError | None = None  # found in the head, raised at dispatch
        self.raw_path = self.path = "/"
        self.query: dict[str, list[str]] = {}
        self.headers: dict[str, str] = {}
        self.version: str | None = None

    def parse(self) -> None:
        """Decode the target and headers; BadRequest for bytes that are not
        UTF-8 (raw or percent-encoded): nothing past here sees undecodable text."""
        event = self.event
        self.headers = {k.decode("ascii").lower(): _utf8(v, f"header {k.decode('ascii')}")
                        for k, v in event.headers}
        target = _utf8(event.target, "request target")
        path, _, query = target.partition("?")
        self.raw_path = _unquote(path, "request path")
        try:
            self.query = urllib.parse.parse_qs(query, keep_blank_values=True,
                                               errors="strict")
        except UnicodeDecodeError:
            raise errors.BadRequest("invalid query string: percent-encoded bytes that are "
                                    "not UTF-8") from None
        except ValueError as e:
            raise errors.BadRequest(f"invalid query string: {e}") from None
        self.path = self.raw_path
        if self.path.startswith("/v"):
            head, _, rest = self.path[2:].partition("/")
            try:
                float(head)
                self.version = head
                self.path = "/" + rest
            except ValueError:
                pass

    @overload
    def arg(self, name: str) -> str | None: ...
    @overload
    def arg(self, name: str, default: str) -> str: ...
    @overload
    def arg(self, name: str, default: None) -> str | None: ...

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def api_at_least(self, version: tuple[int, int]) -> bool:
        """The client asked for API ``version`` or later (its /vX.Y prefix;
        none: ours, the newest): dockerd changes some answers by version, and
        ignores what an older API lacked."""
        if self.version is None:
            return True
        try:
            return tuple(int(p) for p in self.version.split(".")) >= version
        except ValueError:
            return True

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        return default if value is None else parse_bool(value)

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise errors.BadRequest(f"invalid value for {name}: {value!r}") from None

    def filters(self) -> dict[str, list[str]]:
        """``filters`` as dockerd's filters.FromJSON reads it (400 "invalid
        filter" for any other shape): {key: [values]}."""
        return parse_filters(self.arg("filters"))

    # -- the body ----------------------------------------------------------------
    def content_length(self) -> int | None:
        """The declared body length (h11 checked its syntax), None if chunked
        (chunked framing wins over a Content-Length, as in h11)."""
        length = None
        for name, value in self.event.headers:
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                length = int(value)
        return length

    def collect(self) -> bool:
        """Read what has arrived of the body, without blocking, into memory;
        -> whether that is all of it (or all that will be read: a body over
        JSON_LIMIT is cut there, and reading it is a 413).  The worker gives
        the connection back to the poller until the rest arrives: a client
        that sends its body slowly holds no thread."""
        conn = self.conn
        length = self.content_length()
        if length is not None and length > JSON_LIMIT:
            self._cut = True  # refused from the header alone, unread
            return True
        if conn.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, reason=b"Continue",
                                                 headers=[]))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return False
                except OSError as e:
                    raise ClientGone(f"reading the request body: {e}") from None
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                self.received += len(event.data)
                self._collected.append(bytes(event.data))
                if self.received > JSON_LIMIT:
                    self._cut = True
                    return True
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return True
            else:
                raise errors.BadRequest("unexpected data in request body")

    def body_chunks(self) -> Iterator[bytes]:
        """The request body, chunk by chunk (de-chunked by h11), as it arrives:
        what a large body is read with (to a file, or parsed as a stream)."""
        while self._collected:
            yield self._collected.popleft()
        if self._body_done:
            return
        if self._cut:
            raise RequestTooLarge(f"request body too large: size exceeds {JSON_LIMIT} bytes")
        conn = self.conn
        if conn.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, reason=b"Continue",
                                                 headers=[]))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(self._recv())
                continue
            if isinstance(event, h11.Data):
                self.received += len(event.data)
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return
            else:
                raise errors.BadRequest("unexpected data in request body")

    def _recv(self) -> bytes:
        """What the client sent next; blocks (as a long-lived request: it waits
        on the client, not on the engine) at most BODY_TIMEOUT between bytes."""
        try:
            return self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        except OSError as e:
            raise ClientGone(f"reading the request body: {e}") from None
        if not self._on_wait():
            raise Unavailable("too many requests waiting on their clients: no thread left "
                              "to wait for this body")
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if not poller.poll(BODY_TIMEOUT * 1000):
            raise ClientGone(f"no part of the request body for {BODY_TIMEOUT:g} s")
        try:
            return self.sock.recv(RECV_SIZE)
        except OSError as e:
            raise ClientGone(f"reading the request body: {e}") from None

    def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if not data:
            return
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            raise ClientGone(f"writing the response: {e}") from None
        if sent == len(data):
            return
        # the client does not read as fast as we write: from here on the
        # request waits on its client (a slow reader may not pin a worker)
        rest = memoryview(data)[sent:]
        if self._on_wait():
            try:
                self.sock.sendall(rest)  # as long as it takes (docker logs -f, paused)
                return
            except OSError as e:
                raise ClientGone(f"writing the response: {e}") from None
        # no thread to spare (LONG_LIVED of them are waiting on clients): this
        # worker is an ordinary one, and a client that stops reading may hold
        # it only so long
        poller = select.poll()
        poller.register(self.sock, select.POLLOUT)
        while rest:
            if not poller.poll(STALLED_WRITE * 1000):
                raise ClientGone(f"the client read nothing of the reply for {STALLED_WRITE:g} s")
            try:
                rest = rest[self.sock.send(rest, socket.MSG_DONTWAIT):]
            except BlockingIOError:
                pass
            except OSError as e:
                raise ClientGone(f"writing the response: {e}") from None

    def body(self, limit: int = JSON_LIMIT) -> bytes:
        """The whole body, at most ``limit`` bytes (RequestTooLarge past it, the
        rest left unread): never a way to hold an unbounded body in memory."""
        length = self.content_length()
        if length is not None and length > limit:
            raise RequestTooLarge(f"request body too large: size exceeds {limit} bytes")
        parts, size = [], 0
        for chunk in self.body_chunks():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body too large: size exceeds {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def json(self, default: Any = None) -> Any:
        data = self.body(JSON_LIMIT)
        if not data.strip():
            return default
        try:
            return fastjson.loads(data)
        except ValueError as e:
            raise errors.BadRequest(f"invalid JSON: {e}") from None

    def discard_body(self, limit: int = DRAIN_LIMIT) -> bool:
        """Read and drop what is left of the body, up to ``limit`` bytes; ->
        whether it was all read (else the connection must close after the reply:
        the rest of the body is still coming)."""
        self._collected.clear()
        if self._body_done:
            return True
        if self._cut:
            return False  # a collected body cut at the limit: the rest is not read
        if self.conn.they_are_waiting_for_100_continue and not self.received:
            return False  # the client holds the body back until it hears 100
        length = self.content_length()
        if length is not None and length - self.received > limit:
            return False
        start = self.received
        try:
            for _ in self.body_chunks():
                if self.received - start > limit:
                    return False
        except Unavailable:
            return False
        return True

    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()

    def client_gone(self) -> bool:
        """True when the peer has closed (for blocking handlers to give up).
        Data a client may send meanwhile (none is expected) is left unread."""
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return data == b""


class Response:
    def __init__(self, server: "Server", request: Request, client: "_Client | None" = None) -> None:
        self.server = server
        self.req = request
        self.conn = request.conn
        self.sock = request.sock
        self.client = client
        self.sent = False
        self.hijacked = False
        self.cancel: Callable[[], None] | None = None  # set by park()

    def _headers(self, content_type: str | None = None,
                 extra: Headers = ()) -> list[tuple[str, str]]:
        h = [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
             ("Ostype", "linux"), ("Server", self.server.server_header),
             ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))]
        if content_type:
            h.append(("Content-Type", content_type))
        h.extend(extra)
        if not self.req.discard_body():
            h.append(("Connection", "close"))  # the rest of the body is not read
        return h

    def _send(self, event: h11.Event) -> None:
        self.req._send(event)

    def send(self, status: int, body: bytes = b"", content_type: str | None = None,
             headers: Headers = ()) -> None:
        hdrs = self._headers(content_type if body or content_type else None, headers)
        hdrs.append(("Content-Length", str(len(body))))
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        if body and self.req.method != "HEAD":  # a HEAD reply has the headers only
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())
        self.sent = True

    def head(self, status: int, content_type: str | None = None, headers: Headers = ()
             ) -> None:
        """A bodiless reply to a HEAD (HEAD /_ping): the headers with a
        Content-Length of 0 and Go's reason phrase ("200 OK", as dockerd's)."""
        self.req.discard_body()
        hdrs = self._headers(content_type, headers)
        hdrs.append(("Content-Length", "0"))
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        self._send(h11.EndOfMessage())
        self.sent = True

    def json(self, obj: Any, status: int = 200) -> None:
        self.send(status, fastjson.dumps(obj).encode() + b"\n", "application/json")

    def empty(self, status: int = 204) -> None:
        hdrs = self._headers()
        if status not in (204, 304):
            hdrs.append(("Content-Length", "0"))
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        self._send(h11.EndOfMessage())
        self.sent = True

    def error(self, status: int, message: str) -> None:
        if status == 304:
            self.empty(304)
            return
        self.json({"message": message}, status)

    def stream(self, status: int = 200, content_type: str = "application/json",
               headers: Headers = (), long_lived: bool = True
               ) -> tuple[Callable[[bytes], None], Callable[[], None]]:
        """Start a chunked response; returns write(bytes) and end() callables.
        Headers go out at once (docker's wait relies on that).  The request
        lasts as long as its client listens: it counts as long-lived (unless
        the handler parks it instead: ``long_lived=False``, then ``park``)."""
        hdrs = self._headers(content_type, headers)
        hdrs.append(("Transfer-Encoding", "chunked"))
        if long_lived and not self.req._on_wait():
            raise Unavailable("too many streams at once: no thread left for this one")
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        self.sent = True

        def write(data: bytes) -> None:
            if data:
                self._send(h11.Data(data=data))

        def end() -> None:
            self._send(h11.EndOfMessage())

        return write, end

    def stream_file(self, f: IO[bytes], content_type: str, headers: Headers = ()) -> None:
        """A 200 whose body is the open file ``f`` from its current position
        (a tar made in a temporary file), sent in 1 MiB chunks."""
        write, end = self.stream(200, content_type, headers=headers)
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            write(chunk)
        end()

    def hijack(self, content_type: str | None,
               upgrade: Headers = (("Connection", "Upgrade"), ("Upgrade", "tcp")),
               reason: bytes = b"UPGRADED") -> tuple[socket.socket, bytes]:
        """101 UPGRADED, then the raw socket (h11 is done with this connection).
        Returns (socket, bytes already received after the request).
        ``upgrade``, ``reason``: another protocol's 101 (a websocket's).  A
        request that asked for no upgrade gets dockerd's answer instead: a raw
        200 whose body is the stream, until the connection closes."""
        if not self.req.discard_body():
            raise RequestTooLarge("request body too large for an upgraded connection")
        if not self.req._on_wait():
            raise Unavailable("too many attached sessions at once: no thread left for this one")
        if not self.req.wants_upgrade():  # (h11 would refuse a 101 nobody asked for)
            self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                              b"application/vnd.docker.raw-stream\r\n\r\n")
        else:
            headers = [("Content-Type", content_type)] if content_type else []
            self._send(h11.InformationalResponse(status_code=101, reason=reason,
                                                 headers=headers + list(upgrade)))
        self.sent = True
        self.hijacked = True
        trailing, _closed = self.conn.trailing_data
        return self.sock, bytes(trailing)

    def park(self, cancel: Callable[[], None]) -> None:
        """Leave this response waiting on the engine, without a thread: when
        the handler returns, the connection goes back to the poller until
        ``resume`` is called (from any thread), or until the client hangs up,
        which calls ``cancel`` (on a worker).  Call after the headers went out
        (``stream(..., long_lived=False)``); the handler must then return."""
        if self.client is None:
            raise RuntimeError("park: a response not served by the pool")
        self.cancel = cancel

    def resume(self, finish: Callable[[], None]) -> None:
        """Finish a parked response: ``finish()`` (which writes the rest of
        it) runs on a worker, and the connection goes on serving requests.
        Safe from any thread, and before the handler returned; does not block
        (an engine callback may call it holding a lock).  Ignored once the
        client has gone."""
        if self.client is None:
            raise RuntimeError("resume: a response not served by the pool")
        self.server._resume(self.client, finish)


class PrefixedSocket:
    """A socket whose first reads return bytes h11 had already received."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        self._sock = sock
        self._prefix = prefix

    def recv(self, n: int, flags: int = 0) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return self._sock.recv(n, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


_stack_lock = threading.Lock()


def _start_thread(target: Callable[[], None], name: str) -> bool:
    """Start a daemon thread with a STACK_SIZE stack; -> False if the system
    has no thread to give (RLIMIT_NPROC, pid_max, a cgroup's pids.max).  The
    stack size is process-wide state, set around this one start only (another
    thread started meanwhile gets 1 MiB too, which is safe for the same reason
    it is safe here)."""
    with _stack_lock:
        previous = threading.stack_size(STACK_SIZE)
        try:
            threading.Thread(target=target, name=name, daemon=True).start()
            return True
        except RuntimeError:  # "can't start new thread"
            return False
        finally:
            threading.stack_size(previous)


class _Pool:
    """Worker threads: at most ``size`` doing ordinary requests at once, plus
    one for each request that waits on its client (``waiting_on_client``),
    at most ``long_size`` of those.  Threads start on demand (~0.1 ms each);
    an ordinary one idle for ``linger`` seconds exits while more than ``keep``
    are left, so a burst's threads do not outlive it for long, and ``keep``
    always remain for ordinary work, whatever the long-lived requests hold."""

    def __init__(self, run: Callable[[Any], None], size: int, long_size: int,
                 keep: int = RESERVED, linger: float = 5.0) -> None:
        self._run = run
        self._size = size
        self._long_size = long_size
        self._keep = keep
        self._linger = linger
        self._cv = threading.Condition(threading.Lock())
        self._jobs: collections.deque = collections.deque()
        self._ordinary = 0  # ordinary worker threads alive
        self._idle = 0  # of which waiting for a job
        self._long = 0  # threads serving a long-lived request
        self._local = threading.local()
        self._warned = False

    def counts(self) -> tuple[int, int, int]:
        """(ordinary threads, long-lived threads, jobs waiting for a thread)."""
        with self._cv:
            return self._ordinary, self._long, len(self._jobs)

    def submit(self, job: Any) -> None:
        """Queue ``job`` for a worker; never blocks (the poller and engine
        callbacks call this)."""
        with self._cv:
            self._jobs.append(job)
            if len(self._jobs) > self._idle and self._ordinary < self._size:
                self._spawn()
            self._cv.notify()

    def _spawn(self) -> bool:  # with the lock held
        self._ordinary += 1
        if _start_thread(self._worker, "api-worker"):
            return True
        self._ordinary -= 1
        if not self._warned:  # the queue is served by the threads there are
            self._warned = True
            sys.stderr.write("pyboxd: cannot start an API worker thread (system thread "
                             "limit?); serving with the threads there are\n")
        return False

    def waiting_on_client(self) -> bool:
        """The calling worker's request now waits on its client (a body still
        to come, a stream, a hijacked connection): it stops counting against
        the ordinary workers, and another thread takes its place if work is
        queued or fewer than ``keep`` would be left.  -> False, and nothing
        changes, when that replacement cannot be had (or at ``long_size``):
        the caller refuses the request (503) rather than take ordinary
        requests' thread."""
        local = self._local
        if getattr(local, "long", True):  # already counted so, or not a pool thread
            return True
        with self._cv:
            if self._long >= self._long_size:
                return False
            self._ordinary -= 1
            if self._ordinary < self._keep:
                if not self._spawn():
                    self._ordinary += 1
                    return False
            elif len(self._jobs) > self._idle and self._ordinary < self._size:
                self._spawn()  # if it fails, the queue waits for the others
            local.long = True
            self._long += 1
            return True

    def _worker(self) -> None:
        local = self._local
        local.long = False
        while True:
            with self._cv:
                while not self._jobs:
                    self._idle += 1
                    woken = self._cv.wait(self._linger)
                    self._idle -= 1
                    if not woken and not self._jobs and self._ordinary > self._keep:
                        self._ordinary -= 1
                        return
                job = self._jobs.popleft()
            try:
                self._run(job)
            except BaseException:  # noqa: BLE001 - the pool's count must stay right
                traceback.print_exc()
            if local.long:
                with self._cv:
                    self._long -= 1
                    local.long = False
                    if self._ordinary >= self._size:
                        return
                    self._ordinary += 1


class _Client:
    """A connection and its HTTP state: ``state`` says who has it (the poller,
    a worker); ``request`` is one whose body is still being collected,
    ``cancel`` and ``finish`` belong to a parked response."""

    __slots__ = ("sock", "fd", "conn", "state", "since", "fresh", "request", "cancel",
                 "finish")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        self.state = _IDLE
        self.since = time.monotonic()  # idle since, or this request began at
        self.fresh = True  # no byte of the next request yet
        self.request: Request | None = None
        self.cancel: Callable[[], None] | None = None
        self.finish: Callable[[], None] | None = None


class Server:
    def __init__(self, router: "Router", server_header: str, *, workers: int = WORKERS,
                 long_lived: int = LONG_LIVED, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.router = router
        self.server_header = server_header
        self.listeners: list[tuple[socket.socket, str]] = []
        self.stopping = threading.Event()
        self.idle_timeout = idle_timeout
        self.pool = _Pool(self._serve, workers, long_lived)
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()  # _clients, their states, re-arming
        self._clients: dict[int, _Client] = {}  # every open, not hijacked, connection
        self._closed_listeners = False

    # -- listening ---------------------------------------------------------------
    def listen_unix(self, path: str, mode: int = 0o660, group: int | None = None
                    ) -> socket.socket:
        """Listen on ``path``.  A socket file there that nobody answers on is
        stale and replaced; one that accepts connections belongs to a running
        daemon and is left alone (PyboxError)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if answers(path):
            raise errors.PyboxError(f"{path}: another process is listening on this socket "
                                    "(is another pyboxd running?)")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, group)
        s.listen(4096)  # the kernel caps it at net.core.somaxconn
        s.setblocking(False)
        self.listeners.append((s, path))
        return s

    def listen_tcp(self, host: str, port: int) -> socket.socket:
        """Listen on ``host:port`` (plain TCP: pyboxd asks only for a -H tcp://
        without TLS, with dockerd's warning; TLS connections come through
        ``adopt`` from pybox.api.listeners)."""
        s = tcp_listener(host, port)
        s.setblocking(False)
        self.listeners.append((s, ""))
        return s

    def adopt(self, sock: socket.socket) -> None:
        """Serve a connection accepted elsewhere (a TLS connection's plain end,
        pybox.api.listeners): from now on it is the poller's, as an accepted one."""
        sock.setblocking(True)
        if sock.family != socket.AF_UNIX:  # small writes (a stream's lines) go at once
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Client(sock)
        with self._lock:
            self._clients[c.fd] = c
            self._epoll.register(c.fd, _EPOLL_CLIENT)

    def shutdown(self) -> None:
        """Stop serving (safe from a signal handler: the poller does the rest)."""
        self.stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def close(self) -> None:
        """Stop, and close and remove the listening sockets (idempotent)."""
        self.shutdown()
        self._close_listeners()

    def _close_listeners(self) -> None:
        if self._closed_listeners:
            return
        self._closed_listeners = True
        for s, path in self.listeners:
            try:
                s.close()
            except OSError:
                pass
            if not path:
                continue  # a TCP listener: no file
            try:
                os.unlink(path)
            except OSError:
                pass

    # -- the poller ----------------------------------------------------------------
    def serve_forever(self) -> None:
        """The poller, in the calling thread, until shutdown()."""
        ep = self._epoll
        listeners = {s.fileno(): s for s, _ in self.listeners}
        for fd in listeners:
            ep.register(fd, select.EPOLLIN)
        ep.register(self._wake_r, select.EPOLLIN)
        paused: dict[int, float] = {}  # listener fd -> when to accept again
        backoff = 0.005
        next_sweep = time.monotonic() + self.idle_timeout / 10
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                wake_at = min([next_sweep, *paused.values()])
                for fd, _mask in ep.poll(max(0.0, wake_at - now), 256):
                    if fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 512)
                        except OSError:
                            pass
                    elif fd in listeners:
                        if not self._accept(listeners[fd]):
                            # out of file descriptors (or memory): accepting again
                            # at once would spin; Go's server backs off the same way
                            ep.unregister(fd)
                            paused[fd] = time.monotonic() + backoff
                            backoff = min(backoff * 2, 1.0)
                        else:
                            backoff = 0.005
                    else:
                        self._ready(fd)
                now = time.monotonic()
                for fd, when in list(paused.items()):
                    if when <= now:
                        del paused[fd]
                        ep.register(fd, select.EPOLLIN)
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + self.idle_timeout / 10
        finally:
            self._close_listeners()

    def _accept(self, listener: socket.socket) -> bool:
        """Accept what is pending; -> False if out of descriptors or memory."""
        for _ in range(256):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return False
                return True  # e.g. ECONNABORTED: that client is gone
            self.adopt(sock)
        return True

    def _ready(self, fd: int) -> None:
        """Bytes (or a hang-up) on a connection the poller holds: to a worker."""
        with self._lock:
            c = self._clients.get(fd)
            if c is None or c.state not in (_IDLE, _PARKED):
                return  # an event that raced a resume: the worker has it
            c.state = _BUSY
        self.pool.submit(c)

    def _sweep(self, now: float) -> None:
        """Close the connections idle, or sending a request, for longer than
        idle_timeout.  (A parked response may wait as long as its engine
        event takes: a client that leaves is noticed by the poller.)"""
        with self._lock:
            stale = [c for c in self._clients.values()
                     if c.state is _IDLE and now - c.since > self.idle_timeout]
            for c in stale:
                c.state = _CLOSED
                del self._clients[c.fd]
                try:
                    self._epoll.unregister(c.fd)
                except OSError:
                    pass
        for c in stale:
            c.sock.close()

    def _rearm(self, c: _Client) -> None:
        """Back to the poller: nothing is buffered, the next bytes wake it."""
        with self._lock:
            c.state = _IDLE
            try:
                self._epoll.modify(c.fd, _EPOLL_CLIENT)
                return
            except OSError:
                pass
        self._close(c)

    def _park(self, c: _Client, watch_hangup: bool = True) -> bool:
        """A parked response's connection back to the poller, which watches
        for the client hanging up (with ``watch_hangup``; else only for it
        closing the connection whole); -> False if it was resumed meanwhile
        (the caller runs c.finish now)."""
        with self._lock:
            if c.finish is not None:
                return False
            c.state = _PARKED
            try:
                self._epoll.modify(c.fd, _EPOLL_PARKED if watch_hangup else select.EPOLLONESHOT)
                return True
            except OSError:
                c.state = _BUSY
        raise ClientGone("parking the response: the connection is gone")

    def _resume(self, c: _Client, finish: Callable[[], None]) -> None:
        """Response.resume: ``finish`` to be run on a worker for a parked
        response (now if the poller has it; else the worker that has it runs
        it); dropped if the connection is closed."""
        with self._lock:
            if c.state is _CLOSED or c.finish is not None:
                return
            c.finish = finish
            if c.state is not _PARKED:
                return  # the handler has not returned yet, or a hang-up is being looked at
            c.state = _BUSY
        self.pool.submit(c)

    def _close(self, c: _Client) -> None:
        with self._lock:
            c.state = _CLOSED
            if self._clients.get(c.fd) is c:
                del self._clients[c.fd]
                try:
                    self._epoll.unregister(c.fd)
                except OSError:
                    pass
        try:
            c.sock.close()
        except OSError:
            pass

    def connection_count(self) -> int:
        return len(self._clients)

    # -- a worker's turn on one connection -------------------------------------------------
    def _serve(self, c: _Client) -> None:
        """Serve what the client sent: every complete request, in order; back to
        the poller when it has sent nothing more (or a response is parked),
        closed when done with."""
        conn = c.conn
        keep = False  # back to the poller for more of the request
        parked = False  # back to the poller, parked (done in _park)
        served = False
        try:
            if c.cancel is not None:  # a parked response: resumed, or its client left
                gone = False if c.finish is not None else _hung_up(c.sock)
                if gone:
                    cancel, c.cancel = c.cancel, None
                    cancel()
                    return
                # not resumed yet (a spurious wake-up, or a client that shut
                # its side after sending its next request): back to waiting
                if self._park(c, watch_hangup=gone is False):
                    parked = True
                    return
                if not self._finish(c):
                    return
                served = True
            while True:
                req = c.request
                if req is None:
                    if conn.their_state is h11.IDLE:  # h11 reads "2, 2" as 2; Go says 400
                        head = conn.trailing_data[0].split(b"\r\n\r\n", 1)[0]
                        listed = [line.strip() for line in head.split(b"\n") if b"," in line
                                  and line.lower().startswith(b"content-length")]
                        if listed:
                            value = listed[0].partition(b":")[2].strip()[:64]
                            self._reject(c, 400, f'bad Content-Length "{value.decode("latin-1")}"')
                            return
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        try:
                            data = c.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                        except BlockingIOError:
                            if served and _readable(c.sock, KEEPALIVE_LINGER):
                                served = False  # linger once per request, not per byte
                                continue
                            keep = True  # the rest of the head comes later
                            return
                        if c.fresh:
                            c.fresh = False
                            c.since = time.monotonic()  # a request begins: its clock starts
                        conn.receive_data(data)
                        continue
                    if not isinstance(event, h11.Request):
                        return  # ConnectionClosed (or PAUSED: never, we reply in full)
                    if event.http_version not in (b"1.0", b"1.1"):  # h11 takes any x.y
                        self._reject(c, 505, "unsupported protocol version")
                        return
                    req = c.request = self._begin(c, event)
                if not req.streamed and not req.collect():
                    keep = True  # the rest of the body comes later
                    return
                c.request = None
                resp = Response(self, req, c)
                self._dispatch(req, resp)
                if resp.hijacked:
                    return  # the handler had the socket; it is done with it
                if resp.cancel is not None:
                    c.cancel = resp.cancel
                    if self._park(c):
                        parked = True
                        return
                if not self._finish(c):
                    return
                served = True
        except h11.RemoteProtocolError as e:
            # h11 quotes the offending bytes as "...: bytearray(b'...')": the
            # client has them; its reason is enough
            self._reject(c, e.error_status_hint, str(e).split(": bytearray(")[0])
        except (h11.LocalProtocolError, OSError):
            pass  # includes ClientGone: nobody to answer
        except Exception:  # noqa: BLE001 - a bug must not leave the connection open
            traceback.print_exc()
        finally:
            if keep:
                self._rearm(c)
            elif not parked:
                self._close(c)
                if c.cancel is not None:  # a parked response given up (a failure)
                    cancel, c.cancel = c.cancel, None
                    cancel()

    def _finish(self, c: _Client) -> bool:
        """After a response: run a parked one's ``finish``; -> whether the
        connection can serve its next request."""
        if c.cancel is not None:
            finish, c.finish, c.cancel = c.finish, None, None
            assert finish is not None  # resumed: _park said so, or the poller saw it
            finish()
        conn = c.conn
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False  # MUST_CLOSE, a stream cut short, a body left unread
        conn.start_next_cycle()
        c.since = time.monotonic()  # idle from now
        c.fresh = not conn.trailing_data[0]  # else the next request has begun
        return True

    def _begin(self, c: _Client, event: h11.Request) -> Request:
        """A request whose head has arrived: parsed and routed now, to know
        whether its body is collected before dispatch; an error found here is
        answered at dispatch, once the body is in (a reply before a body is
        read would leave the client's send blocked, or the body for the next
        request)."""
        req = Request(c.conn, c.sock, event, self.pool.waiting_on_client)
        try:
            req.parse()
            if req.version is not None:
                self._check_version(req.version)
            req.route, req.streamed = self.router.resolve(req.method, req.path)
        except errors.PyboxError as e:
            req.error = e
        return req

    def _reject(self, c: _Client, status: int, reason: str) -> None:
        """Go's net/http's answer to a request it cannot parse: the status, a
        plain-text line, and the connection closed."""
        if c.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE) or c.conn.their_state is \
                h11.CLOSED:
            return
        if "peer unexpectedly closed" in reason or "peer closed connection" in reason:
            return  # the client left mid-request: nobody to answer
        phrase = _phrase(status)
        body = f"{status} {phrase}: {reason}\n".encode()
        try:
            # (send gives None only for a ConnectionClosed event)
            data = c.conn.send(h11.Response(status_code=status, reason=phrase, headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))), ("Connection", "close")])) or b""
            data += (c.conn.send(h11.Data(data=body)) or b"") + (
                c.conn.send(h11.EndOfMessage()) or b"")
            c.sock.sendall(data, socket.MSG_DONTWAIT)
        except (h11.LocalProtocolError, OSError):
            pass

    def _dispatch(self, req: Request, resp: Response) -> None:
        try:
            if req.error is not None:  # found by _begin
                raise req.error
            assert req.route is not None
            handler, params = req.route
            handler(req, resp, **params)
            if not resp.sent:
                resp.empty(204)
        except errors.PyboxError as e:
            self._fail(resp, status_for(e), str(e))
        except (h11.RemoteProtocolError, h11.LocalProtocolError, ClientGone, BrokenPipeError,
                ConnectionResetError):
            raise
        except Exception as e:  # noqa: BLE001 - a bug must not kill the connection silently
            traceback.print_exc()
            self._fail(resp, 500, f"internal error: {e.__class__.__name__}: {e}")

    @staticmethod
    def _fail(resp: Response, status: int, message: str) -> None:
        if resp.sent:
            return  # the stream already started: nothing sensible to add
        resp.error(status, message)

    @staticmethod
    def _check_version(v: str) -> None:
        def as_tuple(x: str) -> tuple[int, ...]:
            return tuple(int(p) for p in x.split("."))

        try:
            requested = as_tuple(v)
        except ValueError:
            raise errors.BadRequest(f"invalid API version {v!r}") from None
        if requested > as_tuple(API_VERSION):
            raise errors.BadRequest(f"client version {v} is too new. Maximum supported API "
                                    f"version is {API_VERSION}")
        if requested < as_tuple(MIN_API_VERSION):
            raise errors.BadRequest(f"client version {v} is too old. Minimum supported API "
                                    f"version is {MIN_API_VERSION}, please upgrade your "
                                    "client to a newer version")


def _readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _hung_up(sock: socket.socket) -> bool | None:
    """Whether the client of a parked response has left, once the poller woke
    for it: True if it closed the connection or shut its sending side (as Go's
    server cancels a request on EOF); False if not (a spurious wake-up); None
    if it shut its side after sending more (a pipelined request, which is
    still to be answered) -- from then on only a full close can be watched."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLRDHUP)
    events = poller.poll(0)
    mask = events[0][1] if events else 0
    if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
        return True
    if not mask & select.POLLRDHUP:
        return False
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return None if data else True


def tcp_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (an IPv6 literal in brackets or
    not; a name is resolved), SO_REUSEADDR as Go's net.Listen; PyboxError
    with the address when it cannot be had."""
    host = host.strip("[]")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                  flags=socket.AI_PASSIVE)[0]
        s = socket.socket(info[0], socket.SOCK_STREAM)
    except OSError as e:
        raise errors.PyboxError(f"listen tcp {host}:{port}: {e.strerror or e}") from None
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(info[4])
        s.listen(4096)
    except OSError as e:
        s.close()
        raise errors.PyboxError(f"listen tcp {host}:{port}: bind: {e.strerror}") from None
    return s


def answers(path: str) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Router:
    """Routes by method and path pattern ("/containers/{id}/json")."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, list[str], Handler, bool]] = []

    def add(self, method: str, pattern: str, handler: Handler,
            stream_body: bool | None = None) -> None:
        """``stream_body``: the handler reads the body as it arrives (default:
        whether the route is in STREAMED_BODIES); else it is collected first."""
        parts = pattern.strip("/").split("/")
        if stream_body is None:
            stream_body = (method, "/" + "/".join(parts)) in STREAMED_BODIES
        self.routes.append((method, parts, handler, stream_body))

    def route(self, method: str, pattern: str, stream_body: bool | None = None
              ) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn, stream_body)
            return fn
        return deco

    def resolve(self, method: str, path: str
                ) -> tuple[tuple[Handler, dict[str, str]], bool]:
        """-> ((handler, path parameters), whether it streams the body);
        NotFound if no route matches."""
        segs = path.strip("/").split("/")
        for m, parts, handler, streamed in self.routes:
            if m != method:
                continue
            params = _match(parts, segs)
            if params is not None:
                return (handler, params), streamed
        raise errors.NotFound("page not found")

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        return self.resolve(method, path)[0]


def _match(parts: list[str], segs: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    i = 0
    for j, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("*"):  # greedy: image names contain '/'
                tail = len(parts) - j - 1
                take = len(segs) - i - tail
                if take < 1:
                    return None
                params[name[:-1]] = "/".join(segs[i:i + take])
                i += take
                continue
            if i >= len(segs) or not segs[i]:
                return None
            params[name] = segs[i]
            i += 1
        else:
            if i >= len(segs) or segs[i] != part:
                return None
            i += 1
    return params if i == len(segs) else None
