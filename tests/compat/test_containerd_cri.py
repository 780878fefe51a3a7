"""pybox-runtime as a Kubernetes RuntimeClass: Debian's containerd (1.6) with a
private configuration, driven through the CRI (runtime.v1) as kubelet drives it.

containerd gets its own root, state, gRPC/ttrpc sockets and opt directory in a
temporary directory; a runtime handler ``pybox`` of type io.containerd.runc.v2
whose BinaryName is pybox-runtime (state under the same directory, cgroupfs
driver); CNI from Debian's containernetworking-plugins (bridge + host-local,
containerd adds loopback) on a private bridge, conf dir, IPAM directory and a
/24 no route on the host uses, with no gateway, masquerade or port mapping, so
the host's forwarding and iptables stay as they are; restrict_oom_score_adj
(root lacks CAP_SYS_RESOURCE here); no AppArmor profile loaded.  The sandbox
(pause) image and the container's image are one busybox image built here and
imported with ``ctr images import`` into the k8s.io namespace: no registry.

The scenario is kubelet's: RunPodSandbox, CreateContainer + StartContainer,
ExecSync, UpdateContainerResources (the call whose resources carry the spec's
"deny all" device list: /dev/null must still work after it), ContainerStatus,
the CRI log file, ReopenContainerLog, StopContainer, RemoveContainer,
StopPodSandbox, RemovePodSandbox -- and containerd's log must show no failed
``pybox-runtime kill --all`` (the shim kills what is left of every exited
task that way).  Everything is removed at the end: containerd and its shims,
mounts, cgroups, the pod's netns, the bridge and the CNI state."""

import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import uuid

import pytest

from support.subnets import free_subnet

from .conftest import (
    SharedDirs,
    ensure_installed,
    pids_mentioning,
    remove_cgroup_tree,
    unmount_under,
    wait_for,
)

pytestmark = [pytest.mark.root, pytest.mark.compat]

HINT = "pip install -e '.[test]' (pinned in pyproject.toml's test extras)"
grpc = pytest.importorskip("grpc", reason=f"needs grpcio: {HINT}")
cri = pytest.importorskip("cri_api.v1.api_pb2", reason=f"needs the runtime.v1 stubs of "
                          f"container-runtime-interface-api: {HINT}")
cri_grpc = pytest.importorskip("cri_api.v1.api_pb2_grpc", reason=HINT)

IMAGE = "localhost/pybox-compat-cri-busybox:latest"
CNI_DIR = "/usr/lib/cni"
CALL_TIMEOUT = 60  # seconds per CRI call: a safety net, not a speed check
NETNS_DIR = "/run/netns"  # containerd 1.6 puts the pods' netns here, not in its state


# -- the image -----------------------------------------------------------------------------
def image_archive(rootfs_tar, dest):
    """A `docker save` archive of one layer (the busybox root filesystem) whose
    command sleeps: containerd runs the sandbox image's Entrypoint+Cmd as the
    pod's pause process, and the container's command replaces it."""
    hasher = hashlib.sha256()
    with open(rootfs_tar, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    layer = hasher.hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                       os.uname().machine)
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["sleep", "86400"],
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [IMAGE],
                            "Layers": [f"{layer}/layer.tar"]}]).encode()
    with tarfile.open(dest, "w") as out:
        out.add(rootfs_tar, arcname=f"{layer}/layer.tar")
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


# -- the network ---------------------------------------------------------------------------
def nat_rules_mentioning(text):
    """iptables rules (any table) whose text mentions ``text``."""
    found = []
    for table in ("nat", "filter"):
        proc = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True,
                              text=True)
        found.extend(f"{table}: {line}" for line in proc.stdout.splitlines() if text in line)
    return found


# -- containerd --------------------------------------------------------------------------
CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"
oom_score = 0

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "debug"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{base}/runc-root"
        SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pybox]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pybox.options]
        BinaryName = "{runtime}"
        Root = "{base}/pybox-root"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_dir}"
    conf_dir = "{base}/net.d"
    max_conf_num = 1
"""


# BinaryName: pybox-runtime itself, behind a shell script that notes the
# arguments and exit status of each `kill` (the shim's `kill --all` after a task
# exits is the call that failed) and keeps the resources `update` reads from
# stdin; every other command is exec'd unchanged.
RECORDER = """#!/bin/sh
case " $* " in
  *" kill "*) "{real}" "$@"; rc=$?; echo "$rc $*" >> "{calls}"; exit $rc ;;
  *" update "*) tee -a "{updates}" | "{real}" "$@"; exit $? ;;
