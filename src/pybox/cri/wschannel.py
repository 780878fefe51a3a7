"""The websocket channel protocols of Kubernetes' streaming (k8s.io/apiserver's
wsstream, as kubelet's streaming server serves exec, attach and port forward
over a websocket -- what browsers, the Python kubernetes client and kubectl's
websocket executor speak).

One websocket carries numbered channels: every message starts with its
channel's number, the rest is that channel's data.

- binary protocols ("" when the client names none, channel.k8s.io,
  v4.channel.k8s.io, v5.channel.k8s.io): binary messages, the first byte the
  channel;
- base64 protocols (base64.channel.k8s.io, v4.base64.channel.k8s.io): text
  messages, the channel as an ASCII digit ('0' + n), the data base64;
- v5.channel.k8s.io adds the close signal: a message on channel 255 whose
  next byte names a channel the client closed (its stdin's end).

Exec and attach use channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize;
v4 and v5 write a metav1.Status on the error channel (older ones the error's
text).  Once open, the server writes an empty message on the lowest channel it
will write (stdout, else stderr, else error) so the client knows it is
connected.  Port forward uses two channels per port (data, error), each of
which starts with the port, a little-endian uint16.

The server does what golang.org/x/net/websocket's does for wsstream: the
subprotocol is the first of the client's it speaks (none named: the binary ""
one); a client asking only for others gets 403.
"""

from __future__ import annotations

import base64
import binascii
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from pybox.cri import stream_backends as backends
from pybox.cri.spdy import Inbox
from pybox.cri.stream_backends import StreamSet
from pybox.cri.stream_http import Connection, HTTPError, HTTPRequest, IdleWatch
from pybox.errors import PyboxError

WS_VERSION = "13"
CLOSE_CHANNEL = 255  # v5's close signal
STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)

# protocol -> binary framing
REMOTECOMMAND_PROTOCOLS = {"": True, "channel.k8s.io": True, "base64.channel.k8s.io": False,
                           "v4.channel.k8s.io": True, "v4.base64.channel.k8s.io": False,
                           "v5.channel.k8s.io": True}
PORTFORWARD_PROTOCOLS = {"": True, "portforward.k8s.io": True, "v4.channel.k8s.io": True,
                         "v4.base64.channel.k8s.io": False}


def choose_protocol(req: HTTPRequest, supported: dict[str, bool]) -> str:
    """wsstream's handshake: the first protocol the client offers that the
    server speaks; none offered: ""."""
    offered = req.header_values("sec-websocket-protocol") or [""]
    for p in offered:
        if p in supported:
            return p
    raise HTTPError(403, f"requested protocol(s) are not supported: [{' '.join(offered)}]; "
                    f"supports [{' '.join(sorted(supported))}]")


class WsChannel:
    """One numbered channel of a session (pybox.cri.stream_backends.Channel)."""

    def __init__(self, session: WsSession, number: int, readable: bool) -> None:
        self.session = session
        self.number = number
        self.readable = readable
        self.inbox = Inbox()
        self.eof = False

    def read(self, timeout: float | None = None) -> bytes:
        data = self.inbox.get(timeout=timeout)
        if not data:
            self.eof = True
        return data

    def write(self, data: bytes) -> bool:
        return self.session.send(self.number, data)

    def close(self) -> None:
        """A websocket channel has no end of its own (the session's end is everyone's)."""

    def _deliver(self, data: bytes) -> None:
        if data:
            self.inbox.put(data)

    def _end(self) -> None:
        self.inbox.end()


