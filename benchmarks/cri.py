#!/usr/bin/env python3
"""A pod's life through the CRI: pyboxd next to containerd + runc (Debian's), driven by crictl.

Each runtime is private, and both get the same pods:

  pybox       a private pyboxd serving its CRI on a private socket (pybox's own
              pause for the sandbox), CNI from a private conf dir;
  containerd  a private containerd 1.6 (runc, cgroupfs, overlayfs), root and
              state in private directories, its CRI plugin with a private CNI
              conf dir, the sandbox image a busybox `sleep` (the pause's part).

The networks are Debian's CNI plugins (bridge + host-local + loopback) on a
private bridge per runtime and a /24 nothing on the host uses, no masquerade
and no port mapping, so the host's networking is left as it is.  The image is
the busybox root file system pybox builds (`docker import` into pyboxd, `ctr
import` of the same layer into containerd): no registry.

Measured, median of N rounds, the runtimes taking turns:

  lifecycle   one pod's whole life as kubelet drives it, each step a crictl
              command: runp, create, start, stop, rm, stopp, rmp (the wall
              time of the seven, each step's too); beside it `crictl version`,
              the part of every step that is crictl's own (a Go process
              starting and dialing), the same for both;
  over gRPC   the same life over one gRPC channel kept open (as kubelet
              keeps its connection): each call's time, the runtime's own;
  memory      with P pods running one `sleep` container each, the PSS
              (/proc/PID/smaps_rollup) of everything a pod costs beyond its
              workload, per pod: pyboxd's monitors and its pause; containerd's
              shims (containerd-shim-runc-v2) and pause containers.

Targets (issue 18 point 6): the lifecycle at most half of containerd's; the
memory per pod below containerd's shim + pause.

crictl is not in the repository: build it from cri-tools' source (v1.26.x
builds with Debian's golang-1.19, its Go dependencies vendored) and name it:

    CRICTL=/path/to/crictl /opt/pybox/bin/python benchmarks/cri.py [-n 10] [--pods 5] \
        [--runtimes pybox,containerd] [--crictl PATH]
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
sys.path.insert(0, SRC)
sys.path.append(os.path.join(ROOT, "tests"))

from support.subnets import free_subnet  # noqa: E402 - the CRI tests' private /24

DOCKER = "/usr/local/bin/docker"
CNI_BIN_DIR = "/usr/lib/cni"
IMAGE = "localhost/pybox-bench/busybox:latest"
WORKLOAD = ["sleep", "7777"]  # the container's command: what a pod's cost leaves out
STEPS = ("runp", "create", "start", "stop", "rm", "stopp", "rmp")


# -- helpers -------------------------------------------------------------------------------
def wait_for(check, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def processes():
    """{pid: (ppid, argv)} of every process now."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out[int(entry)] = (ppid, argv)
    return out


def with_descendants(roots, procs):
    """``roots`` and every process below them."""
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def write_conflist(conf_dir, name, bridge, subnet, ipam_dir):
    os.makedirs(conf_dir, exist_ok=True)
    doc = {"cniVersion": "0.4.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": ipam_dir,
                  "ranges": [[{"subnet": subnet}]]}}]}
    with open(os.path.join(conf_dir, "10-bench.conflist"), "w") as f:
        json.dump(doc, f)


def busybox_tar(work):
    """The busybox root file system pybox builds, as a tar."""
    bundle = os.path.join(work, "busybox-bundle")
    subprocess.run([sys.executable, "-m", "pybox.images.rootfs", "busybox", bundle], check=True,
                   capture_output=True, env=dict(os.environ, PYTHONPATH=SRC))
    tar = os.path.join(work, "busybox.tar")
    subprocess.run(["tar", "-C", os.path.join(bundle, "rootfs"), "-cf", tar, "."], check=True)
    shutil.rmtree(bundle)
    return tar


def docker_archive(rootfs_tar, dest, cmd, ref):
    """A `docker save` archive of one layer whose command is ``cmd`` (for ctr import)."""
    hasher = hashlib.sha256()
    with open(rootfs_tar, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    layer = hasher.hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd,
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref],
                            "Layers": [f"{layer}/layer.tar"]}]).encode()
    with tarfile.open(dest, "w") as out:
        out.add(rootfs_tar, arcname=f"{layer}/layer.tar")
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


