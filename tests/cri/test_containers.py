"""CRI containers: create/start/stop/remove, list with filters, status with
reasons and exit codes, command/args/env/working dir, mounts, devices, pid
namespace sharing, ExecSync (and its timeout), logs in the CRI format,
ReopenContainerLog, UpdateContainerResources, stats, events."""

import json
import os
import subprocess
import threading
import time
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2

from support.wait import wait_for

from .conftest import CALL_TIMEOUT


def wait_exited(cri, cid, timeout=30):
    return wait_for(lambda: (s := cri.status(cid)).state == api_pb2.CONTAINER_EXITED and s,
                    "the container's exit", timeout=timeout)


def cgroup_mounts():
    """({v1 controller: its hierarchy's mount point}, the cgroup2 mount point or None)."""
    v1, v2 = {}, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            if fstype == "cgroup2" and v2 is None:
                v2 = fields[4]
            elif fstype == "cgroup":
                for option in options.split(","):
                    v1.setdefault(option, fields[4])
    return v1, v2


def controller_dir(pid, controller="memory"):
    """The cgroup directory of ``pid`` holding ``controller``'s files: (directory,
    on cgroup2?).  A v1 hierarchy with the controller wins; otherwise the cgroup2
    mount (a v2 host, or a hybrid one's /sys/fs/cgroup/unified for hugetlb)."""
    v1, v2 = cgroup_mounts()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if hier != "0" and controller in controllers.split(",") and controller in v1:
            return v1[controller] + path, False
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if hier == "0" and v2:
            return v2 + path, True
    raise AssertionError(lines)


def cgroup_dir(pid):
    """The memory cgroup of ``pid``: (directory, cgroup v2?)."""
    return controller_dir(pid, "memory")


def read(directory, name):
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def container_pid(cri, cid):
    return json.loads(cri.call("ContainerStatus", api_pb2.ContainerStatusRequest(
        container_id=cid, verbose=True)).info["info"])["pid"]


def test_lifecycle_and_status(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.create(pod_id, pod, command=["sh", "-c"], args=["echo $GREETING from $(pwd); sleep 3600"],
                     env={"GREETING": "hello"}, working_dir="/tmp",
                     labels={"role": "main"}, annotations={"note": "x"})
    st = cri.status(cid)
    assert st.state == api_pb2.CONTAINER_CREATED
    assert st.created_at > 0 and st.started_at == 0
    assert st.image.image == "busybox:latest"
    assert st.image_ref.startswith("sha256:")  # an imported image: no repo digest
    assert st.image_id == st.image_ref
    assert dict(st.labels) == {"role": "main"} and dict(st.annotations) == {"note": "x"}
    cri.start(cid)
    st = cri.status(cid)
    assert st.state == api_pb2.CONTAINER_RUNNING and st.started_at >= st.created_at
    # containerd's annotations reach the runtime's spec (OCI hooks read them)
    bundle = os.path.join(cri.daemon.exec_root, "containers", cid, "config.json")
    annotations = json.load(open(bundle))["annotations"]
    assert annotations["io.kubernetes.cri.container-type"] == "container"
    assert annotations["io.kubernetes.cri.sandbox-id"] == pod_id
    # listed, filtered
    listed = cri.call("ListContainers", api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id))).containers
    assert [c.id for c in listed] == [cid]
    # the pod's status carries its containers' (kubelet's evented PLEG)
    assert [c.id for c in cri.pod_status(pod_id).containers_statuses] == [cid]
    assert cri.pod_status(pod_id).timestamp > 0
    assert listed[0].metadata.name == st.metadata.name
    listed = cri.call("ListContainers", api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(label_selector={"role": "main"},
                                       state=api_pb2.ContainerStateValue(
                                           state=api_pb2.CONTAINER_RUNNING)))).containers
    assert cid in [c.id for c in listed]
    # hostname: the pod's
    out = cri.exec_sync(cid, ["hostname"])
    assert out.stdout.decode().strip() == pod.hostname
    # the log at the path kubelet named, in the CRI format
    log = os.path.join(pod.log_directory, st.metadata.name, "0.log")
    assert cri.status(cid).log_path == log
    line = wait_for(lambda: os.path.exists(log) and open(log).read(), "the log line")
    stamp, stream, tag, text = line.splitlines()[0].split(" ", 3)
    assert (stream, tag, text) == ("stdout", "F", "hello from /tmp")
    # stop with a grace period: sleep ignores nothing, SIGTERM ends sh at once
    cri.call("StopContainer", api_pb2.StopContainerRequest(container_id=cid, timeout=10))
    st = cri.status(cid)
    assert st.state == api_pb2.CONTAINER_EXITED
    assert st.finished_at >= st.started_at
    assert st.reason == "Error" and st.exit_code == 143
    cri.call("StopContainer", api_pb2.StopContainerRequest(container_id=cid, timeout=0))  # again
    cri.call("RemoveContainer", api_pb2.RemoveContainerRequest(container_id=cid))
    with pytest.raises(grpc.RpcError) as e:
        cri.status(cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    cri.call("RemoveContainer", api_pb2.RemoveContainerRequest(container_id=cid))  # again


def test_exit_reasons(cri):
    pod_id, pod = cri.run_pod()
    ok = cri.run(pod_id, pod, command=["true"])
    bad = cri.run(pod_id, pod, command=["sh", "-c", "exit 3"])
    assert wait_exited(cri, ok).reason == "Completed"
    st = wait_exited(cri, bad)
    assert (st.reason, st.exit_code) == ("Error", 3)
    assert cri.status(ok).exit_code == 0


def test_oom_killed(cri):
    pod_id, pod = cri.run_pod()
    res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=16 * 1024 * 1024)
    cid = cri.run(pod_id, pod, command=["sh", "-c", "x=a; while true; do x=$x$x; done"],
                  resources=res)
    st = wait_exited(cri, cid, timeout=60)
    assert st.reason == "OOMKilled", st
    assert st.exit_code == 137


