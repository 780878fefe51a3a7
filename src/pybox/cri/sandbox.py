"""Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, status and list.

A pod sandbox is an engine container (its id is the pod's id) running pybox's
pause (cri/pause.py; or the configured --pod-infra-container-image), made
from a Docker-shaped create body as cri-dockerd makes one, so the engine's
rooms do the work they do for any container:

* namespaces: its own network namespace (NetworkMode "none": the runtime
  makes it, CNI fills it) or the host's (hostNetwork: "host", with the host's
  UTS namespace as containerd does), its IPC namespace "shareable" (its
  /dev/shm a tmpfs the pod's containers bind) or the host's, its own PID
  namespace (the pause is PID 1 of a pod sharing its PID namespace) or the
  host's;
* the pod cgroup: HostConfig.CgroupParent is the CgroupParent kubelet gives
  (cgroupfs driver: /kubepods/burstable/pod<uid>);
* hostname (Config.Hostname), sysctls (HostConfig.Sysctls), the security
  context (run-as user and group, supplemental groups, privileged, read-only
  root, seccomp), no log (LogConfig none: the pause says nothing);
* one monitor for the pod: the sandbox and its containers are created with
  the sandbox's record name as their ``monitor_group`` (Engine.create), so
  one monitor process serves the pod, as containerd's shim does;
* DNS: the sandbox's resolv.conf is written from the pod's DNSConfig (the
  host's when kubelet gives none); the pod's containers get the sandbox's
  resolv.conf, hosts and hostname as any ``--network container:ID`` does.

The pod's network namespace is pinned on EXEC_ROOT/cri/netns/<pod id>, as
containerd pins /var/run/netns/cni-*, so CNI's DEL and port-forward work even
once the pause has died, and a restarted pyboxd finds it.  As containerd does,
the namespace is made and pinned first and the pause joins it; CNI
(pybox.network.cni, the standard plugins from the conf dir) runs its ADD on
that path while the pause starts.  (With net.* sysctls or user namespace
remapping the pause's runtime makes the namespace, the pin is bound from its
/proc/PID/ns/net, and CNI runs after the start.)  The result (the pod's IPs)
is kept in the sandbox's directory (DATA_ROOT/containers/<id>/cri-network.json),
written atomically once both are done: the pod is READY from then on.

StopPodSandbox stops the pod's containers, tears the network down (CNI DEL,
the pin), and stops the pause; RemovePodSandbox stops if needed, then removes
the containers and the sandbox.  Both are idempotent, as kubelet needs.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
from cri_api.v1 import api_pb2
from google.protobuf import json_format

from pybox.cri import meta, pause
from pybox.cri.errors import CRIError
from pybox.cri.options import CRIOptions
from pybox.engine.engine import Engine
from pybox.engine.procview import LABEL as PROCVIEW_LABEL
from pybox.engine.store import Container
from pybox.errors import BadRequest, Conflict, NetworkError, NotFound, NotModified, PyboxError
from pybox.formats import fastjson
from pybox.formats.times import parse_rfc3339
from pybox.linux import constants as C
from pybox.linux.syscalls import real
from pybox.network import netns as netnsmod
from pybox.network.cni import CNI, CNIDNS, CNIPortMapping
from pybox.oci.state import write_atomic

NETWORK_STATE = "cri-network.json"
PROTOCOLS = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp", api_pb2.SCTP: "sctp"}
DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def ns_time(text: str) -> int:
    """An RFC 3339 time of the record -> nanoseconds since the epoch (0 for none)."""
    try:
        return int(parse_rfc3339(text) * 1e9)
    except ValueError:
        return 0


@dataclass
class PodNetworkState:
    """What the CRI remembers of a pod's network (cri-network.json)."""

    netns: str = ""  # the pinned namespace ("" for a host-network pod)
    ips: list[str] = field(default_factory=list)
    interface: str = ""
    torn_down: bool = False


def read_network_state(c: Container) -> PodNetworkState:
    try:
        doc = fastjson.load_file(os.path.join(c.dir, NETWORK_STATE))
    except (OSError, ValueError):
        return PodNetworkState()
    if not isinstance(doc, dict):
        return PodNetworkState()
    ips = doc.get("ips")
    return PodNetworkState(netns=str(doc.get("netns") or ""),
                           ips=[str(i) for i in ips] if isinstance(ips, list) else [],
                           interface=str(doc.get("interface") or ""),
                           torn_down=bool(doc.get("torn_down")))