class WsSession:
    """A server websocket (wsproto's framing on the upgraded socket) carrying
    channels.  A reader thread dispatches the client's messages; writers on
    any thread share one lock."""

    def __init__(self, sock: socket.socket, trailing: bytes, protocol: str, binary: bool,
                 readable: Sequence[bool], idle: IdleWatch | None = None) -> None:
        self.sock = sock
        self.idle = idle if idle is not None else IdleWatch(0)
        self.protocol = protocol
        self.binary = binary
        self.ws = WsConnection(ConnectionType.SERVER)
        self.trailing = trailing
        self.lock = threading.Lock()
        self.closed = False
        self.channels = [WsChannel(self, i, r) for i, r in enumerate(readable)]
        self.ended = threading.Event()
        self.reader = threading.Thread(target=self._read_loop, name="cri-ws", daemon=True)
        self.streams = StreamSet()
        self.ports: list[int] = []  # a port forward's, channel pair by channel pair

    def start(self) -> None:
        self.reader.start()

    def send(self, number: int, data: bytes) -> bool:
        if self.binary:
            event: BytesMessage | TextMessage = BytesMessage(data=bytes([number]) + data)
        else:
            event = TextMessage(data=chr(ord("0") + number) + base64.b64encode(data).decode())
        with self.lock:
            if self.closed or self.ws.state is not ConnectionState.OPEN:
                return False
            try:
                self.sock.sendall(self.ws.send(event))
                self.idle.touch()
                return True
            except (OSError, LocalProtocolError):
                self.closed = True
                return False

    def _read_loop(self) -> None:
        parts: list[bytes | str] = []
        try:
            if self.trailing:
                self.ws.receive_data(self.trailing)
            while True:
                for event in self.ws.events():
                    if isinstance(event, Message):
                        parts.append(event.data)
                        if event.message_finished:
                            if isinstance(event, TextMessage):
                                self._message("".join(p for p in parts if isinstance(p, str)))
                            else:
                                self._message(b"".join(p for p in parts if isinstance(p, bytes)))
                            parts = []
                    elif isinstance(event, Ping):
                        self._send_event_bytes(self.ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        if self.ws.state is ConnectionState.REMOTE_CLOSING:
                            self._send_event_bytes(self.ws.send(event.response()))
                        return
                if not self.idle.wait_readable(self.sock):
                    self._shut()
                    return
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.idle.touch()
                self.ws.receive_data(data)
        except (RemoteProtocolError, LocalProtocolError):
            return
        finally:
            for ch in self.channels:
                ch._end()
            self.ended.set()

    def _send_event_bytes(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def _message(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            if not payload:
                return
            number = ord(payload[0]) - ord("0")
            try:
                data = base64.b64decode(payload[1:], validate=False)
            except (binascii.Error, ValueError):
                return
        else:
            if not payload:
                return
            number, data = payload[0], payload[1:]
        if number == CLOSE_CHANNEL and self.protocol == "v5.channel.k8s.io":
            if data and data[0] < len(self.channels):
                self.channels[data[0]]._end()
            return
        if 0 <= number < len(self.channels) and self.channels[number].readable:
            self.channels[number]._deliver(data)

    def _shut(self) -> None:
        """A close frame (1000), then the socket's end: what close() does
        without waiting for the reader (the reader's own close of an idle session)."""
        with self.lock:
            if not self.closed and self.ws.state is ConnectionState.OPEN:
                try:
                    self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
                except (OSError, LocalProtocolError):
                    pass
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """A close frame (1000), the socket's end, the reader's."""
        self._shut()
        self.reader.join(5)


def _upgrade(conn: Connection, req: HTTPRequest, supported: dict[str, bool],
             readable: Sequence[bool]) -> WsSession:
    """The hybi-13 handshake (x/net/websocket's checks), the 101, the session."""
    key = req.header("sec-websocket-key")
    if not key:
        raise HTTPError(400, "mismatch challenge/response")
    if req.header("sec-websocket-version") != WS_VERSION:
        raise HTTPError(400, "bad protocol version", [("Sec-WebSocket-Version", WS_VERSION)])
    protocol = choose_protocol(req, supported)
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode())]
    if protocol:
        headers.append(("Sec-WebSocket-Protocol", protocol))
    trailing = conn.upgrade(headers)
    session = WsSession(conn.sock, trailing, protocol, supported[protocol], readable, conn.idle)
    session.start()
    return session


def open_remote_command(conn: Connection, req: HTTPRequest, *, stdin: bool, stdout: bool,
                        stderr: bool, tty: bool) -> WsSession:
    """An exec or attach websocket: the channels the request asked for, the
    first empty message, ``session.streams`` for the back end."""
    session = _upgrade(conn, req, REMOTECOMMAND_PROTOCOLS,
                       [stdin, False, False, False, tty])
    ch = session.channels
    session.streams = StreamSet(
        stdin=ch[STDIN] if stdin else None, stdout=ch[STDOUT] if stdout else None,
        stderr=ch[STDERR] if stderr else None, error=ch[ERROR],
        resize=ch[RESIZE] if tty else None,
        status_json=session.protocol in ("v4.channel.k8s.io", "v4.base64.channel.k8s.io",
                                         "v5.channel.k8s.io"),
        client_gone=session.ended)
    first = STDOUT if stdout else STDERR if stderr else ERROR
    session.send(first, b"")
    return session


def open_port_forward(conn: Connection, req: HTTPRequest, ports: Sequence[int]) -> WsSession:
    """A port-forward websocket: a data and an error channel per port, each
    starting with the port (little-endian uint16)."""
    session = _upgrade(conn, req, PORTFORWARD_PROTOCOLS, [True, False] * len(ports))
    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        session.send(2 * i, prefix)
        session.send(2 * i + 1, prefix)
    session.ports = list(ports)
    return session


@dataclass
class _PortJob:
    port: int
    data: WsChannel
    error: WsChannel


def serve_port_forward(session: WsSession, pod_id: str, netns_path: Callable[[], str | None]
                       ) -> None:
    """Each port's connection forwarded on its channel pair, until the client
    closes the websocket."""
    try:
        path = netns_path()
    except PyboxError as e:
        for i, port in enumerate(session.ports):
            session.channels[2 * i + 1].write(
                f"error forwarding port {port} to pod {pod_id}, uid : {e}".encode())
        return
    workers = []
    for i, port in enumerate(session.ports):
        job = _PortJob(port, session.channels[2 * i], session.channels[2 * i + 1])
        t = threading.Thread(target=backends.run_port_forward,
                             args=(pod_id, path, job.port, job.data, job.error),
                             name="cri-ws-portforward", daemon=True)
        t.start()
        workers.append(t)
    session.ended.wait()
    for t in workers:
        t.join(backends.PORT_FORWARD_LINGER + 1)
