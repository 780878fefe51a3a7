"""The monitor's cri log driver (pybox.monitor.crilog): the CRI log format kubelet
reads, at the path it names, reopened after its rotation (issue 18).

Two levels:

* the writer alone on a temporary file: the exact lines containerd's cio
  writes (``TIME STREAM P|F CONTENT``: RFC3339Nano in local time, a line's
  ``\\n``/``\\r\\n`` dropped, lines longer than the maximum in P pieces, an
  unfinished last line P at the end), the local zone's offset (a child with TZ
  set), reopen after a rename;
* containers through an engine (Engine.create's ``cri_log_path``, which only
  Python callers -- pyboxd's CRI -- can set): an engine in a child process (this
  file run as a script: ``serve``; the monitor zygote must be forked before any
  thread, so not in pytest's process), private data and exec roots, busybox
  imported; stdout, stderr, a tty's output, the parent directory created,
  ReopenContainerLog after a rename (Engine.reopen_log) and its refusal for a
  stopped container, and the log read back through the engine (docker logs).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from pybox.monitor.crilog import CRILogWriter
from support.host import mounts_under, unmount_under
from support.paths import PYTHON, SRC, busybox_tar

HERE = os.path.dirname(os.path.abspath(__file__))
# RFC3339Nano: the fraction without trailing zeros (none when whole), Z or an offset
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)"
LINE = re.compile(rb"^(" + STAMP.encode() + rb") (stdout|stderr) ([PF]) (.*)$")


def parse(path):
    """The file's entries as (stream, tag, content); every line must match."""
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") or not data
    out = []
    for line in data.split(b"\n")[:-1]:
        m = LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(4).decode(), m.group(5).decode(), m.group(6)))
    return out


# -- the writer alone ----------------------------------------------------------------------------
@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


def test_lines_streams_and_tags(tmp):
    path = os.path.join(tmp, "pods", "ns_pod_uid", "c", "0.log")  # its directories are made
    w = CRILogWriter(path)
    w.write("stdout", b"hello\nwor")
    w.write("stderr", b"oops\r\n\n")
    w.write("stdout", b"ld\r\nno newline")
    w.close()
    assert parse(path) == [
        ("stdout", "F", b"hello"),
        ("stderr", "F", b"oops"),  # \r\n dropped
        ("stderr", "F", b""),  # an empty line is an entry
        ("stdout", "F", b"world"),  # a line across two reads is one entry
        ("stdout", "P", b"no newline"),  # the end without a newline: partial
    ]
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o755


def test_long_lines_in_pieces(tmp):
    path = os.path.join(tmp, "0.log")
    w = CRILogWriter(path, max_line=10)
    w.write("stdout", b"0123456789")  # exactly the maximum: waits for its end
    assert os.path.getsize(path) == 0
    w.write("stdout", b"\n" + b"a" * 25 + b"\n")
    w.write("stdout", b"b" * 12)  # over the maximum without a newline: a piece now
    assert parse(path)[-1] == ("stdout", "P", b"b" * 10)
    w.write("stdout", b"\n" + b"c" * 10 + b"\r")  # a \r just past the maximum may be \r\n's
    w.write("stdout", b"\n")
    w.close()
    assert parse(path) == [
        ("stdout", "F", b"0123456789"),
        ("stdout", "P", b"a" * 10), ("stdout", "P", b"a" * 10), ("stdout", "F", b"a" * 5),
        ("stdout", "P", b"b" * 10), ("stdout", "F", b"bb"),
        ("stdout", "F", b"c" * 10),
    ]


def test_timestamps_are_local_rfc3339nano():
    """In a zone with an offset the stamp carries it (containerd writes
    time.Now() in local time); in UTC it ends with Z."""
    code = ("import sys, time; from pybox.monitor.crilog import _Clock; c = _Clock(); "
            "print(c.stamp(1475713029669794200).decode()); print(c.stamp(1475713029 * 10**9).decode())")
    for tz, expected in (("UTC", ["2016-10-06T00:17:09.6697942Z", "2016-10-06T00:17:09Z"]),
                         ("Europe/Paris", ["2016-10-06T02:17:09.6697942+02:00",
                                           "2016-10-06T02:17:09+02:00"]),
                         ("America/St_Johns", ["2016-10-05T21:47:09.6697942-02:30",
                                               "2016-10-05T21:47:09-02:30"])):
        if tz != "UTC" and not os.path.exists(f"/usr/share/zoneinfo/{tz}"):
            pytest.skip("no tzdata")
        out = subprocess.run([PYTHON, "-c", code], env=dict(os.environ, TZ=tz, PYTHONPATH=SRC),
                             capture_output=True, text=True, check=True).stdout.split()
        assert out == expected, tz


