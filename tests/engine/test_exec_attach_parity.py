"""docker exec and attach as dockerd serves them (issue 16): an exec that cannot
start (126/127 after a create that succeeded), the output framed per the
exec-START request's Tty, the detach keys (ctrl-p,ctrl-q when none are named;
an exec's own DetachKeys), and the websocket attach (GET
/containers/{id}/attach/ws) driven by a websocket client written here with
wsproto.  The expected bytes are what a Debian dockerd answers to the same
requests (the framing combinations were recorded against one)."""

import json
import socket
import time

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

from support.paths import DOCKER, IMAGE, pybox_argv
from support.pty import PtyProcess
from support.unixhttp import api
from support.wait import settle

pytestmark = [pytest.mark.root, pytest.mark.engine]

docker = pytest.importorskip("docker", reason="docker-py (./install.sh --dev)")

CTRL_P, CTRL_Q, CTRL_X = b"\x10", b"\x11", b"\x18"


@pytest.fixture
def sleeper(pyboxd, names):
    """A running container to exec in."""
    name = names("ex")
    pyboxd.ok("run", "-d", "--name", name, IMAGE, "sleep", "600")
    return name


def cat_container(pyboxd, names, *flags):
    name = names("cat")
    pyboxd.ok("run", "-d", "-i", *flags, "--name", name, IMAGE, "cat")
    return name


# -- a raw HTTP client for the hijacked streams ----------------------------------------------
def upgraded(pyboxd, method, path, body=None, timeout=20):
    """Send an upgrade request; -> (socket, status, headers, bytes read past them)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(pyboxd.socket)
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
            f"Upgrade: tcp\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    s.sendall(head + data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before the response head: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return s, status, headers, rest


def read_to_end(s, data=b""):
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def frames(data):
    """docker's multiplexed stream -> [(stream, payload)]; fails on anything else."""
    out = []
    while data:
        assert len(data) >= 8 and data[1:4] == b"\0\0\0" and data[0] in (0, 1, 2), data
        size = int.from_bytes(data[4:8], "big")
        out.append((data[0], data[8:8 + size]))
        data = data[8 + size:]
    return out


def exec_create(pyboxd, container, body, version="1.44"):
    status, reply = api(pyboxd.socket, "POST", f"/v{version}/containers/{container}/exec",
                        body)
    assert status == 201, reply
    return reply["Id"]


def exec_inspect(pyboxd, eid):
    status, reply = api(pyboxd.socket, "GET", f"/v1.44/exec/{eid}/json")
    assert status == 200, reply
    return reply


# -- an exec that cannot start ---------------------------------------------------------------
def test_unknown_user_fails_the_start_with_126_docker_cli(pyboxd, sleeper):
    for flags in ((), ("-t",), ("-i",)):
        p = pyboxd.docker("exec", *flags, "-u", "nosuchuser", sleeper, "true")
        assert p.returncode == 126, (flags, p)
        assert "unable to find user nosuchuser: no matching entries in passwd file" in p.stdout
    p = pyboxd.docker("exec", "-d", "-u", "nosuchuser", sleeper, "true")
    assert p.returncode == 1
    assert ("Error response from daemon: unable to find user nosuchuser: no matching entries "
            "in passwd file") in p.stderr


def test_unknown_user_exec_inspect_after_attached_and_detached_start(dockerpy, sleeper):
    api_ = dockerpy.api
    e = api_.exec_create(sleeper, ["true"], user="nosuchuser")  # accepted: no 400 at create
    out = api_.exec_start(e["Id"])
    assert out == b"unable to find user nosuchuser: no matching entries in passwd file\r\n"
    info = api_.exec_inspect(e["Id"])
    assert (info["ExitCode"], info["Running"], info["Pid"]) == (126, False, 0)
    with pytest.raises(docker.errors.APIError) as err:
        api_.exec_start(e["Id"], detach=True)
    assert err.value.status_code == 409
    assert f"exec command {e['Id']} has already run" in str(err.value.explanation)

    e = api_.exec_create(sleeper, ["true"], user="nosuchuser")
    with pytest.raises(docker.errors.APIError) as err:
        api_.exec_start(e["Id"], detach=True)
    assert err.value.status_code == 500
    assert err.value.explanation == ("unable to find user nosuchuser: no matching entries in "
                                     "passwd file")
    info = api_.exec_inspect(e["Id"])
    assert (info["ExitCode"], info["Running"]) == (126, False)


