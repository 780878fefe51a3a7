"""pyboxd killed (SIGKILL) with pods and containers, or in the middle of
RunPodSandbox or CreateContainer, then started again: the pods and containers
are re-adopted (same IDs, states, IP, logs; exec and stop work), a pod the
crash left half-made is reported NOTREADY, and stopping and removing
everything leaves nothing behind (the module's daemon is leak-checked at the
end, as the session's is).

These tests kill their daemon, so they have one of their own (module scope),
not the session's."""

import os
import signal
import stat

import grpc
import pytest
from cri_api.v1 import api_pb2

from support.wait import wait_for

from .conftest import CALL_TIMEOUT, CRIHelper, CRIPyboxd


@pytest.fixture(scope="module")
def crash_pyboxd():
    daemon = CRIPyboxd()
    try:
        daemon.start()
        daemon.import_busybox()
    except BaseException:
        daemon.stop()
        raise
    try:
        yield daemon
    except BaseException:
        daemon.stop()
        raise
    problems = daemon.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture
def cri(crash_pyboxd, tmp_path):
    helper = CRIHelper(crash_pyboxd, tmp_path)
    yield helper
    if crash_pyboxd.process.poll() is not None:  # a test left it dead: start it again
        crash_pyboxd.daemon_env.pop("PYBOX_CRASH_AT", None)
        crash_pyboxd.start()
    helper.rt = crash_pyboxd.runtime
    helper.cleanup()


def kill9(daemon):
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait()


def restart(daemon, cri, crash_at=None):
    """Start the (dead) daemon again; with ``crash_at``, armed at that point."""
    if crash_at:
        daemon.daemon_env["PYBOX_CRASH_AT"] = crash_at
    else:
        daemon.daemon_env.pop("PYBOX_CRASH_AT", None)
    daemon.start()
    cri.rt = daemon.runtime


def test_pods_and_containers_survive_kill9(cri, crash_pyboxd):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=["sh", "-c", "echo before; while sleep 0.1; do "
                                        "[ -e /tmp/go ] && echo after && rm /tmp/go; done"])
    ip = cri.pod_status(pod_id).status.network.ip
    log = cri.status(cid).log_path
    wait_for(lambda: os.path.exists(log) and "before" in open(log).read(), "the first line")
    started = cri.status(cid).started_at

    kill9(crash_pyboxd)
    # what a pyboxd killed while binding the CRI socket leaves: start() binds in
    # a private directory beside the socket and renames the socket into place
    sock_dir, sock_name = os.path.split(crash_pyboxd.cri_socket)
    stale = os.path.join(sock_dir, f".{sock_name}.bind-stale1")
    os.makedirs(stale)
    restart(crash_pyboxd, cri)
    assert not os.path.exists(stale)
    assert [n for n in os.listdir(sock_dir) if ".bind-" in n] == []
    assert stat.S_IMODE(os.stat(crash_pyboxd.cri_socket).st_mode) == 0o660

    st = cri.pod_status(pod_id).status
    assert st.state == api_pb2.SANDBOX_READY
    assert st.network.ip == ip
    c = cri.status(cid)
    assert c.state == api_pb2.CONTAINER_RUNNING and c.started_at == started
    out = cri.exec_sync(cid, ["sh", "-c", "touch /tmp/go; hostname"])
    assert out.exit_code == 0 and out.stdout.decode().strip() == pod.hostname
    wait_for(lambda: "after" in open(log).read(), "the line written after the restart")
    listed = cri.call("ListContainers", api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id))).containers
    assert [x.id for x in listed] == [cid]
    # the network made before the crash is torn down after it
    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert cri.status(cid).state == api_pb2.CONTAINER_EXITED
    assert not os.path.exists(os.path.join(crash_pyboxd.exec_root, "cri", "netns", pod_id))


def test_pause_dead_while_down(cri, crash_pyboxd):
    pod_id, pod = cri.run_pod()
    import json

    pid = json.loads(cri.pod_status(pod_id, verbose=True).info["info"])["pid"]
    kill9(crash_pyboxd)
    os.kill(pid, signal.SIGKILL)
    restart(crash_pyboxd, cri)
    assert wait_for(lambda: cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_NOTREADY,
                    "the pod not ready")
    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    cri.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


@pytest.mark.parametrize("point", ["engine.start.saved:1", "engine.create.saved:1"])
def test_crash_in_run_pod_sandbox(cri, crash_pyboxd, point):
    """The daemon dies in RunPodSandbox (after the sandbox's record is saved,
    or after its pause started, before its network): the restarted daemon
    lists the pod NOTREADY, and it can be stopped and removed."""
    kill9(crash_pyboxd)
    restart(crash_pyboxd, cri, crash_at=point)
    config = cri.pod_config()
    with pytest.raises(grpc.RpcError):
        cri.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))
    crash_pyboxd.process.wait(timeout=30)
    restart(crash_pyboxd, cri)
    pods = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(label_selector={}))).items
    mine = [p for p in pods if p.metadata.uid == config.metadata.uid]
    assert len(mine) == 1 and mine[0].state == api_pb2.SANDBOX_NOTREADY, mine
    pod_id = mine[0].id
    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    cri.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    # kubelet's next attempt works
    cri.run_pod(config=config)


def test_crash_in_create_container(cri, crash_pyboxd):
    pod_id, pod = cri.run_pod()
    kill9(crash_pyboxd)
    restart(crash_pyboxd, cri, crash_at="engine.create.saved:1")
    config = cri.container_config()
    with pytest.raises(grpc.RpcError):
        cri.call("CreateContainer", api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod), timeout=CALL_TIMEOUT)
    crash_pyboxd.process.wait(timeout=30)
    restart(crash_pyboxd, cri)
    assert cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_READY
    listed = cri.call("ListContainers", api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id))).containers
    assert [c.metadata.name for c in listed] == [config.metadata.name]
    assert listed[0].state == api_pb2.CONTAINER_CREATED
    # kubelet does not know it: it removes it and creates the container again
    cri.call("RemoveContainer", api_pb2.RemoveContainerRequest(container_id=listed[0].id))
    cid = cri.run(pod_id, pod, config=config)
    assert cri.status(cid).state == api_pb2.CONTAINER_RUNNING