def write_network_state(c: Container, state: PodNetworkState) -> None:
    write_atomic(os.path.join(c.dir, NETWORK_STATE), json.dumps(asdict(state)), mode=0o600,
                 durable=True)


def resolv_conf(dns: Any) -> str:
    """The pod's resolv.conf from its DNSConfig (containerd's parseDNSOptions).
    Each value is one word: a space or newline in one (a line of its own
    smuggled into the file) is refused."""
    for value in (*dns.servers, *dns.searches, *dns.options):
        if not value or any(ch.isspace() for ch in value):
            raise BadRequest(f"invalid DNS config value {value!r}")
    lines = []
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    lines += [f"nameserver {s}" for s in dns.servers]
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def security_options(seccomp: Any, seccomp_path: str = "", no_new_privs: bool = False
                     ) -> list[str]:
    """HostConfig.SecurityOpt from a CRI security context: its seccomp profile
    (``seccomp``: the SecurityProfile message when set, else None; else the
    deprecated ``seccomp_profile_path``) and no-new-privileges.  containerd's
    rules: neither given is unconfined; RuntimeDefault is the engine's default
    profile; Localhost a profile file on the node (read here, as the docker CLI
    reads one); a path form other than runtime/default, docker/default,
    unconfined or localhost/<path> is refused."""
    opts = []
    if no_new_privs:
        opts.append("no-new-privileges")
    if seccomp is not None:
        kind = seccomp.profile_type
        path = seccomp.localhost_ref
        if kind != api_pb2.SecurityProfile.Localhost and path:
            raise BadRequest("seccomp config invalid: LocalhostRef must only be set if "
                             "ProfileType is Localhost")
    elif seccomp_path in ("runtime/default", "docker/default"):
        kind, path = api_pb2.SecurityProfile.RuntimeDefault, ""
    elif seccomp_path.startswith("localhost/"):
        kind, path = api_pb2.SecurityProfile.Localhost, seccomp_path[len("localhost/"):]
    elif seccomp_path in ("", "unconfined"):
        kind, path = api_pb2.SecurityProfile.Unconfined, ""
    else:
        raise BadRequest(f"failed to generate seccomp spec opts: invalid profile "
                         f"{seccomp_path!r}")
    if kind == api_pb2.SecurityProfile.Unconfined:
        opts.append("seccomp=unconfined")
    elif kind == api_pb2.SecurityProfile.Localhost:
        if not path or not os.path.isabs(path):
            raise BadRequest(f"seccomp profile path {path!r} must be an absolute path")
        try:
            with open(path) as f:
                opts.append("seccomp=" + f.read())
        except OSError as e:
            raise BadRequest(f"failed to load seccomp profile {path!r}: {e.strerror}") from None
    return opts


def check_unsupported_lsm(apparmor: Any, apparmor_name: str, selinux: Any) -> None:
    """AppArmor and SELinux: pybox applies neither; a profile other than the
    runtime's default or unconfined is refused, as containerd refuses one
    on a host without that LSM."""
    if selinux is not None and (selinux.user or selinux.role or selinux.type or selinux.level):
        raise BadRequest("SELinux is not supported by pyboxd (SELinux labels were given)")
    if apparmor is not None and apparmor.ListFields():
        if apparmor.profile_type == api_pb2.SecurityProfile.Localhost:
            raise BadRequest("apparmor is not supported by pyboxd (a localhost profile "
                             f"{apparmor.localhost_ref!r} was given)")
    elif apparmor_name.startswith("localhost/"):
        raise BadRequest(f"apparmor is not supported by pyboxd (profile {apparmor_name!r})")


def user_spec(run_as_user: Any, run_as_group: Any, username: str = "") -> str:
    """Config.User from run-as user, group (the Int64Value messages when
    set, None otherwise: 0 is root, not unset) and user name."""
    user = str(run_as_user.value) if run_as_user is not None else username
    if run_as_group is not None:
        if not user:
            raise BadRequest("user group is specified without user")
        return f"{user}:{run_as_group.value}"
    return user