def test_missing_program_is_127_with_the_oci_runtime_message(pyboxd, dockerpy, sleeper):
    message = ('OCI runtime exec failed: exec failed: unable to start container process: '
               'exec: "nosuchcmd": executable file not found in $PATH: unknown')
    for flags in ((), ("-t",)):
        p = pyboxd.docker("exec", *flags, sleeper, "nosuchcmd")
        assert p.returncode == 127, (flags, p)
        assert message in p.stdout
    e = dockerpy.api.exec_create(sleeper, ["nosuchcmd"])
    with pytest.raises(docker.errors.APIError) as err:
        dockerpy.api.exec_start(e["Id"], detach=True)
    assert err.value.status_code == 400 and err.value.explanation == message
    assert dockerpy.api.exec_inspect(e["Id"])["ExitCode"] == 127
    # a program that cannot be executed: 126, as docker's EACCES
    e = dockerpy.api.exec_create(sleeper, ["/etc/passwd"])
    assert b"permission denied" in dockerpy.api.exec_start(e["Id"])
    assert dockerpy.api.exec_inspect(e["Id"])["ExitCode"] == 126


def test_detached_exec_on_a_terminal(pyboxd, dockerpy, sleeper):
    """docker exec -d -t: runs (the runtime's terminal needs no client), its
    exit recorded; a failure to start is still the HTTP error."""
    p = pyboxd.docker("exec", "-d", "-t", sleeper, "sh", "-c", "tty > /tmp/tty-of-exec")
    assert p.returncode == 0, p.stderr
    assert pyboxd.ok("exec", sleeper, "cat", "/tmp/tty-of-exec").startswith("/dev/pts/")
    e = dockerpy.api.exec_create(sleeper, ["sh", "-c", "exit 5"], tty=True)
    dockerpy.api.exec_start(e["Id"], detach=True)
    assert settle(lambda: dockerpy.api.exec_inspect(e["Id"])["ExitCode"] == 5)
    p = pyboxd.docker("exec", "-d", "-t", sleeper, "nosuchcmd")
    assert p.returncode == 1 and "executable file not found" in p.stderr


def test_exit_code_of_a_started_exec_is_its_own(pyboxd, sleeper):
    assert pyboxd.docker("exec", sleeper, "sh", "-c", "exit 3").returncode == 3
    assert pyboxd.docker("exec", "-t", sleeper, "sh", "-c", "exit 4").returncode == 4


# -- framing: the start request's Tty --------------------------------------------------------
@pytest.mark.parametrize("create_tty,start_tty", [(False, False), (False, True), (True, False),
                                                  (True, True)])
def test_output_framing_follows_the_exec_start_tty(pyboxd, sleeper, create_tty, start_tty):
    eid = exec_create(pyboxd, sleeper, {"Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                        "Tty": create_tty, "AttachStdout": True,
                                        "AttachStderr": True})
    s, status, headers, rest = upgraded(pyboxd, "POST", f"/v1.44/exec/{eid}/start",
                                        {"Detach": False, "Tty": start_tty})
    with s:
        body = read_to_end(s, rest)
    assert status == 101
    if start_tty:
        assert headers["content-type"] == "application/vnd.docker.raw-stream"
        # a pipe process's stderr is not sent when the start asked for a raw stream
        assert body == (b"out\r\nerr\r\n" if create_tty else b"out\n")
    else:
        assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
        got = frames(body)
        if create_tty:  # the terminal's one stream, framed as stdout
            assert {stream for stream, _ in got} == {1}
            assert b"".join(p for _, p in got) == b"out\r\nerr\r\n"
        else:
            assert sorted(got) == [(1, b"out\n"), (2, b"err\n")]
    assert exec_inspect(pyboxd, eid)["ExitCode"] == 0


