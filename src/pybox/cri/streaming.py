"""The CRI streaming server: where Exec, Attach and PortForward's URLs point.

A CRI runtime answers Exec/Attach/PortForward with a URL, not the stream:
kubelet (or crictl, critest) then connects to that URL and upgrades the
HTTP/1.1 connection, as kubelet's own streaming server
(k8s.io/kubelet/pkg/cri/streaming, which containerd and CRI-O embed) serves it:

- ``GET|POST /exec/TOKEN``, ``/attach/TOKEN``, ``/portforward/TOKEN`` on
  127.0.0.1 (a random port by default), each TOKEN single-use and valid one
  minute (kubelet's request cache: 8 random bytes, base64url, 1000 in flight
  at most); an unknown, used or expired token gets net/http's 404;
- SPDY/3.1 (``Upgrade: SPDY/3.1``) with ``X-Stream-Protocol-Version``
  negotiated among v4.channel.k8s.io, v3, v2 and channel.k8s.io for exec and
  attach (streams typed by their ``streamtype`` header: error, stdin, stdout,
  stderr, resize), portforward.k8s.io for port forward (data and error streams
  paired by ``requestid``, the port in ``port``);
- websockets (``Upgrade: websocket``): the channel protocols of
  pybox.cri.wschannel.

The requests are validated when the URL is made, with kubelet's words (its
validateExecRequest/validateAttachRequest): BadRequest, which the CRI layer
turns into INVALID_ARGUMENT.  The work behind a session is
pybox.cri.stream_backends' (the engine's exec and attach, a connection in the
pod's network namespace).
"""

from __future__ import annotations

import base64
import json
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pybox.cri import stream_backends as backends
from pybox.cri import wschannel
from pybox.cri.spdy import SpdySession, Stream
from pybox.cri.stream_backends import StreamSet
from pybox.cri.stream_http import STREAM_IDLE_TIMEOUT, Connection, HTTPError, HTTPRequest, negotiate
from pybox.engine.engine import Engine
from pybox.errors import BadRequest, NotFound, PyboxError, Unavailable

CACHE_TTL = 60.0  # kubelet's streaming request cache: a token lives one minute
MAX_IN_FLIGHT = 1000  # tokens not yet used (kubelet's maxInFlight)
TOKEN_BYTES = 8
STREAM_CREATION_TIMEOUT = 30.0  # kubelet's DefaultStreamCreationTimeout

REMOTECOMMAND_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                           "channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("portforward.k8s.io",)
STREAM_TYPES = ("error", "stdin", "stdout", "stderr", "resize")


@dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True)
class AttachRequest:
    container_id: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True)
class PortForwardRequest:
    pod_id: str
    ports: tuple[int, ...]


CachedRequest = ExecRequest | AttachRequest | PortForwardRequest


