"""A small HTTP/1.1 client for the Docker Engine API on a unix socket.

Why neither h11 nor http.client: both were measured with ``python -X importtime``
here, and each costs more than the whole rest of a ``pybox run``'s client side:
h11 28 ms (it pulls in typing, dataclasses, inspect and re), http.client 31 ms
(email.parser, ssl-free but still re and the email package), against ~1 ms for
this module on ``_socket`` alone.  issue 6 wants ``pybox run --rm --network none
IMG true`` at podman's 0.19 s end to end, daemon included, so the client side's
budget is a few milliseconds.  The subset of HTTP/1.1 the Engine API needs from a
client is small and fully specified in ../shared/docs/docker-api/README.md:

* requests with ``Content-Length`` bodies (JSON) or ``Transfer-Encoding:
  chunked`` bodies (``import``/``load`` upload a tar of unknown length);
* responses delimited by Content-Length, chunked, or (for old daemons) the close
  of the connection; bodies can be read whole or streamed as they arrive
  (``logs -f``, ``events``, ``wait``, JSON progress streams);
* keep-alive: a finished connection goes back to a pool and is reused, as the
  docker CLI does, while ``run`` still opens several at once (create/wait,
  attach, start: the pending ``wait`` holds its connection);
* the hijack: ``Connection: Upgrade``/``Upgrade: tcp`` answered with ``101
  UPGRADED``, after which the socket is a raw byte pipe (:class:`RawStream`).

Version negotiation is docker's: ``HEAD /_ping`` first (``GET`` if HEAD is
refused), ``Api-Version`` from its headers (1.24 if absent), then every path is
``/v<min(ours, theirs)>/...``.
"""

from __future__ import annotations

import _socket

from pybox.errors import DaemonError, DaemonUnreachable, FlagError
from pybox.formats import fastjson
from pybox.linux.unixsock import call
from pybox.locations import DEFAULT_HOST

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import IO, Any

    #: A query: ``{key: value or [values]}`` or ``[(key, value), ...]``.
    Query = dict[str, Any] | list[tuple[str, Any]] | None

#: The API version this client speaks (pyboxd advertises the same).
CLIENT_API_VERSION = "1.44"
#: What the docker CLI assumes when a daemon's ping carries no Api-Version.
FALLBACK_API_VERSION = "1.24"
USER_AGENT = "pybox-cli/0.1.0 (linux)"
_SEND_FLAGS = getattr(_socket, "MSG_NOSIGNAL", 0)  # a vanished daemon is an error, not SIGPIPE
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_PATH_SAFE = _UNRESERVED | frozenset(b"/:@!$&'()*+,;=")


def version_tuple(text: object) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).split("."))
    except ValueError:
        return (0,)


def query_escape(text: object) -> str:
    """Go's url.QueryEscape: unreserved bytes kept, space as '+', the rest %XX."""
    out = []
    for b in str(text).encode():
        if b in _UNRESERVED:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def path_escape(text: object) -> str:
    """Go's url.PathEscape-like: names and image references (with / : @) stay
    readable in the path, as the docker CLI sends them."""
    return "".join(chr(b) if b in _PATH_SAFE else f"%{b:02X}" for b in str(text).encode())


def encode_query(query: Query) -> str:
    """``{key: value or [values]}`` or ``[(key, value), ...]`` -> ``a=1&b=x``,
    keys sorted and values kept in order, as Go's url.Values.Encode does (so the
    wire matches the docker CLI's).  ``None`` values are left out."""
    if not query:
        return ""
    pairs = query.items() if isinstance(query, dict) else query
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        grouped.setdefault(key, []).extend(values)
    parts = []
    for key in sorted(grouped):
        for value in grouped[key]:
            if value is True:
                value = "1"
            elif value is False:
                value = "0"
            parts.append(f"{query_escape(key)}={query_escape(value)}")
    return "&".join(parts)


