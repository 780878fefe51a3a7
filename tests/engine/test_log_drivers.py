"""Log drivers as dockerd has them (issue 16 point 5): local (docker's compact
protobuf-framed format, rotated and gzipped, read back by docker logs), syslog
(unix datagram, udp and tcp listeners of the test's own; docker's tag, facility
and formats; docker logs through the dual-logging cache), json-file and none,
each driver's options refused in dockerd's words, and the daemon's default
driver and options for a container created without one.

The expected texts were observed on a private dockerd 20.10
(tests/clients/dockerd.py) running the same commands.
"""

import gzip
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading

import pytest

from support import fixtures
from support.pyboxd import Pyboxd

pytestmark = [pytest.mark.root, pytest.mark.engine]

LINES = "i=0; while [ $i -lt 200 ]; do echo \"line $i 0123456789012345678901234567890123456789\"; " \
        "i=$((i+1)); done"


def container_dir(pyboxd, name: str) -> str:
    return os.path.join(pyboxd.data_root, "containers", pyboxd.inspect(name)["Id"])


def frames(path: str) -> list[tuple[bytes, bytes]]:
    """(message, the raw frame) of each frame of a local-format file: the size
    before and after each message must agree (moby's framing)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    out = []
    i = 0
    while i < len(data):
        (size,) = struct.unpack(">I", data[i:i + 4])
        msg = data[i + 4:i + 4 + size]
        (trailer,) = struct.unpack(">I", data[i + 4 + size:i + 8 + size])
        assert trailer == size and len(msg) == size
        out.append((msg, data[i:i + 8 + size]))
        i += 8 + size
    return out


def attach_logs(pyboxd, name: str) -> list[tuple[int, bytes]]:
    """POST /containers/NAME/attach?logs=1 on a stopped container: its log as
    (stream, data) frames, each stream's consecutive frames joined (read off the
    raw socket: docker-py's attach can lose what came with the headers)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(pyboxd.socket)
        s.sendall(f"POST /containers/{name}/attach?logs=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                  "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"101", b"200"), head
    out: list[tuple[int, bytes]] = []
    while body:
        stream, size = body[0], struct.unpack(">I", body[4:8])[0]
        if out and out[-1][0] == stream:
            out[-1] = (stream, out[-1][1] + body[8:8 + size])
        else:
            out.append((stream, body[8:8 + size]))
        body = body[8 + size:]
    return out


# -- local ---------------------------------------------------------------------------
def test_local_driver_writes_dockers_format_and_logs_reads_it(pyboxd, names):
    name = names()
    pyboxd.ok("run", "--name", name, "--log-driver", "local", "busybox",
              "sh", "-c", "echo out1; echo err1 >&2; echo out2; printf unfinished")
    info = pyboxd.inspect(name)
    assert info["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
    assert info["LogPath"] == ""  # moby keeps the local format out of the API
    path = os.path.join(container_dir(pyboxd, name), "local-logs", "container.log")
    got = frames(path)
    assert len(got) == 4
    # LogEntry: 1 source, 2 time_nano (varint), 3 line; no newline stored
    msg, _ = got[0]
    assert msg.startswith(b"\x0a\x06stdout\x10")
    assert msg.endswith(b"\x1a\x04out1")
    # the unfinished last line is a partial entry (4: partial, 5: its metadata)
    assert b"\x1a\x0aunfinished\x20\x01\x2a" in got[3][0]

    proc = pyboxd.docker("logs", name)
    assert proc.returncode == 0
    assert proc.stdout == "out1\nout2\nunfinished"
    assert proc.stderr == "err1\n"
    # (stdout and stderr are two pipes: their relative order is not defined)
    only_out = names()
    pyboxd.ok("run", "--name", only_out, "--log-driver", "local", "busybox",
              "sh", "-c", "echo out1; echo out2; printf unfinished")
    tail = pyboxd.ok("logs", "--tail", "2", "-t", only_out)
    assert re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) out2\n"
                        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) unfinished", tail), tail
    # --until before the first entry: nothing; --since after the last: nothing
    assert pyboxd.ok("logs", "--until", "2000-01-01T00:00:00Z", name) == ""
    assert pyboxd.ok("logs", "--since", "2100-01-01T00:00:00Z", name) == ""


