"""HTTP/1.1 on unix sockets for the Docker Engine API, with h11.

One thread per connection: requests on a connection are served in order (keep-
alive), connections in parallel -- a `docker run` keeps three open at once and a
blocked `wait` must not hold up its `start`.  Handlers get a Request (method,
path, query, headers, a lazily read body that may be chunked) and answer
through a Response: a JSON/empty reply, a chunked stream flushed per write
(events, logs -f, wait, progress), or a hijack (101 UPGRADED, then the raw
socket: attach, exec start).  Errors raised as pybox errors become docker's
JSON error replies with the matching status code.
"""

import os
import socket
import threading
import time
import urllib.parse

import h11

from pybox import errors
from pybox.oci import fastjson

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
SERVER = "pybox/{version} (linux)"

STATUS_FOR = [
    (errors.NotFound, 404),
    (errors.ImageNotFound, 404),
    (errors.ImageInUse, 409),
    (errors.InvalidReference, 400),
    (errors.ImageError, 400),
    (errors.Conflict, 409),
    (errors.NotModified, 304),
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


class Request:
    def __init__(self, conn, sock, event, buffered):
        self.conn = conn
        self.sock = sock
        self.method = event.method.decode()
        target = event.target.decode()
        path, _, query = target.partition("?")
        self.raw_path = urllib.parse.unquote(path)
        self.query = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        self.version = None
        self.path = self.raw_path
        if self.path.startswith("/v"):
            head, _, rest = self.path[2:].partition("/")
            try:
                float(head)
                self.version = head
                self.path = "/" + rest
            except ValueError:
                pass
        self._buffered = buffered
        self._body_done = False

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

    def filters(self):
        raw = self.arg("filters")
        if not raw:
            return {}
        try:
            data = fastjson.loads(raw)
        except ValueError:
            raise errors.BadRequest(f"invalid filters: {raw!r}") from None
        out = {}
        for key, value in data.items():
            out[key] = list(value) if isinstance(value, (dict, list)) else [value]
        return out

    def body_chunks(self):
        """The request body, chunk by chunk (de-chunked by h11)."""
        if self._body_done:
            return
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return
            else:
                raise errors.BadRequest("unexpected data in request body")

    def body(self):
        return b"".join(self.body_chunks())

    def json(self, default=None):
        data = self.body()
        if not data.strip():
            return default
        try:
            return fastjson.loads(data)
        except ValueError as e:
            raise errors.BadRequest(f"invalid JSON: {e}") from None

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
        return h

    def _send(self, event):
        data = self.conn.send(event)
        if data:
            self.sock.sendall(data)

    def _drain_request(self):
        if not self.req._body_done:
            for _ in self.req.body_chunks():
                pass

    def send(self, status, body=b"", content_type=None, headers=()):
        self._drain_request()
        hdrs = self._headers(content_type if body or content_type else None, headers)
        hdrs.append(("Content-Length", str(len(body))))
        self._send(h11.Response(status_code=status, headers=hdrs))
        if body and self.req.method != "HEAD":  # a HEAD reply has the headers only
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())
        self.sent = True

    def json(self, obj, status=200):
        self.send(status, fastjson.dumps(obj).encode() + b"\n", "application/json")

    def empty(self, status=204):
        self._drain_request()
        hdrs = self._headers()
        if status not in (204, 304):
            hdrs.append(("Content-Length", "0"))
        self._send(h11.Response(status_code=status, headers=hdrs))
        self._send(h11.EndOfMessage())
        self.sent = True

    def error(self, status, message):
        if status == 304:
            self.empty(304)
            return
        self.json({"message": message}, status)

    def stream(self, status=200, content_type="application/json", headers=()):
        """Start a chunked response; returns write(bytes) and end() callables.
        Headers go out at once (docker's wait relies on that)."""
        self._drain_request()
        hdrs = self._headers(content_type, headers)
        hdrs.append(("Transfer-Encoding", "chunked"))
        self._send(h11.Response(status_code=status, headers=hdrs))
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
        self._drain_request()
        self._send(h11.InformationalResponse(status_code=101, headers=[
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


class Server:
    def __init__(self, router, server_header):
        self.router = router
        self.server_header = server_header
        self.listeners = []
        self.stopping = threading.Event()

    def listen_unix(self, path, mode=0o660, group=None):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, group)
        s.listen(128)
        self.listeners.append((s, path))
        return s

    def serve_forever(self):
        threads = []
        for s, _ in self.listeners:
            t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
            t.start()
            threads.append(t)
        self.stopping.wait()

    def shutdown(self):
        self.stopping.set()
        for s, path in self.listeners:
            try:
                s.close()
            except OSError:
                pass
            try:
                os.unlink(path)
            except OSError:
                pass

    def _accept_loop(self, listener):
        while not self.stopping.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                continue
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        hijacked = False
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    conn.receive_data(data)
                    if not data and conn.their_state is h11.IDLE:
                        return
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    return
                req = Request(conn, sock, event, None)
                resp = Response(self, req)
                self._dispatch(req, resp)
                if resp.hijacked:
                    hijacked = True
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                if conn.our_state is not h11.DONE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (h11.RemoteProtocolError, h11.LocalProtocolError, OSError):
            return
        finally:
            if not hijacked:
                try:
                    sock.close()
                except OSError:
                    pass
            else:
                try:
                    sock.close()
                except OSError:
                    pass

    def _dispatch(self, req, resp):
        try:
            if req.version is not None:
                self._check_version(req.version)
            handler, params = self.router.match(req.method, req.path)
            handler(req, resp, **params)
            if not resp.sent:
                resp.empty(204)
        except errors.PyboxError as e:
            self._fail(resp, status_for(e), str(e))
        except (h11.RemoteProtocolError, h11.LocalProtocolError, BrokenPipeError,
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