def framed_output(daemon, container, create_tty, start_tty, version):
    """One exec's stream on ``daemon`` -> (media type, what it carries: the
    frames' streams and bytes, or the raw bytes)."""
    eid = exec_create(daemon, container, {"Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                          "Tty": create_tty, "AttachStdout": True,
                                          "AttachStderr": True}, version)
    s, status, headers, rest = upgraded(daemon, "POST", f"/v{version}/exec/{eid}/start",
                                        {"Detach": False, "Tty": start_tty})
    with s:
        body = read_to_end(s, rest)
    assert status == 101
    if start_tty:
        return headers["content-type"], body
    got = frames(body)
    streams = sorted({stream for stream, _ in got})
    per_stream = {n: b"".join(p for stream, p in got if stream == n) for n in streams}
    return headers["content-type"], streams, per_stream


def test_framing_as_a_real_dockerd(pyboxd, dockerd, names):
    """The four create/start Tty combinations on both daemons, API 1.41 (the
    Debian dockerd's): the same media type and the same bytes on each stream."""
    name = names("fr")
    pyboxd.ok("run", "-d", "--name", name, IMAGE, "sleep", "600")
    dockerd.docker("run", "-d", "--name", name, IMAGE, "sleep", "600", check=True)
    try:
        for create_tty in (False, True):
            for start_tty in (False, True):
                ours = framed_output(pyboxd, name, create_tty, start_tty, "1.41")
                theirs = framed_output(dockerd, name, create_tty, start_tty, "1.41")
                assert ours == theirs, (create_tty, start_tty)
        # an exec that cannot start: the same words and exit status from the docker CLI
        for flags in ((), ("-t",)):
            ours = pyboxd.docker("exec", *flags, "-u", "nosuchuser", name, "true")
            theirs = dockerd.docker("exec", *flags, "-u", "nosuchuser", name, "true")
            # (pyboxd.docker reads text with universal newlines: the "\r\n" is "\n")
            theirs_out = theirs.stdout.replace("\r\n", "\n")
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs_out) == (
                126, "unable to find user nosuchuser: no matching entries in passwd file\n")
    finally:
        dockerd.docker("rm", "-f", name)


def test_exec_console_size_from_start_or_create(pyboxd, sleeper):
    """The terminal has its size before the program runs (no resize call)."""
    for create_size, start_size, want in (([30, 100], None, b"30 100"),
                                          ([30, 100], [41, 120], b"41 120")):
        eid = exec_create(pyboxd, sleeper, {"Cmd": ["stty", "size"], "Tty": True,
                                            "AttachStdout": True, "ConsoleSize": create_size})
        start = {"Detach": False, "Tty": True}
        if start_size:
            start["ConsoleSize"] = start_size
        s, status, _, rest = upgraded(pyboxd, "POST", f"/v1.44/exec/{eid}/start", start)
        with s:
            assert read_to_end(s, rest).strip() == want


def test_dockerpy_exec_run_tty_and_not(dockerpy, sleeper):
    c = dockerpy.containers.get(sleeper)
    code, out = c.exec_run(["sh", "-c", "echo out; echo err >&2"], tty=True)
    assert (code, out) == (0, b"out\r\nerr\r\n")
    code, (out, err) = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert (code, out, err) == (0, b"out\n", b"err\n")


# -- detach keys -----------------------------------------------------------------------------
def detaches(sock, keys):
    """Type ``keys`` one at a time; -> whether the daemon then ended the stream."""
    for key in keys:
        sock.sendall(key)
        time.sleep(0.2)
    sock.settimeout(10)
    try:
        return read_to_end(sock) is not None
    except TimeoutError:
        return False


def echoed(sock, text, want):
    """Send ``text`` and read until ``want`` came back (the tty's echo or cat's copy)."""
    sock.sendall(text)
    sock.settimeout(10)
    seen = b""
    while want not in seen:
        chunk = sock.recv(65536)
        assert chunk, f"stream ended; got {seen!r}"
        seen += chunk
    return seen


