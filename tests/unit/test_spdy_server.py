"""The streaming server's protocol plumbing without root: a real
StreamingServer on 127.0.0.1 behind an engine whose exec is a fake (it speaks
the engine's exec contract: docker's stdcopy frames on the client socket, stdin
until its half-close, an exit code), driven by a minimal SPDY/3.1 client and a
websocket client written here -- the same clients tests/cri/test_streaming.py
drives a real pod with.  Plus kubelet's HTTP answers: 404 for an unknown, used
or expired token, 405, protocol negotiation's 400/403, missing upgrade headers,
and the validation words of the URL requests."""

import base64
import json
import queue
import select
import socket
import threading
import time
import urllib.parse

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from pybox.cri import spdy, stream_http, streaming
from pybox.errors import BadRequest, NotFound

pytestmark = pytest.mark.unit

READ_TIMEOUT = 30  # seconds: a safety net against hangs, not a speed check
CRICTL = "/var/tmp/critest/bin/crictl"


# -- a minimal SPDY/3.1 client (client-go's order: each stream waits for its reply) -------------
class ClientStream:
    def __init__(self, client, sid):
        self.client = client
        self.id = sid
        self.replied = threading.Event()
        self.inbox = queue.Queue()
        self.reset = False

    def write(self, data):
        self.client.send(self.client.framer.data(self.id, data))

    def close(self):
        self.client.send(self.client.framer.data(self.id, b"", fin=True))

    def read(self, timeout=READ_TIMEOUT):
        """The next chunk, b"" at the end."""
        return self.inbox.get(timeout=timeout)

    def read_all(self, timeout=READ_TIMEOUT):
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            chunk = self.read(timeout=max(0.1, deadline - time.monotonic()))
            if not chunk:
                return out
            out += chunk

    def read_until(self, needle, timeout=READ_TIMEOUT):
        out = b""
        deadline = time.monotonic() + timeout
        while needle not in out:
            chunk = self.read(timeout=max(0.1, deadline - time.monotonic()))
            if not chunk:
                break
            out += chunk
        return out


