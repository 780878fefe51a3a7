"""Container logs through pyboxd's CRI, as kubelet reads them (issue 18): the
CRI log format at LogDirectory/LogPath (the monitor's cri driver), exact
lines for stdout, stderr, a partial end, a long line in 16 KiB pieces and a
tty's output; ReopenContainerLog refused for a container that does not run;
and a pod's sandbox and containers served by one monitor process.

The writer's details (time zones, \\r\\n, pieces) are tested directly in
tests/engine/test_monitor_crilog.py; rotation with ReopenContainerLog in
test_containers.py.
"""

import os
import re
import time

import grpc
import pytest
from cri_api.v1 import api_pb2

STAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)"
LINE = re.compile(rb"^" + STAMP + rb" (stdout|stderr) ([PF]) (.*)$")


def entries(path):
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for line in data.split(b"\n")[:-1]:
        m = LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(3).decode(), m.group(4).decode(), m.group(5)))
    return out


def wait_exited(cri, cid, timeout=60):
    deadline = time.monotonic() + timeout
    while cri.status(cid).state != api_pb2.CONTAINER_EXITED:
        assert time.monotonic() < deadline, "the container did not exit"
        time.sleep(0.05)


def test_log_lines_as_kubelet_reads_them(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=["sh", "-c",
                                        "echo out; echo err >&2; echo; "
                                        "head -c 40000 /dev/zero | tr '\\0' x; echo; printf end"])
    wait_exited(cri, cid)
    st = cri.status(cid)
    assert st.log_path == os.path.join(pod.log_directory, st.metadata.name, "0.log")
    got = entries(st.log_path)
    assert [e for e in got if e[0] == "stderr"] == [("stderr", "F", b"err")]
    assert [(s, t, c if len(c) < 100 else len(c)) for s, t, c in got if s == "stdout"] == [
        ("stdout", "F", b"out"), ("stdout", "F", b""),
        ("stdout", "P", 16384), ("stdout", "P", 16384), ("stdout", "F", 40000 - 2 * 16384),
        ("stdout", "P", b"end")]


def test_tty_output_is_stdout(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=["sh", "-c", "echo one; echo two >&2"], tty=True)
    wait_exited(cri, cid)
    assert entries(cri.status(cid).log_path) == [("stdout", "F", b"one"), ("stdout", "F", b"two")]


def test_reopen_refused_when_not_running(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.create(pod_id, pod, command=["true"])
    with pytest.raises(grpc.RpcError) as e:  # created, never started
        cri.call("ReopenContainerLog", api_pb2.ReopenContainerLogRequest(container_id=cid))
    assert "container is not running" in e.value.details()
    cri.start(cid)
    wait_exited(cri, cid)
    with pytest.raises(grpc.RpcError) as e:
        cri.call("ReopenContainerLog", api_pb2.ReopenContainerLogRequest(container_id=cid))
    assert "container is not running" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.call("ReopenContainerLog",
                 api_pb2.ReopenContainerLogRequest(container_id="no-such-container"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_pod_has_one_monitor(cri, cri_pyboxd):
    """The sandbox and the pod's containers: one monitor process (its pid in
    each container's run directory); another pod's is another."""

    def monitor_pid(cid):
        with open(os.path.join(cri_pyboxd.exec_root, "containers", cid, "monitor.pid")) as f:
            return int(f.read())

    pod_id, pod = cri.run_pod()
    a = cri.run(pod_id, pod)
    b = cri.run(pod_id, pod, command=["sh", "-c", "echo b; sleep 3600"])
    other_id, other = cri.run_pod()
    c = cri.run(other_id, other)
    assert monitor_pid(pod_id) == monitor_pid(a) == monitor_pid(b)
    assert monitor_pid(other_id) == monitor_pid(c) != monitor_pid(pod_id)
    deadline = time.monotonic() + 30
    while not (os.path.exists(cri.status(b).log_path) and entries(cri.status(b).log_path)):
        assert time.monotonic() < deadline, "no output from b"
        time.sleep(0.05)
    assert entries(cri.status(b).log_path) == [("stdout", "F", b"b")]
    # one container stopped: the others still run under the pod's monitor
    cri.call("StopContainer", api_pb2.StopContainerRequest(container_id=a, timeout=0))
    assert cri.status(a).state == api_pb2.CONTAINER_EXITED
    assert cri.status(b).state == api_pb2.CONTAINER_RUNNING
    assert os.path.exists(f"/proc/{monitor_pid(b)}")
