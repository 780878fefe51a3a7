"""MonitorClient against a fake monitor: a unix socket served by a thread in the
test, answering each request as a script says (in pieces, not at all, not JSON).
No root, no container: only the protocol's client side."""

import json
import os
import socket
import threading

import pytest

from pybox.monitor import protocol as P
from pybox.monitor.client import MonitorClient

pytestmark = pytest.mark.unit


class FakeMonitor:
    """Listens on DIR/monitor.sock; each connection's first line is recorded and
    handed to ``script(conn, request)``, which answers (or not) and returns."""

    def __init__(self, run_dir, script):
        self.path = os.path.join(run_dir, "monitor.sock")
        self.script = script
        self.requests = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if len(os.fsencode(self.path)) > 107:
            dfd = os.open(run_dir, os.O_PATH)
            try:
                self.listener.bind(f"/proc/self/fd/{dfd}/monitor.sock")
            finally:
                os.close(dfd)
        else:
            self.listener.bind(self.path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                line, _, rest = buf.partition(b"\n")
                self.requests.append(json.loads(line) if line else None)
                self.script(conn, rest)

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def serve(tmp_path):
    made = []

    def start(script, run_dir=str(tmp_path)):
        m = FakeMonitor(run_dir, script)
        made.append(m)
        return m

    yield start
    for m in made:
        m.close()


def answer(data):
    def script(conn, rest):
        conn.sendall(data)
    return script


def silent(conn, rest):
    """Closes without answering (a monitor that died mid-request)."""


def test_connect_without_a_monitor_is_none(tmp_path):
    assert MonitorClient(str(tmp_path)).connect(timeout=1) is None
    assert MonitorClient(str(tmp_path / "missing")).connect() is None


def test_connect_reaches_a_listening_monitor(tmp_path, serve):
    m = serve(silent)
    s = MonitorClient(str(tmp_path)).connect(timeout=2)
    assert s is not None
    s.sendall(b'{"op":"info"}\n')
    assert s.recv(10) == b""  # the fake closed after reading the line
    s.close()
    assert m.requests == [{"op": "info"}]


def test_connect_through_a_path_longer_than_sun_path(tmp_path, serve):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(os.fsencode(str(deep / "monitor.sock"))) > 107
    m = serve(answer(b"ok\n"), run_dir=str(deep))
    assert MonitorClient(str(deep)).call({"op": "resize", "h": 1, "w": 2}) == "ok"
    assert m.requests == [{"op": "resize", "h": 1, "w": 2}]


def test_call_decodes_ok_json_and_text(tmp_path, serve):
    client = MonitorClient(str(tmp_path))
    serve(answer(b"ok\n"))
    assert client.call({"op": "start"}) == "ok"


def test_call_returns_the_json_value(tmp_path, serve):
    serve(answer(b'{"pid": 42, "started": true, "exited": false}\n'))
    assert MonitorClient(str(tmp_path)).call({"op": "info"}) == {
        "pid": 42, "started": True, "exited": False}


def test_call_returns_a_non_json_line_as_text(tmp_path, serve):
    serve(answer(b"error [Errno 25] Inappropriate ioctl for device\n"))
    assert MonitorClient(str(tmp_path)).call({"op": "resize", "h": 3, "w": 4}) == (
        "error [Errno 25] Inappropriate ioctl for device")


def test_call_keeps_only_the_first_line(tmp_path, serve):
    serve(answer(b'"first"\n"second"\n'))
    assert MonitorClient(str(tmp_path)).call({"op": "info"}) == "first"


def test_call_assembles_a_long_answer_split_across_reads(tmp_path, serve):
    value = {"pid": 7, "blob": "x" * 200_000}
    body = json.dumps(value).encode() + b"\n"

    def dribble(conn, rest):
        for i in range(0, len(body), 1000):
            conn.sendall(body[i:i + 1000])
    serve(dribble)
    assert MonitorClient(str(tmp_path)).call({"op": "info"}) == value


def test_call_on_a_monitor_that_closes_without_answering_is_none(tmp_path, serve):
    serve(silent)
    assert MonitorClient(str(tmp_path)).call({"op": "info"}) is None


def test_call_on_a_half_answer_is_none(tmp_path, serve):
    serve(answer(b'{"pid": 4'))  # then closes: no newline ever came
    assert MonitorClient(str(tmp_path)).call({"op": "info"}) is None


def test_call_without_a_monitor_is_none(tmp_path):
    assert MonitorClient(str(tmp_path)).call({"op": "info"}) is None


def test_call_times_out_to_none(tmp_path, serve):
    gate = threading.Event()

    def hang(conn, rest):
        gate.wait(10)
    serve(hang)
    try:
        assert MonitorClient(str(tmp_path)).call({"op": "info"}, timeout=0.2) is None
    finally:
        gate.set()


def test_wrappers_send_their_requests(tmp_path, serve):
    m = serve(answer(b"ok\n"))
    client = MonitorClient(str(tmp_path))
    assert client.start() == "ok"
    assert client.resize(24, 80) == "ok"
    assert client.info() == "ok"
    assert client.abort() == "ok"
    assert m.requests == [{"op": "start"}, {"op": "resize", "h": 24, "w": 80},
                          {"op": "info"}, {"op": "abort"}]


def test_start_error_and_abort_too_late(tmp_path, serve):
    replies = iter([b'{"error": "exec: \\"nope\\": not found"}\n', b"started\n"])

    def script(conn, rest):
        conn.sendall(next(replies))
    serve(script)
    client = MonitorClient(str(tmp_path))
    assert client.start() == {"error": 'exec: "nope": not found'}
    assert client.abort() == "started"


def test_wait_exit_returns_the_exit_json(tmp_path, serve):
    info = {"exit_code": 3, "oom_killed": False, "pid": 99,
            "finished_at": "2026-01-01T00:00:00.000000001Z"}
    body = json.dumps(info).encode() + b"\n"

    def at_exit(conn, rest):
        for i in range(0, len(body), 7):  # in small pieces
            conn.sendall(body[i:i + 7])
    m = serve(at_exit)
    assert MonitorClient(str(tmp_path)).wait_exit() == info
    assert m.requests == [{"op": "wait"}]


def test_wait_exit_when_the_monitor_goes_away(tmp_path, serve):
    serve(silent)
    assert MonitorClient(str(tmp_path)).wait_exit() is None


def test_wait_exit_on_a_non_json_or_non_object_answer(tmp_path, serve):
    replies = iter([b"garbage\n", b"[1, 2]\n"])

    def script(conn, rest):
        conn.sendall(next(replies))
    serve(script)
    client = MonitorClient(str(tmp_path))
    assert client.wait_exit() is None
    assert client.wait_exit() is None


def test_wait_exit_without_a_monitor(tmp_path):
    assert MonitorClient(str(tmp_path)).wait_exit() is None


def test_wait_gone_returns_once_the_monitor_closes(tmp_path, serve):
    m = serve(answer(b'{"exit_code": 0}\nmore\n'))
    assert MonitorClient(str(tmp_path)).wait_gone(timeout=5) is None
    assert m.requests == [{"op": "wait"}]
    MonitorClient(str(tmp_path / "nowhere")).wait_gone(timeout=1)  # no monitor: returns


def test_read_exit_file(tmp_path):
    client = MonitorClient(str(tmp_path))
    assert client.read_exit_file() is None  # absent
    path = tmp_path / "exit.json"
    path.write_text('{"exit_code": 137, "oom_killed": true}')
    assert client.read_exit_file() == {"exit_code": 137, "oom_killed": True}
    path.write_text('{"exit_code": 1')  # torn
    assert client.read_exit_file() is None
    path.write_text("42")  # not an object
    assert client.read_exit_file() is None
    path.unlink()
    path.mkdir()  # unreadable as a file
    assert client.read_exit_file() is None


def test_attach_sends_the_request_and_frames_flow(tmp_path, serve):
    got = {}

    def session(conn, rest):
        reader = P.FrameReader()
        frames = reader.feed(rest)
        while not frames:
            frames += reader.feed(conn.recv(4096))
        got["frames"] = frames
        conn.sendall(P.frame(P.STDOUT, b"hello") + P.frame(P.EXIT, b'{"exit_code":0}'))
    m = serve(session)
    s = MonitorClient(str(tmp_path)).attach(stdin=True, stdout=True, stderr=False, timeout=5)
    assert s is not None
    s.sendall(P.frame(P.STDIN, b"input"))
    reader = P.FrameReader()
    frames = []
    while True:
        data = s.recv(4096)
        if not data:
            break
        frames += reader.feed(data)
    s.close()
    assert m.requests == [{"op": "attach", "stdin": True, "stdout": True, "stderr": False}]
    assert got["frames"] == [(P.STDIN, b"input")]
    assert frames == [(P.STDOUT, b"hello"), (P.EXIT, b'{"exit_code":0}')]


def test_attach_without_a_monitor_is_none(tmp_path):
    assert MonitorClient(str(tmp_path)).attach(True, True, True) is None


def test_pid_of_a_live_monitor_and_of_none(tmp_path, serve):
    client = MonitorClient(str(tmp_path))
    assert client.pid() == 0  # no pid file
    (tmp_path / "monitor.pid").write_text(f"{os.getpid()}\n")
    assert client.pid() == 0  # a live process, but no socket: not this dir's monitor
    serve(silent)
    assert client.pid() == os.getpid()
    (tmp_path / "monitor.pid").write_text("not a pid")
    assert client.pid() == 0
    with open("/proc/sys/kernel/pid_max") as f:
        (tmp_path / "monitor.pid").write_text(str(int(f.read()) + 1))  # never a process
    assert client.pid() == 0