def test_local_long_line_in_partial_pieces_and_attach_logs(pyboxd, names):
    name = names()
    pyboxd.ok("run", "--name", name, "--log-driver", "local", "busybox", "sh", "-c",
              "i=0; while [ $i -lt 4000 ]; do printf 0123456789; i=$((i+1)); done; echo; "
              "echo short")
    got = frames(os.path.join(container_dir(pyboxd, name), "local-logs", "container.log"))
    # moby's copier: 16 KiB pieces, the same partial id, ordinals 1, 2, 3, the last marked
    assert len(got) == 4
    metas = [re.search(rb"\x2a(.)(.*)$", m, re.S) for m, _ in got[:3]]
    assert all(metas)
    ids = {re.search(rb"\x12\x40([0-9a-f]{64})", m).group(1) for m, _ in got[:3]}
    assert len(ids) == 1
    assert [m[-2:] for m, _ in got[:3]] == [b"\x18\x01", b"\x18\x02", b"\x18\x03"]
    assert b"\x08\x01" in metas[2].group(2) and b"\x08\x01" not in metas[0].group(2)
    line = "0123456789" * 4000
    assert pyboxd.ok("logs", name) == line + "\nshort\n"
    # an attach with logs replays the local log too
    assert attach_logs(pyboxd, name) == [(1, (line + "\nshort\n").encode())]


def test_local_rotation_keeps_max_file_files_gzipped(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--log-driver", "local", "--log-opt", "max-size=1k",
              "--log-opt", "max-file=3", "busybox", "sh", "-c", LINES)
    pyboxd.ok("wait", name)
    logs = os.path.join(container_dir(pyboxd, name), "local-logs")
    assert sorted(os.listdir(logs)) == ["container.log", "container.log.1.gz",
                                        "container.log.2.gz"]
    with open(os.path.join(logs, "container.log.1.gz"), "rb") as f:
        head = f.read(10)
        (xlen,) = struct.unpack("<H", f.read(2))
        extra = json.loads(f.read(xlen))
    assert head[:4] == b"\x1f\x8b\x08\x04"  # gzip, FEXTRA: the last entry's time
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", extra["lastTime"])
    kept = sum(len(frames(os.path.join(logs, n))) for n in os.listdir(logs))
    out = pyboxd.ok("logs", name).splitlines()
    assert 0 < len(out) == kept < 200
    first = 200 - len(out)
    assert out == [f"line {i} 0123456789012345678901234567890123456789"
                   for i in range(first, 200)]
    # --tail walks the files back from their ends, across the compressed ones
    for k in (1, 15, len(out) - 1, len(out) + 5):
        assert pyboxd.ok("logs", "--tail", str(k), name).splitlines() == out[-k:]
    assert pyboxd.ok("logs", "--tail", "0", name) == ""


def test_local_without_compression_and_json_file_with_it(pyboxd, names):
    plain, jf = names(), names()
    pyboxd.ok("run", "--name", plain, "--log-driver", "local", "--log-opt", "max-size=1k",
              "--log-opt", "max-file=2", "--log-opt", "compress=false", "busybox",
              "sh", "-c", LINES)
    assert sorted(os.listdir(os.path.join(container_dir(pyboxd, plain), "local-logs"))) == \
        ["container.log", "container.log.1"]
    pyboxd.ok("run", "--name", jf, "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
              "--log-opt", "compress=true", "busybox", "sh", "-c", LINES)
    cid = pyboxd.inspect(jf)["Id"]
    files = sorted(os.listdir(container_dir(pyboxd, jf)))
    assert f"{cid}-json.log.1.gz" in files and f"{cid}-json.log.2.gz" in files
    out = pyboxd.ok("logs", jf).splitlines()
    assert out[-1] == "line 199 0123456789012345678901234567890123456789"
    assert len(out) > 4  # read through the compressed files, not only the current one


