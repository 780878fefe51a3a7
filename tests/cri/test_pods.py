"""Pod sandboxes through the CRI: run, status, list with filters, stop, remove;
pybox's own pause, the pod's network (CNI on a private bridge, its IP, port
mappings), hostNetwork, hostname, DNS, sysctls, the pod cgroup, and kubelet's
containers kept out of `docker ps`."""

import json
import os
import socket
import subprocess
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2

from support.wait import wait_for

from .conftest import BUSYBOX
from .test_containers import cgroup_mounts, container_pid, controller_dir, read


def pause_pid(cri, pod_id):
    info = json.loads(cri.pod_status(pod_id, verbose=True).info["info"])
    return info["pid"]


def in_netns(pid, *argv):
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], capture_output=True,
                          text=True, timeout=30)


def test_run_status_list_stop_remove(cri):
    labels = {"app": "web", "tier": uuid.uuid4().hex[:6]}
    pod_id, config = cri.run_pod(labels=labels, annotations={"a.b/c": "d"})
    st = cri.pod_status(pod_id).status
    assert st.id == pod_id
    assert st.state == api_pb2.SANDBOX_READY
    assert st.metadata.name == config.metadata.name
    assert st.metadata.uid == config.metadata.uid
    assert dict(st.labels) == labels
    assert dict(st.annotations) == {"a.b/c": "d"}
    assert st.created_at > 0
    assert st.linux.namespaces.options.network == api_pb2.POD
    # the pod's IP comes from the private /24 of the conftest's conflist
    import ipaddress

    assert ipaddress.ip_address(st.network.ip) in ipaddress.ip_network(
        cri.daemon.subnet), st.network

    listed = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest()).items
    assert pod_id in [p.id for p in listed]
    # filters: id prefix, state, label selector
    by = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(id=pod_id[:12]))).items
    assert [p.id for p in by] == [pod_id]
    by = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(label_selector={"tier": labels["tier"]}))).items
    assert [p.id for p in by] == [pod_id]
    by = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(label_selector={"tier": "other"}))).items
    assert by == []

    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_NOTREADY
    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))  # again
    notready = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(id=pod_id, state=api_pb2.PodSandboxStateValue(
            state=api_pb2.SANDBOX_NOTREADY)))).items
    assert [p.id for p in notready] == [pod_id]
    # the network is gone: no pinned namespace, no veth on the bridge
    assert not os.path.exists(os.path.join(cri.daemon.exec_root, "cri", "netns", pod_id))

    cri.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    with pytest.raises(grpc.RpcError) as e:
        cri.pod_status(pod_id)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # removing again is fine (kubelet retries)
    cri.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def test_unknown_pod_not_found(cri):
    for method, req in (("PodSandboxStatus", api_pb2.PodSandboxStatusRequest),
                        ("StopPodSandbox", api_pb2.StopPodSandboxRequest)):
        with pytest.raises(grpc.RpcError) as e:
            cri.call(method, req(pod_sandbox_id="0" * 64))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_pause_is_pybox_own(cri):
    """No image to pull: the sandbox runs pybox's pause, which reaps orphans
    (SIGCHLD ignored) and ends on SIGTERM."""
    pod_id, _ = cri.run_pod()
    pid = pause_pid(cri, pod_id)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read() == b"/pause\x00"
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    sigign = int(status["SigIgn"].strip(), 16)
    assert sigign & (1 << (17 - 1)), "SIGCHLD is not ignored"
    assert int(status["VmRSS"].split()[0]) < 100  # kB: one page of program, no libc


def test_pod_network_lo_and_eth0(cri):
    pod_id, _ = cri.run_pod()
    ip = cri.pod_status(pod_id).status.network.ip
    pid = pause_pid(cri, pod_id)
    addrs = in_netns(pid, "ip", "-o", "addr").stdout
    assert "inet 127.0.0.1/8" in addrs  # lo is up (CNI's loopback)
    assert f"inet {ip}/24" in addrs and "eth0" in addrs


def test_host_network_pod(cri):
    pod_id, config = cri.run_pod(host_network=True)
    st = cri.pod_status(pod_id).status
    assert st.state == api_pb2.SANDBOX_READY
    assert st.linux.namespaces.options.network == api_pb2.NODE
    pid = pause_pid(cri, pod_id)
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/uts") == os.readlink("/proc/self/ns/uts")


