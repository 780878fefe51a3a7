"""GET /containers/{id}/attach/ws: an attach over a websocket, as dockerd serves it.

dockerd (api/server/router/container/container_routes.go, wsContainersAttach)
runs golang.org/x/net/websocket's server on the request: no origin check, the
hybi-13 handshake only (a request that is not a websocket one gets 400 with
x/net's words; another protocol version 400 with ``Sec-WebSocket-Version: 13``).
The attach is then an ordinary one (detachKeys, logs, stream; the container's
stdin, stdout, stderr as the query names them from API 1.42, all three before),
with two differences: the output is never multiplexed -- each write of the
container's, stdout or stderr alike, is one message, binary from API 1.28 (text
before) -- and the client's messages, text or binary, are the container's stdin.

The engine's attach session speaks to a plain stream socket; a bridge thread
here joins it to the websocket (wsproto's framing): the session's output
(docker's stdcopy frames when the container has no tty) becomes messages, the
client's messages its stdin.  When the session ends (the container exited, the
detach keys) the client gets a close frame (1000) and the connection ends; a
client's close frame or hang-up ends the session (no more stdin, as dockerd's
attach sees EOF).
"""

from __future__ import annotations

import select
import socket
import threading

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from pybox.api.server import Request, Response, Router
from pybox.engine.attach import attach_detach_keys
from pybox.engine.engine import Engine
from pybox.errors import BadRequest, Conflict

WS_VERSION = "13"
BRIDGE_JOIN = 10.0  # seconds the handler waits for the bridge to say goodbye


def handshake_headers(req: Request) -> list[tuple[str, str]]:
    """x/net/websocket's hybi-13 checks on the request -> the 101's headers.
    BadRequest with x/net's words when it is not a websocket request."""
    h = req.headers
    if h.get("upgrade", "").lower() != "websocket" or "upgrade" not in h.get(
            "connection", "").lower():
        raise BadRequest("not websocket protocol")
    key = h.get("sec-websocket-key", "")
    if not key:
        raise BadRequest("mismatch challenge/response")
    if h.get("sec-websocket-version", "") != WS_VERSION:
        raise BadRequest("bad protocol version")
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode())]
    offered = h.get("sec-websocket-protocol", "").strip()
    protocols = [p.strip() for p in offered.split(",")] if offered else []
    if len(protocols) > 1:  # dockerd chooses none (x/net: "bad WebSocket protocol")
        raise BadRequest("bad WebSocket protocol")
    if protocols:
        headers.append(("Sec-WebSocket-Protocol", protocols[0]))
    return headers


class Bridge:
    """The websocket on ``sock`` joined to ``inner``, the attach session's end
    of a socket pair.  ``framed``: the session writes stdcopy frames (a
    container without a tty), one message per frame; else each chunk read is
    one.  ``stdin``: the client's messages go to the session (else dropped,
    as dockerd reads no stdin then)."""

    def __init__(self, sock: socket.socket, trailing: bytes, inner: socket.socket, *,
                 framed: bool, binary: bool, stdin: bool) -> None:
        self.sock = sock
        self.inner = inner
        self.framed = framed
        self.binary = binary
        self.stdin = stdin
        self.ws = Connection(ConnectionType.SERVER)
        self.pending = trailing  # client bytes h11 had read past the request
        self.frames = b""  # a partial stdcopy frame from the session
        self.thread = threading.Thread(target=self.run, name="attach-ws", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join(BRIDGE_JOIN)

    def run(self) -> None:
        try:
            self._pump()
        except (OSError, LocalProtocolError):
            pass
        finally:
            for s in (self.inner, self.sock):
                try:
                    s.close()
                except OSError:
                    pass

    def _pump(self) -> None:
        if self.pending and not self._from_client(self.pending):
            return
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.inner.fileno(), select.POLLIN)
        while True:
            for fd, _ev in poller.poll():
                if fd == self.inner.fileno():
                    data = self.inner.recv(65536)
                    if not data:  # the session is over
                        self._close(1000)
                        return
                    self._to_client(data)
                else:
                    data = self.sock.recv(65536)
                    if not data:  # the client hung up: the session ends too
                        return
                    if not self._from_client(data):
                        return

    def _to_client(self, data: bytes) -> None:
        if not self.framed:
            self._message(data)
            return
        self.frames += data
        while len(self.frames) >= 8:
            size = int.from_bytes(self.frames[4:8], "big")
            if len(self.frames) < 8 + size:
                break
            payload, self.frames = self.frames[8:8 + size], self.frames[8 + size:]
            self._message(payload)

    def _message(self, payload: bytes) -> None:
        if not payload or self.ws.state is not ConnectionState.OPEN:
            return
        event: Event = (BytesMessage(data=payload) if self.binary
                        else TextMessage(data=payload.decode(errors="replace")))
        self.sock.sendall(self.ws.send(event))

    def _from_client(self, data: bytes) -> bool:
        """Feed the client's bytes; -> False once the connection is over."""
        try:
            self.ws.receive_data(data)
            events = list(self.ws.events())
        except RemoteProtocolError:
            self._close(1002)
            return False
        for event in events:
            if isinstance(event, Message):
                if self.stdin and event.data:
                    payload = event.data if isinstance(event.data, bytes) else (
                        event.data.encode())
                    self.inner.sendall(payload)
            elif isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    self.sock.sendall(self.ws.send(event.response()))
                return False
        return True

    def _close(self, code: int) -> None:
        if self.ws.state is ConnectionState.OPEN:
            try:
                self.sock.sendall(self.ws.send(CloseConnection(code=code)))
            except OSError:
                pass


def register(router: Router, engine: Engine) -> None:
    @router.route("GET", "/containers/{id}/attach/ws")
    def attach_ws(req: Request, resp: Response, id: str) -> None:
        keys = req.arg("detachKeys")
        attach_detach_keys(keys)  # dockerd checks them first: 400
        c = engine.get(id)
        if c.state.paused:
            raise Conflict(f"container {id} is paused, unpause the container before attach")
        headers = handshake_headers(req)
        if req.api_at_least((1, 42)):
            stdin, stdout, stderr = req.flag("stdin"), req.flag("stdout"), req.flag("stderr")
        else:
            stdin = stdout = stderr = True
        binary = req.api_at_least((1, 28))
        framed = not c.config.get("Tty")
        bridges: list[Bridge] = []
        inners: list[socket.socket] = []  # the session's ends, closed at the end

        def hijack() -> socket.socket:
            sock, trailing = resp.hijack(None, headers, b"Switching Protocols")
            inner, outer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            inners.append(inner)
            bridge = Bridge(sock, trailing, outer, framed=framed, binary=binary, stdin=stdin)
            bridges.append(bridge)
            bridge.start()
            return inner

        try:
            if req.flag("stream"):
                engine.attach(id, hijack, stdin=stdin, stdout=stdout, stderr=stderr,
                              logs=req.flag("logs"), detach_keys=keys)
            elif req.flag("logs"):
                engine.attach_logs(id, hijack(), stdout=stdout, stderr=stderr)
            else:
                hijack().shutdown(socket.SHUT_WR)  # the handshake, then the end
        finally:
            for bridge in bridges:
                bridge.join()
            for inner in inners:
                inner.close()