def http_upgrade(url, headers):
    """Connect, send the upgrade request -> (socket, status, headers, body or leftover)."""
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=READ_TIMEOUT)
    lines = [f"POST {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    if status != 101:
        sock.settimeout(5)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except OSError:
            pass
        sock.close()
    return sock, status, hdrs, rest


class SpdyClient:
    def __init__(self, url, protocols=("v4.channel.k8s.io", "v3.channel.k8s.io",
                                       "v2.channel.k8s.io", "channel.k8s.io")):
        self.sock, self.status, self.headers, rest = http_upgrade(url, [
            ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", ", ".join(protocols))])
        self.body = rest
        self.framer = spdy.Framer()
        self.lock = threading.Lock()
        self.streams = {}
        self.next_id = 1
        self.goaway = threading.Event()
        self.ended = threading.Event()
        if self.status == 101:
            self.reader = threading.Thread(target=self._read, args=(rest,), daemon=True)
            self.reader.start()

    @property
    def protocol(self):
        return (self.headers.get("x-stream-protocol-version") or [""])[0]

    def send(self, frame):
        with self.lock:
            self.sock.sendall(frame)

    def open(self, headers):
        with self.lock:
            s = ClientStream(self, self.next_id)
            self.streams[s.id] = s
            self.next_id += 2
            self.sock.sendall(self.framer.syn_stream(s.id, {k: [v] for k, v in headers.items()}))
        assert s.replied.wait(READ_TIMEOUT), f"no SYN_REPLY for stream {s.id}"
        return s

    def _read(self, rest):
        try:
            data = rest
            while True:
                for frame in self.framer.feed(data):
                    if isinstance(frame, spdy.SynReply):
                        self.streams[frame.stream_id].replied.set()
                    elif isinstance(frame, spdy.DataFrame):
                        s = self.streams[frame.stream_id]
                        assert s.replied.is_set(), "data before the reply"
                        if frame.data:
                            s.inbox.put(frame.data)
                        if frame.flags & spdy.FLAG_FIN:
                            s.inbox.put(b"")
                    elif isinstance(frame, spdy.RstStream):
                        s = self.streams.get(frame.stream_id)
                        if s is not None:
                            s.reset = True
                            s.replied.set()
                            s.inbox.put(b"")
                    elif isinstance(frame, spdy.GoAway):
                        self.goaway.set()
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
        finally:
            for s in self.streams.values():
                s.inbox.put(b"")
            self.ended.set()

    def close(self):
        try:
            self.send(self.framer.goaway(0))
        except OSError:
            pass
        self.sock.close()


def remote_command(url, *, stdin=False, stdout=True, stderr=True, tty=False, resize=None,
                   protocols=None):
    """client-go's v4 streamProtocol: error, stdin, stdout, stderr, resize streams in
    that order -> (client, {type: stream})."""
    client = SpdyClient(url, **({"protocols": protocols} if protocols else {}))
    assert client.status == 101, client.body
    streams = {"error": client.open({"streamType": "error"})}
    if stdin:
        streams["stdin"] = client.open({"streamType": "stdin"})
    if stdout:
        streams["stdout"] = client.open({"streamType": "stdout"})
    if stderr and not tty:
        streams["stderr"] = client.open({"streamType": "stderr"})
    if tty and client.protocol in ("v3.channel.k8s.io", "v4.channel.k8s.io"):
        streams["resize"] = client.open({"streamType": "resize"})
        if resize:
            streams["resize"].write(json.dumps({"Width": resize[0], "Height": resize[1]}).encode()
                                    + b"\n")
    return client, streams


def collect(client, streams):
    """Every output stream to its end, then the error stream's status."""
    out = {}
    for name in ("stdout", "stderr"):
        if name in streams:
            out[name] = streams[name].read_all()
    status = streams["error"].read_all()
    client.close()
    return out, status


# -- a minimal websocket client ------------------------------------------------------------------
class WsClient:
    def __init__(self, url, subprotocols):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=READ_TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=u.netloc, target=u.path,
                                               subprotocols=list(subprotocols))))
        self.messages = queue.Queue()
        self.accepted = None
        self.rejected = None
        self.closed = threading.Event()
        self._parts = []
        while self.accepted is None and self.rejected is None:
            data = self.sock.recv(65536)
            if not data:
                break
            self.ws.receive_data(data)
            self._events()
        if self.accepted is not None:
            threading.Thread(target=self._read, daemon=True).start()

    def _events(self):
        for ev in self.ws.events():
            if isinstance(ev, AcceptConnection):
                self.accepted = ev.subprotocol or ""
            elif isinstance(ev, RejectConnection):
                self.rejected = ev.status_code
            elif isinstance(ev, RejectData):
                pass
            elif isinstance(ev, (BytesMessage, TextMessage)):
                self._parts.append(ev.data)
                if ev.message_finished:
                    msg = self._parts[0][:0].join(self._parts)
                    self._parts = []
                    self.messages.put(msg)
            elif isinstance(ev, CloseConnection):
                try:
                    self.sock.sendall(self.ws.send(ev.response()))
                except Exception:
                    pass
                self.closed.set()

    def _read(self):
        try:
            while not self.closed.is_set():
                data = self.sock.recv(65536)
                if not data:
                    break
                self.ws.receive_data(data)
                self._events()
        except OSError:
            pass
        finally:
            self.closed.set()
            self.messages.put(None)

    def send(self, channel, data, base64_=False):
        if base64_:
            msg = TextMessage(data=chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            msg = BytesMessage(data=bytes([channel]) + data)
        self.sock.sendall(self.ws.send(msg))

    def channels_until_close(self, base64_=False, timeout=READ_TIMEOUT):
        """Every message until the server closes -> (first message, {channel: bytes})."""
        got = {}
        first = None
        deadline = time.monotonic() + timeout
        while True:
            msg = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if msg is None:
                return first, got
            if base64_:
                ch, data = ord(msg[0]) - ord("0"), base64.b64decode(msg[1:])
            else:
                ch, data = msg[0], msg[1:]
            if first is None:
                first = (ch, data)
            got[ch] = got.get(ch, b"") + data

    def close(self):
        self.sock.close()


# -- a fake engine: the engine's exec contract, no containers ----------------------------------
def stdcopy(stream, data):
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


class FakeExec:
    """Cmd[0] picks the behaviour: out CODE (stdout, stderr, exit CODE), cat
    (stdin echoed on stdout after its end), size (the console size the
    exec was created with), fail (never starts: the engine's error line on
    stdout, 127)."""

    def __init__(self, body):
        self.body = body
        self.pid = 0
        self.exit_code = None
        self.master = None
        self.started = False
        self.resizes = []
        self.stdin_ended = False

    def start(self, client, tty=None):
        self.started = True
        cmd = self.body["Cmd"]
        raw = bool(self.body.get("Tty"))

        def out(stream, data):
            try:
                client.sendall(data if raw else stdcopy(stream, data))
            except OSError:  # the session is gone (the engine drops the output then)
                pass

        if cmd[0] == "fail":
            out(1, b'OCI runtime exec failed: exec failed: unable to start container process: '
                   b'exec: "nosuch": executable file not found in $PATH: unknown\r\n')
            self.exit_code = 127
            return
        self.pid = 4242
        if cmd[0] == "out":
            out(1, b"out\n")
            if not raw:
                out(2, b"err\n")
            self.exit_code = int(cmd[1])
        elif cmd[0] == "cat":
            data = b""
            while self.body.get("AttachStdin"):
                chunk = client.recv(65536)
                if not chunk:
                    self.stdin_ended = True
                    break
                data += chunk
            out(1, data)
            self.exit_code = 0
        elif cmd[0] == "size":
            h, w = self.body.get("ConsoleSize") or (0, 0)
            out(1, f"{h} {w}".encode())
            self.exit_code = 0


class FakeState:
    running = True


class FakeContainer:
    def __init__(self, network_mode):
        self.host_config = {"NetworkMode": network_mode}
        self.config = {"Tty": False}
        self.state = FakeState()


class FakeEngine:
    def __init__(self):
        self.execs = {}
        self.pods = {"hostpod": FakeContainer("host"), "netpod": FakeContainer("none"),
                     "c1": FakeContainer("none")}
        self.attach_ended = threading.Event()

    def exec_create(self, ref, body):
        if ref == "gone":
            raise NotFound("No such container: gone")
        eid = f"e{len(self.execs)}"
        self.execs[eid] = FakeExec(body)
        return eid

    def get_exec(self, eid):
        return self.execs[eid]

    def attach(self, ref, client, *, stdin, stdout, stderr):
        """The engine's attach: output until the client hangs up (POLLHUP)."""
        client.sendall(stdcopy(1, b"attached\n"))
        poller = select.poll()
        poller.register(client.fileno(), 0)
        poller.poll()
        self.attach_ended.set()

    def get(self, ref):
        if ref not in self.pods:
            raise NotFound(f"No such container: {ref}")
        return self.pods[ref]


@pytest.fixture
def server():
    engine = FakeEngine()
    srv = streaming.StreamingServer(engine, lambda pod_id: None)
    srv.start()
    yield srv
    srv.close()


def exec_url(srv, cmd, **kw):
    opts = {"tty": False, "stdin": False, "stdout": True, "stderr": True}
    opts.update(kw)
    return srv.exec_url("c1", cmd, **opts)


def v4_status(raw):
    return json.loads(raw)


# -- exec over SPDY ------------------------------------------------------------------------------
def test_exec_streams_and_exit_code(server):
    client, streams = remote_command(exec_url(server, ["out", "3"]))
    assert client.protocol == "v4.channel.k8s.io"
    out, status = collect(client, streams)
    assert out == {"stdout": b"out\n", "stderr": b"err\n"}
    st = v4_status(status)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert client.goaway.wait(READ_TIMEOUT)  # kubelet closes the connection after the status


def test_exec_success_and_stdin(server):
    client, streams = remote_command(exec_url(server, ["cat"], stdin=True), stdin=True)
    streams["stdin"].write(b"hello ")
    streams["stdin"].write(b"world\n")
    streams["stdin"].close()
    out, status = collect(client, streams)
    assert out["stdout"] == b"hello world\n"
    assert v4_status(status) == {"metadata": {}, "status": "Success"}


def test_exec_that_never_starts_is_an_internal_error(server):
    client, streams = remote_command(exec_url(server, ["fail"]))
    out, status = collect(client, streams)
    assert out == {"stdout": b"", "stderr": b""}  # the engine's error line is not output
    st = v4_status(status)
    assert st["reason"] == "InternalError" and st["code"] == 500
    assert st["message"] == ("Internal error occurred: error executing command in container: "
                             'OCI runtime exec failed: exec failed: unable to start container '
                             'process: exec: "nosuch": executable file not found in $PATH: unknown')


def test_exec_in_a_missing_container(server):
    url = server.exec_url("gone", ["true"], tty=False, stdin=False, stdout=True, stderr=False)
    client, streams = remote_command(url, stderr=False)
    _, status = collect(client, streams)
    assert v4_status(status)["message"] == (
        "Internal error occurred: error executing command in container: No such container: gone")


def test_tty_exec_starts_with_the_clients_size(server):
    url = exec_url(server, ["size"], tty=True, stderr=False)
    client, streams = remote_command(url, tty=True, stderr=False, resize=(100, 30))
    assert set(streams) == {"error", "stdout", "resize"}
    out, status = collect(client, streams)
    assert out["stdout"] == b"30 100"
    assert v4_status(status)["status"] == "Success"


def test_older_protocols_write_the_error_text(server):
    for proto in ("v2.channel.k8s.io", "v3.channel.k8s.io"):
        client, streams = remote_command(exec_url(server, ["out", "4"]), protocols=(proto,))
        assert client.protocol == proto
        out, status = collect(client, streams)
        assert out["stdout"] == b"out\n"
        assert status == b"error executing command [out 4], exit code 4"
        client, streams = remote_command(exec_url(server, ["out", "0"]), protocols=(proto,))
        assert collect(client, streams)[1] == b""


def test_streams_not_made_in_time(server, monkeypatch):
    monkeypatch.setattr(streaming, "STREAM_CREATION_TIMEOUT", 0.3)
    client = SpdyClient(exec_url(server, ["out", "0"]))
    client.open({"streamType": "error"})  # stdout and stderr never come
    assert client.ended.wait(READ_TIMEOUT)
    assert client.goaway.is_set()
    assert not server.engine.execs  # nothing ran


def test_attach_left_by_a_client_that_goes_away(server):
    """The engine's attach ends when the client's connection does (no stdin to
    say so): the container's monitor is not held for nobody."""
    url = server.attach_url("c1", tty=False, stdin=False, stdout=True, stderr=False)
    client, streams = remote_command(url, stderr=False)
    assert streams["stdout"].read_until(b"attached\n") == b"attached\n"
    assert not server.engine.attach_ended.is_set()
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    assert server.engine.attach_ended.wait(READ_TIMEOUT)


# -- the idle timeout (kubelet's StreamIdleTimeout; containerd's stream_idle_timeout) -------------
@pytest.fixture
def idle_server():
    srv = streaming.StreamingServer(FakeEngine(), lambda pod_id: None, idle_timeout=0.5)
    srv.start()
    yield srv
    srv.close()


def exec_ends(srv):
    """Whether the one exec ``srv`` ran sees its stdin end with the session."""
    (only,) = srv.engine.execs.values()
    deadline = time.monotonic() + READ_TIMEOUT
    while not only.stdin_ended and time.monotonic() < deadline:
        time.sleep(0.05)
    return only.stdin_ended


def test_the_default_idle_timeout_is_containerds():
    srv = streaming.StreamingServer(FakeEngine(), lambda pod_id: None)
    assert srv.idle_timeout == 4 * 3600


def test_an_idle_spdy_session_is_closed(idle_server):
    """A client that sends nothing (an exec waiting on its stdin) is cut off:
    the GOAWAY, the connection's end, and the exec's stdin ends with it."""
    client, streams = remote_command(exec_url(idle_server, ["cat"], stdin=True), stdin=True)
    assert client.ended.wait(READ_TIMEOUT)
    assert client.goaway.is_set()
    assert exec_ends(idle_server)


def test_an_idle_websocket_session_is_closed(idle_server):
    ws = WsClient(exec_url(idle_server, ["cat"], stdin=True), ["v4.channel.k8s.io"])
    assert ws.accepted == "v4.channel.k8s.io"
    ws.channels_until_close()  # returns once the server closed the connection
    assert ws.closed.is_set()
    assert exec_ends(idle_server)


def test_idle_watch_counts_from_the_last_traffic():
    a, b = socket.socketpair()
    try:
        watch = stream_http.IdleWatch(1000.0)
        watch.last -= 999.9  # idle for all but 0.1 s of its timeout
        assert watch.wait_readable(a) is False
        watch.touch()  # traffic: a new 1000 s
        b.sendall(b"x")
        assert watch.wait_readable(a) is True
        assert stream_http.IdleWatch(0).wait_readable(a) is True  # 0: no timeout
    finally:
        a.close()
        b.close()


# -- the HTTP side ---------------------------------------------------------------------------
def test_tokens_are_single_use(server):
    url = exec_url(server, ["cat"])
    assert len(urllib.parse.urlsplit(url).path.rsplit("/", 1)[1]) == 11  # 8 bytes, base64url
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"
    client, streams = remote_command(url)
    collect(client, streams)
    again = SpdyClient(url)
    assert (again.status, again.body) == (404, b"404 page not found\n")


def test_unknown_wrong_kind_and_expired_tokens(server, monkeypatch):
    base = server.base_url
    for path in ("exec/nope", "attach/", "exec/a/b", "other/x"):
        assert SpdyClient(base + path).status == 404
    url = server.attach_url("c1", tty=False, stdin=True, stdout=False, stderr=False)
    token = url.rsplit("/", 1)[1]
    assert SpdyClient(base + "exec/" + token).status == 404  # consumed by the wrong kind too
    monkeypatch.setattr(server.cache, "ttl", 0.0)
    assert SpdyClient(exec_url(server, ["cat"])).status == 404


def test_methods(server):
    url = exec_url(server, ["cat"])
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=READ_TIMEOUT)
    s.sendall(f"PUT {u.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 405 ")
    s.close()
    # a request with a body it does not read is answered all the same
    s = socket.create_connection((u.hostname, u.port), timeout=READ_TIMEOUT)
    s.sendall(b"POST /exec/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert s.recv(100).startswith(b"HTTP/1.1 404 ")
    s.close()


def test_negotiation(server):
    _, status, _, body = http_upgrade(exec_url(server, ["cat"]), [
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")])
    assert (status, body) == (400, b"unable to upgrade: X-Stream-Protocol-Version is required\n")
    _, status, headers, body = http_upgrade(exec_url(server, ["cat"]), [
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v9.channel.k8s.io")])
    assert status == 403
    assert headers["x-accepted-stream-protocol-versions"] == [
        "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
    assert body.startswith(b"unable to upgrade: unable to negotiate protocol: client supports "
                           b"[v9.channel.k8s.io], server accepts [v4.channel.k8s.io")
    _, status, _, body = http_upgrade(exec_url(server, ["cat"]), [
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io")])
    assert status == 400
    assert body.startswith(b"unable to upgrade: missing upgrade headers in request")
    _, status, _, _ = http_upgrade(server.port_forward_url("hostpod", [80]), [
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io")])
    assert status == 403


def test_request_validation(server):
    with pytest.raises(BadRequest, match="^tty and stderr cannot both be true$"):
        server.exec_url("c", ["sh"], tty=True, stdin=True, stdout=True, stderr=True)
    with pytest.raises(BadRequest, match="^one of stdin, stdout, or stderr must be set$"):
        server.attach_url("c", tty=False, stdin=False, stdout=False, stderr=False)
    with pytest.raises(BadRequest, match="^missing required container_id$"):
        server.exec_url("", ["sh"], tty=False, stdin=True, stdout=False, stderr=False)
    with pytest.raises(BadRequest, match="^missing required pod_sandbox_id$"):
        server.port_forward_url("", [80])
    assert not server.cache.entries


# -- websockets --------------------------------------------------------------------------------
def test_websocket_exec_v4(server):
    ws = WsClient(exec_url(server, ["out", "3"]), ["v4.channel.k8s.io"])
    assert ws.accepted == "v4.channel.k8s.io"
    first, got = ws.channels_until_close()
    assert first == (1, b"")  # the empty message that says the channels are open
    assert got[1] == b"out\n" and got[2] == b"err\n"
    assert json.loads(got[3])["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_websocket_exec_base64_and_no_protocol(server):
    ws = WsClient(exec_url(server, ["out", "0"]), ["v4.base64.channel.k8s.io"])
    assert ws.accepted == "v4.base64.channel.k8s.io"
    _, got = ws.channels_until_close(base64_=True)
    assert got[1] == b"out\n" and json.loads(got[3]) == {"metadata": {}, "status": "Success"}
    ws = WsClient(exec_url(server, ["out", "2"]), [])
    assert ws.accepted == ""
    _, got = ws.channels_until_close()
    assert got[3] == b"error executing command [out 2], exit code 2"  # (v1's text)


def test_websocket_v5_closes_stdin(server):
    ws = WsClient(exec_url(server, ["cat"], stdin=True), ["v5.channel.k8s.io"])
    assert ws.accepted == "v5.channel.k8s.io"
    ws.send(0, b"via v5\n")
    ws.sock.sendall(ws.ws.send(BytesMessage(data=bytes([255, 0]))))  # close stdin
    _, got = ws.channels_until_close()
    assert got[1] == b"via v5\n" and json.loads(got[3])["status"] == "Success"


def test_websocket_protocol_refused(server):
    ws = WsClient(exec_url(server, ["cat"]), ["v9.channel.k8s.io"])
    assert ws.rejected == 403


# -- port forward (a host-network pod: the listener is this test's) ----------------------------
@pytest.fixture
def upper_listener():
    """An echo service on 127.0.0.1 that answers in upper case each line at
    once and the rest at the connection's end."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)

    def serve():
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"\n"):  # a whole line: answered at once
                    c.sendall(data.upper())
                    data = b""
            c.sendall(data.upper())
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    yield lst.getsockname()[1]
    lst.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_spdy_port_forward(server, upper_listener):
    port = upper_listener
    client = SpdyClient(server.port_forward_url("hostpod", [port]),
                        protocols=("portforward.k8s.io",))
    assert (client.status, client.protocol) == (101, "portforward.k8s.io")
    for rid in ("0", "1"):  # two connections on one session, as client-go makes them
        err = client.open({"streamType": "error", "port": str(port), "requestID": rid})
        data = client.open({"streamType": "data", "port": str(port), "requestID": rid})
        data.write(b"hello " + rid.encode())
        data.close()
        assert data.read_all() == b"HELLO " + rid.encode()
        assert err.read_all() == b""
    closed = free_port()
    err = client.open({"streamType": "error", "port": str(closed), "requestID": "2"})
    data = client.open({"streamType": "data", "port": str(closed), "requestID": "2"})
    message = err.read_all().decode()
    assert message.startswith(f"error forwarding port {closed} to pod hostpod, uid : failed to "
                              f"connect to localhost:{closed} inside namespace")
    assert data.read_all() == b""
    bad = client.open({"streamType": "data", "port": "0", "requestID": "3"})
    assert bad.reset  # kubelet refuses a stream without a valid port
    client.close()


def test_port_forward_to_a_pod_without_network(server):
    client = SpdyClient(server.port_forward_url("netpod", [80]), protocols=("portforward.k8s.io",))
    err = client.open({"streamType": "error", "port": "80", "requestID": "0"})
    client.open({"streamType": "data", "port": "80", "requestID": "0"})
    assert err.read_all() == (b"error forwarding port 80 to pod netpod, uid : network namespace "
                              b"for sandbox 'netpod' is closed")
    client.close()


def test_websocket_port_forward(server, upper_listener):
    port = upper_listener
    ws = WsClient(server.port_forward_url("hostpod", [port]), ["v4.channel.k8s.io"])
    assert ws.accepted == "v4.channel.k8s.io"
    prefix = port.to_bytes(2, "little")
    assert ws.messages.get(timeout=READ_TIMEOUT) == b"\x00" + prefix
    assert ws.messages.get(timeout=READ_TIMEOUT) == b"\x01" + prefix
    ws.send(0, b"over ws\n")
    assert ws.messages.get(timeout=READ_TIMEOUT) == b"\x00OVER WS\n"
    ws.sock.sendall(ws.ws.send(CloseConnection(code=1000)))
    assert ws.closed.wait(READ_TIMEOUT)
