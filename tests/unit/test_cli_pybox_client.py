"""The CLI's HTTP/1.1 client against a scripted fake daemon on a unix socket:
version negotiation, keep-alive, chunked bodies both ways, the 101 hijack,
error shapes; and main()'s exit codes.  No real daemon needed."""

import socket
import threading

import pytest

from pybox.cli.pybox import main
from pybox.cli.pybox.client import APIClient, encode_query
from pybox.cli.pybox.containers import start_error_status
from pybox.errors import DaemonError, DaemonUnreachable

pytestmark = pytest.mark.unit


class FakeDaemon:
    """Answers with ``routes[(method, path-without-version)]`` = callable(request)
    -> raw response bytes; records every request and connection."""

    def __init__(self, path, routes, api_version="1.41"):
        self.path = path
        self.routes = routes
        self.api_version = api_version
        self.requests = []
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = {k.lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in lines[1:])}
                body = b""
                if headers.get("transfer-encoding") == "chunked":
                    while True:
                        while b"\r\n" not in buf:
                            buf += conn.recv(65536)
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line, 16)
                        while len(buf) < size + 2:
                            buf += conn.recv(65536)
                        body += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                else:
                    length = int(headers.get("content-length", 0))
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    body, buf = buf[:length], buf[length:]
                path = target.split("?")[0]
                if path.startswith("/v1."):
                    path = "/" + path.split("/", 2)[2]
                request = {"method": method, "target": target, "headers": headers,
                           "body": body, "path": path}
                self.requests.append(request)
                if path == "/_ping":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: " +
                                 self.api_version.encode() + b"\r\nContent-Length: 0\r\n\r\n")
                    continue
                handler = self.routes.get((method, path))
                if handler is None:
                    conn.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json'
                                 b'\r\nContent-Length: 32\r\n\r\n{"message":"page not found x"}\n\n')
                    continue
                reply = handler(request)
                if reply is None:
                    return
                if callable(reply):
                    reply(conn)
                    return
                conn.sendall(reply)

    def close(self):
        self.sock.close()


def json_reply(text, status="200 OK"):
    data = text.encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def chunked_reply(pieces, status="200 OK"):
    out = f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    for p in pieces:
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.fixture
def fake(tmp_path):
    daemons = []

    def make(routes, api_version="1.41"):
        d = FakeDaemon(str(tmp_path / f"d{len(daemons)}.sock"), routes, api_version)
        daemons.append(d)
        return d
    yield make
    for d in daemons:
        d.close()


def test_negotiation_keepalive_and_query(fake):
    d = fake({("GET", "/containers/json"): lambda r: json_reply("[]")})
    client = APIClient(f"unix://{d.path}")
    assert client.version == "1.41"
    assert client.get_json("/containers/json", {"all": 1, "filters": '{"a":{"b":true}}'}) == []
    assert client.get_json("/containers/json") == []
    assert d.connections == 1      # ping and both requests on one kept-alive connection
    assert d.requests[0]["method"] == "HEAD" and d.requests[0]["target"] == "/_ping"
    assert d.requests[1]["target"] == \
        "/v1.41/containers/json?all=1&filters=%7B%22a%22%3A%7B%22b%22%3Atrue%7D%7D"
    assert d.requests[1]["headers"]["host"] == "api.moby.localhost"
    d2 = fake({}, api_version="1.99")
    assert APIClient(f"unix://{d2.path}").version == "1.44"      # ours is the maximum


def test_query_encoding_like_go():
    assert encode_query({"b": "x y", "a": [1, 2], "c": None, "d": True}) == "a=1&a=2&b=x+y&d=1"


def test_chunked_both_ways_and_json_stream(fake):
    d = fake({("POST", "/images/create"): lambda r: chunked_reply(
        [b'{"status":"sha', b'256:abc"}\n', b'{"status":"done"}\n'])})
    client = APIClient(f"unix://{d.path}")
    resp = client.request("POST", "/images/create", query={"fromSrc": "-"},
                          body=iter([b"part1", b"part2"]))
    assert [m["status"] for m in resp.iter_json()] == ["sha256:abc", "done"]
    req = d.requests[-1]
    assert req["headers"]["transfer-encoding"] == "chunked" and req["body"] == b"part1part2"


def test_errors_and_hijack(fake):
    def upgrade(request):
        return (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03hi\n")
    d = fake({("POST", "/containers/x/attach"): upgrade,
              ("POST", "/containers/y/attach"): lambda r: json_reply("{}"),
              ("DELETE", "/containers/z"): lambda r: json_reply(
                  '{"message":"You cannot remove a running container"}', "409 Conflict")})
    client = APIClient(f"unix://{d.path}")
    stream = client.hijack("/containers/x/attach", query={"stream": 1, "stdout": 1})
    assert stream.recv() == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert d.requests[-1]["headers"]["upgrade"] == "tcp"
    stream.close()
    with pytest.raises(DaemonError, match="unable to upgrade to tcp, received 200"):
        client.hijack("/containers/y/attach")
    with pytest.raises(DaemonError) as e:
        client.request("DELETE", "/containers/z")
    assert e.value.status == 409
    assert str(e.value) == "Error response from daemon: You cannot remove a running container"


def test_unreachable(tmp_path):
    client = APIClient(f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(DaemonUnreachable, match="Cannot connect to the pybox daemon at unix://"):
        client.ping()


def test_start_error_exit_codes():
    assert start_error_status('exec: "/x": stat /x: no such file or directory') == 127
    assert start_error_status('exec: "foo": executable file not found in $PATH') == 127
    assert start_error_status('exec: "/etc/passwd": permission denied') == 126
    assert start_error_status("exec: /: is a directory") == 126
    assert start_error_status("cgroup setup failed") == 125


def test_main_exit_codes(fake, capsys):
    def wait_reply(request):
        return chunked_reply([b'{"Error":null,"StatusCode":7}\n'])
    d = fake({("POST", "/containers/c1/wait"): wait_reply,
              ("POST", "/containers/c1/stop"): lambda r: b"HTTP/1.1 304 Not Modified\r\n\r\n",
              ("POST", "/containers/c2/stop"): lambda r: json_reply(
                  '{"message":"No such container: c2"}', "404 Not Found")})
    host = ["-H", f"unix://{d.path}"]
    assert main(host + ["wait", "c1"]) == 0
    assert capsys.readouterr().out == "7\n"
    assert main(host + ["stop", "c1", "c2"]) == 1        # 304 is success
    out, err = capsys.readouterr()
    assert out == "c1\n" and err == "Error response from daemon: No such container: c2\n"
    assert main(host + ["run", "--bogus", "img"]) == 125
    assert main(host + ["frobnicate"]) == 1
    assert "unknown command: pybox frobnicate" in capsys.readouterr().err
    assert main(host + ["ps", "--help"]) == 0
    assert "Usage:  pybox ps [OPTIONS]" in capsys.readouterr().out


def test_socket_paths_longer_than_sun_path(fake, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    from pybox.linux.unixsock import call
    path = str(deep / "long.sock")
    assert len(path) > 108
    server = socket.socket(socket.AF_UNIX)
    call(server.bind, path)
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: 0\r\n\r\n")
        conn.close()
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    assert APIClient(f"unix://{path}").version == "1.44"
    server.close()