@dataclass
class RequestCache:
    """Single-use tokens for cached requests, each expiring CACHE_TTL after
    it was made."""

    ttl: float = CACHE_TTL
    entries: dict[str, tuple[CachedRequest, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def insert(self, req: CachedRequest) -> str:
        now = time.monotonic()
        with self.lock:
            for token in [t for t, (_, exp) in self.entries.items() if exp <= now]:
                del self.entries[token]
            if len(self.entries) >= MAX_IN_FLIGHT:
                raise Unavailable("maximum number of in-flight requests exceeded")
            token = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode()
            self.entries[token] = (req, now + self.ttl)
        return token

    def consume(self, token: str) -> CachedRequest | None:
        with self.lock:
            entry = self.entries.pop(token, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


def validate_streams(container_id: str, tty: bool, stdin: bool, stdout: bool, stderr: bool
                     ) -> None:
    """kubelet's validateExecRequest / validateAttachRequest."""
    if not container_id:
        raise BadRequest("missing required container_id")
    if tty and stderr:
        # If TTY is set, stderr cannot be true because multiplexing is not supported.
        raise BadRequest("tty and stderr cannot both be true")
    if not (stdin or stdout or stderr):
        raise BadRequest("one of stdin, stdout, or stderr must be set")


class StreamingServer:
    """The streaming server for one engine (see the module's docstring).
    ``pod_netns(pod_id)`` names the pod's pinned network namespace, None when
    it has none (a host-network pod, or one whose network is gone: told apart
    here by the sandbox's NetworkMode)."""

    def __init__(self, engine: Engine, pod_netns: Callable[[str], str | None],
                 address: str = "127.0.0.1", port: int = 0,
                 idle_timeout: float = STREAM_IDLE_TIMEOUT) -> None:
        self.engine = engine
        self.idle_timeout = idle_timeout
        self.pod_netns = pod_netns
        self.address = address
        self.port = port
        self.cache = RequestCache()
        self.listener: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.closing = False

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.address, self.port))
            s.listen(128)
        except OSError as e:
            s.close()
            raise PyboxError(f"streaming server: cannot listen on {self.address}:{self.port}: "
                             f"{e.strerror or e}") from None
        self.port = s.getsockname()[1]
        self.listener = s
        self.thread = threading.Thread(target=self._accept_loop, name="cri-streaming", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop accepting (sessions under way run to their end)."""
        self.closing = True
        s, self.listener = self.listener, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/"

    # -- the CRI's side -------------------------------------------------------------------
    def exec_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool,
                 stdout: bool, stderr: bool) -> str:
        validate_streams(container_id, tty, stdin, stdout, stderr)
        if not cmd:
            raise BadRequest("missing required cmd")  # (the engine's exec needs one)
        token = self.cache.insert(ExecRequest(container_id, tuple(cmd), tty, stdin, stdout,
                                              stderr))
        return f"{self.base_url}exec/{token}"

    def attach_url(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                   stderr: bool) -> str:
        validate_streams(container_id, tty, stdin, stdout, stderr)
        token = self.cache.insert(AttachRequest(container_id, tty, stdin, stdout, stderr))
        return f"{self.base_url}attach/{token}"

    def port_forward_url(self, pod_id: str, ports: Sequence[int]) -> str:
        if not pod_id:
            raise BadRequest("missing required pod_sandbox_id")
        for p in ports:
            if not 0 < p < 65536:
                raise BadRequest(f"invalid port {p}")
        token = self.cache.insert(PortForwardRequest(pod_id, tuple(ports)))
        return f"{self.base_url}portforward/{token}"

    # -- serving ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self.closing:
            listener = self.listener
            if listener is None:
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                if self.closing:
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._serve, args=(sock,), name="cri-stream-conn",
                             daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Connection(sock, self.idle_timeout)
        try:
            req = conn.read_request()
            if req is None:
                return
            self._dispatch(conn, req)
        except HTTPError as e:
            conn.respond(e.status, e.text, e.headers)
        except Exception as e:  # noqa: BLE001 -- one session's bug must not end the server
            conn.respond(500, f"streaming server error: {e}")
        finally:
            conn.close()

    def _dispatch(self, conn: Connection, req: HTTPRequest) -> None:
        parts = req.path.split("/")
        if len(parts) != 3 or parts[0] or parts[1] not in ("exec", "attach", "portforward") \
                or not parts[2]:
            raise HTTPError(404, "404 page not found")
        if req.method not in ("GET", "POST"):
            raise HTTPError(405, "405: Method Not Allowed")
        kind, token = parts[1], parts[2]
        cached = self.cache.consume(token)
        if kind == "exec" and isinstance(cached, ExecRequest):
            self._remote_command(conn, req, cached)
        elif kind == "attach" and isinstance(cached, AttachRequest):
            self._remote_command(conn, req, cached)
        elif kind == "portforward" and isinstance(cached, PortForwardRequest):
            self._port_forward(conn, req, cached)
        else:
            raise HTTPError(404, "404 page not found")

    # -- exec and attach -----------------------------------------------------------------
    def _remote_command(self, conn: Connection, req: HTTPRequest,
                        cached: ExecRequest | AttachRequest) -> None:
        if req.is_websocket():
            self._remote_command_ws(conn, req, cached)
            return
        protocol = negotiate(req, REMOTECOMMAND_PROTOCOLS)
        session = self._upgrade_spdy(conn, req, protocol)
        reader = threading.Thread(target=session.run, name="cri-spdy", daemon=True)
        reader.start()
        try:
            expected = 1 + cached.stdin + cached.stdout + cached.stderr
            if cached.tty and protocol in ("v3.channel.k8s.io", "v4.channel.k8s.io"):
                expected += 1
            streams = collect_streams(session, expected, protocol == "v4.channel.k8s.io")
            if streams is not None:
                self._run_remote_command(cached, streams)
        finally:
            session.close()
            reader.join(5)

    def _run_remote_command(self, cached: ExecRequest | AttachRequest, streams: StreamSet) -> None:
        if isinstance(cached, ExecRequest):
            backends.run_exec(self.engine, cached.container_id, cached.cmd, cached.tty, streams)
        else:
            backends.run_attach(self.engine, cached.container_id, cached.tty, streams)

    def _remote_command_ws(self, conn: Connection, req: HTTPRequest,
                           cached: ExecRequest | AttachRequest) -> None:
        ws = wschannel.open_remote_command(conn, req, stdin=cached.stdin, stdout=cached.stdout,
                                           stderr=cached.stderr, tty=cached.tty)
        try:
            self._run_remote_command(cached, ws.streams)
        finally:
            ws.close()

    def _upgrade_spdy(self, conn: Connection, req: HTTPRequest, protocol: str) -> SpdySession:
        """spdy.responseUpgrader: the upgrade headers checked, the 101, the session."""
        connection = ",".join(req.headers.get("connection", [])).lower()
        upgrade = ",".join(req.headers.get("upgrade", [])).lower()
        if "upgrade" not in connection or "spdy/3.1" not in upgrade:
            shown = {k.title(): v for k, v in req.headers.items()}
            raise HTTPError(400, "unable to upgrade: missing upgrade headers in request: "
                            f"http.Header{json.dumps(shown)}")
        trailing = conn.upgrade([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                 ("X-Stream-Protocol-Version", protocol)])
        return SpdySession(conn.sock, self._accept_stream, trailing, conn.idle)

    @staticmethod
    def _accept_stream(stream: Stream) -> bool:
        return True

    # -- port forward ----------------------------------------------------------------------
    def _port_forward(self, conn: Connection, req: HTTPRequest, cached: PortForwardRequest) -> None:
        if req.is_websocket():
            ws = wschannel.open_port_forward(conn, req, cached.ports)
            try:
                wschannel.serve_port_forward(ws, cached.pod_id,
                                             lambda: self._netns_for(cached.pod_id))
            finally:
                ws.close()
            return
        protocol = negotiate(req, PORTFORWARD_PROTOCOLS)
        connection = ",".join(req.headers.get("connection", [])).lower()
        upgrade = ",".join(req.headers.get("upgrade", [])).lower()
        if "upgrade" not in connection or "spdy/3.1" not in upgrade:
            shown = {k.title(): v for k, v in req.headers.items()}
            raise HTTPError(400, "unable to upgrade: missing upgrade headers in request: "
                            f"http.Header{json.dumps(shown)}")
        trailing = conn.upgrade([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                 ("X-Stream-Protocol-Version", protocol)])
        session = SpdySession(conn.sock, port_forward_stream_ok, trailing, conn.idle)
        reader = threading.Thread(target=session.run, name="cri-spdy-pf", daemon=True)
        reader.start()
        try:
            serve_spdy_port_forward(session, cached.pod_id, lambda: self._netns_for(cached.pod_id))
        finally:
            session.close()
            reader.join(5)

    def _netns_for(self, pod_id: str) -> str | None:
        """Where to dial: the pod's pinned namespace; None (the host's) only
        for a host-network pod (containerd's "host"); a pod that is not there
        or whose namespace is gone is an error, never the host."""
        path = self.pod_netns(pod_id)
        if path is not None:
            return path
        c = self.engine.get(pod_id)  # NotFound for a pod that is not there
        if (c.host_config or {}).get("NetworkMode") == "host":
            return None
        raise NotFound(f"network namespace for sandbox {pod_id!r} is closed")


def collect_streams(session: SpdySession, expected: int, v4: bool) -> StreamSet | None:
    """kubelet's waitForStreams: the client's streams by type until ``expected``
    of them came (unknown types are left alone); None when the client does not
    make them within STREAM_CREATION_TIMEOUT or goes away."""
    streams = StreamSet(status_json=v4, client_gone=session.ended)
    deadline = time.monotonic() + STREAM_CREATION_TIMEOUT
    received = 0
    while received < expected:
        try:
            s = session.accepted.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if s is None:
            return None
        kind = s.header("streamtype")
        if kind in STREAM_TYPES:
            setattr(streams, kind, s)
            received += 1
    return streams


def port_forward_stream_ok(stream: Stream) -> bool:
    """kubelet's httpStreamReceived: a port (1..65535) and a data or error type."""
    port = stream.header("port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        return False
    return stream.header("streamtype") in ("data", "error")


@dataclass
class _Pair:
    data: Stream | None = None
    error: Stream | None = None
    created: float = field(default_factory=time.monotonic)


def _request_id(stream: Stream) -> str:
    """The request's id (old clients without one: kubelet's guess from the stream ids)."""
    rid = stream.header("requestid")
    if rid:
        return rid
    return str(stream.id if stream.header("streamtype") == "error" else stream.id - 2)


def serve_spdy_port_forward(session: SpdySession, pod_id: str,
                            netns_path: Callable[[], str | None]) -> None:
    """Pair each request's error and data streams and forward each pair's
    connection, until the client ends the session."""
    pairs: dict[str, _Pair] = {}
    workers: list[threading.Thread] = []
    while True:
        try:
            s = session.accepted.get(timeout=1.0)
        except queue.Empty:
            s = None
            if session.ended.is_set():
                break
        else:
            if s is None:
                break
        now = time.monotonic()
        if s is not None:
            rid = _request_id(s)
            pair = pairs.setdefault(rid, _Pair())
            if s.header("streamtype") == "data":
                pair.data = s
            else:
                pair.error = s
            if pair.data is not None and pair.error is not None:
                del pairs[rid]
                port = int(pair.data.header("port"))
                t = threading.Thread(target=_forward_pair, args=(pod_id, netns_path, port, pair),
                                     name="cri-portforward", daemon=True)
                t.start()
                workers.append(t)
        for rid, pair in list(pairs.items()):
            if now - pair.created > STREAM_CREATION_TIMEOUT:
                del pairs[rid]
                if pair.error is not None:
                    pair.error.write(f"(request={rid}) timed out waiting for streams".encode())
                    pair.error.close()
                for st in (pair.data, pair.error):
                    if st is not None:
                        st.do_reset()
    for t in workers:
        t.join(backends.PORT_FORWARD_LINGER + 1)


def _forward_pair(pod_id: str, netns_path: Callable[[], str | None], port: int, pair: _Pair
                  ) -> None:
    assert pair.data is not None and pair.error is not None  # (paired)
    try:
        path = netns_path()
    except PyboxError as e:
        pair.error.write(f"error forwarding port {port} to pod {pod_id}, uid : {e}".encode())
        pair.error.close()
        pair.data.close()
        return
    backends.run_port_forward(pod_id, path, port, pair.data, pair.error)