def test_reopen_after_rename(tmp):
    path = os.path.join(tmp, "0.log")
    w = CRILogWriter(path)
    w.write("stdout", b"before\nhalf")
    os.rename(path, path + ".20240101-000000")  # kubelet's rotation
    w.write("stdout", b" still old\n")  # until the reopen, the renamed file
    w.reopen()
    w.write("stdout", b"after\nrest")
    w.close()
    assert parse(path + ".20240101-000000") == [("stdout", "F", b"before"),
                                               ("stdout", "F", b"half still old")]
    assert parse(path) == [("stdout", "F", b"after"), ("stdout", "P", b"rest")]


def test_reopen_failure_keeps_the_old_file(tmp):
    path = os.path.join(tmp, "d", "0.log")
    w = CRILogWriter(path)
    os.rename(path, os.path.join(tmp, "moved.log"))
    os.rmdir(os.path.dirname(path))
    with open(os.path.dirname(path), "w"):  # its directory cannot be made now
        pass
    with pytest.raises(OSError):
        w.reopen()
    w.write("stdout", b"kept\n")
    w.close()
    assert parse(os.path.join(tmp, "moved.log")) == [("stdout", "F", b"kept")]


# -- containers through an engine ------------------------------------------------------------------
def exec_root_of(base):
    return f"/run/pybox-cl-{os.path.basename(base)[-8:]}"


def serve(base):
    """The child: an engine; one JSON request a line ({"method", "args",
    "kwargs"}: an Engine method), one JSON answer ({"result"} or {"error",
    "type"})."""
    from pybox.engine.engine import Engine
    from pybox.engine.images import ImageService

    data_root = os.path.join(base, "data")
    exec_root = exec_root_of(base)
    images = ImageService(data_root)
    engine = Engine(data_root, exec_root, images=images)
    engine.start_zygote()
    engine.recover()
    engine.supervise_zygote()
    try:
        images.lookup("busybox:latest")  # (a restarted engine: imported already)
    except Exception:
        images.images.import_(busybox_tar(base), reference="busybox:latest",
                              changes=['CMD ["sh"]'])
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            req = json.loads(line)
            if req["method"] == "quit":
                break
            try:
                result = getattr(engine, req["method"])(*req.get("args", ()),
                                                         **req.get("kwargs", {}))
                if req["method"] == "logs":
                    result = [[s, d.decode()] for s, d in result]
                elif req["method"] == "inspect":
                    result = {"LogPath": result["LogPath"],
                              "LogConfig": result["HostConfig"]["LogConfig"],
                              "Running": result["State"]["Running"],
                              "Pid": result["State"]["Pid"]}
                reply = {"result": result}
            except Exception as e:  # the test reads the type and the words
                reply = {"error": str(e), "type": type(e).__name__}
            print(json.dumps(reply), flush=True)
    finally:  # as pyboxd's shutdown, then its exec root goes
        for cid in list(engine.store.by_id):
            engine.remove(cid, force=True, volumes=True)
        engine.network.shutdown()
        engine.procview.shutdown()
        engine.stop_zygote()
        engine.release_cgroup_parent()
        shutil.rmtree(exec_root, ignore_errors=True)