esac
exec "{real}" "$@"
"""


class Containerd:
    """A private containerd and its CRI client."""

    def __init__(self, base, runtime_path, network):
        self.base = base
        self.kill_calls = f"{base}/kill-calls"
        self.updates = f"{base}/update-resources"
        os.makedirs(f"{base}/bin")
        runtime = f"{base}/bin/pybox-runtime"
        with open(runtime, "w") as f:
            f.write(RECORDER.format(real=runtime_path, calls=self.kill_calls,
                                    updates=self.updates))
        os.chmod(runtime, 0o755)
        self.sock = f"{base}/containerd.sock"
        self.log_path = f"{base}/containerd.log"
        self.runtime_root = f"{base}/pybox-root/k8s.io"  # Root/<namespace>
        self.network = network
        os.makedirs(f"{base}/net.d")
        with open(f"{base}/net.d/10-pybox.conflist", "w") as f:
            json.dump(network.conflist(), f, indent=2)
        with open(f"{base}/config.toml", "w") as f:
            f.write(CONFIG.format(base=base, sock=self.sock, image=IMAGE, runtime=runtime,
                                  cni_dir=CNI_DIR))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["containerd", "--config", f"{base}/config.toml"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=base)
        self.channel = None

    def connect(self):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited ({self.proc.returncode}):\n"
                                     + self.log_tail())
            return os.path.exists(self.sock)
        wait_for(ready, "containerd's socket", timeout=60)
        self.channel = grpc.insecure_channel(f"unix://{self.sock}")
        self.runtime = cri_grpc.RuntimeServiceStub(self.channel)
        self.images = cri_grpc.ImageServiceStub(self.channel)

        def cri_ready():
            try:
                status = self.call("Status", cri.StatusRequest(), timeout=5).status
            except grpc.RpcError:
                return False
            conditions = {c.type: c.status for c in status.conditions}
            return conditions.get("RuntimeReady") and conditions.get("NetworkReady")
        wait_for(cri_ready, "the CRI plugin to report RuntimeReady and NetworkReady",
                 timeout=60)

    def call(self, method, request, timeout=CALL_TIMEOUT):
        service = self.images if method in ("ListImages", "ImageStatus", "PullImage",
                                            "RemoveImage") else self.runtime
        try:
            return getattr(service, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            if method == "Status":
                raise
            raise AssertionError(f"CRI {method} failed: {e.code()}: {e.details()}\n"
                                 f"containerd's log ends:\n{self.log_tail()}") from None

    def ctr(self, *args, **kw):
        return subprocess.run(["ctr", "--address", self.sock, "--namespace", "k8s.io",
                               *args], capture_output=True, text=True, timeout=120, **kw)

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class PodNetwork:
    """The CNI network of the test: a private bridge name, conf dir and IPAM
    directory, a free /24."""

    def __init__(self, base):
        tag = uuid.uuid4().hex[:8]
        self.name = f"pybox-cri-{tag}"
        self.bridge = f"pbcri{tag}"  # 13 characters (IFNAMSIZ 16)
        self.subnet = free_subnet()
        self.ipam_dir = f"{base}/cni-ipam"

    def conflist(self):
        return {"cniVersion": "1.0.0", "name": self.name, "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isGateway": False, "ipMasq": False,
             "hairpinMode": False,
             "ipam": {"type": "host-local", "dataDir": self.ipam_dir,
                      "ranges": [[{"subnet": self.subnet}]]}}]}

    def remove(self):
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@pytest.fixture(scope="module")
def containerd(pybox_runtime_path, busybox_tar):
    ensure_installed({"containerd": "containerd", "ctr": "containerd",
                      "containerd-shim-runc-v2": "containerd",
                      f"{CNI_DIR}/bridge": "containernetworking-plugins",
                      f"{CNI_DIR}/host-local": "containernetworking-plugins",
                      f"{CNI_DIR}/loopback": "containernetworking-plugins"})
    # the shim's sockets (/run/containerd/s), the pods' netns, libcni's cache
    shared = SharedDirs(["/run/containerd", NETNS_DIR, "/var/lib/cni"])
    base = tempfile.mkdtemp(prefix="pybox-compat-cri-")
    network = PodNetwork(base)
    daemon = Containerd(base, pybox_runtime_path, network)
    daemon.cgroup_parent = f"/pybox-compat-cri-{uuid.uuid4().hex[:8]}"
    daemon.netns = set()
    try:
        daemon.connect()
        archive = image_archive(busybox_tar, f"{base}/image.tar")
        proc = daemon.ctr("images", "import", archive)
        assert proc.returncode == 0, f"ctr images import failed:\n{proc.stdout}{proc.stderr}"
        yield daemon
    finally:
        _teardown(daemon, base, network, shared)


def _teardown(daemon, base, network, shared):
    """Whatever the test left: pods (CRI first, while containerd runs), then
    containerd and its shims, mounts, the pods' netns, cgroups, the bridge."""
    if daemon.channel is not None and daemon.proc.poll() is None:
        try:
            for pod in daemon.runtime.ListPodSandbox(cri.ListPodSandboxRequest(),
                                                     timeout=30).items:
                daemon.runtime.StopPodSandbox(
                    cri.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=30)
                daemon.runtime.RemovePodSandbox(
                    cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=30)
        except grpc.RpcError:
            pass
    daemon.stop()
    for pid in pids_mentioning(base):  # shims, and anything they left
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    unmount_under(base)
    for path in daemon.netns:
        if os.path.exists(path):
            subprocess.run(["umount", path], capture_output=True)
            try:
                os.unlink(path)
            except OSError:
                pass
    remove_cgroup_tree(daemon.cgroup_parent)
    network.remove()
    shutil.rmtree(base, ignore_errors=True)
    shared.release()