def parse_host(host: str) -> str:
    """``unix:///path`` or ``/path`` -> the socket path.  Only unix sockets: the
    Engine API on TCP needs TLS to be safe, and pyboxd does not offer it."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
    elif host.startswith("/"):
        path = host
    else:
        raise FlagError(f"invalid host {host!r}: only unix://PATH sockets are supported")
    if not path:
        raise FlagError(f"invalid host {host!r}: no socket path")
    return path


class Connection:
    """One HTTP/1.1 connection on a unix socket, with its read buffer."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            call(sock.connect, path)      # also paths longer than sun_path
            sock.settimeout(None)
        except OSError:
            sock.close()
            raise
        self.sock: _socket.socket | None = sock
        self.buf = bytearray()
        self.reused = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def sendall(self, data: bytes) -> None:
        assert self.sock is not None, "send on a closed connection"
        self.sock.sendall(data, _SEND_FLAGS)

    def fill(self) -> int:
        assert self.sock is not None, "read on a closed connection"
        data = self.sock.recv(65536)
        if data:
            self.buf += data
        return len(data)

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        """Status line and headers -> (status, reason, {lower-case name: value})."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not self.fill():
                raise ConnectionResetError("connection closed before a response")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionResetError(f"malformed response: {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def readline(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            if not self.fill():
                raise ConnectionResetError("connection closed in a chunked body")

    def read_some(self, limit: int) -> bytes:
        if not self.buf and not self.fill():
            return b""
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data


class Response:
    """A response whose body is read lazily: ``read()``, ``json()``,
    ``iter_body()`` (pieces as they arrive), ``iter_lines()``, ``iter_json()``."""

    def __init__(self, client: APIClient, conn: Connection | None, method: str, status: int,
                 reason: str, headers: dict[str, str]) -> None:
        self.client = client
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.done = False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._mode, self._remaining = "none", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode, self._remaining = "chunked", 0
        elif "content-length" in headers:
            self._mode, self._remaining = "length", int(headers["content-length"])
        else:
            self._mode, self._remaining = "close", -1
        self._keep = (self._mode != "close"
                      and "close" not in headers.get("connection", "").lower())
        if self._mode == "none" or (self._mode == "length" and self._remaining == 0):
            self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self._keep and self.conn is not None:
            self.client._release(self.conn)
        elif self.conn is not None:
            self.conn.close()
        self.conn = None

    def close(self) -> None:
        """Abandon the rest of the body (the connection is not reused)."""
        if not self.done:
            self.done = True
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    def iter_body(self) -> Iterator[bytes]:
        """The body's bytes as they arrive (de-chunked)."""
        conn = self.conn
        if conn is None:  # no body (HEAD, 204, 304), or already read or closed
            return
        try:
            if self._mode == "length":
                while self._remaining > 0:
                    data = conn.read_some(min(self._remaining, 65536))
                    if not data:
                        raise ConnectionResetError("connection closed in a response body")
                    self._remaining -= len(data)
                    yield data
            elif self._mode == "chunked":
                while True:
                    size_line = conn.readline()
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while conn.readline():  # trailers up to the empty line
                            pass
                        break
                    while size > 0:
                        data = conn.read_some(min(size, 65536))
                        if not data:
                            raise ConnectionResetError("connection closed in a chunk")
                        size -= len(data)
                        yield data
                    conn.readline()
            elif self._mode == "close":
                while True:
                    data = conn.read_some(65536)
                    if not data:
                        break
                    yield data
        except BaseException:
            self.close()
            raise
        self._finish()

    def read(self) -> bytes:
        if self.done:
            return b""
        return b"".join(self.iter_body())

    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        data = self.read()
        return fastjson.loads(data) if data.strip() else None

    def iter_lines(self) -> Iterator[bytes]:
        pending = b""
        for data in self.iter_body():
            pending += data
            while True:
                nl = pending.find(b"\n")
                if nl < 0:
                    break
                line, pending = pending[:nl], pending[nl + 1:]
                yield line
        if pending:
            yield pending

    def iter_json(self) -> Iterator[Any]:
        """A stream of JSON messages, one a line (events, wait, progress)."""
        for line in self.iter_lines():
            if line.strip():
                yield fastjson.loads(line)