def test_start_error(cri):
    """A command that does not exist: StartContainer fails, the status says
    EXITED with reason StartError (containerd's), and the start is not retried."""
    pod_id, pod = cri.run_pod()
    cid = cri.create(pod_id, pod, command=["/no/such/program"])
    with pytest.raises(grpc.RpcError) as e:
        cri.start(cid)
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    st = cri.status(cid)
    assert st.state == api_pb2.CONTAINER_EXITED and st.reason == "StartError", st
    assert st.exit_code != 0 and "/no/such/program" in st.message
    assert st.finished_at > 0
    with pytest.raises(grpc.RpcError):
        cri.start(cid)


def test_image_command_and_args(cri):
    """No command: the image's (busybox: sh); args only: they follow the image's entrypoint."""
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=[], args=["sh", "-c", "echo args-only"])
    wait_exited(cri, cid)
    log = os.path.join(pod.log_directory, cri.status(cid).metadata.name, "0.log")
    assert open(log).read().split(" ", 3)[3] == "args-only\n"


def test_same_container_twice_already_exists(cri):
    pod_id, pod = cri.run_pod()
    config = cri.container_config()
    cri.create(pod_id, pod, config=config)
    with pytest.raises(grpc.RpcError) as e:
        cri.create(pod_id, pod, config=config)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_unknown_image_and_pod(cri):
    pod_id, pod = cri.run_pod()
    with pytest.raises(grpc.RpcError) as e:
        cri.create(pod_id, pod, image="localhost/no-such-image-" + uuid.uuid4().hex[:6])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        cri.create("f" * 64, pod)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_exec_sync_and_timeout(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod)
    out = cri.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (out.stdout, out.stderr, out.exit_code) == (b"out\n", b"err\n", 7)
    with pytest.raises(grpc.RpcError) as e:
        cri.exec_sync(cid, ["sleep", "30"], timeout=1)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the sleep was killed
    assert "sleep 30" not in cri.exec_sync(cid, ["ps", "-o", "args"]).stdout.decode()