def test_exec_default_detach_keys_leave_the_exec_running(pyboxd, names):
    name = cat_container(pyboxd, names)
    eid = exec_create(pyboxd, name, {"Cmd": ["cat"], "Tty": True, "AttachStdin": True,
                                     "AttachStdout": True})
    s, status, _, rest = upgraded(pyboxd, "POST", f"/v1.44/exec/{eid}/start",
                                  {"Detach": False, "Tty": True})
    with s:
        assert status == 101
        echoed(s, b"hello\n", b"hello")
        assert detaches(s, [CTRL_P, CTRL_Q])
    info = exec_inspect(pyboxd, eid)
    assert info["Running"] is True and info["ExitCode"] is None
    assert pyboxd.inspect(name)["State"]["Running"] is True


def test_exec_own_detach_keys(pyboxd, names):
    name = cat_container(pyboxd, names)
    eid = exec_create(pyboxd, name, {"Cmd": ["cat"], "Tty": True, "AttachStdin": True,
                                     "AttachStdout": True, "DetachKeys": "ctrl-x"})
    assert exec_inspect(pyboxd, eid)["DetachKeys"] == "ctrl-x"
    s, status, _, rest = upgraded(pyboxd, "POST", f"/v1.44/exec/{eid}/start",
                                  {"Detach": False, "Tty": True})
    with s:
        echoed(s, CTRL_P + CTRL_Q + b"still here\n", b"still here")  # not the keys now
        assert detaches(s, [CTRL_X])
    assert exec_inspect(pyboxd, eid)["Running"] is True


@pytest.mark.parametrize("cli", ["docker", "pybox"])
def test_exec_it_detach_keys_on_a_terminal(pyboxd, sleeper, cli):
    """docker exec -it, ctrl-p ctrl-q: `read escape sequence`, exit status 1,
    the exec's shell still there (the pybox CLI as the docker CLI)."""
    argv = [DOCKER] if cli == "docker" else pybox_argv()
    env = dict(pyboxd.cli_env, PYBOX_HOST=pyboxd.host)
    term = PtyProcess([*argv, "exec", "-it", sleeper, "sh"], env)
    try:
        term.expect("# ")
        term.send("echo marker-$((6*7))\n")
        term.expect("marker-42")
        term.send(CTRL_P)
        term.send(CTRL_Q)
        assert term.wait(30) == 1
        assert term.output.rstrip().endswith(b"read escape sequence")
    finally:
        term.close()
    ps = pyboxd.ok("exec", sleeper, "ps", "-o", "args")
    assert "sh" in ps.split("\n")[1:], ps  # the detached shell runs on


def test_invalid_exec_detach_keys_refused_at_create(pyboxd, sleeper):
    status, reply = api(pyboxd.socket, "POST", f"/v1.44/containers/{sleeper}/exec",
                        {"Cmd": ["true"], "DetachKeys": "foo"})
    assert (status, reply) == (500, {"message": "Invalid escape keys (foo) provided"})
    p = pyboxd.docker("exec", "--detach-keys", "ctrl-", sleeper, "true")
    assert p.returncode == 1
    assert "Invalid escape keys (ctrl-) provided" in p.stderr


def test_attach_default_detach_keys(pyboxd, dockerpy, names):
    name = cat_container(pyboxd, names, "-t")
    sock = dockerpy.api.attach_socket(name, {"stdin": 1, "stdout": 1, "stream": 1})
    s = sock._sock
    try:
        echoed(s, b"typed\n", b"typed")
        assert detaches(s, [CTRL_P, CTRL_Q])
    finally:
        sock.close()
    assert pyboxd.inspect(name)["State"]["Running"] is True


def test_attach_named_detach_keys_and_invalid_ones(pyboxd, dockerpy, names):
    name = cat_container(pyboxd, names, "-t")
    sock = dockerpy.api.attach_socket(name, {"stdin": 1, "stdout": 1, "stream": 1,
                                             "detachKeys": "ctrl-x,x"})
    s = sock._sock
    try:
        echoed(s, CTRL_P + CTRL_Q + b"abc\n", b"abc")
        assert detaches(s, [CTRL_X, b"x"])
    finally:
        sock.close()
    assert pyboxd.inspect(name)["State"]["Running"] is True
    for keys in ("foo", "ctrl-P", "ctrl-p,,"):  # (moby/term: lower-case names, no empty key)
        status, reply = api(pyboxd.socket, "POST",
                            f"/v1.44/containers/{name}/attach?stream=1&stdin=1&detachKeys={keys}")
        assert (status, reply) == (400, {"message": f"Invalid detach keys ({keys}) provided"})


