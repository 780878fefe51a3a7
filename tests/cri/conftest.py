"""pyboxd's CRI driven as kubelet and crictl drive it: gRPC with the runtime.v1 Python stubs.

One private pyboxd per test session (per xdist worker; support.pyboxd.Pyboxd,
the engine tests' daemon) started with its own CRI socket (BASE/cri.sock,
never the system's /run/pybox/cri.sock), its own CNI conf dir (BASE/net.d)
holding one conflist: bridge + host-local + portmap (Debian's plugins in
/usr/lib/cni) on a private bridge name, a private /24 nothing on the host
routes, and a private host-local IPAM directory; the bridge is the pods'
gateway but nothing is masqueraded, so the host's own networking stays as
it is.  The busybox image is imported with `docker import`, as the engine
tests do (busybox:latest), so no registry is needed.

Fixtures:

* ``cri_pyboxd`` (session): the daemon (``.cri_socket``, ``.bridge``,
  ``.subnet``, ``.cni_conf_dir``, and the Pyboxd helpers: ``docker()``...).
* ``runtime_stub`` / ``image_stub`` (session): RuntimeServiceStub and
  ImageServiceStub on one channel.
* ``cri`` (per test): a ``CRIHelper`` that makes unique pod configs and
  container configs, runs pods and creates containers, and at the end
  removes every container and pod the test made through it (whatever
  happened), as kubelet would: containers first, then stop and remove the pods.

At the end of the session every pod left is removed through the CRI, then the
daemon is stopped and checked for leftovers (support.pyboxd: processes,
mounts, cgroups, records), plus the CRI's own: mounts under the exec root
(the pods' pinned netns), the CNI bridge (deleted here: the bridge plugin
never deletes it), the host-local leases, the per-pod portmap chains.
"""

import contextlib
import fcntl
import json
import os
import subprocess
import textwrap
import uuid

import pytest

from support.fixtures import needs_root_and_docker_cli
from support.host import mounts_under
from support.paths import IMAGE, PYTHON, SRC
from support.pyboxd import START_TIMEOUT, Pyboxd
from support.subnets import free_subnet

grpc = pytest.importorskip("grpc", reason="needs grpcio (pyproject's dependencies)")
api_pb2 = pytest.importorskip("cri_api.v1.api_pb2", reason="needs the runtime.v1 stubs")
api_pb2_grpc = pytest.importorskip("cri_api.v1.api_pb2_grpc", reason="needs the runtime.v1 stubs")

CNI_BIN_DIR = "/usr/lib/cni"
CALL_TIMEOUT = 60  # seconds per CRI call: a safety net against hangs, not a speed check
BUSYBOX = IMAGE  # the image every private pyboxd imports


def pytest_collection_modifyitems(items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.cri)
            item.add_marker(pytest.mark.root)