@pytest.fixture
def shared_dir(tmp_path):
    """A directory that is a shared mount (what a hostPath with propagation
    needs on the node), unmounted at the end."""
    top = tmp_path / "shared"
    top.mkdir()
    subprocess.run(["mount", "--bind", str(top), str(top)], check=True)
    subprocess.run(["mount", "--make-shared", str(top)], check=True)
    yield top
    subprocess.run(["umount", "-l", str(top)], capture_output=True)


def test_mounts_and_readonly(cri, tmp_path, shared_dir):
    pod_id, pod = cri.run_pod()
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("from-host")
    missing = shared_dir / "made-by-create"
    mounts = [api_pb2.Mount(container_path="/data", host_path=str(src), readonly=True),
              api_pb2.Mount(container_path="/rw", host_path=str(missing),
                            propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER)]
    cid = cri.run(pod_id, pod, mounts=mounts)
    assert missing.is_dir()  # containerd's rule: a missing host path is made
    out = cri.exec_sync(cid, ["sh", "-c", "cat /data/f; touch /data/x; echo $?; "
                                          "touch /rw/y && echo rw-ok; "
                                          "grep ' /rw ' /proc/self/mountinfo"])
    text = out.stdout.decode()
    assert text.startswith("from-host1\n"), text
    assert "rw-ok" in text and "master:" in text  # rslave
    assert (missing / "y").exists()
    # a mount made on the host later shows in the container (host-to-container)
    (missing / "sub").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "late", str(missing / "sub")], check=True)
    try:
        out = cri.exec_sync(cid, ["grep", " /rw/sub ", "/proc/self/mountinfo"])
        assert out.exit_code == 0, "the host's new mount did not propagate"
    finally:
        subprocess.run(["umount", "-l", str(missing / "sub")], capture_output=True)
    assert list(cri.status(cid).mounts) == mounts


def test_propagation_needs_a_shared_host_mount(cri, tmp_path):
    """containerd's checks: a bidirectional volume must be on a shared mount, a
    host-to-container one on a shared or slave mount (a private one could
    not propagate: refused rather than silently private)."""
    pod_id, pod = cri.run_pod()
    private = tmp_path / "private"
    private.mkdir()
    subprocess.run(["mount", "--bind", str(private), str(private)], check=True)
    subprocess.run(["mount", "--make-private", str(private)], check=True)
    try:
        for prop in (api_pb2.PROPAGATION_BIDIRECTIONAL, api_pb2.PROPAGATION_HOST_TO_CONTAINER):
            with pytest.raises(grpc.RpcError) as e:
                cri.create(pod_id, pod, mounts=[api_pb2.Mount(
                    container_path="/v", host_path=str(private), propagation=prop)])
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "is mounted on" in e.value.details()
    finally:
        subprocess.run(["umount", "-l", str(private)], capture_output=True)


def test_bidirectional_propagation(cri, shared_dir):
    """rshared: a mount the (privileged) container makes under the volume
    shows on the host (critest's 'vice versa'), and one the host makes shows
    in the container."""
    pod_id, pod = cri.run_pod(privileged=True)
    mounts = [api_pb2.Mount(container_path=str(shared_dir), host_path=str(shared_dir),
                            propagation=api_pb2.PROPAGATION_BIDIRECTIONAL)]
    cid = cri.run(pod_id, pod, mounts=mounts,
                  security=api_pb2.LinuxContainerSecurityContext(privileged=True))
    inner = shared_dir / "from-container"
    try:
        out = cri.exec_sync(cid, ["sh", "-c", f"mkdir -p {inner} && mount --bind /etc {inner}"])
        assert out.exit_code == 0, out.stderr
        assert os.listdir(inner), "the container's mount did not reach the host"
    finally:
        subprocess.run(["umount", "-l", str(inner)], capture_output=True)
    outer = shared_dir / "from-host"
    outer.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "fromhost", str(outer)], check=True)
    try:
        out = cri.exec_sync(cid, ["grep", f" {outer} ", "/proc/self/mountinfo"])
        assert out.exit_code == 0, "the host's mount did not reach the container"
    finally:
        subprocess.run(["umount", "-l", str(outer)], capture_output=True)