# -- websocket attach ------------------------------------------------------------------------
class WsClient:
    """A websocket client (wsproto) on pyboxd's unix socket."""

    def __init__(self, pyboxd, target, headers=()):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(pyboxd.socket)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="localhost", target=target,
                                               extra_headers=list(headers))))
        self.events = []

    def next_event(self):
        while not self.events:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.events.extend(self.ws.events())
            if not data and not self.events:
                raise AssertionError("connection closed")
        return self.events.pop(0)

    def accepted(self):
        event = self.next_event()
        assert isinstance(event, AcceptConnection), event
        return event

    def send(self, data):
        self.sock.sendall(self.ws.send(BytesMessage(data=data) if isinstance(data, bytes)
                                       else TextMessage(data=data)))

    def messages_until_close(self):
        """-> ([(kind, payload)], close code)."""
        got = []
        while True:
            event = self.next_event()
            if isinstance(event, CloseConnection):
                try:  # (the server may close the connection right after its close frame)
                    self.sock.sendall(self.ws.send(event.response()))
                except OSError:
                    pass
                return got, event.code
            kind = "binary" if isinstance(event, BytesMessage) else "text"
            got.append((kind, bytes(event.data) if kind == "binary" else event.data))

    def close(self):
        self.sock.close()


def test_websocket_attach_output_not_multiplexed(pyboxd, names):
    name = names("ws")
    line = "hi there and stuff and things, words!"
    pyboxd.ok("create", "--name", name, IMAGE, "sh", "-c", f"printf '{line}'; sleep 1; "
              "printf 'to stderr' >&2")
    ws = WsClient(pyboxd, f"/v1.44/containers/{name}/attach/ws?stream=1&stdout=1&stderr=1")
    try:
        ws.accepted()
        pyboxd.ok("start", name)
        got, code = ws.messages_until_close()
    finally:
        ws.close()
    # raw payloads (no stdcopy header), binary messages (API >= 1.28), a normal close
    assert got == [("binary", line.encode()), ("binary", b"to stderr")]
    assert code == 1000


def test_websocket_attach_stdin_and_detach(pyboxd, names):
    name = cat_container(pyboxd, names, "-t")
    ws = WsClient(pyboxd, f"/v1.44/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1")
    try:
        ws.accepted()
        ws.send(b"binary in\n")
        seen = b""
        while b"binary in" not in seen:
            event = ws.next_event()
            assert isinstance(event, BytesMessage), event
            seen += bytes(event.data)
        ws.send("text in\n")  # a text message is stdin too
        seen = b""
        while b"text in" not in seen:
            seen += bytes(ws.next_event().data)
        ws.send(CTRL_P + CTRL_Q)  # the default detach keys
        _, code = ws.messages_until_close()
        assert code == 1000
    finally:
        ws.close()
    assert pyboxd.inspect(name)["State"]["Running"] is True


def test_websocket_attach_streams_chosen_by_query_and_old_api(pyboxd, names):
    name = names("ws")
    pyboxd.ok("run", "--name", name, IMAGE, "sh", "-c", "echo out; echo err >&2")
    # logs only: the log so far, then the end; stderr not asked for (API >= 1.42)
    ws = WsClient(pyboxd, f"/v1.44/containers/{name}/attach/ws?logs=1&stdout=1")
    try:
        ws.accepted()
        got, code = ws.messages_until_close()
    finally:
        ws.close()
    assert (got, code) == ([("binary", b"out\n")], 1000)
    # before API 1.42 every stream is attached; before 1.28 messages are text
    ws = WsClient(pyboxd, f"/v1.27/containers/{name}/attach/ws?logs=1")
    try:
        ws.accepted()
        got, code = ws.messages_until_close()
    finally:
        ws.close()
    assert sorted(got) == [("text", "err\n"), ("text", "out\n")]