class RawStream:
    """The socket after a ``101 UPGRADED``: a raw byte pipe in both directions.
    ``initial`` holds bytes that arrived with the response head."""

    def __init__(self, sock: _socket.socket, initial: bytes | bytearray = b"") -> None:
        self.sock: _socket.socket | None
        self.sock = sock
        self.initial = bytes(initial)

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    def recv(self) -> bytes:
        if self.initial:
            data, self.initial = self.initial, b""
            return data
        assert self.sock is not None
        return self.sock.recv(65536)

    def sendall(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data, _SEND_FLAGS)

    def close_write(self) -> None:
        """Half-close: the daemon reads EOF on stdin and keeps sending output."""
        try:
            assert self.sock is not None
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class APIClient:
    """The Engine API at one unix socket.  Connections are opened on demand and
    pooled; the first request negotiates the API version with ``/_ping``."""

    def __init__(self, host: str = DEFAULT_HOST, *, version: str | None = None,
                 connect_hook: Callable[[], bool] | None = None) -> None:
        self.host = host
        self.path = parse_host(host)
        self._fixed_version = version
        self._version = version
        self._pool: list[Connection] = []
        self.ping_headers: dict[str, str] | None = None
        # Called with no argument when the socket cannot be reached; returns True
        # if it made a daemon available (autostart) so the connect is retried.
        self.connect_hook = connect_hook

    # -- connections ----------------------------------------------------------------
    def _connect(self) -> Connection:
        try:
            return Connection(self.path)
        except OSError as err:
            if self.connect_hook is not None:
                hook, self.connect_hook = self.connect_hook, None
                if hook():
                    return self._connect()
            raise DaemonUnreachable(
                f"Cannot connect to the pybox daemon at {self.host}. "
                f"Is pyboxd running? ({err.strerror or err})") from None

    def _acquire(self) -> Connection:
        if self._pool:
            conn = self._pool.pop()
            conn.reused = True
            return conn
        return self._connect()

    def _release(self, conn: Connection) -> None:
        if conn.sock is not None and not conn.buf:
            self._pool.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._pool:
            self._pool.pop().close()

    # -- version negotiation --------------------------------------------------------
    @property
    def version(self) -> str:
        if self._version is None:
            self.ping()
        assert self._version is not None
        return self._version

    def ping(self) -> dict[str, str]:
        """HEAD /_ping (GET if HEAD is refused); returns its headers and fixes the
        API version: min(ours, the daemon's), or 1.24 when it names none."""
        resp = self._send("HEAD", "/_ping", b"", {}, stream=False)
        if resp.status not in (200, 500):
            resp.read()
            resp = self._send("GET", "/_ping", b"", {}, stream=False)
            resp.read()
        headers = resp.headers
        self.ping_headers = headers
        if self._fixed_version is None:
            server = headers.get("api-version") or FALLBACK_API_VERSION
            self._version = min(server, CLIENT_API_VERSION, key=version_tuple)
        return headers

    @property
    def server_api_version(self) -> str:
        headers = self.ping() if self.ping_headers is None else self.ping_headers
        return headers.get("api-version") or FALLBACK_API_VERSION

    def at_least(self, version: str) -> bool:
        return version_tuple(self.version) >= version_tuple(version)

    # -- requests -------------------------------------------------------------------
    def _target(self, path: str, query: Query, versioned: bool) -> str:
        if versioned:
            path = f"/v{self.version}{path}"
        q = encode_query(query)
        return f"{path}?{q}" if q else path

    def _head_bytes(self, method: str, target: str, headers: dict[str, str],
                    length: int | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", "Host: api.moby.localhost",
                 f"User-Agent: {USER_AGENT}"]
        for name, value in headers.items():
            lines.append(f"{name}: {value}")
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        elif method != "GET" and method != "HEAD" or length:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, method: str, target: str, body: bytes | Iterable[bytes] | IO[bytes] | None,
              headers: dict[str, str], stream: bool) -> Response:
        """Send one request and read the response head; retries once on a pooled
        connection the daemon closed while it was idle."""
        streaming_body = body is not None and not isinstance(body, (bytes, bytearray))
        for attempt in (0, 1):
            conn = self._acquire()
            try:
                if streaming_body:
                    assert body is not None and not isinstance(body, (bytes, bytearray))
                    conn.sendall(self._head_bytes(method, target, headers, None))
                    _send_chunked(conn, body)
                else:
                    assert body is None or isinstance(body, (bytes, bytearray))
                    data = bytes(body or b"")
                    conn.sendall(self._head_bytes(method, target, headers, len(data)) + data)
                status, reason, resp_headers = conn.read_head()
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                conn.close()
                if conn.reused and attempt == 0 and not streaming_body:
                    continue
                raise DaemonUnreachable(
                    f"error during connect: the pybox daemon at {self.host} "
                    "closed the connection") from None
            except OSError:
                conn.close()
                raise
            return Response(self, conn, method, status, reason, resp_headers)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def request(self, method: str, path: str, *, query: Query = None,
                body: bytes | Iterable[bytes] | IO[bytes] | None = None, json: Any = None,
                headers: dict[str, str] | None = None, versioned: bool = True,
                check: bool = True) -> Response:
        """One request; raises DaemonError for a status >= 400 when ``check``.
        ``body``: bytes, or an iterable/file of bytes sent chunked; ``json``: an
        object sent as application/json."""
        hdrs = dict(headers or {})
        if json is not None:
            body = fastjson.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        target = self._target(path, query, versioned)
        resp = self._send(method, target, body, hdrs, stream=True)
        if check and resp.status >= 400:
            raise error_from_response(resp)
        return resp

    def get_json(self, path: str, query: Query = None) -> Any:
        return self.request("GET", path, query=query).json()

    def post(self, path: str, query: Query = None, json: Any = None, **kw: Any) -> Response:
        resp = self.request("POST", path, query=query, json=json, **kw)
        return resp

    def hijack(self, path: str, *, query: Query = None, json: Any = None) -> RawStream:
        """POST with ``Connection: Upgrade``/``Upgrade: tcp``; expects ``101`` and
        returns the socket as a RawStream (never pooled again)."""
        hdrs = {"Connection": "Upgrade", "Upgrade": "tcp"}
        if json is not None:
            body = fastjson.dumps(json).encode()
            hdrs["Content-Type"] = "application/json"
        else:
            body = b""
            hdrs["Content-Type"] = "text/plain"
        target = self._target(path, query, True)
        conn = self._connect() if not self._pool else self._acquire()
        try:
            conn.sendall(self._head_bytes("POST", target, hdrs, len(body)) + body)
            status, reason, headers = conn.read_head()
        except OSError:
            conn.close()
            raise DaemonUnreachable(f"the pybox daemon at {self.host} closed the connection") from None
        if status == 101:
            assert conn.sock is not None
            return RawStream(conn.sock, conn.buf)
        resp = Response(self, conn, "POST", status, reason, headers)
        if status >= 400:
            raise error_from_response(resp)
        resp.close()
        raise DaemonError(status, f"unable to upgrade to tcp, received {status}")


def _send_chunked(conn: Connection, body: Iterable[bytes] | IO[bytes]) -> None:
    # (mypy does not narrow a union by hasattr: the file branch is the IO one)
    chunks = _file_chunks(body) if hasattr(body, "read") else body  # type: ignore[arg-type]
    for chunk in chunks:
        if chunk:
            conn.sendall(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
    conn.sendall(b"0\r\n\r\n")


def _file_chunks(f: IO[bytes], size: int = 1 << 16) -> Iterator[bytes]:
    while True:
        data = f.read(size)
        if not data:
            return
        yield data


def error_from_response(resp: Response) -> DaemonError:
    """The daemon's ``{"message": ...}`` (or its plain text) as a DaemonError."""
    try:
        data = resp.read()
    except OSError:
        data = b""
    message = None
    if data.strip().startswith(b"{"):
        try:
            message = fastjson.loads(data).get("message")
        except ValueError:
            message = None
    if message is None:
        message = data.decode("utf-8", "replace").strip() or f"{resp.status} {resp.reason}"
    return DaemonError(resp.status, message)