# -- the scenario ----------------------------------------------------------------------------
def cri_log_lines(path):
    """The CRI log file's lines as (stream, text): "TIMESTAMP STREAM F|P TEXT"."""
    out = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split(" ", 3)
            if len(fields) == 4:
                out.append((fields[1], fields[3]))
    return out


def exec_sync(containerd, cid, *cmd):
    resp = containerd.call("ExecSync", cri.ExecSyncRequest(container_id=cid, cmd=list(cmd),
                                                           timeout=30))
    return resp.exit_code, resp.stdout.decode(), resp.stderr.decode()


DEVICES_SH = ("echo x > /dev/null && echo null-ok; "
              "exec 3<>/dev/ptmx && echo ptmx-ok; "
              "head -c 3 /dev/zero | wc -c")
LIMITS_SH = r"""
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo "memory=$(cat /sys/fs/cgroup/memory.max) cpu=$(cat /sys/fs/cgroup/cpu.max)"
else
  echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)" \
       "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
fi
"""
# the main process: says what an exec leaves in /tmp/say on its own stdout, and
# exits 0 on SIGTERM
MAIN_SH = ("trap 'echo bye; exit 0' TERM; echo started; echo oops >&2; "
           "while :; do if [ -f /tmp/say ]; then cat /tmp/say; rm -f /tmp/say; fi; "
           "sleep 0.2; done")