def test_pid_namespace_sharing(cri):
    pod_id, pod = cri.run_pod()
    shared = api_pb2.LinuxContainerSecurityContext(
        namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD))
    a = cri.run(pod_id, pod, security=shared)
    ps = cri.exec_sync(a, ["ps", "-o", "pid,args"]).stdout.decode()
    assert "/pause" in ps  # the pod's PID 1
    own = cri.run(pod_id, pod, security=api_pb2.LinuxContainerSecurityContext(
        namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER)))
    ps = cri.exec_sync(own, ["ps", "-o", "pid,args"]).stdout.decode()
    assert "/pause" not in ps
    target = api_pb2.LinuxContainerSecurityContext(
        namespace_options=api_pb2.NamespaceOption(pid=api_pb2.TARGET, target_id=own))
    t = cri.run(pod_id, pod, command=["sleep", "3601"], security=target)
    ps = cri.exec_sync(own, ["ps", "-o", "args"]).stdout.decode()
    assert "sleep 3601" in ps
    assert t


def test_update_resources(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, resources=api_pb2.LinuxContainerResources(
        memory_limit_in_bytes=64 * 1024 * 1024, cpu_shares=512))
    pid = container_pid(cri, cid)
    cg, v2 = cgroup_dir(pid)
    limit_file = os.path.join(cg, "memory.max" if v2 else "memory.limit_in_bytes")
    assert int(open(limit_file).read()) == 64 * 1024 * 1024
    cri.call("UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=128 * 1024 * 1024, cpu_quota=50000, cpu_period=100000)))
    assert int(open(limit_file).read()) == 128 * 1024 * 1024
    cpu, v2 = controller_dir(pid, "cpu")
    if v2:
        assert read(cpu, "cpu.max") == "50000 100000"
    else:
        assert (read(cpu, "cpu.cfs_quota_us"), read(cpu, "cpu.cfs_period_us")) == ("50000", "100000")
    res = cri.status(cid).resources.linux
    assert res.memory_limit_in_bytes == 128 * 1024 * 1024
    assert (res.cpu_quota, res.cpu_period, res.cpu_shares) == (50000, 100000, 512)
    # /dev/null still works after an update (containerd's runc update lost it once)
    assert cri.exec_sync(cid, ["sh", "-c", "echo x > /dev/null"]).exit_code == 0


def test_kubelet_resources_in_cgroup_files(cri):
    """What kubelet sends for a Burstable container (requests cpu 250m, limits
    cpu 500m and memory 128Mi, no swap; static CPU manager: cpuset 0) lands in
    the container's cgroup files: cgroup2's memory.max, memory.swap.max,
    cpu.max, cpu.weight, cpuset.cpus/mems, or their v1 counterparts."""
    pod_id, pod = cri.run_pod()
    mib128 = 128 * 1024 * 1024
    res = api_pb2.LinuxContainerResources(
        cpu_period=100000, cpu_quota=50000, cpu_shares=256, memory_limit_in_bytes=mib128,
        memory_swap_limit_in_bytes=mib128, oom_score_adj=968, cpuset_cpus="0", cpuset_mems="0")
    cid = cri.run(pod_id, pod, resources=res)
    pid = container_pid(cri, cid)
    mem, v2 = controller_dir(pid, "memory")
    if v2:
        assert int(read(mem, "memory.max")) == mib128
        assert read(mem, "memory.swap.max") == "0"  # OCI's swap is memory+swap
    else:
        assert int(read(mem, "memory.limit_in_bytes")) == mib128
        if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
            assert int(read(mem, "memory.memsw.limit_in_bytes")) == mib128
    cpu, v2 = controller_dir(pid, "cpu")
    if v2:
        assert read(cpu, "cpu.max") == "50000 100000"
        assert read(cpu, "cpu.weight") == "35"  # shares 256 on crun's (runc 1.3's) map
    else:
        assert (read(cpu, "cpu.cfs_quota_us"), read(cpu, "cpu.cfs_period_us"),
                read(cpu, "cpu.shares")) == ("50000", "100000", "256")
    cpuset, _ = controller_dir(pid, "cpuset")
    assert (read(cpuset, "cpuset.cpus"), read(cpuset, "cpuset.mems")) == ("0", "0")
    assert open(f"/proc/{pid}/oom_score_adj").read().strip() == "968"
    # what ContainerStatus reports back is what was sent
    assert cri.status(cid).resources.linux == res


def hugepage_sizes():
    """The huge page sizes this kernel has, named as kubelet names them ("2MB", "1GB")."""
    sizes = []
    for entry in sorted(os.listdir("/sys/kernel/mm/hugepages")):  # hugepages-2048kB
        kib = int(entry.removeprefix("hugepages-").removesuffix("kB"))
        sizes.append(f"{kib // 1024 ** 2}GB" if kib % 1024 ** 2 == 0 else f"{kib // 1024}MB")
    return sizes


def hugetlb_available():
    """Whether the hugetlb controller is anywhere pyboxd can use it: a v1
    hierarchy, or the cgroup2 mount's controllers (a v2 host, or the unified
    half of a hybrid one)."""
    v1, v2 = cgroup_mounts()
    if "hugetlb" in v1:
        return True
    if v2 is None:
        return False
    with open(os.path.join(v2, "cgroup.controllers")) as f:
        return "hugetlb" in f.read().split()


def test_hugepage_limits(cri):
    """kubelet sends a limit for every huge page size the node has (0 for the
    sizes the pod did not ask for), named "2MB"/"1GB" as the runtime spec's
    pageSize: they land in hugetlb.<size>.max (cgroup2; also a hybrid host's
    unified half, where its hugetlb is) or hugetlb.<size>.limit_in_bytes (v1),
    and UpdateContainerResources changes them live.  A size the kernel lacks
    fails the start, naming the field."""
    sizes = hugepage_sizes()
    if "2MB" not in sizes:
        pytest.skip(f"no 2MB huge pages on this kernel ({sizes})")
    pod_id, pod = cri.run_pod()
    mib8 = 8 * 1024 * 1024
    limits = [api_pb2.HugepageLimit(page_size=size, limit=mib8 if size == "2MB" else 0)
              for size in sizes]
    res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=64 * 1024 * 1024,
                                          hugepage_limits=limits)
    if not hugetlb_available():
        cid = cri.create(pod_id, pod, resources=res)
        with pytest.raises(grpc.RpcError) as e:
            cri.start(cid)  # a clear refusal, not a silent drop
        assert "hugepageLimits" in e.value.details() and "hugetlb" in e.value.details()
        return
    cid = cri.run(pod_id, pod, resources=res)
    pid = container_pid(cri, cid)
    d, v2 = controller_dir(pid, "hugetlb")

    def limit(size):
        return int(read(d, f"hugetlb.{size}.max" if v2 else f"hugetlb.{size}.limit_in_bytes"))

    assert limit("2MB") == mib8
    for size in sizes:
        if size != "2MB":
            assert limit(size) == 0, size
    assert list(cri.status(cid).resources.linux.hugepage_limits) == limits
    # kubelet's in-place resize
    update = [api_pb2.HugepageLimit(page_size="2MB", limit=2 * mib8)]
    cri.call("UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(hugepage_limits=update)))
    assert limit("2MB") == 2 * mib8
    assert list(cri.status(cid).resources.linux.hugepage_limits) == update
    # a page size this kernel does not have: the start fails and says which
    bad = cri.create(pod_id, pod, resources=api_pb2.LinuxContainerResources(
        hugepage_limits=[api_pb2.HugepageLimit(page_size="3MB", limit=mib8)]))
    with pytest.raises(grpc.RpcError) as e:
        cri.start(bad)
    assert "hugepageLimits[0].pageSize" in e.value.details() and "3MB" in e.value.details()
    assert cri.status(bad).reason == "StartError"


def test_reopen_log(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=["sh", "-c",
                                        "echo one; while ! [ -e /tmp/go ]; do sleep 0.1; done;"
                                        " echo two; sleep 3600"])
    log = cri.status(cid).log_path
    wait_for(lambda: os.path.exists(log) and "one" in open(log).read(), "the first line")
    os.rename(log, log + ".1")  # kubelet's rotation
    cri.call("ReopenContainerLog", api_pb2.ReopenContainerLogRequest(container_id=cid))
    cri.exec_sync(cid, ["touch", "/tmp/go"])
    wait_for(lambda: os.path.exists(log) and "two" in open(log).read(), "the line after reopen")
    assert "two" not in open(log + ".1").read()
    cri.call("StopContainer", api_pb2.StopContainerRequest(container_id=cid, timeout=0))
    with pytest.raises(grpc.RpcError) as e:
        cri.call("ReopenContainerLog", api_pb2.ReopenContainerLogRequest(container_id=cid))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_stats(cri):
    pod_id, pod = cri.run_pod()
    # 10 kB written to the writable layer; sleep is not sh's last command: sh
    # forks it and keeps its 4 MB string
    cid = cri.run(pod_id, pod, command=["sh", "-c", "head -c 10000 /dev/zero > /written;"
                                                    " x=$(head -c 4000000 /dev/zero | tr '\\0' a);"
                                                    " sleep 3600; echo ${#x}"])
    # sh has built its 4 MB string once its sleep runs (slow under TCG)
    wait_for(lambda: cri.exec_sync(cid, ["sh", "-c", "ps -o args | grep -q '^sleep 3600'"]
                                   ).exit_code == 0, "the container's sleep")
    s = cri.call("ContainerStats", api_pb2.ContainerStatsRequest(container_id=cid)).stats
    assert s.attributes.id == cid
    assert s.cpu.usage_core_nano_seconds.value > 0
    assert s.memory.usage_bytes.value > 0 and s.memory.working_set_bytes.value > 0
    # the numbers are the cgroup's (v2: cpu.stat's usage_usec, memory.current):
    # cpu time only grows, and sh holds the 4 MB string it built
    cpu, v2 = controller_dir(container_pid(cri, cid), "cpu")
    if v2:
        usage_usec = int(read(cpu, "cpu.stat").split("\n")[0].split()[1])
        assert s.cpu.usage_core_nano_seconds.value <= usage_usec * 1000
    assert s.memory.working_set_bytes.value >= 4_000_000, s.memory
    # critest's checks of the writable layer: a mountpoint, bytes and inodes
    assert s.writable_layer.fs_id.mountpoint and s.writable_layer.timestamp
    assert s.writable_layer.used_bytes.value >= 10000, s.writable_layer
    assert s.writable_layer.inodes_used.value >= 2, s.writable_layer  # / and /written
    listed = cri.call("ListContainerStats", api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(pod_sandbox_id=pod_id))).stats
    assert [x.attributes.id for x in listed] == [cid]
    ps = cri.call("PodSandboxStats", api_pb2.PodSandboxStatsRequest(
        pod_sandbox_id=pod_id)).stats
    assert ps.attributes.id == pod_id
    # the pod's sum counts its container (compared with the container's entry
    # of the same answer: the figure above was read earlier, and memory the
    # exec's processes had charged may have gone since), 4 MB string and all
    assert [c.attributes.id for c in ps.linux.containers] == [cid]
    assert ps.linux.memory.usage_bytes.value >= ps.linux.containers[0].memory.usage_bytes.value
    assert ps.linux.memory.usage_bytes.value >= 4_000_000, ps.linux.memory
    assert ps.linux.network.default_interface.name == "eth0"
    assert ps.linux.process.process_count.value >= 2
    listed = cri.call("ListPodSandboxStats", api_pb2.ListPodSandboxStatsRequest(
        filter=api_pb2.PodSandboxStatsFilter(id=pod_id))).stats
    assert [x.attributes.id for x in listed] == [pod_id]