def unmount_under(prefix):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def remove_cgroups(parent):
    """``parent`` and whatever is left below it, in every hierarchy mounted."""
    with open("/proc/self/mountinfo") as f:
        roots = {line.split()[4] for line in f if " - cgroup" in line}
    for root in roots:
        top = root + parent
        for path, _, _ in sorted(os.walk(top, topdown=False), key=lambda w: -len(w[0])):
            try:
                os.rmdir(path)
            except OSError:
                pass


def netns_files():
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


# -- the runtimes ----------------------------------------------------------------------------
class Runtime:
    name = "?"
    endpoint = ""

    def __init__(self, crictl, work):
        self.crictl = crictl
        self.work = work
        self.channel = None
        self.stub = None
        # the pods' cgroup parent, as kubelet gives one (kubepods...): private,
        # removed at the end in every hierarchy
        self.cgroup_parent = f"/pybox-bench-cri-{uuid.uuid4().hex[:8]}"
        self.configs = os.path.join(work, "configs")
        os.makedirs(self.configs, exist_ok=True)

    def cli(self, *args):
        return [self.crictl, "--runtime-endpoint", self.endpoint, "--image-endpoint",
                self.endpoint, "--timeout", "60s", *args]

    def run(self, *args):
        proc = subprocess.run(self.cli(*args), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name}: crictl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def pod_files(self):
        """(pod config, container config) files for a new pod."""
        tag = uuid.uuid4().hex[:10]
        pod = {"metadata": {"name": f"bench-{tag}", "namespace": "bench", "uid": tag,
                            "attempt": 0},
               "log_directory": os.path.join(self.work, "logs", tag),
               "linux": {"cgroup_parent": self.cgroup_parent}}
        os.makedirs(pod["log_directory"], exist_ok=True)
        ctr = {"metadata": {"name": "sleeper"}, "image": {"image": IMAGE},
               "command": WORKLOAD, "log_path": "sleeper.log", "linux": {}}
        paths = []
        for kind, doc in (("pod", pod), ("ctr", ctr)):
            path = os.path.join(self.configs, f"{kind}-{tag}.json")
            with open(path, "w") as f:
                json.dump(doc, f)
            paths.append(path)
        return paths

    def lifecycle(self):
        """One pod's life, each step a crictl command -> {step: seconds}."""
        pod_json, ctr_json = self.pod_files()
        times = {}

        def step(name, *args):
            t0 = time.perf_counter()
            out = self.run(*args)
            times[name] = time.perf_counter() - t0
            return out

        pod = step("runp", "runp", pod_json)
        ctr = step("create", "create", pod, ctr_json, pod_json)
        step("start", "start", ctr)
        step("stop", "stop", "--timeout", "10", ctr)
        step("rm", "rm", ctr)
        step("stopp", "stopp", pod)
        step("rmp", "rmp", pod)
        return times

    def grpc_lifecycle(self):
        """The same life over one gRPC channel kept open, as kubelet calls ->
        {step: seconds}: the runtime's own share, without crictl's."""
        pod_json, ctr_json = self.pod_files()
        with open(pod_json) as f:
            pod_config = json_format.ParseDict(json.load(f), api_pb2.PodSandboxConfig())
        with open(ctr_json) as f:
            ctr_config = json_format.ParseDict(json.load(f), api_pb2.ContainerConfig())
        if self.channel is None:
            self.channel = grpc.insecure_channel(self.endpoint)
            self.stub = api_pb2_grpc.RuntimeServiceStub(self.channel)
        rt = self.stub
        times = {}

        def step(name, call, request):
            t0 = time.perf_counter()
            reply = call(request, timeout=60)
            times[name] = time.perf_counter() - t0
            return reply

        pod = step("runp", rt.RunPodSandbox,
                   api_pb2.RunPodSandboxRequest(config=pod_config)).pod_sandbox_id
        ctr = step("create", rt.CreateContainer, api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod, config=ctr_config, sandbox_config=pod_config)).container_id
        step("start", rt.StartContainer, api_pb2.StartContainerRequest(container_id=ctr))
        step("stop", rt.StopContainer, api_pb2.StopContainerRequest(container_id=ctr, timeout=10))
        step("rm", rt.RemoveContainer, api_pb2.RemoveContainerRequest(container_id=ctr))
        step("stopp", rt.StopPodSandbox, api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        step("rmp", rt.RemovePodSandbox, api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        return times

    def floor(self):
        """One `crictl version`: the client's own cost in every step (a Go
        process starting, dialing, one small call)."""
        t0 = time.perf_counter()
        self.run("version")
        return time.perf_counter() - t0

    def start_pods(self, count):
        """``count`` pods with a running workload each -> pod ids."""
        pods = []
        for _ in range(count):
            pod_json, ctr_json = self.pod_files()
            pod = self.run("runp", pod_json)
            pods.append(pod)
            self.run("start", self.run("create", pod, ctr_json, pod_json))
        return pods

    def remove_pods(self, pods):
        for pod in pods:
            self.run("stopp", pod)
            self.run("rmp", pod)

    def pod_processes(self, procs):
        """PIDs of what the pods cost (the runtime's per-pod processes and
        their children)."""
        raise NotImplementedError

    def memory_per_pod(self, count):
        """KiB of PSS per pod beyond its workload, with ``count`` pods running."""
        pods = self.start_pods(count)
        try:
            time.sleep(1)  # let start-up allocations settle
            procs = processes()
            pids = [p for p in self.pod_processes(procs) if procs.get(p, (0, []))[1] != WORKLOAD]
            kinds: dict[str, list[int]] = {}
            for pid in pids:
                argv = procs[pid][1]
                kind = " ".join(os.path.basename(a) for a in argv[:2]) if argv else "?"
                kinds.setdefault(kind[:40], []).append(pss_kib(pid))
            return sum(sum(v) for v in kinds.values()) / count, kinds
        finally:
            self.remove_pods(pods)


class Pybox(Runtime):
    name = "pybox"

    def __init__(self, crictl, work, subnet):
        super().__init__(crictl, work)
        self.base = os.path.join(work, "pybox")
        self.exec_root = tempfile.mkdtemp(prefix="pbx-crib-", dir="/run")
        self.sock = os.path.join(self.base, "pybox.sock")
        cri_sock = os.path.join(self.exec_root, "cri.sock")
        self.endpoint = "unix://" + cri_sock
        self.bridge = f"pbcrib{uuid.uuid4().hex[:6]}"
        conf_dir = os.path.join(self.base, "net.d")
        write_conflist(conf_dir, "bench-pybox", self.bridge, subnet,
                       os.path.join(self.base, "ipam"))
        # this tree's launchers first on pyboxd's PATH: the pybox-runtime it runs
        # is this checkout's, whatever an installed one points at
        bindir = os.path.join(self.base, "bin")
        os.makedirs(bindir, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pybox.launchers", bindir], check=True,
                       capture_output=True, env=dict(os.environ, PYTHONPATH=SRC))
        env = dict(os.environ, PYTHONPATH=SRC, PATH=bindir + os.pathsep + os.environ["PATH"])
        self.log = open(os.path.join(work, "pyboxd.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybox.cli.pyboxd", "-H", f"unix://{self.sock}",
             "--data-root", os.path.join(self.base, "data"), "--exec-root", self.exec_root,
             "--cri-socket", cri_sock, "--cni-conf-dir", conf_dir, "--cni-bin-dir", CNI_BIN_DIR],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True)
        wait_for(lambda: os.path.exists(cri_sock) or self.proc.poll() is not None,
                 "pyboxd's CRI socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"pyboxd exited ({self.proc.returncode}); see {self.log.name}")
        subprocess.run([DOCKER, "-H", f"unix://{self.sock}", "import", "-c", 'CMD ["sh"]',
                        busybox_tar(work), IMAGE], check=True, capture_output=True)

    def pod_processes(self, procs):
        monitors = set()
        base = os.path.join(self.exec_root, "containers")
        for cid in os.listdir(base) if os.path.isdir(base) else ():
            try:
                with open(os.path.join(base, cid, "monitor.pid")) as f:
                    monitors.add(int(f.read()))
            except (OSError, ValueError):
                pass
        return with_descendants(monitors & set(procs), procs)

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        try:
            for pod in json.loads(self.run("pods", "-o", "json")).get("items", []):
                self.remove_pods([pod["id"]])
        except (RuntimeError, ValueError):
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        unmount_under(self.exec_root)
        unmount_under(self.base)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.exec_root, ignore_errors=True)


CONTAINERD_CONFIG = """\
version = 2
root = "{base}/root"
state = "{state}"
[grpc]
  address = "{state}/containerd.sock"
[ttrpc]
  address = "{state}/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{state}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "{base}/net.d"
    max_conf_num = 1
"""
PAUSE = "localhost/pybox-bench/pause:latest"


class Containerd(Runtime):
    name = "containerd"

    def __init__(self, crictl, work, subnet):
        super().__init__(crictl, work)
        self.base = os.path.join(work, "containerd")
        self.state = tempfile.mkdtemp(prefix="ctd-crib-", dir="/run")
        self.sock = os.path.join(self.state, "containerd.sock")
        self.endpoint = "unix://" + self.sock
        self.bridge = f"ctcrib{uuid.uuid4().hex[:6]}"
        write_conflist(os.path.join(self.base, "net.d"), "bench-containerd", self.bridge, subnet,
                       os.path.join(self.base, "ipam"))
        config = os.path.join(self.base, "config.toml")
        with open(config, "w") as f:
            f.write(CONTAINERD_CONFIG.format(base=self.base, state=self.state, pause=PAUSE,
                                             cni=CNI_BIN_DIR))
        self.netns_before = netns_files()
        self.log = open(os.path.join(work, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", config], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.base)
        wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                 "containerd's socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"containerd exited ({self.proc.returncode}); see {self.log.name}")
        rootfs = busybox_tar(work)
        for ref, cmd in ((IMAGE, ["sh"]), (PAUSE, ["sleep", "2147483647"])):
            archive = docker_archive(rootfs, os.path.join(work, "image.tar"), cmd, ref)
            subprocess.run(["ctr", "--address", self.sock, "-n", "k8s.io", "images", "import",
                            archive], check=True, capture_output=True)
        wait_for(self.network_ready, "the CRI plugin's NetworkReady")

    def network_ready(self):
        try:
            conditions = json.loads(self.run("info"))["status"]["conditions"]
        except (RuntimeError, ValueError, KeyError):
            return False
        return any(c["type"] == "NetworkReady" and c["status"] for c in conditions)

    def shims(self, procs):
        return {pid for pid, (_, argv) in procs.items()
                if argv and argv[0].endswith("containerd-shim-runc-v2") and self.sock in argv}

    def pod_processes(self, procs):
        return with_descendants(self.shims(procs), procs)

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        try:
            self.run("rmp", "-af")
        except RuntimeError:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        for pid in self.shims(processes()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        unmount_under(self.state)
        unmount_under(self.base)
        for name in netns_files() - self.netns_before:
            if name.startswith("cni-"):
                subprocess.run(["umount", f"/run/netns/{name}"], capture_output=True)
                try:
                    os.unlink(f"/run/netns/{name}")
                except OSError:
                    pass
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.state, ignore_errors=True)


class CNIFloor:
    """What the network alone costs a pod, whatever the runtime: Debian's
    bridge plugin (with host-local, as both runtimes' conflists) run by hand,
    ADD then DEL, in a fresh network namespace on a private bridge.  Both
    runtimes run exactly these in RunPodSandbox and StopPodSandbox (DEL
    deleting the pod's veth, which the kernel does synchronously), so with
    crictl's own cost per call it bounds any runtime's lifecycle from below."""

    def __init__(self, work, subnet):
        self.bridge = f"flcrib{uuid.uuid4().hex[:6]}"
        self.ipam = os.path.join(work, "ipam")
        self.conf = json.dumps({
            "cniVersion": "0.4.0", "name": "bench-floor", "type": "bridge",
            "bridge": self.bridge, "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "dataDir": self.ipam,
                     "ranges": [[{"subnet": subnet}]]}}).encode()

    def plugin(self, command, netns, container):
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
               "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN_DIR, "PATH": os.environ["PATH"]}
        t0 = time.perf_counter()
        proc = subprocess.run([os.path.join(CNI_BIN_DIR, "bridge")], input=self.conf, env=env,
                              capture_output=True)
        took = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"bridge plugin {command}: {proc.stdout!r} {proc.stderr!r}")
        return took

    def measure(self):
        """One pod's worth: -> {"add": s, "del": s}."""
        name = f"pbcrib-floor-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            path = f"/run/netns/{name}"
            return {"add": self.plugin("ADD", path, name), "del": self.plugin("DEL", path, name)}
        finally:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)

    def stop(self):
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


# -- the measurement -------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10, help="lifecycle rounds (median)")
    parser.add_argument("--pods", type=int, default=5, help="pods running for the memory measure")
    parser.add_argument("--runtimes", default="pybox,containerd")
    parser.add_argument("--crictl", default=os.environ.get("CRICTL") or shutil.which("crictl"),
                        help="crictl's path (default: $CRICTL, else crictl on PATH)")
    args = parser.parse_args()
    if not args.crictl or not os.access(args.crictl, os.X_OK):
        parser.error("crictl not found: give --crictl PATH or CRICTL=PATH")
    work = tempfile.mkdtemp(prefix="pybox-bench-cri-", dir="/var/tmp")
    subnets = []
    runtimes = []
    cni = None
    try:
        for name in args.runtimes.split(","):
            subnet = free_subnet(subnets)
            subnets.append(subnet)
            cls = {"pybox": Pybox, "containerd": Containerd}[name]
            runtimes.append(cls(args.crictl, os.path.join(work, name), subnet))
        cni = CNIFloor(os.path.join(work, "floor"), free_subnet(subnets))
        for rt in runtimes:
            rt.lifecycle()  # warm: first-use imports and caches
            rt.grpc_lifecycle()
        cni.measure()
        rounds = {rt.name: [] for rt in runtimes}
        floors = {rt.name: [] for rt in runtimes}
        grpc_rounds = {rt.name: [] for rt in runtimes}
        cni_rounds = []
        for i in range(args.n):
            for rt in runtimes if i % 2 == 0 else reversed(runtimes):
                rounds[rt.name].append(rt.lifecycle())
                floors[rt.name].append(rt.floor())
                grpc_rounds[rt.name].append(rt.grpc_lifecycle())
            cni_rounds.append(cni.measure())
        memory = {rt.name: rt.memory_per_pod(args.pods) for rt in runtimes}
    finally:
        for rt in runtimes:
            rt.stop()
        if cni is not None:
            cni.stop()
        shutil.rmtree(work, ignore_errors=True)

    names = [rt.name for rt in runtimes]
    print(f"\nmedians of {args.n} rounds; memory with {args.pods} pods running")
    print(f"{'':12}" + "".join(f"{n:>14}" for n in names)
          + ("   pybox/containerd" if set(names) == {"pybox", "containerd"} else ""))
    rows = []
    for step in STEPS + ("total",):
        values = {}
        for name in names:
            samples = [r[step] if step != "total" else sum(r.values()) for r in rounds[name]]
            values[name] = statistics.median(samples)
        rows.append((step, values))
    rows.append(("crictl floor", {n: statistics.median(floors[n]) for n in names}))
    for step in STEPS + ("total",):
        rows.append((f"grpc {step}", {n: statistics.median(
            r[step] if step != "total" else sum(r.values()) for r in grpc_rounds[n])
            for n in names}))
    rows.append(("memory/pod", {n: memory[n][0] / 1024 for n in names}))
    for label, values in rows:
        unit = " MiB" if label == "memory/pod" else " s"
        line = f"{label:12}" + "".join(f"{values[n]:>12.3f}{unit}" for n in names)
        if "pybox" in values and "containerd" in values and values["containerd"]:
            line += f"   {values['pybox'] / values['containerd']:.2f}x"
        print(line)
    # the bound: a runtime whose own work cost nothing still pays crictl's
    # seven starts and the bridge plugin's ADD and DEL
    cni_add = statistics.median(r["add"] for r in cni_rounds)
    cni_del = statistics.median(r["del"] for r in cni_rounds)
    print(f"cni bridge plugin alone: ADD {cni_add:.3f} s, DEL {cni_del:.3f} s")
    if "containerd" in names:
        crictl = statistics.median(floors["containerd"])
        bound = len(STEPS) * crictl + cni_add + cni_del
        total = statistics.median(sum(r.values()) for r in rounds["containerd"])
        print(f"any runtime through crictl >= {len(STEPS)} x {crictl:.3f} s + ADD + DEL = "
              f"{bound:.3f} s = {bound / total:.2f}x of containerd's {total:.3f} s")
    for name in names:
        kinds = memory[name][1]
        print(f"{name}, per pod: " + ", ".join(
            f"{len(v) / args.pods:g} x {k} {sum(v) / len(v) / 1024:.2f} MiB"
            for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