def test_pod_lifecycle_through_the_cri(containerd):
    c = containerd
    version = c.call("Version", cri.VersionRequest())
    assert version.runtime_name == "containerd"

    uid = uuid.uuid4().hex
    log_dir = f"{c.base}/pods/{uid}"
    pod_config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="pybox-pod", uid=uid, namespace="default"),
        hostname="pybox-pod", log_directory=log_dir,
        labels={"app": "pybox-test"},
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=c.cgroup_parent,
            security_context=cri.LinuxSandboxSecurityContext(
                # shareProcessNamespace: the containers join the pod's pid
                # namespace, so the shim runs "kill --all" when one exits
                namespace_options=cri.NamespaceOption(pid=cri.POD))))
    pod = c.call("RunPodSandbox", cri.RunPodSandboxRequest(config=pod_config,
                                                          runtime_handler="pybox")).pod_sandbox_id
    status = c.call("PodSandboxStatus", cri.PodSandboxStatusRequest(pod_sandbox_id=pod,
                                                                    verbose=True))
    assert status.status.state == cri.SANDBOX_READY
    info = json.loads(status.info.get("info", "{}"))
    assert info.get("runtimeHandler") == "pybox"
    for ns in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", ()):
        if ns.get("type") == "network" and ns.get("path", "").startswith(NETNS_DIR):
            c.netns.add(ns["path"])
    pod_ip = status.status.network.ip
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(c.network.subnet), pod_ip

    container_config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="sleeper"),
        image=cri.ImageSpec(image=IMAGE),
        command=["sh", "-c", MAIN_SH],
        log_path="sleeper/0.log",
        linux=cri.LinuxContainerConfig(resources=cri.LinuxContainerResources(
            cpu_shares=256, memory_limit_in_bytes=64 << 20)))
    cid = c.call("CreateContainer", cri.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config, sandbox_config=pod_config)).container_id
    c.call("StartContainer", cri.StartContainerRequest(container_id=cid))
    # pybox-runtime, not runc, runs it: its state is in the handler's Root
    assert cid in os.listdir(c.runtime_root)

    assert exec_sync(c, cid, "echo", "hello") == (0, "hello\n", "")
    assert exec_sync(c, cid, "sh", "-c", DEVICES_SH)[:2] == (0, "null-ok\nptmx-ok\n3\n")

    # kubelet's CPU manager / in-place resize: the shim passes the spec's whole
    # linux.resources, device list ("deny all") included, to `update -r -`
    c.call("UpdateContainerResources", cri.UpdateContainerResourcesRequest(
        container_id=cid, linux=cri.LinuxContainerResources(
            cpu_shares=512, cpu_quota=50000, cpu_period=100000,
            memory_limit_in_bytes=128 << 20)))
    with open(c.updates) as f:
        sent = json.JSONDecoder().raw_decode(f.read())[0]
    assert sent["devices"] == [{"allow": False, "access": "rwm"}], sent
    code, out, err = exec_sync(c, cid, "sh", "-c", DEVICES_SH)
    assert (code, out) == (0, "null-ok\nptmx-ok\n3\n"), err
    code, out, err = exec_sync(c, cid, "sh", "-c", LIMITS_SH)
    assert code == 0, err
    assert out.split() == [f"memory={128 << 20}", "cpu=50000", "100000"], out

    status = c.call("ContainerStatus", cri.ContainerStatusRequest(container_id=cid)).status
    assert status.state == cri.CONTAINER_RUNNING
    assert status.log_path == f"{log_dir}/sleeper/0.log"
    wait_for(lambda: ("stderr", "oops") in cri_log_lines(status.log_path),
             "the container's output in its CRI log file")
    assert ("stdout", "started") in cri_log_lines(status.log_path)

    # log rotation as kubelet does it: rename, then ReopenContainerLog
    os.rename(status.log_path, status.log_path + ".1")
    c.call("ReopenContainerLog", cri.ReopenContainerLogRequest(container_id=cid))
    assert os.path.exists(status.log_path)
    assert exec_sync(c, cid, "sh", "-c", "echo after-reopen > /tmp/say")[0] == 0
    wait_for(lambda: ("stdout", "after-reopen") in cri_log_lines(status.log_path),
             "the container's output in the reopened log file")
    assert ("stdout", "after-reopen") not in cri_log_lines(status.log_path + ".1")

    c.call("StopContainer", cri.StopContainerRequest(container_id=cid, timeout=30))
    status = c.call("ContainerStatus", cri.ContainerStatusRequest(container_id=cid)).status
    assert status.state == cri.CONTAINER_EXITED
    assert status.exit_code == 0  # the TERM trap ran
    assert ("stdout", "bye") in cri_log_lines(status.log_path)

    c.call("RemoveContainer", cri.RemoveContainerRequest(container_id=cid))
    c.call("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod))
    c.call("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert not c.call("ListContainers", cri.ListContainersRequest()).containers
    assert not c.call("ListPodSandbox", cri.ListPodSandboxRequest()).items
    wait_for(lambda: not os.listdir(c.runtime_root), "pybox-runtime's state to be removed")
    for path in c.netns:
        assert not os.path.exists(path), f"{path} outlived RemovePodSandbox"

    # the shim kills what is left of every exited task with `kill --all ID 9`
    # (the pod's sandbox and the container: WithProcessKill, and for a shared
    # pid namespace the shim's own clean-up): every one succeeds, and
    # containerd's log has no failure of theirs
    with open(c.kill_calls) as f:
        kills = [line.split(" ", 1) for line in f.read().splitlines()]
    kill_all = [(rc, args) for rc, args in kills if " kill --all " in f" {args} "]
    assert {args.split()[-2] for _, args in kill_all} >= {cid, pod}, kills
    assert [(rc, args) for rc, args in kills if rc != "0"] == []
    text = c.log_text()
    failures = [line for line in text.splitlines()
                if re.search(r"kill(all)?\b.*(failed|error)|OCI runtime killall", line)
                and "level=debug" not in line]
    assert failures == [], "\n".join(failures)
    assert not nat_rules_mentioning(c.network.name)
