"""A monitor per pod (issue 18 point 4): containers created with the same
``monitor_group`` (Engine.create's, pyboxd's CRI only) share one monitor
process, as containerd's shim serves a pod; each keeps its own monitor socket,
exit file and log, so the engine sees each as before.

Through an engine in a child process (test_monitor_crilog's EngineChild):
one monitor pid for a group's containers and another for a container outside
it; each container's exit code, output and exit file its own while the others
run on; a container of the group that fails to start leaves the others
served; no fd of a finished container left open in the monitor; the monitor
ends with its last container and its group socket goes; a container started
again joins the group's monitor; after the engine is killed and started again
(pyboxd's crash), the running containers are recovered and a new container of
the group is adopted by the same monitor; an orphan's end as recovery makes
it (run directory removed, container killed) leaves the monitor serving the
others.
"""

import json
import os
import shutil
import signal
import time
import uuid

import pytest

from engine.test_monitor_crilog import EngineChild, body, parse

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def engine():
    child = EngineChild()
    yield child
    if child.proc.poll() is None:
        child.close()


def monitor_pid(engine, cid):
    with open(os.path.join(engine.exec_root, "containers", cid, "monitor.pid")) as f:
        return int(f.read())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def group_sockets(engine):
    try:
        return os.listdir(os.path.join(engine.exec_root, "monitor-groups"))
    except FileNotFoundError:
        return []


def create(engine, cmd, group=None, log=None):
    cid, _ = engine.call("create", body(cmd), f"grp-{uuid.uuid4().hex[:8]}",
                         monitor_group=group, cri_log_path=log)
    return cid


def test_a_pods_containers_share_one_monitor(engine, tmp_path):
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    sandbox = create(engine, "sleep 1000", pod)
    logs = [str(tmp_path / f"{i}.log") for i in range(3)]
    a = create(engine, "echo a-out; echo a-err >&2; sleep 1000", pod, logs[0])
    b = create(engine, "echo b-out; sleep 1000", pod, logs[1])
    alone = create(engine, "sleep 1000", None, logs[2])
    for cid in (sandbox, a, b, alone):
        engine.call("start", cid)
    pids = {cid: monitor_pid(engine, cid) for cid in (sandbox, a, b, alone)}
    assert pids[sandbox] == pids[a] == pids[b] != pids[alone]
    shared = pids[sandbox]
    assert len(group_sockets(engine)) == 1
    for cid in (sandbox, a, b):  # each its own socket
        assert os.path.exists(os.path.join(engine.exec_root, "containers", cid, "monitor.sock"))

    # a's exit: its code, output and exit file; the others run on
    wait_until(lambda: len(parse(logs[0])) == 2 and parse(logs[1]), "no output")
    engine.call("kill", a, "KILL")
    code, _ = engine.call("wait", a)
    assert code == 137
    with open(os.path.join(engine.exec_root, "containers", a, "exit.json")) as f:
        assert json.load(f)["exit_code"] == 137
    assert sorted(parse(logs[0])) == [("stderr", "F", b"a-err"), ("stdout", "F", b"a-out")]
    assert parse(logs[1]) == [("stdout", "F", b"b-out")]
    assert alive(shared)
    assert engine.call("inspect", b)["Running"] and engine.call("inspect", sandbox)["Running"]
    time.sleep(1.5)  # (a's last frames' second)
    fds = fd_count(shared)  # serving sandbox and b

    # a container of the pod that cannot start (its log cannot be made): its
    # error, and the pod's monitor serves the others on
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = create(engine, "true", pod, str(blocker / "0.log"))
    reply = engine.ask("start", bad)
    assert "failed to initialize logging driver" in reply["error"]
    assert alive(shared) and engine.call("inspect", b)["Running"]
    engine.call("remove", bad, force=True)

    # started again, a rejoins its pod's monitor
    engine.call("start", a)
    assert monitor_pid(engine, a) == shared
    engine.call("kill", a, "KILL")
    assert engine.call("wait", a)[0] == 137
    # nothing of a's two runs and of the failed start is left open in the monitor
    wait_until(lambda: fd_count(shared) == fds, f"fds: {fd_count(shared)} != {fds}")

    # the monitor ends with its last container, and its group socket goes
    engine.call("stop", b, 0)
    assert alive(shared)
    engine.call("stop", sandbox, 0)
    wait_until(lambda: not alive(shared), "the pod's monitor is still there")
    assert group_sockets(engine) == []
    assert alive(pids[alone])

    # the next start of the group gets a monitor of its own again
    engine.call("start", b)
    assert monitor_pid(engine, b) not in (shared, pids[alone])
    assert len(group_sockets(engine)) == 1
    for cid in (sandbox, a, b, alone):
        engine.call("remove", cid, force=True)
    assert group_sockets(engine) == []


def test_recovery_and_adoption_after_a_crash(engine, tmp_path):
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    sandbox = create(engine, "sleep 1000", pod)
    first = create(engine, "sleep 1000", pod)
    for cid in (sandbox, first):
        engine.call("start", cid)
    shared = monitor_pid(engine, sandbox)
    assert monitor_pid(engine, first) == shared
    engine.kill()  # pyboxd dies; the pod's monitor lives on
    assert alive(shared)
    engine = EngineChild(engine.base)  # (the fixture's close is left to this one)
    try:
        for cid in (sandbox, first):
            assert engine.call("inspect", cid)["Running"]  # recovered
        log = str(tmp_path / "late.log")
        late = create(engine, "echo late; sleep 1000", pod, log)
        engine.call("start", late)
        assert monitor_pid(engine, late) == shared  # adopted by the surviving monitor
        wait_until(lambda: parse(log) == [("stdout", "F", b"late")], "no output")
        engine.call("kill", first, "KILL")
        assert engine.call("wait", first)[0] == 137
        assert engine.call("inspect", late)["Running"]
        for cid in (sandbox, first, late):
            engine.call("remove", cid, force=True)
        wait_until(lambda: not alive(shared), "the pod's monitor is still there")
        assert group_sockets(engine) == []
    finally:
        engine.close()


def test_an_orphans_end_leaves_the_pod_monitor(engine, tmp_path):
    """What recovery does to a container without a record (its run directory
    removed, its container killed): with one pod's monitor, the others are
    served on (the monitor's exit file write has nowhere to go, and it goes on)."""
    pod = f"pod-{uuid.uuid4().hex[:8]}"
    log = str(tmp_path / "b.log")
    a = create(engine, "sleep 1000", pod)
    b = create(engine, "while true; do echo tick; sleep 0.1; done", pod, log)
    for cid in (a, b):
        engine.call("start", cid)
    shared = monitor_pid(engine, a)
    shutil.rmtree(os.path.join(engine.exec_root, "containers", a))
    os.kill(engine.call("inspect", a)["Pid"], signal.SIGKILL)
    assert engine.call("wait", a)[0] == 137
    before = len(parse(log))
    wait_until(lambda: len(parse(log)) > before + 5, "b's output stopped")
    assert alive(shared) and monitor_pid(engine, b) == shared
    for cid in (a, b):
        engine.call("remove", cid, force=True)
    wait_until(lambda: not alive(shared), "the pod's monitor is still there")
