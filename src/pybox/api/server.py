"""HTTP/1.1 on unix sockets for the Docker Engine API, with h11.

Handlers get a Request (method, path, query, headers, a body read as a stream,
possibly chunked) and answer through a Response: a JSON/empty reply, a chunked
stream flushed per write (events, logs -f, wait, progress), or a hijack (101
UPGRADED, then the raw socket: attach, exec start).  Errors raised as pybox
errors become docker's JSON error replies with the matching status code.

Threads.  A client may keep thousands of connections open and idle (keep-alive
pools, a tool that leaks them, an attacker); each must cost a file descriptor
and a few KiB, not a thread.  So one poller (the thread that calls
serve_forever) owns the listening sockets and every idle connection, in an
epoll set with one-shot registrations.  When bytes arrive on a connection it
goes to a worker, which reads the request head without blocking (a head that
arrives in pieces goes back to the poller between pieces: a slow client holds
no thread while it sends its headers), dispatches it, and gives the connection
back to the poller once nothing more is buffered.  Requests on one connection
are served in order (keep-alive), connections in parallel -- a `docker run`
keeps three open at once and a blocked `wait` must not hold up its `start`.

Workers come from a pool that starts empty, grows on demand to ``workers``
(64) threads doing ordinary work, and shrinks again when idle.  A request that
waits on its client rather than on the engine -- reading a body that has not
arrived yet, a chunked stream that lasts as long as the client listens
(events, logs -f, wait, stats), a hijacked attach or exec -- leaves that count
for its life (up to ``long_lived``, 1024, such threads), so streams cannot
starve ordinary requests; when it ends its thread rejoins the pool or exits.

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
reply says ``Connection: close`` and the connection is closed.  A connection
idle for 5 minutes without a complete request (dockerd's ReadHeaderTimeout) is
closed, and so is one whose body stops arriving for as long.
"""

import collections
import errno
import os
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import h11

from pybox import errors
from pybox.oci import fastjson

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
SERVER = "pybox/{version} (linux)"

HEAD_LIMIT = 1 << 20  # request line + headers (Go: http.DefaultMaxHeaderBytes)
JSON_LIMIT = 4 << 20  # a JSON body (moby: pkg/authorization's maxBodySize)
DRAIN_LIMIT = 256 << 10  # unread body discarded before a reply (Go: maxPostHandlerReadBytes)
IDLE_TIMEOUT = 300.0  # no complete request for this long: closed (dockerd: ReadHeaderTimeout)
BODY_TIMEOUT = 300.0  # a body that stops arriving for this long: connection closed
WORKERS = 64  # threads doing ordinary requests at once
LONG_LIVED = 1024  # more threads for requests that wait on their client
RECV_SIZE = 65536
# after a reply, how long a worker waits for the client's next request before
# handing the connection back to the poller: clients send requests in bursts
# (docker run: create, attach, wait, start), and each hand-over costs two
# thread wake-ups
KEEPALIVE_LINGER = 0.002

_EPOLL_CLIENT = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT


class RequestTooLarge(errors.BadRequest):
    """A body over the limit of what is read into memory (413)."""


class ClientGone(ConnectionError):
    """The client closed its connection, or stopped sending mid-request: the
    connection is dropped without a reply (nobody would read it)."""


STATUS_FOR = [
    (errors.NotFound, 404),
    (errors.ImageNotFound, 404),
    (errors.ImageInUse, 409),
    (errors.InvalidReference, 400),
    (errors.ImageError, 400),
    (errors.Conflict, 409),
    (errors.NotModified, 304),
    (RequestTooLarge, 413),
    (errors.BadRequest, 400),
    (errors.ConfigError, 400),
    (errors.UsageError, 400),
]


def status_for(exc):
    for cls, status in STATUS_FOR:
        if isinstance(exc, cls):
            return status
    name = exc.__class__.__name__
    if name in ("StartError", "SpecError"):
        return 400
    if name.endswith("NotFound") or name.startswith("NoSuch"):
        return 404
    return 500