# -- the pods' network ---------------------------------------------------------------------
def conflist(name, bridge, subnet, ipam_dir):
    """The pods' network: containerd's usual bridge conf (kubeadm's docs), privately."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def runtime_launcher_works():
    """Whether the installed pybox-runtime runs this checkout (its launcher names
    the source directory it was written for)."""
    proc = subprocess.run(["pybox-runtime", "--version"], capture_output=True, text=True)
    return proc.returncode == 0


def private_path(base):
    """PATH for the daemon: a pybox-runtime that runs this checkout first,
    when the installed launcher does not (it was written for another
    checkout): execs (ExecSync, exec probes) run `pybox-runtime exec`."""
    if runtime_launcher_works():
        return os.environ.get("PATH", "")
    bindir = os.path.join(base, "bin")
    os.makedirs(bindir, exist_ok=True)
    wrapper = os.path.join(bindir, "pybox-runtime")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nPYTHONPATH={SRC} exec {PYTHON} -m pybox.cli.runtime \"$@\"\n")
    os.chmod(wrapper, 0o755)
    return bindir + ":" + os.environ.get("PATH", "")


class CRIPyboxd(Pyboxd):
    """A private pyboxd with its CRI socket and a private CNI conf dir."""

    def __init__(self):
        super().__init__()
        self.daemon_env["PATH"] = private_path(self.base)
        tag = uuid.uuid4().hex[:8]
        self.cri_socket = os.path.join(self.base, "cri.sock")
        self.cni_conf_dir = os.path.join(self.base, "net.d")
        self.ipam_dir = os.path.join(self.base, "ipam")
        self.bridge = f"pbcri{tag}"  # <= 15 characters
        self.network_name = f"pybox-cri-{tag}"
        self.subnet = free_subnet()
        os.makedirs(self.cni_conf_dir)
        with open(os.path.join(self.cni_conf_dir, "10-pybox-cri.conflist"), "w") as f:
            json.dump(conflist(self.network_name, self.bridge, self.subnet, self.ipam_dir), f,
                      indent=2)
        self.extra_args += ["--cri-socket", self.cri_socket, "--cni-conf-dir", self.cni_conf_dir,
                            "--cni-bin-dir", CNI_BIN_DIR]
        self.channel = None

    def start(self):
        super().start()
        if self.channel is None:
            self.channel = grpc.insecure_channel("unix://" + self.cri_socket)
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT)
        return self

    @property
    def runtime(self):
        return api_pb2_grpc.RuntimeServiceStub(self.channel)

    @property
    def images(self):
        return api_pb2_grpc.ImageServiceStub(self.channel)

    def remove_all_pods(self):
        """Every container and pod the CRI knows, removed as kubelet would."""
        try:
            self._remove_all_pods()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise

    def _remove_all_pods(self):
        rt = self.runtime
        for c in rt.ListContainers(api_pb2.ListContainersRequest(), timeout=CALL_TIMEOUT).containers:
            try:
                rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=c.id),
                                   timeout=CALL_TIMEOUT)
            except grpc.RpcError:
                pass
        for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=CALL_TIMEOUT).items:
            for call, req in ((rt.StopPodSandbox, api_pb2.StopPodSandboxRequest),
                              (rt.RemovePodSandbox, api_pb2.RemovePodSandboxRequest)):
                try:
                    call(req(pod_sandbox_id=p.id), timeout=CALL_TIMEOUT)
                except grpc.RpcError:
                    pass

    def stop(self):
        problems = []
        if self.process is not None and self.process.poll() is None and self.channel is not None:
            try:
                self.remove_all_pods()
            except grpc.RpcError as e:
                problems.append(f"removing the pods at the end failed: {e}")
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        return problems + super().stop()

    def more_leftovers(self):
        problems = []
        mounts = mounts_under(self.exec_root)
        if mounts:
            problems.append(f"mounts left under the exec root (pinned netns?): {mounts}")
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
        leases = [n for n in os.listdir(os.path.join(self.ipam_dir, self.network_name))
                  if n[0].isdigit()] \
            if os.path.isdir(os.path.join(self.ipam_dir, self.network_name)) else []
        if leases:
            problems.append(f"host-local leases left: {leases}")
        veths = subprocess.run(["ip", "-j", "link", "show", "master", self.bridge],
                               capture_output=True, text=True).stdout
        if veths.strip() not in ("", "[]") and json.loads(veths):
            problems.append(f"veths left on {self.bridge}: "
                            f"{[v['ifname'] for v in json.loads(veths)]}")
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        return problems


NAT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")

# portmap's shared chains and the jumps to them (Debian's plugins 1.1.1, iptables-nft):
# deleted in one iptables-restore transaction, which the kernel refuses as a whole
# while any pod's rule is still in (or jumps to) them.
NAT_CLEANUP = textwrap.dedent("""\
    *nat
    -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
    -X CNI-HOSTPORT-DNAT
    -F CNI-HOSTPORT-MASQ
    -X CNI-HOSTPORT-MASQ
    -F CNI-HOSTPORT-SETMARK
    -X CNI-HOSTPORT-SETMARK
    COMMIT
    """)


def nat_rules():
    return subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True,
                          check=True).stdout


def nat_chains_exist():
    return any(f"-N {c}\n" in nat_rules() for c in NAT_CHAINS)


@contextlib.contextmanager
def locked(path):
    """An exclusive flock on ``path`` for a short read-modify-write (the lock
    file stays: one unlinked under a waiter would split the waiters in two)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def nat_owner(tmp_path_factory):
    """portmap's shared nat chains are removed by the last of this run's test
    processes (pytest-xdist's workers share the temp root) using them to
    finish, and only if they were not there when the first one started: a
    count of users in a state file, each change under a short lock (a lock
    held for the session would keep the other worker waiting for all of it).
    The removal is one transaction the kernel refuses while any pod's rule
    (a parallel CRI test's) still uses the chains."""
    root = tmp_path_factory.getbasetemp().parent
    # this run's (all its workers'), not an earlier run's that was killed
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    state = root / f"c2cni-nat-chains-{run}.json"
    lock_path = root / f"c2cni-nat-chains-{run}.lock"
    with locked(lock_path):
        if state.exists():
            users = json.loads(state.read_text())
        else:  # the first of us (or the first since the last one left)
            users = {"count": 0, "made": not nat_chains_exist()}
        users["count"] += 1
        state.write_text(json.dumps(users))
    yield
    with locked(lock_path):
        users = json.loads(state.read_text())
        users["count"] -= 1
        if users["count"] > 0:
            state.write_text(json.dumps(users))
            return
        state.unlink()
        if users["made"]:
            subprocess.run(["iptables-restore", "-w", "--noflush"], input=NAT_CLEANUP, text=True,
                           capture_output=True)


@pytest.fixture(scope="session")
def cri_pyboxd(nat_owner):
    needs_root_and_docker_cli()
    if not os.path.exists(os.path.join(CNI_BIN_DIR, "bridge")):
        pytest.skip(f"needs Debian's containernetworking-plugins in {CNI_BIN_DIR}")
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


@pytest.fixture(scope="session")
def runtime_stub(cri_pyboxd):
    return cri_pyboxd.runtime


@pytest.fixture(scope="session")
def image_stub(cri_pyboxd):
    return cri_pyboxd.images