def test_local_follow_until_the_container_stops(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--log-driver", "local", "busybox", "sh", "-c",
              "echo first; sleep 1; echo second; sleep 1; echo third")
    proc = pyboxd.docker("logs", "-f", name, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == "first\nsecond\nthird\n"


def test_local_options_refused_with_dockerds_words(pyboxd, names):
    for opts, message in (
            (["foo=1"], "unknown log opt 'foo' for log driver local"),
            (["max-file=1"], "compression cannot be enabled when max file count is 1"),
            (["max-size=abc"], "invalid value for max-size: abc: invalid size: 'abc'"),
            (["max-file=x"], 'invalid value for max-file: x: strconv.Atoi: parsing "x": '
                             "invalid syntax"),
            (["compress=maybe"], 'error reading compress log option: strconv.ParseBool: '
                                 'parsing "maybe": invalid syntax'),
            (["mode=bogus"], "logger: logging mode not supported: bogus")):
        args = [a for o in opts for a in ("--log-opt", o)]
        proc = pyboxd.docker("create", "--name", names(), "--log-driver", "local", *args,
                             "busybox", "true")
        assert proc.returncode == 1, proc
        assert f"Error response from daemon: {message}" in proc.stderr
    # max-file=1 is fine without compression
    pyboxd.ok("create", "--name", names(), "--log-driver", "local", "--log-opt", "max-file=1",
              "--log-opt", "compress=false", "busybox", "true")


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_details_show_the_attrs_the_options_ask_for(pyboxd, names, driver):
    name, plain = names(), names()
    pyboxd.ok("run", "--name", name, "--log-driver", driver, "--label", "a=1", "--label",
              "b=x y", "--log-opt", "labels=a,b", "--log-opt", "env=E", "-e", "E=v&w",
              "--log-opt", "tag={{.Name}}", "busybox", "echo", "hi")
    # moby's attrsByteSlice: keys sorted, query-escaped, then a space
    assert pyboxd.ok("logs", "--details", name) == f"E=v%26w,a=1,b=x+y,tag={name} hi\n"
    assert pyboxd.ok("logs", name) == "hi\n"
    stamped = pyboxd.ok("logs", "--details", "-t", name)
    assert re.fullmatch(rf"\S+Z E=v%26w,a=1,b=x\+y,tag={name} hi\n", stamped), stamped
    pyboxd.ok("run", "--name", plain, "--log-driver", driver, "busybox", "echo", "hi")
    assert pyboxd.ok("logs", "--details", plain) == " hi\n"
    if driver == "json-file":  # the line as dockerd writes it
        with open(pyboxd.inspect(name)["LogPath"]) as f:
            line = f.read()
        assert re.fullmatch(r'\{"log":"hi\\n","stream":"stdout","attrs":\{"E":"v\\u0026w",'
                            rf'"a":"1","b":"x y","tag":"{name}"\}},"time":"[^"]+"\}}\n', line), line


# -- syslog --------------------------------------------------------------------------
class Listener:
    """A syslog server of the test's own: unixgram, udp or tcp; what it got."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix="pbx-syslog-")
        if kind == "unixgram":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.path = os.path.join(self.dir, "log.sock")
            self.sock.bind(self.path)
            self.address = f"unixgram://{self.path}"
        else:
            self.sock = socket.socket(socket.AF_INET,
                                      socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"{kind}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.settimeout(10)
        self.stream = b""
        self.conn: socket.socket | None = None
        if kind == "tcp":
            self.sock.listen(4)
            self.accepted = threading.Thread(target=self._accept, daemon=True)
            self.accepted.start()

    def _accept(self) -> None:
        try:
            self.conn, _ = self.sock.accept()
            self.conn.settimeout(10)
        except OSError:
            pass

    def messages(self, count: int) -> list[bytes]:
        if self.kind != "tcp":
            return [self.sock.recv(65536) for _ in range(count)]
        self.accepted.join(10)
        assert self.conn is not None, "no connection from the syslog driver"
        while self.stream.count(b"\n") < count:
            chunk = self.conn.recv(65536)
            assert chunk, self.stream
            self.stream += chunk
        return [line + b"\n" for line in self.stream.split(b"\n")[:count]]

    def close(self) -> None:
        for s in (self.conn, self.sock):
            if s is not None:
                s.close()
        if self.kind == "unixgram":
            os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def listener(request):
    made: list[Listener] = []

    def make(kind: str) -> Listener:
        made.append(Listener(kind))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_syslog_unixgram_default_format_tag_and_severities(pyboxd, names, listener):
    srv = listener("unixgram")
    name = names()
    pyboxd.ok("run", "--name", name, "--log-driver", "syslog", "--log-opt",
              f"syslog-address={srv.address}", "busybox",
              "sh", "-c", "echo hello; echo err >&2; echo; printf partial")
    cid = pyboxd.inspect(name)["Id"]
    got = srv.messages(3)
    # srslog's UnixFormatter: <PRI>Stamp TAG[PID]: MSG; daemon facility (3),
    # info (6) for stdout, err (3) for stderr; the tag {{.ID}}; the empty line not sent
    stamp = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    pid = r"\[(\d+)\]"
    assert re.fullmatch(rf"<30>{stamp} {cid[:12]}{pid}: hello\n".encode(), got[0]), got
    assert re.fullmatch(rf"<27>{stamp} {cid[:12]}{pid}: err\n".encode(), got[1]), got
    assert re.fullmatch(rf"<30>{stamp} {cid[:12]}{pid}: partial\n".encode(), got[2]), got
    # docker logs reads the local cache (dual logging), as dockerd 20.10+
    proc = pyboxd.docker("logs", name)
    assert (proc.stdout, proc.stderr) == ("hello\n\npartial", "err\n")
    assert pyboxd.inspect(name)["LogPath"] == ""


def test_syslog_formats_facilities_and_tag_templates(pyboxd, names, listener):
    srv = listener("unixgram")
    host = socket.gethostname()
    a, b, c = names(), names(), names()
    pyboxd.ok("run", "--name", a, "--log-driver", "syslog", "--log-opt",
              f"syslog-address={srv.address}", "--log-opt", "syslog-format=rfc3164",
              "--log-opt", "tag={{.Name}}/{{.ImageName}}", "busybox", "echo", "h1")
    pyboxd.ok("run", "--name", b, "--log-driver", "syslog", "--log-opt",
              f"syslog-address={srv.address}", "--log-opt", "syslog-format=rfc5424micro",
              "--log-opt", "syslog-facility=local3", "busybox", "echo", "h2")
    pyboxd.ok("run", "--name", c, "--log-driver", "syslog", "--log-opt",
              f"syslog-address={srv.address}", "--log-opt", "syslog-format=rfc5424",
              "--log-opt", "syslog-facility=7", "--log-opt", "tag=x{{ .FullID }}",
              "busybox", "echo", "h3")
    got = srv.messages(3)
    assert re.fullmatch(rf"<30>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d {host} {a}/busybox"
                        rf"\[\d+\]: h1\n".encode(), got[0]), got
    short = pyboxd.inspect(b)["Id"][:12]
    # moby's rfc5424 with the tag as app name and msgid; local3 = 19: 19*8+6
    assert re.fullmatch(rf"<158>1 \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}(Z|[+-]\d\d:\d\d) "
                        rf"{host} {short} \d+ {short} - h2\n".encode(), got[1]), got
    full = "x" + pyboxd.inspect(c)["Id"]
    assert re.fullmatch(rf"<62>1 \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) "
                        rf"{host} {full} \d+ {full} - h3\n".encode(), got[2]), got


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_syslog_over_the_network(pyboxd, names, listener, kind):
    srv = listener(kind)
    name = names()
    pyboxd.ok("run", "--name", name, "--log-driver", "syslog", "--log-opt",
              f"syslog-address={srv.address}", "--log-opt", "syslog-facility=user",
              "--log-opt", "tag=web", "busybox", "sh", "-c", "echo one; echo two")
    got = srv.messages(2)
    assert [re.sub(rb"^<(\d+)>.* web\[\d+\]: ", rb"\1 ", m) for m in got] == \
        [b"14 one\n", b"14 two\n"]


def test_syslog_over_tls_with_rfc5425_framing(pyboxd, names, tmp_path):
    ssl = pytest.importorskip("ssl")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out",
                    "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], cwd=tmp_path, check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    got: list[bytes] = []

    def serve(server: socket.socket) -> None:
        conn, _ = server.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            got.append(data)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(20)
        thread = threading.Thread(target=serve, args=(server,), daemon=True)
        thread.start()
        name = names()
        pyboxd.ok("run", "--name", name, "--log-driver", "syslog", "--log-opt",
                  f"syslog-address=tcp+tls://127.0.0.1:{server.getsockname()[1]}",
                  "--log-opt", f"syslog-tls-ca-cert={tmp_path / 'cert.pem'}",
                  "--log-opt", "syslog-format=rfc5424", "--log-opt", "tag=tls",
                  "busybox", "sh", "-c", "echo one; echo two")
        thread.join(20)
    # the TLS files are read before the dial, go-connections' words
    proc = pyboxd.docker("run", "--name", names(), "--log-driver", "syslog", "--log-opt",
                         "syslog-address=tcp+tls://127.0.0.1:1", "--log-opt",
                         "syslog-tls-ca-cert=/pbx-no-such-ca.pem", "busybox", "true")
    assert proc.returncode == 127  # (the CLI's code for "no such file or directory")
    assert ('failed to initialize logging driver: could not read CA certificate '
            '"/pbx-no-such-ca.pem": open /pbx-no-such-ca.pem: no such file or directory'
            in proc.stderr)
    # RFC 5425: each message preceded by its length and a space
    data = got[0]
    messages = []
    while data:
        size, _, rest = data.partition(b" ")
        messages.append(rest[:int(size)])
        data = rest[int(size):]
    assert [re.sub(rb"^<30>1 \S+ \S+ tls \d+ tls - ", b"", m) for m in messages] == \
        [b"one\n", b"two\n"], got


def test_syslog_refusals_and_no_reading_without_the_cache(pyboxd, names, listener):
    srv = listener("unixgram")
    for opts, message in (
            (["syslog-address=unixgram:///pbx-no-such-socket"],
             "stat /pbx-no-such-socket: no such file or directory"),
            (["syslog-address=foo://x"],
             "syslog-address should be in form proto://address, got foo://x"),
            (["syslog-facility=bogus"], "invalid syslog facility"),
            (["syslog-format=bogus"], "Invalid syslog format"),
            (["max-size=1m"], "unknown log opt 'max-size' for syslog log driver"),
            (["cache-disabled=maybe"], "invalid value for option cache-disabled: maybe")):
        args = [a for o in opts for a in ("--log-opt", o)]
        proc = pyboxd.docker("create", "--name", names(), "--log-driver", "syslog", *args,
                             "busybox", "true")
        assert proc.returncode == 1, proc
        assert f"Error response from daemon: {message}" in proc.stderr
    # a server that is not there: the start fails, and the container is not running
    refused = names()
    proc = pyboxd.docker("run", "--name", refused, "--log-driver", "syslog", "--log-opt",
                         "syslog-address=tcp://127.0.0.1:1", "busybox", "true")
    assert proc.returncode == 125
    assert ("Error response from daemon: failed to initialize logging driver: "
            "dial tcp 127.0.0.1:1: connect: connection refused") in proc.stderr
    assert pyboxd.inspect(refused)["State"]["Running"] is False
    # no address and no local syslog socket: srslog's words
    if not any(os.path.exists(p) and not os.path.isdir(p)
               for p in ("/dev/log", "/var/run/syslog", "/var/run/log")):
        proc = pyboxd.docker("run", "--name", names(), "--log-driver", "syslog", "busybox",
                             "true")
        assert proc.returncode == 125
        assert ("failed to initialize logging driver: Unix syslog delivery error"
                in proc.stderr)
    # with the cache disabled docker logs cannot read it back
    name = names()
    pyboxd.ok("run", "--name", name, "--log-driver", "syslog", "--log-opt",
              f"syslog-address={srv.address}", "--log-opt", "cache-disabled=true",
              "busybox", "echo", "x")
    assert srv.messages(1)[0].endswith(b": x\n")
    proc = pyboxd.docker("logs", name)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("Error response from daemon: configured logging driver "
                                   "does not support reading")


# -- none, unknown, json-file --------------------------------------------------------
def test_none_and_unknown_drivers(pyboxd, names, dockerpy):
    docker = pytest.importorskip("docker")
    name = names()
    assert pyboxd.ok("run", "--name", name, "--log-driver", "none", "busybox",
                     "echo", "x") == "x\n"
    assert pyboxd.inspect(name)["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    proc = pyboxd.docker("logs", name)
    assert proc.returncode == 1
    assert "configured logging driver does not support reading" in proc.stderr
    status, body = pyboxd.api("GET", f"/containers/{name}/logs?stdout=1")
    assert status == 501  # dockerd's errdefs.NotImplemented
    # dockerd looks an unknown driver up as a plugin (its message in both 20.10 and 28)
    proc = pyboxd.docker("run", "--name", names(), "--log-driver", "foo", "busybox", "true")
    assert proc.returncode == 125
    assert ('Error response from daemon: error looking up logging plugin foo: plugin "foo" '
            "not found") in proc.stderr
    with pytest.raises(docker.errors.APIError) as e:
        dockerpy.api.create_container("busybox", ["true"], name=names(),
                                      host_config=dockerpy.api.create_host_config(
                                          log_config=docker.types.LogConfig(type="asdf")))
    assert e.value.explanation == 'error looking up logging plugin asdf: plugin "asdf" not found'


def test_json_file_options(pyboxd, names):
    proc = pyboxd.docker("create", "--name", names(), "--log-opt", "compress=true",
                         "--log-opt", "max-file=1", "busybox", "true")
    assert proc.returncode == 1
    assert "compress cannot be true when max-file is less than 2" in proc.stderr
    proc = pyboxd.docker("create", "--name", names(), "--log-opt", "syslog-address=udp://x:1",
                         "busybox", "true")
    assert "unknown log opt 'syslog-address' for json-file log driver" in proc.stderr


# -- the daemon's default ------------------------------------------------------------
def test_daemon_default_driver_and_options(names):
    daemon = Pyboxd(extra_args=["--log-driver", "local", "--log-opt", "max-size=2k",
                                "--log-opt", "max-file=2"])
    with fixtures.running(daemon) as d:
        a, b = "pbx-h5-default-a", "pbx-h5-default-b"
        try:
            d.ok("run", "--name", a, "busybox", "sh", "-c", LINES)
            info = d.inspect(a)
            assert info["HostConfig"]["LogConfig"] == {
                "Type": "local", "Config": {"max-file": "2", "max-size": "2k"}}
            logs = os.path.join(d.data_root, "containers", info["Id"], "local-logs")
            assert sorted(os.listdir(logs)) == ["container.log", "container.log.1.gz"]
            assert d.ok("logs", "--tail", "1", a) == \
                "line 199 0123456789012345678901234567890123456789\n"
            # another driver: the daemon's options are not its
            d.ok("create", "--name", b, "--log-driver", "json-file", "busybox", "true")
            assert d.inspect(b)["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                               "Config": {}}
        finally:
            d.docker("rm", "-f", a, b)