def test_hostname_dns_sysctls(cri):
    dns = api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local",
                                                            "svc.cluster.local"],
                            options=["ndots:5"])
    pod_id, config = cri.run_pod(hostname="my-pod-host", dns=dns,
                                 sysctls={"net.ipv4.ip_unprivileged_port_start": "0",
                                          "kernel.shm_rmid_forced": "1"})
    cid = cri.run(pod_id, config)
    out = cri.exec_sync(cid, ["sh", "-c", "hostname; cat /etc/resolv.conf; "
                                          "cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
                                          "/proc/sys/kernel/shm_rmid_forced"])
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "my-pod-host"
    assert "search default.svc.cluster.local svc.cluster.local" in lines
    assert "nameserver 10.96.0.10" in lines
    assert "options ndots:5" in lines
    assert lines[-2:] == ["0", "1"]


def test_port_mapping(cri):
    """A hostPort reaches the pod (portmap's DNAT, from outside the host's
    loopback: the bridge's gateway address)."""
    with socket.socket() as s:
        s.bind(("", 0))
        host_port = s.getsockname()[1]
    pm = api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=8080, host_port=host_port)
    pod_id, config = cri.run_pod(port_mappings=[pm])
    cri.run(pod_id, config, command=["sh", "-c",
                                     "while true; do echo hello-pod | nc -l -p 8080; done"])
    ip = cri.pod_status(pod_id).status.network.ip
    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True,
                           text=True).stdout
    assert f"--dport {host_port}" in rules and f"{ip}:8080" in rules

    def fetch():
        try:
            with socket.create_connection((ip, 8080), timeout=5) as s:
                return s.recv(100)
        except OSError:
            return b""

    assert wait_for(fetch, "the pod's listener") == b"hello-pod\n"
    cri.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True,
                           text=True).stdout
    assert f"{ip}:8080" not in rules  # the DNAT went with the pod


def test_cgroup_parent(cri):
    """kubelet's cgroupfs driver gives CgroupParent /kubepods/burstable/pod<uid>:
    the pause and every container of the pod go under it, PARENT/<id> in every
    v1 hierarchy or in the one cgroup2 tree, the container's limits there; and
    with the pod gone nothing of pyboxd's is left under the parent."""
    parent = f"/pybox-cri-test-{uuid.uuid4().hex[:8]}/pod{uuid.uuid4()}"
    v1, v2 = cgroup_mounts()
    tops = sorted({os.path.join(m, parent.split("/")[1]) for m in [*v1.values(), v2] if m})
    try:
        pod_id, config = cri.run_pod(cgroup_parent=parent)
        cid = cri.run(pod_id, config, resources=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=64 * 1024 * 1024))
        for pid, own in ((pause_pid(cri, pod_id), pod_id), (container_pid(cri, cid), cid)):
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().splitlines()
            # v1: every controller's hierarchy (a hybrid host's unified half is
            # joined only when a limit goes there); v2: the one "0::" line
            v1_lines = [line for line in lines if not line.startswith("0::")
                        and line.split(":", 2)[1] != "name=systemd"]
            paths = {line.split(":", 2)[2] for line in v1_lines or lines}
            assert paths == {f"{parent}/{own}"}, lines
        mem, on_v2 = controller_dir(container_pid(cri, cid), "memory")
        assert mem.endswith(f"{parent}/{cid}")
        assert int(read(mem, "memory.max" if on_v2 else "memory.limit_in_bytes")) == 64 << 20
        cri.cleanup()
        cri.containers.clear()
        cri.pods.clear()
        kept = {os.path.join(top, parent.split("/")[2]) for top in tops}  # the parent itself
        left = [os.path.join(root, d) for top in tops for root, dirs, _ in os.walk(top)
                for d in dirs if os.path.join(root, d) not in kept]
        assert not left, f"cgroups left under the parent: {left}"
    finally:
        cri.cleanup()
        cri.pods.clear()
        for top in tops:  # the parent (kubelet's to make and remove), deepest first
            for root in sorted((w[0] for w in os.walk(top)), key=len, reverse=True):
                try:
                    os.rmdir(root)
                except OSError:
                    pass