def parse_bool(value):
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
    stream (``body_chunks``) or, capped, whole (``body``, ``json``)."""

    def __init__(self, conn: h11.Connection, sock: socket.socket, event: h11.Request,
                 on_wait: Callable[[], None] = lambda: None) -> None:
        self.conn = conn
        self.sock = sock
        self.event = event
        self.method = event.method.decode("ascii")  # h11: a token, ASCII only
        self._on_wait = on_wait  # the worker now waits on its client (see _Pool)
        self._body_done = False
        self.received = 0  # body bytes read so far
        self.raw_path = self.path = "/"
        self.query: dict[str, list[str]] = {}
        self.headers: dict[str, str] = {}
        self.version = None

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

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name):
        return self.query.get(name, [])

    def flag(self, name, default=False):
        value = self.arg(name)
        return default if value is None else parse_bool(value)

    def int_arg(self, name, default=None):
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
        from pybox.api.schema import parse_filters

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

    def body_chunks(self) -> Iterator[bytes]:
        """The request body, chunk by chunk (de-chunked by h11), as it arrives:
        what a large body is read with (to a file, or parsed as a stream)."""
        if self._body_done:
            return
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
        self._on_wait()
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
        if data:
            try:
                self.sock.sendall(data)
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

    def json(self, default=None):
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
        if self._body_done:
            return True
        if self.conn.they_are_waiting_for_100_continue and not self.received:
            return False  # the client holds the body back until it hears 100
        length = self.content_length()
        if length is not None and length - self.received > limit:
            return False
        start = self.received
        for _ in self.body_chunks():
            if self.received - start > limit:
                return False
        return True

    def wants_upgrade(self):
        return "upgrade" in self.headers.get("connection", "").lower()

    def client_gone(self):
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
    def __init__(self, server, request):
        self.server = server
        self.req = request
        self.conn = request.conn
        self.sock = request.sock
        self.sent = False
        self.hijacked = False

    def _headers(self, content_type=None, extra=()):
        h = [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
             ("Ostype", "linux"), ("Server", self.server.server_header),
             ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))]
        if content_type:
            h.append(("Content-Type", content_type))
        h.extend(extra)
        if not self.req.discard_body():
            h.append(("Connection", "close"))  # the rest of the body is not read
        return h

    def _send(self, event):
        self.req._send(event)

    def _drain_request(self) -> None:
        """Discard the unread body (up to DRAIN_LIMIT; _headers then says
        whether the connection must close): for handlers that build their reply
        from _headers/_send themselves."""
        self.req.discard_body()

    def send(self, status, body=b"", content_type=None, headers=()):
        hdrs = self._headers(content_type if body or content_type else None, headers)
        hdrs.append(("Content-Length", str(len(body))))
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        if body and self.req.method != "HEAD":  # a HEAD reply has the headers only
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())
        self.sent = True

    def json(self, obj, status=200):
        self.send(status, fastjson.dumps(obj).encode() + b"\n", "application/json")

    def empty(self, status=204):
        hdrs = self._headers()
        if status not in (204, 304):
            hdrs.append(("Content-Length", "0"))
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        self._send(h11.EndOfMessage())
        self.sent = True

    def error(self, status, message):
        if status == 304:
            self.empty(304)
            return
        self.json({"message": message}, status)

    def stream(self, status=200, content_type="application/json", headers=()):
        """Start a chunked response; returns write(bytes) and end() callables.
        Headers go out at once (docker's wait relies on that).  The request
        lasts as long as its client listens: it counts as long-lived."""
        hdrs = self._headers(content_type, headers)
        hdrs.append(("Transfer-Encoding", "chunked"))
        self.req._on_wait()
        self._send(h11.Response(status_code=status, reason=_phrase(status), headers=hdrs))
        self.sent = True

        def write(data):
            if data:
                self._send(h11.Data(data=data))

        def end():
            self._send(h11.EndOfMessage())

        return write, end

    def stream_file(self, f, content_type, headers=()):
        """A 200 whose body is the open file ``f`` from its current position
        (a tar made in a temporary file), sent in 1 MiB chunks."""
        write, end = self.stream(200, content_type, headers=headers)
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            write(chunk)
        end()

    def hijack(self, content_type):
        """101 UPGRADED, then the raw socket (h11 is done with this connection).
        Returns (socket, bytes already received after the request)."""
        if not self.req.discard_body():
            raise RequestTooLarge("request body too large for an upgraded connection")
        self.req._on_wait()
        self._send(h11.InformationalResponse(status_code=101, reason=b"UPGRADED", headers=[
            ("Content-Type", content_type), ("Connection", "Upgrade"), ("Upgrade", "tcp")]))
        self.sent = True
        self.hijacked = True
        trailing, _closed = self.conn.trailing_data
        return self.sock, bytes(trailing)


class PrefixedSocket:
    """A socket whose first reads return bytes h11 had already received."""

    def __init__(self, sock, prefix):
        self._sock = sock
        self._prefix = prefix

    def recv(self, n, flags=0):
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return self._sock.recv(n, flags)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _Pool:
    """Worker threads: at most ``size`` doing ordinary requests at once, plus at
    most ``long_size`` serving requests that wait on their client (which call
    ``waiting_on_client``).  Threads start on demand (~0.1 ms each); an
    ordinary one idle for ``linger`` seconds exits while more than ``keep``
    are left, so a burst's threads do not outlive it for long."""

    def __init__(self, run: Callable[[Any], None], size: int, long_size: int,
                 keep: int = 1, linger: float = 5.0) -> None:
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

    def counts(self) -> tuple[int, int, int]:
        """(ordinary threads, long-lived threads, jobs waiting for a thread)."""
        with self._cv:
            return self._ordinary, self._long, len(self._jobs)

    def submit(self, job: Any) -> None:
        with self._cv:
            self._jobs.append(job)
            if len(self._jobs) > self._idle and self._ordinary < self._size:
                self._spawn()
            self._cv.notify()

    def _spawn(self) -> None:  # with the lock held
        self._ordinary += 1
        threading.Thread(target=self._worker, name="api-worker", daemon=True).start()

    def waiting_on_client(self) -> None:
        """The calling worker's request now waits on its client (a body still
        to come, a stream, a hijacked connection): it stops counting against
        the ordinary workers, and another thread may start for queued work."""
        local = self._local
        if getattr(local, "long", True):  # already counted so, or not a pool thread
            return
        with self._cv:
            if self._long >= self._long_size:
                return  # at the cap: it stays an ordinary worker
            local.long = True
            self._long += 1
            self._ordinary -= 1
            if len(self._jobs) > self._idle and self._ordinary < self._size:
                self._spawn()

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
                import traceback

                traceback.print_exc()
            if local.long:
                with self._cv:
                    self._long -= 1
                    local.long = False
                    if self._ordinary >= self._size:
                        return
                    self._ordinary += 1


class _Client:
    """A connection and its HTTP state; ``idle`` while the poller watches it."""

    __slots__ = ("sock", "fd", "conn", "idle", "since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        self.idle = True
        self.since = time.monotonic()


class Server:
    def __init__(self, router, server_header, *, workers: int = WORKERS,
                 long_lived: int = LONG_LIVED, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.router = router
        self.server_header = server_header
        self.listeners: list[tuple[socket.socket, str]] = []
        self.stopping = threading.Event()
        self.idle_timeout = idle_timeout
        self.pool = _Pool(self._serve, workers, long_lived)
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()  # _clients, their idle flags, re-arming
        self._clients: dict[int, _Client] = {}  # every open, not hijacked, connection
        self._closed_listeners = False

    # -- listening ---------------------------------------------------------------
    def listen_unix(self, path: str, mode: int = 0o660, group: int | None = None):
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
                for fd, mask in ep.poll(max(0.0, wake_at - now), 256):
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
            sock.setblocking(True)
            c = _Client(sock)
            with self._lock:
                self._clients[c.fd] = c
                self._epoll.register(c.fd, _EPOLL_CLIENT)
        return True

    def _ready(self, fd: int) -> None:
        with self._lock:
            c = self._clients.get(fd)
            if c is None or not c.idle:
                return
            c.idle = False
        self.pool.submit(c)

    def _sweep(self, now: float) -> None:
        """Close the connections idle past idle_timeout."""
        with self._lock:
            stale = [c for c in self._clients.values()
                     if c.idle and now - c.since > self.idle_timeout]
            for c in stale:
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
            c.idle = True
            c.since = time.monotonic()
            try:
                self._epoll.modify(c.fd, _EPOLL_CLIENT)
                return
            except OSError:
                pass
        self._close(c)

    def _close(self, c: _Client) -> None:
        with self._lock:
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
        the poller when it has sent nothing more, closed when done with."""
        conn = c.conn
        keep = False
        served = False
        try:
            while True:
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
                    conn.receive_data(data)
                    continue
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed (or PAUSED: never, we reply in full)
                if event.http_version not in (b"1.0", b"1.1"):  # h11 takes any x.y
                    self._reject(c, 505, "unsupported protocol version")
                    return
                req = Request(conn, c.sock, event, self.pool.waiting_on_client)
                resp = Response(self, req)
                self._dispatch(req, resp)
                if resp.hijacked:
                    return  # the handler had the socket; it is done with it
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return  # MUST_CLOSE, a stream cut short, a body left unread
                conn.start_next_cycle()
                served = True
        except h11.RemoteProtocolError as e:
            # h11 quotes the offending bytes as "...: bytearray(b'...')": the
            # client has them; its reason is enough
            self._reject(c, e.error_status_hint, str(e).split(": bytearray(")[0])
        except (h11.LocalProtocolError, OSError):
            pass  # includes ClientGone: nobody to answer
        except Exception:  # noqa: BLE001 - a bug must not leave the connection open
            import traceback

            traceback.print_exc()
        finally:
            if keep:
                self._rearm(c)
            else:
                self._close(c)

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
            data = c.conn.send(h11.Response(status_code=status, reason=phrase, headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))), ("Connection", "close")]))
            data += c.conn.send(h11.Data(data=body)) + c.conn.send(h11.EndOfMessage())
            c.sock.sendall(data, socket.MSG_DONTWAIT)
        except (h11.LocalProtocolError, OSError):
            pass

    def _dispatch(self, req, resp):
        try:
            req.parse()
            if req.version is not None:
                self._check_version(req.version)
            handler, params = self.router.match(req.method, req.path)
            handler(req, resp, **params)
            if not resp.sent:
                resp.empty(204)
        except errors.PyboxError as e:
            self._fail(resp, status_for(e), str(e))
        except (h11.RemoteProtocolError, h11.LocalProtocolError, ClientGone, BrokenPipeError,
                ConnectionResetError):
            raise
        except Exception as e:  # noqa: BLE001 - a bug must not kill the connection silently
            import traceback

            traceback.print_exc()
            self._fail(resp, 500, f"internal error: {e.__class__.__name__}: {e}")

    @staticmethod
    def _fail(resp, status, message):
        if resp.sent:
            return  # the stream already started: nothing sensible to add
        resp.error(status, message)

    @staticmethod
    def _check_version(v):
        def as_tuple(x):
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

    def __init__(self):
        self.routes = []

    def add(self, method, pattern, handler):
        parts = pattern.strip("/").split("/")
        self.routes.append((method, parts, handler))

    def route(self, method, pattern):
        def deco(fn):
            self.add(method, pattern, fn)
            return fn
        return deco

    def match(self, method, path):
        segs = path.strip("/").split("/")
        path_matched = False
        for m, parts, handler in self.routes:
            params = _match(parts, segs)
            if params is None:
                continue
            path_matched = True
            if m == method or (method == "HEAD" and m == "GET" and False):
                return handler, params
        if path_matched:
            raise errors.NotFound(f"page not found")
        raise errors.NotFound("page not found")


def _match(parts, segs):
    params = {}
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