class EngineChild:
    """The engine process; ``base``: a killed one's directory, to start it
    again there (its containers recovered)."""

    def __init__(self, base=None):
        self.base = base or tempfile.mkdtemp(prefix="pybox-crilog-test-")
        self.exec_root = exec_root_of(self.base)
        self.proc = subprocess.Popen(
            [PYTHON, os.path.abspath(__file__), "serve", self.base], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.path.dirname(HERE)])))
        ready = self.proc.stdout.readline()
        if not ready.startswith('{"ready"'):
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.base, ignore_errors=True)
            shutil.rmtree(exec_root_of(self.base), ignore_errors=True)
            raise AssertionError(f"the engine process did not start: {ready!r}")

    def ask(self, method, *args, **kwargs):
        self.proc.stdin.write(json.dumps({"method": method, "args": args, "kwargs": kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the engine process died"
        return json.loads(line)

    def kill(self):
        """pyboxd killed: the engine dies, its monitors live on."""
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()

    def call(self, method, *args, **kwargs):
        reply = self.ask(method, *args, **kwargs)
        assert "error" not in reply, reply
        return reply["result"]

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"method": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        leaked = mounts_under(self.base)
        unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)
        exec_root = exec_root_of(self.base)
        left = os.path.exists(exec_root)
        shutil.rmtree(exec_root, ignore_errors=True)
        assert not leaked, f"mounts left behind: {leaked}"
        assert not left, f"the exec root was left behind: {exec_root}"


@pytest.fixture(scope="module")
def engine():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    child = EngineChild()
    yield child
    child.close()


def body(cmd, tty=False):
    return {"Image": "busybox", "Cmd": ["sh", "-c", cmd], "Tty": tty,
            "HostConfig": {"NetworkMode": "none"}}


def run_to_exit(engine, path, cmd, tty=False):
    cid, _ = engine.call("create", body(cmd, tty), f"crilog-{uuid.uuid4().hex[:8]}",
                         cri_log_path=path)
    engine.call("start", cid)
    code, _ = engine.call("wait", cid)
    return cid, code


def test_container_stdout_stderr_partial(engine, tmp):
    path = os.path.join(tmp, "ns_pod_uid", "ctr", "0.log")  # its directories are made
    cid, code = run_to_exit(engine, path,
                            "echo out1; echo err1 >&2; printf '%s\\n' '' 'a b  c'; printf tail")
    assert code == 0
    entries = parse(path)
    assert [e for e in entries if e[0] == "stdout"] == [
        ("stdout", "F", b"out1"), ("stdout", "F", b""), ("stdout", "F", b"a b  c"),
        ("stdout", "P", b"tail")]
    assert [e for e in entries if e[0] == "stderr"] == [("stderr", "F", b"err1")]
    info = engine.call("inspect", cid)
    assert info["LogPath"] == path and info["LogConfig"]["Type"] == "cri"
    # read back through the engine (docker logs): streams, newlines as written
    got = engine.call("logs", cid)
    assert sorted(got) == sorted([[1, "out1\n"], [1, "\n"], [1, "a b  c\n"], [1, "tail"],
                                  [2, "err1\n"]])
    assert engine.call("logs", cid, stderr=False, tail="1") == [[1, "tail"]]
    engine.call("remove", cid, force=True)


def test_long_line_in_16k_pieces(engine, tmp):
    path = os.path.join(tmp, "long.log")
    cid, code = run_to_exit(engine, path, "head -c 40000 /dev/zero | tr '\\0' x; echo")
    assert code == 0
    assert [(s, t, len(c)) for s, t, c in parse(path)] == [
        ("stdout", "P", 16384), ("stdout", "P", 16384), ("stdout", "F", 40000 - 2 * 16384)]
    engine.call("remove", cid, force=True)


def test_tty_output_is_stdout(engine, tmp):
    path = os.path.join(tmp, "tty.log")
    cid, code = run_to_exit(engine, path, "echo one; echo two >&2", tty=True)
    assert code == 0
    assert parse(path) == [("stdout", "F", b"one"), ("stdout", "F", b"two")]  # (\r\n dropped)
    engine.call("remove", cid, force=True)


def test_reopen_after_rename_and_refusals(engine, tmp):
    """kubelet's rotation: rename, then ReopenContainerLog; every line is in
    one file or the other, in order, none twice."""
    path = os.path.join(tmp, "r", "0.log")
    cid, _ = engine.call("create", body("i=0; while true; do echo line$i; i=$((i+1)); "
                                        "sleep 0.05; done"),
                         f"crilog-{uuid.uuid4().hex[:8]}", cri_log_path=path)
    engine.call("start", cid)

    def wait_lines(p):
        deadline = time.monotonic() + 30
        while not (os.path.exists(p) and len(parse(p)) >= 2):
            assert time.monotonic() < deadline, f"no lines in {p}"
            time.sleep(0.05)

    wait_lines(path)
    rotated = path + ".20240101-000000"
    os.rename(path, rotated)
    engine.call("reopen_log", cid)
    wait_lines(path)
    engine.call("stop", cid, 0)
    old, new = parse(rotated), parse(path)
    assert all(s == "stdout" and t == "F" for s, t, _ in old + new)
    numbers = [int(c[4:]) for _, _, c in old + new]
    assert numbers == list(range(len(numbers)))  # nothing lost, nothing twice
    assert old and new
    # stopped: refused as containerd refuses it
    reply = engine.ask("reopen_log", cid)
    assert reply["type"] == "Conflict" and reply["error"] == "container is not running"
    engine.call("remove", cid, force=True)
    # a container logging the docker way cannot be reopened
    cid, _ = engine.call("create", body("true"), f"crilog-{uuid.uuid4().hex[:8]}")
    reply = engine.ask("reopen_log", cid)
    assert reply["type"] == "BadRequest"
    engine.call("remove", cid, force=True)


def test_no_path_no_log_and_bad_paths(engine, tmp):
    # kubelet gave no log path: nothing is written, the container runs
    cid, code = run_to_exit(engine, "", "echo hi")
    assert code == 0
    info = engine.call("inspect", cid)
    assert info["LogConfig"]["Type"] == "none" and info["LogPath"] == ""
    engine.call("remove", cid, force=True)
    reply = engine.ask("create", body("true"), f"crilog-{uuid.uuid4().hex[:8]}",
                       cri_log_path="relative/0.log")
    assert reply["type"] == "BadRequest" and "absolute" in reply["error"]
    # a log that cannot be created fails the start with dockerd's words
    blocker = os.path.join(tmp, "file")
    open(blocker, "w").close()
    cid, _ = engine.call("create", body("true"), f"crilog-{uuid.uuid4().hex[:8]}",
                         cri_log_path=os.path.join(blocker, "0.log"))
    reply = engine.ask("start", cid)
    assert "failed to initialize logging driver" in reply["error"]
    engine.call("remove", cid, force=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