# -- the per-test helper -------------------------------------------------------------------------
class CRIHelper:
    """Unique pod and container configs; every pod and container made through
    it removed at the end (``cleanup``)."""

    def __init__(self, daemon, tmp_path):
        self.daemon = daemon
        self.rt = daemon.runtime
        self.images = daemon.images
        self.tmp_path = tmp_path
        self.pods: list[str] = []
        self.containers: list[str] = []

    def call(self, method, request, timeout=CALL_TIMEOUT):
        """``rt.<method>(request)`` with the safety timeout."""
        return getattr(self.rt, method)(request, timeout=timeout)

    def pod_config(self, name=None, *, namespace="default", log_directory=None, hostname="",
                   labels=None, annotations=None, host_network=False, host_pid=False,
                   host_ipc=False, port_mappings=(), dns=None, sysctls=None, cgroup_parent="",
                   attempt=0, **linux_security):
        name = name or f"pod-{uuid.uuid4().hex[:10]}"
        if log_directory is None:
            log_directory = str(self.tmp_path / f"logs-{name}")
            os.makedirs(log_directory, exist_ok=True)
        ns = api_pb2.NamespaceOption(
            network=api_pb2.NODE if host_network else api_pb2.POD,
            pid=api_pb2.NODE if host_pid else api_pb2.CONTAINER,
            ipc=api_pb2.NODE if host_ipc else api_pb2.POD)
        return api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace=namespace,
                                                uid=str(uuid.uuid4()), attempt=attempt),
            hostname=hostname or ("" if host_network else name),
            log_directory=log_directory,
            dns_config=dns,
            port_mappings=list(port_mappings),
            labels=labels or {}, annotations=annotations or {},
            linux=api_pb2.LinuxPodSandboxConfig(
                cgroup_parent=cgroup_parent, sysctls=sysctls or {},
                security_context=api_pb2.LinuxSandboxSecurityContext(
                    namespace_options=ns, **linux_security)))

    def run_pod(self, config=None, **kw):
        """RunPodSandbox -> (pod id, its config)."""
        config = config or self.pod_config(**kw)
        pod_id = self.call("RunPodSandbox",
                           api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.pods.append(pod_id)
        return pod_id, config

    def container_config(self, name=None, command=("sleep", "3600"), args=(), *, image=BUSYBOX,
                         env=None, working_dir="", mounts=(), devices=(), labels=None,
                         annotations=None, log_path=None, tty=False, stdin=False,
                         stdin_once=False, resources=None, security=None, attempt=0):
        name = name or f"c-{uuid.uuid4().hex[:8]}"
        return api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
            image=api_pb2.ImageSpec(image=image), command=list(command), args=list(args),
            working_dir=working_dir,
            envs=[api_pb2.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
            mounts=list(mounts), devices=list(devices), labels=labels or {},
            annotations=annotations or {},
            log_path=f"{name}/{attempt}.log" if log_path is None else log_path,
            tty=tty, stdin=stdin, stdin_once=stdin_once,
            linux=api_pb2.LinuxContainerConfig(resources=resources, security_context=security))

    def create(self, pod_id, pod_config, config=None, **kw):
        """CreateContainer -> the container id."""
        config = config or self.container_config(**kw)
        cid = self.call("CreateContainer", api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config)).container_id
        self.containers.append(cid)
        return cid

    def start(self, cid):
        self.call("StartContainer", api_pb2.StartContainerRequest(container_id=cid))

    def run(self, pod_id, pod_config, **kw):
        """CreateContainer + StartContainer -> the id."""
        cid = self.create(pod_id, pod_config, **kw)
        self.start(cid)
        return cid

    def status(self, cid, verbose=False):
        return self.call("ContainerStatus", api_pb2.ContainerStatusRequest(
            container_id=cid, verbose=verbose)).status

    def pod_status(self, pod_id, verbose=False):
        return self.call("PodSandboxStatus", api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=pod_id, verbose=verbose))

    def exec_sync(self, cid, cmd, timeout=0):
        return self.call("ExecSync", api_pb2.ExecSyncRequest(container_id=cid, cmd=list(cmd),
                                                             timeout=timeout))

    def cleanup(self):
        for cid in reversed(self.containers):
            try:
                self.call("RemoveContainer", api_pb2.RemoveContainerRequest(container_id=cid))
            except grpc.RpcError:
                pass
        for pod_id in reversed(self.pods):
            for method, req in (("StopPodSandbox", api_pb2.StopPodSandboxRequest),
                                ("RemovePodSandbox", api_pb2.RemovePodSandboxRequest)):
                try:
                    self.call(method, req(pod_sandbox_id=pod_id))
                except grpc.RpcError:
                    pass


@pytest.fixture
def cri(cri_pyboxd, tmp_path):
    helper = CRIHelper(cri_pyboxd, tmp_path)
    yield helper
    helper.cleanup()


def rpc_code(excinfo):
    """The gRPC status code of a pytest.raises(grpc.RpcError) result."""
    return excinfo.value.code()