class Pods:
    """The pod sandboxes of one engine."""

    def __init__(self, engine: Engine, options: CRIOptions, cni: CNI) -> None:
        self.engine = engine
        self.options = options
        self.cni = cni
        self.netns_dir = os.path.join(engine.run_root, "cri", "netns")
        # pulls a missing --pod-infra-container-image (the server sets the
        # ImageService's, with the CRI's registry mirrors)
        self.pull: Callable[[str], object] = lambda ref: engine.distribution.pull(ref)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def lock(self, pod_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(pod_id, threading.Lock())

    # -- lookups ------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """A pod sandbox by id (or a unique prefix), NOT_FOUND otherwise."""
        return meta.find(self.engine, ref, meta.SANDBOX_KIND, "pod sandbox id must not be empty",
                         missing_sandbox(ref))

    def all(self) -> list[Container]:
        return meta.all_of(self.engine, meta.SANDBOX_KIND)

    def pod_netns(self, pod_id: str) -> str | None:
        """The pod's pinned network namespace (port-forward's), None for a
        host-network pod or one whose network is gone."""
        path = os.path.join(self.netns_dir, pod_id)
        return path if netnsmod.is_mounted(path) else None

    def containers_of(self, pod_id: str) -> list[Container]:
        return [c for c in self.engine.store.all()
                if meta.kind(c) == meta.CONTAINER_KIND and meta.pod_of(c) == pod_id
                and not c.removed]

    # -- run ------------------------------------------------------------------------------------
    def sandbox_image(self) -> tuple[str, bool]:
        """(the sandbox image's reference, whether it is pybox's pause)."""
        ref = self.options.pod_infra_image
        if not ref:
            return pause.ensure_image(self.engine), True
        try:
            self.engine.images.lookup(ref)
        except NotFound:
            self.pull(ref)
        return ref, False

    def create_body(self, config: Any, image: str, ours: bool) -> dict[str, Any]:
        """The engine's create body for the pod's sandbox."""
        linux = config.linux
        sc = linux.security_context
        ns = sc.namespace_options
        host_network = ns.network == api_pb2.NODE
        check_unsupported_lsm(sc.apparmor if sc.HasField("apparmor") else None, "",
                              sc.selinux_options if sc.HasField("selinux_options") else None)
        hc: dict[str, Any] = {
            "NetworkMode": "host" if host_network else "none",
            "IpcMode": "host" if ns.ipc == api_pb2.NODE else "shareable",
            "PidMode": "host" if ns.pid == api_pb2.NODE else "",
            "CgroupParent": linux.cgroup_parent,
            "LogConfig": {"Type": "none", "Config": {}},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "Privileged": sc.privileged,
            "ReadonlyRootfs": sc.readonly_rootfs,
            "ShmSize": DEFAULT_SHM_SIZE,
            "GroupAdd": [str(g) for g in sc.supplemental_groups],
            "SecurityOpt": security_options(
                sc.seccomp if sc.HasField("seccomp") else None, sc.seccomp_profile_path),
        }
        if host_network:
            hc["UTSMode"] = "host"
        md = config.metadata
        hc["Annotations"] = {  # containerd's, for OCI hooks and tools that read them
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-name": md.name,
            "io.kubernetes.cri.sandbox-namespace": md.namespace,
            "io.kubernetes.cri.sandbox-uid": md.uid,
            "io.kubernetes.cri.sandbox-log-directory": config.log_directory}
        if linux.sysctls:
            hc["Sysctls"] = dict(linux.sysctls)
        body: dict[str, Any] = {
            "Image": image,
            "Labels": meta.sandbox_labels(config),
            "User": user_spec(sc.run_as_user if sc.HasField("run_as_user") else None,
                              sc.run_as_group if sc.HasField("run_as_group") else None),
            "HostConfig": hc,
        }
        if ours:
            body["Entrypoint"] = ["/pause"]
            # pybox's pause reads no /proc file and makes no sysinfo call: the
            # /proc view's eight binds and its seccomp trap only slowed its start
            # (the pod's containers have theirs)
            body["Labels"][PROCVIEW_LABEL] = "false"
        if not host_network and config.hostname:
            body["Hostname"] = config.hostname
        return body

    def run(self, config: Any, runtime_handler: str) -> str:
        """RunPodSandbox -> the pod's id."""
        if not config.HasField("metadata") or not config.metadata.name:
            raise BadRequest("sandbox config must include metadata")
        if runtime_handler not in ("", "pybox", "runc"):
            raise NotFound(f"no runtime for {runtime_handler!r} is configured")
        ns = config.linux.security_context.namespace_options
        host_network = ns.network == api_pb2.NODE
        if not host_network:
            problem = self.cni.status()
            if problem is not None:
                raise CRIError(grpc.StatusCode.UNKNOWN,
                               f"failed to setup network for sandbox: {problem}")
        resolv = resolv_conf(config.dns_config) if config.HasField("dns_config") else None
        image, ours = self.sandbox_image()
        body = self.create_body(config, image, ours)
        name = meta.sandbox_name(config)
        try:
            pod_id, _ = self.engine.create(body, name, monitor_group=name)
        except Conflict as e:  # the name: this pod's attempt runs already
            raise CRIError(grpc.StatusCode.ALREADY_EXISTS,
                           f"failed to reserve sandbox name {name!r}: {e}") from None
        c = self.engine.get(pod_id)
        try:
            if resolv is not None:
                with open(c.resolv_conf_path, "w") as f:
                    f.write(resolv)
            # No cri-network.json yet reads as "no network": the pod is NOTREADY
            # until its IPs are written, last, once the pause runs and CNI's ADD
            # is done.  The pin's path is the pod's id and CNI caches what it
            # ADDs before running a plugin, so a crash at any point leaves
            # nothing StopPodSandbox's teardown cannot find.
            if host_network:
                self.engine.start(pod_id)
            elif self.pause_makes_netns(config):
                self.engine.start(pod_id)
                write_network_state(c, self.setup_network(c, config, self.pin_netns(c)))
            else:
                # containerd's order: the namespace first, pinned; then the pause
                # joins it while CNI's ADD fills it (side by side: ~20 ms less)
                path = os.path.join(self.netns_dir, c.id)
                netnsmod.create(path, protocols=())
                added: list[PodNetworkState] = []
                run_all([lambda: added.append(self.setup_network(c, config, path)),
                         lambda: self.engine.start(pod_id, netns_path=path)])
                write_network_state(c, added[0])
        except BaseException:
            self.roll_back(c, config)
            raise
        return pod_id

    def pause_makes_netns(self, config: Any) -> bool:
        """Whether the pause's runtime makes the pod's network namespace (the
        pin then taken from it, CNI run after the start) rather than joining
        one pinned first: with net.* sysctls (the runtime sets them before CNI
        runs, as it always did) and with user namespace remapping (a namespace
        the pause makes belongs to its user namespace, so its net.* sysctls
        stay writable)."""
        return self.engine.remap is not None or \
            any(k.startswith("net.") for k in config.linux.sysctls)

    def setup_network(self, c: Container, config: Any, path: str) -> PodNetworkState:
        """CNI's ADD in the pod's pinned network namespace ``path`` -> what to
        keep of it (cri-network.json, written by the caller)."""
        try:
            return self.cni_add(c, config, path)
        except NetworkError as e:  # (a Conflict: not the caller's name)
            raise CRIError(grpc.StatusCode.UNKNOWN, "failed to setup network for "
                           f"sandbox {c.id!r}: {e}") from None

    def cni_add(self, c: Container, config: Any, path: str) -> PodNetworkState:
        md = config.metadata
        mappings = [CNIPortMapping(host_port=p.host_port, container_port=p.container_port,
                                   protocol=PROTOCOLS.get(p.protocol, "tcp"), host_ip=p.host_ip)
                    for p in config.port_mappings if p.host_port > 0]
        dns = None
        if config.HasField("dns_config"):
            d = config.dns_config
            dns = CNIDNS(servers=tuple(d.servers), searches=tuple(d.searches),
                         options=tuple(d.options))
        result = self.cni.setup(c.id, path, pod_name=md.name, pod_namespace=md.namespace,
                                pod_uid=md.uid, port_mappings=mappings, dns=dns,
                                annotations=dict(config.annotations),
                                cgroup_path=config.linux.cgroup_parent)
        return PodNetworkState(netns=path, ips=list(result.ips), interface=result.interface)

    def pin_netns(self, c: Container) -> str:
        """EXEC_ROOT/cri/netns/<pod id>: a bind mount of the pause's network namespace."""
        os.makedirs(self.netns_dir, mode=0o711, exist_ok=True)
        path = os.path.join(self.netns_dir, c.id)
        if netnsmod.is_mounted(path):
            return path
        pid = c.state.pid
        if not c.state.running or not pid:
            raise PyboxError("the pod's sandbox is not running")
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444) \
            if not os.path.exists(path) else None
        if fd is not None:
            os.close(fd)
        real().mount(f"/proc/{pid}/ns/net", path, None, C.MS_BIND, None)
        return path

    def teardown_network(self, c: Container, config: Any) -> None:
        """CNI's DEL (from its cached result; works when the namespace is gone),
        then the pin removed.  Idempotent."""
        state = read_network_state(c)
        if state.torn_down:
            return
        path = os.path.join(self.netns_dir, c.id)
        if state.netns or os.path.lexists(path):
            md = config.metadata
            self.cni.teardown(c.id, path if netnsmod.is_mounted(path) else None,
                              pod_name=md.name, pod_namespace=md.namespace, pod_uid=md.uid)
            netnsmod.remove(path)
        if os.path.isdir(c.dir):
            state.torn_down = True
            write_network_state(c, state)

    def update_resources(self, ref: str, overhead: Any | None, resources: Any | None) -> None:
        """UpdatePodSandboxResources, after kubelet resized the pod's cgroup
        itself (with the cgroupfs driver the pod cgroup, CgroupParent, is
        kubelet's to size; the containers' own limits come through
        UpdateContainerResources): the pod's overhead and resources as kubelet
        now sees them are kept in its config, as containerd keeps them, so a
        verbose PodSandboxStatus and a restarted pyboxd tell them back."""
        c = self.get(ref)
        with self.lock(c.id):
            config = meta.pod_config(c)
            if overhead is not None:
                config.linux.overhead.CopyFrom(overhead)
            if resources is not None:
                config.linux.resources.CopyFrom(resources)
            with c.lock:
                if c.removed:
                    raise NotFound(missing_sandbox(ref))
                meta.labels_of(c)[meta.CONFIG] = meta.encode(config)
                c.save()

    # -- stop, remove ---------------------------------------------------------------------------
    def stop_now(self, c: Container) -> None:
        """SIGKILL at once (a pod's stop gives its containers no grace, as
        containerd's StopPodSandbox: kubelet stopped them with theirs)."""
        try:
            self.engine.stop(c.id, 0)
        except (NotModified, NotFound):
            pass

    def stop_containers(self, pod_id: str) -> None:
        """The pod's containers stopped, all at once."""
        run_all([functools.partial(self.stop_now, cc) for cc in self.containers_of(pod_id)])

    def stop(self, ref: str) -> None:
        """StopPodSandbox: idempotent; NOT_FOUND for a pod that never was.  The
        network's teardown and the pause's stop run side by side (the pinned
        namespace outlives the pause)."""
        c = self.get(ref)
        with self.lock(c.id):
            config = meta.pod_config(c)
            self.stop_containers(c.id)
            run_all([lambda: self.teardown_network(c, config), lambda: self.stop_now(c)])

    def remove(self, ref: str) -> None:
        """RemovePodSandbox: a pod not (or no longer) there is done already."""
        try:
            c = self.get(ref)
        except NotFound:
            return
        with self.lock(c.id):
            config = meta.pod_config(c)
            self.destroy(c, config)
        with self._locks_lock:
            self._locks.pop(c.id, None)

    def destroy(self, c: Container, config: Any) -> None:
        """Everything of the pod gone: its containers, network, sandbox."""
        self.stop_containers(c.id)

        def remove(cc: Container) -> None:
            try:
                self.engine.remove(cc.id, force=True)
            except NotFound:
                pass

        run_all([functools.partial(remove, cc) for cc in self.containers_of(c.id)])
        self.teardown_network(c, config)
        try:
            self.engine.remove(c.id, force=True)
        except NotFound:
            pass

    def roll_back(self, c: Container, config: Any) -> None:
        """A RunPodSandbox that failed: everything it made goes, best effort
        (containerd's deferred cleanup): a CNI DEL that fails too (the same
        broken conf) is reported and the pin and the sandbox go anyway; the
        caller raises the run's own error."""
        try:
            self.teardown_network(c, config)
        except Exception as e:  # noqa: BLE001 - reported; the run's error is the answer
            sys.stderr.write(f"pyboxd: cri: failed to destroy the network of sandbox "
                             f"{c.id}: {e}\n")
            try:
                netnsmod.remove(os.path.join(self.netns_dir, c.id))
            except PyboxError as err:
                sys.stderr.write(f"pyboxd: cri: {err}\n")
        try:
            self.engine.remove(c.id, force=True)
        except NotFound:
            pass
        except PyboxError as e:
            sys.stderr.write(f"pyboxd: cri: failed to remove sandbox {c.id}: {e}\n")

    # -- status, list ---------------------------------------------------------------------------
    @staticmethod
    def state_of(c: Container) -> api_pb2.PodSandboxState.ValueType:
        """READY: the pause runs and the pod's network is set up (a pyboxd that
        crashed between the two leaves a pod kubelet must replace: NOTREADY,
        as containerd reports a sandbox it could not finish)."""
        if not c.state.running:
            return api_pb2.SANDBOX_NOTREADY
        net = read_network_state(c)
        host_network = meta.pod_config(c).linux.security_context.namespace_options.network \
            == api_pb2.NODE
        if net.torn_down or not host_network and not net.ips:
            return api_pb2.SANDBOX_NOTREADY
        return api_pb2.SANDBOX_READY

    def status(self, ref: str, verbose: bool) -> Any:
        c = self.get(ref)
        config = meta.pod_config(c)
        net = read_network_state(c)
        ns = config.linux.security_context.namespace_options
        network = api_pb2.PodSandboxNetworkStatus(
            ip=net.ips[0] if net.ips else "",
            additional_ips=[api_pb2.PodIP(ip=ip) for ip in net.ips[1:]])
        status = api_pb2.PodSandboxStatus(
            id=c.id, metadata=config.metadata, state=self.state_of(c),
            created_at=ns_time(c.created), network=network,
            linux=api_pb2.LinuxPodSandboxStatus(namespaces=api_pb2.Namespace(
                options=api_pb2.NamespaceOption(network=ns.network, pid=ns.pid, ipc=ns.ipc))),
            labels=dict(config.labels), annotations=dict(config.annotations),
            runtime_handler="")
        info: dict[str, str] = {}
        if verbose:
            info["info"] = json.dumps({
                "pid": c.state.pid, "processStatus": str(c.state.status),
                "netNamespacePath": net.netns, "image": c.config.get("Image"),
                "cgroupParent": config.linux.cgroup_parent,
                "runtimeHandler": "", "sandboxId": c.id,
                "config": json_format.MessageToDict(config)})
        return api_pb2.PodSandboxStatusResponse(status=status, info=info,
                                                timestamp=time.time_ns())

    def summary(self, c: Container) -> Any:
        config = meta.pod_config(c)
        return api_pb2.PodSandbox(id=c.id, metadata=config.metadata, state=self.state_of(c),
                                  created_at=ns_time(c.created), labels=dict(config.labels),
                                  annotations=dict(config.annotations), runtime_handler="")

    def list(self, flt: Any) -> list[Any]:
        """ListPodSandbox with its filter (id prefix, state, label selector)."""
        out = []
        for c in self.all():
            if flt is not None:
                if flt.id and not c.id.startswith(flt.id):
                    continue
                if flt.HasField("state") and self.state_of(c) != flt.state.state:
                    continue
                if not matches(meta.pod_config(c).labels, flt.label_selector.items()):
                    continue
            out.append(self.summary(c))
        return out


def missing_sandbox(ref: str) -> str:
    """containerd's words for a pod sandbox it does not have."""
    return f"an error occurred when try to find sandbox: {ref}: not found"


def run_all(calls: list[Callable[[], None]]) -> None:
    """Run ``calls`` side by side (the last on this thread), wait for all,
    then raise the first one's error, if any."""
    errors: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - re-raised below, on the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(call,), name="cri-pod") for call in calls[:-1]]
    for t in threads:
        t.start()
    if calls:
        run(calls[-1])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def matches(labels: Any, selector: Iterable[tuple[str, str]]) -> bool:
    """Every key=value of a label selector is among ``labels``."""
    return all(labels.get(k) == v for k, v in selector)