def test_one_monitor_per_pod(cri, cri_pyboxd):
    """The pod's sandbox and containers share one monitor process (as
    containerd's shim serves a pod); another pod has its own."""
    pod_id, pod = cri.run_pod()
    a = cri.run(pod_id, pod)
    b = cri.run(pod_id, pod)
    other, other_config = cri.run_pod()
    c = cri.run(other, other_config)
    pids = {cid: cri_pyboxd.monitor_pid(cid) for cid in (pod_id, a, b, other, c)}
    assert pids[pod_id] == pids[a] == pids[b]
    assert pids[other] == pids[c] != pids[pod_id]
    # a container of the pod that ends leaves the others served
    cri.call("StopContainer", api_pb2.StopContainerRequest(container_id=a, timeout=0))
    assert cri.exec_sync(b, ["true"]).exit_code == 0
    assert cri_pyboxd.monitor_pid(b) == pids[pod_id]


def test_pods_not_in_docker_ps(cri, cri_pyboxd):
    pod_id, config = cri.run_pod()
    cid = cri.run(pod_id, config)
    ps = cri_pyboxd.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}}").split()
    assert pod_id not in ps and cid not in ps
    asked = cri_pyboxd.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}}", "--filter",
                          f"label=io.kubernetes.pod.uid={config.metadata.uid}").split()
    assert sorted(asked) == sorted([pod_id, cid])


def test_same_pod_twice_already_exists(cri):
    pod_id, config = cri.run_pod()
    with pytest.raises(grpc.RpcError) as e:
        cri.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_configured_infra_image_is_not_used_by_default(cri, cri_pyboxd):
    """pybox's pause image is a local one, made on first use."""
    pod_id, _ = cri.run_pod(host_network=True)
    images = cri_pyboxd.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert any(i.startswith("localhost/pybox-pause:") for i in images), images
    assert BUSYBOX


def test_no_cni_config(cri, cri_pyboxd):
    """Without a valid CNI conf: NetworkReady false with the reason, a pod on the
    pod network refused leaving nothing, a hostNetwork pod still runs."""
    conf = os.path.join(cri_pyboxd.cni_conf_dir, "10-pybox-cri.conflist")
    aside = conf + ".aside"
    os.rename(conf, aside)
    try:
        s = cri.call("Status", api_pb2.StatusRequest())
        net = {c.type: c for c in s.status.conditions}["NetworkReady"]
        assert net.status is False and net.reason == "NetworkPluginNotReady"
        assert "cni" in net.message
        config = cri.pod_config()
        with pytest.raises(grpc.RpcError) as e:
            cri.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))
        assert e.value.code() == grpc.StatusCode.UNKNOWN
        left = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest()).items
        assert config.metadata.uid not in [p.metadata.uid for p in left]
        pod_id, _ = cri.run_pod(host_network=True)
        assert cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_READY
    finally:
        os.rename(aside, conf)


def test_cni_failure_leaves_nothing(cri, cri_pyboxd):
    """A plugin that fails the ADD: RunPodSandbox fails (UNKNOWN) and nothing of
    the pod is left: no sandbox, no pinned namespace, no veth."""
    conf = os.path.join(cri_pyboxd.cni_conf_dir, "10-pybox-cri.conflist")
    aside = conf + ".aside"
    os.rename(conf, aside)
    broken = os.path.join(cri_pyboxd.cni_conf_dir, "05-broken.conflist")
    with open(broken, "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "broken", "plugins": [
            {"type": "bridge", "bridge": cri_pyboxd.bridge,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/33"}]],
                      "dataDir": cri_pyboxd.ipam_dir}}]}, f)
    try:
        config = cri.pod_config()
        with pytest.raises(grpc.RpcError) as e:
            cri.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))
        assert e.value.code() == grpc.StatusCode.UNKNOWN, e.value.details()
        assert "failed to setup network for sandbox" in e.value.details()
        left = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest()).items
        assert config.metadata.uid not in [p.metadata.uid for p in left]
        netns_dir = os.path.join(cri_pyboxd.exec_root, "cri", "netns")
        pods = {p.id for p in left}
        assert not [n for n in (os.listdir(netns_dir) if os.path.isdir(netns_dir) else [])
                    if n not in pods]
    finally:
        os.unlink(broken)
        os.rename(aside, conf)


def test_failed_sandbox_start_leaves_nothing(cri):
    config = cri.pod_config(sysctls={"net.ipv4.no_such_knob": "1"})
    with pytest.raises(grpc.RpcError):
        cri.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))
    left = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest()).items
    assert config.metadata.uid not in [p.metadata.uid for p in left]
    # the name is free again: the same pod without the bad sysctl runs
    fixed = api_pb2.PodSandboxConfig()
    fixed.CopyFrom(config)
    fixed.linux.ClearField("sysctls")
    pod_id, _ = cri.run_pod(config=fixed)
    assert cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_READY