def test_container_events(cri, runtime_stub):
    got = []
    stream = runtime_stub.GetContainerEvents(api_pb2.GetEventsRequest(), timeout=CALL_TIMEOUT)

    def read():
        try:
            for ev in stream:
                got.append(ev)
                if ev.container_event_type == api_pb2.CONTAINER_DELETED_EVENT:
                    return
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the stream is subscribed once the first call is in
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=["true"])
    wait_exited(cri, cid)
    cri.call("RemoveContainer", api_pb2.RemoveContainerRequest(container_id=cid))
    reader.join(20)
    stream.cancel()
    # the sandbox's own events too (containerd 1.7's, for kubelet's evented PLEG)
    assert [e.container_event_type for e in got if e.container_id == pod_id][:2] == [
        api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT]
    mine = [(e.container_event_type) for e in got if e.container_id == cid]
    assert mine == [api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
                    api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT]
    assert all(e.pod_sandbox_status.id == pod_id for e in got if e.container_id == cid)
    started = next(e for e in got if e.container_id == cid
                   and e.container_event_type == api_pb2.CONTAINER_STARTED_EVENT)
    assert [c.id for c in started.containers_statuses] == [cid]


def test_start_twice_and_in_stopped_pod(cri):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod)
    with pytest.raises(grpc.RpcError):
        cri.start(cid)
    late = cri.create(pod_id, pod)
    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert cri.status(cid).state == api_pb2.CONTAINER_EXITED  # the pod's stop stops them
    with pytest.raises(grpc.RpcError) as e:
        cri.start(late)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # removing the pod removes its containers
    cri.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    with pytest.raises(grpc.RpcError) as e:
        cri.status(late)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_devices_and_resources(cri):
    """A device under another name with its cgroup permissions; oom_score_adj
    and cpuset as kubelet sends them."""
    pod_id, pod = cri.run_pod()
    devices = [api_pb2.Device(container_path="/dev/mydev", host_path="/dev/zero",
                              permissions="rwm")]
    res = api_pb2.LinuxContainerResources(oom_score_adj=500, cpuset_cpus="0",
                                          cpu_shares=256)
    cid = cri.run(pod_id, pod, devices=devices, resources=res)
    out = cri.exec_sync(cid, ["sh", "-c", "head -c 5 /dev/mydev | wc -c; "
                                          "cat /proc/self/oom_score_adj; "
                                          "grep Cpus_allowed_list /proc/self/status"])
    lines = out.stdout.decode().split("\n")
    assert lines[0].strip() == "5"
    assert lines[1] == "500"
    assert lines[2].split()[-1] == "0"
    # a device the container was not given is refused by the device cgroup
    out = cri.exec_sync(cid, ["sh", "-c", "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda"])
    assert out.exit_code != 0


def test_unified_resources_on_cgroup_v2(cri):
    """kubelet on cgroup v2 sends unified entries (memory.oom.group, MemoryQoS's
    memory.high): written as the container's cgroup2 files, updated live."""
    with open("/proc/self/cgroup") as f:
        if any(":memory:" in line for line in f):
            pytest.skip("the memory controller is on cgroup v1 here (unified needs v2)")
    pod_id, pod = cri.run_pod()
    unified = {"memory.high": "67108864", "memory.oom.group": "1"}
    cid = cri.run(pod_id, pod, resources=api_pb2.LinuxContainerResources(unified=unified))
    cg, v2 = cgroup_dir(container_pid(cri, cid))
    assert v2
    assert (read(cg, "memory.high"), read(cg, "memory.oom.group")) == ("67108864", "1")
    assert dict(cri.status(cid).resources.linux.unified) == unified
    update = {"memory.high": "33554432", "memory.oom.group": "1"}
    cri.call("UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(unified=update)))
    assert read(cg, "memory.high") == "33554432"
    assert dict(cri.status(cid).resources.linux.unified) == update
