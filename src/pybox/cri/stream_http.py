"""The streaming server's HTTP/1.1 side: the one request a client sends before
its connection is upgraded (SPDY or websocket), read with h11, and the answers
net/http would give it (http.Error's plain text) when it is refused."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

import h11

REQUEST_TIMEOUT = 30.0  # seconds a connection may take to send its request line and headers
STREAM_IDLE_TIMEOUT = 4 * 3600.0  # containerd's stream_idle_timeout (kubelet's StreamIdleTimeout)
MAX_REQUEST = 64 * 1024


class HTTPError(Exception):
    """An answer before any upgrade: status, text (net/http's http.Error body)
    and extra headers."""

    def __init__(self, status: int, text: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = list(headers)


@dataclass
class HTTPRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, list[str]]  # lower-case names

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def header_values(self, name: str) -> list[str]:
        """Every comma-separated value of every ``name`` header (httpstream's
        commaSeparatedHeaderValues)."""
        out = []
        for v in self.headers.get(name.lower(), []):
            out += [p.strip() for p in v.split(",") if p.strip()]
        return out

    def is_websocket(self) -> bool:
        """wsstream.IsWebSocketRequest."""
        return ("upgrade" in self.header("connection").lower()
                and self.header("upgrade").lower() == "websocket")


def negotiate(req: HTTPRequest, server: Sequence[str]) -> str:
    """httpstream.Handshake: the first of the client's X-Stream-Protocol-Version
    values the server speaks; HTTPError in its words otherwise."""
    client = req.header_values("x-stream-protocol-version")
    if not client:
        raise HTTPError(400, "unable to upgrade: X-Stream-Protocol-Version is required")
    for p in client:
        if p in server:
            return p
    raise HTTPError(403, "unable to upgrade: unable to negotiate protocol: client supports "
                    f"[{' '.join(client)}], server accepts [{' '.join(server)}]",
                    [("X-Accepted-Stream-Protocol-Versions", p) for p in server])


class IdleWatch:
    """kubelet's StreamIdleTimeout for one upgraded connection: a session
    that neither receives nor sends anything for ``timeout`` seconds is
    closed (0: never), so a client that goes quiet does not hold a thread,
    an exec and the connection for ever.  The reader waits with poll (not a
    socket timeout, which would bound the writers' sends too)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last = time.monotonic()

    def touch(self) -> None:
        """Something went either way."""
        self.last = time.monotonic()

    def wait_readable(self, sock: socket.socket) -> bool:
        """True once ``sock`` has data (or an error recv will report); False
        when the connection has been idle for the timeout."""
        if self.timeout <= 0:
            return True
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while True:
            remaining = self.last + self.timeout - time.monotonic()
            if remaining <= 0:
                return False
            try:
                if poller.poll(min(remaining, 3600.0) * 1000):
                    return True
            except (OSError, ValueError):
                return True  # (a closed socket: recv says so)


class Connection:
    """One client connection: its HTTP request read with h11, then handed
    over (the socket and any bytes already read past the request), with the
    idle timeout its session keeps."""

    def __init__(self, sock: socket.socket, idle_timeout: float = STREAM_IDLE_TIMEOUT) -> None:
        self.sock = sock
        self.idle = IdleWatch(idle_timeout)
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)

    def read_request(self) -> HTTPRequest | None:
        self.sock.settimeout(REQUEST_TIMEOUT)
        try:
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    data = self.sock.recv(65536)
                    self.h11.receive_data(data)
                    if not data:
                        return None
                    continue
                if isinstance(event, h11.Request):
                    target = event.target.decode("latin-1")
                    path, _, query = target.partition("?")
                    headers: dict[str, list[str]] = {}
                    for name, value in event.headers:
                        headers.setdefault(name.decode("latin-1").lower(), []).append(
                            value.decode("latin-1"))
                    return HTTPRequest(event.method.decode("latin-1"), path,
                                       parse_qs(query), headers)
                if isinstance(event, h11.ConnectionClosed):
                    return None
        except (OSError, h11.RemoteProtocolError):
            return None
        finally:
            try:
                self.sock.settimeout(None)
            except OSError:
                pass

    def _send(self, *events: h11.Event) -> None:
        for ev in events:
            data = self.h11.send(ev)
            if data:
                self.sock.sendall(data)

    def respond(self, status: int, text: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """net/http's http.Error: text/plain, the text and a newline; then the
        connection ends."""
        body = (text + "\n").encode()
        hdrs = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"),
                ("Content-Length", str(len(body))), ("Connection", "close"), *headers]
        try:
            self._send(h11.Response(status_code=status, headers=hdrs), h11.Data(data=body),
                       h11.EndOfMessage())
        except (OSError, h11.LocalProtocolError, h11.RemoteProtocolError):
            pass

    def upgrade(self, headers: Sequence[tuple[str, str]]) -> bytes:
        """The 101 -> the bytes the client sent after its request."""
        self._send(h11.InformationalResponse(status_code=101, headers=list(headers)))
        return bytes(self.h11.trailing_data[0])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