def test_websocket_attach_refusals(pyboxd, sleeper):
    # not a websocket request: x/net/websocket's 400
    status, reply = api(pyboxd.socket, "GET", f"/v1.44/containers/{sleeper}/attach/ws?stream=1")
    assert (status, reply) == (400, {"message": "not websocket protocol"})
    for target, want in ((f"/v1.44/containers/pybox-no-such-{time.time_ns()}/attach/ws?stream=1",
                          404),
                         (f"/v1.44/containers/{sleeper}/attach/ws?stream=1&detachKeys=foo", 400)):
        ws = WsClient(pyboxd, target)
        try:
            event = ws.next_event()
            assert isinstance(event, RejectConnection) and event.status_code == want, event
            body = b""
            while True:
                event = ws.next_event()
                assert isinstance(event, RejectData)
                body += bytes(event.data)
                if event.body_finished:
                    break
        finally:
            ws.close()
        if want == 400:
            assert json.loads(body) == {"message": "Invalid detach keys (foo) provided"}


def test_attach_media_type_by_api_version_and_neither_stream_nor_logs(pyboxd, sleeper):
    for version, media in (("1.44", "multiplexed"), ("1.41", "raw")):
        s, status, headers, rest = upgraded(
            pyboxd, "POST", f"/v{version}/containers/{sleeper}/attach?stdout=1")
        with s:  # neither stream nor logs: dockerd upgrades, then ends the stream
            assert read_to_end(s, rest) == b""
        assert status == 101
        assert headers["content-type"] == f"application/vnd.docker.{media}-stream"


def plain_post(pyboxd, path, body=None):
    """A POST without Upgrade (curl's): -> (head lines, the body until the close)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(pyboxd.socket)
    data = json.dumps(body).encode() if body is not None else b""
    with s:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                   f"application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
        head, _, rest = read_to_end(s).partition(b"\r\n\r\n")
    return head.decode().split("\r\n"), rest


def test_attach_and_exec_start_without_upgrade_stream_a_raw_200(pyboxd, sleeper, names):
    name = names("plain")
    pyboxd.ok("run", "--name", name, IMAGE, "echo", "logged")
    head, body = plain_post(pyboxd, f"/v1.44/containers/{name}/attach?stdout=1&logs=1")
    assert head == ["HTTP/1.1 200 OK", "Content-Type: application/vnd.docker.raw-stream"]
    assert frames(body) == [(1, b"logged\n")]
    eid = exec_create(pyboxd, sleeper, {"Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                        "AttachStdout": True, "AttachStderr": True})
    head, body = plain_post(pyboxd, f"/v1.44/exec/{eid}/start", {})  # not detached: streamed
    assert head[0] == "HTTP/1.1 200 OK"
    assert sorted(frames(body)) == [(1, b"out\n"), (2, b"err\n")]
    assert exec_inspect(pyboxd, eid)["ExitCode"] == 0


def test_paused_container_attach_refused(pyboxd, sleeper):
    pyboxd.ok("pause", sleeper)
    try:
        status, reply = api(pyboxd.socket, "POST",
                            f"/v1.44/containers/{sleeper}/attach?stream=1&stdout=1")
        assert status == 409
        assert reply == {"message": f"container {sleeper} is paused, unpause the container "
                                    "before attach"}
    finally:
        pyboxd.ok("unpause", sleeper)



def test_attach_logs_wait_for_the_101_to_be_read(pyboxd, dockerpy, names):
    """docker-py's attach(logs=True, stream=False) reads the hijacked socket
    under http.client's buffered reader: log bytes that came with the 101 went
    into that buffer and were lost (b"" now and then: docker-py's own
    test_attach_no_stream, on a loaded machine).  The log follows only once the
    client has read the 101: a client that waits before reading finds the head
    alone, then the log."""
    name = names("attlogs")
    pyboxd.ok("run", "--name", name, IMAGE, "echo", "hello")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(pyboxd.socket)
    with s:
        s.sendall((f"POST /v1.44/containers/{name}/attach?stdout=1&logs=1 HTTP/1.1\r\n"
                   "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                   "Content-Length: 0\r\n\r\n").encode())
        time.sleep(0.3)  # a slow client: the log must not be sent behind the head meanwhile
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 101") and first.endswith(b"\r\n\r\n"), first
        assert frames(read_to_end(s)) == [(1, b"hello\n")]
    for _ in range(10):  # and docker-py's own call
        assert dockerpy.api.attach(name, stream=False, logs=True) == b"hello\n"
