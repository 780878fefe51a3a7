"""CRI containers: ContainerConfig -> an engine create, and the engine's state -> CRI's.

A CRI container is an engine container (its id is the CRI id) created from a
Docker-shaped body, as cri-dockerd builds one, in its pod's namespaces:

* network and IPC: ``container:<pod id>`` (the sandbox's; the host's for
  hostNetwork/hostIPC pods), so it also gets the sandbox's resolv.conf,
  hosts and hostname;
* PID: its own (CONTAINER), the pod's (POD: the sandbox's, the pause its
  PID 1), another container's (TARGET) or the host's (NODE);
* the pod's cgroup parent; command/args as Entrypoint/Cmd (kubelet's rule
  and docker's agree: a command drops the image's Cmd), env, working dir,
  tty and stdin;
* mounts: bind mounts with their propagation (private -> rprivate,
  host-to-container -> rslave, bidirectional -> rshared), read-only; a host
  path that does not exist is made a directory, as containerd does;
  devices with their cgroup permissions;
* resources: CPU shares, period and quota, cpuset, memory (and swap),
  oom_score_adj (raised to pyboxd's own when lower: without
  CAP_SYS_RESOURCE no process may lower it, containerd's
  restrict_oom_score_adj), hugepage limits and cgroup v2 unified entries
  (the engine's CRI-only resources, engine/spec.py);
* the security context: run-as user/group/username, supplemental groups,
  privileged, capabilities (add/drop, "ALL"), seccomp (RuntimeDefault,
  Unconfined, Localhost), read-only root, masked and read-only paths,
  no-new-privileges; AppArmor/SELinux profiles other than the defaults are
  refused (pybox applies neither);
* logs: the CRI log format at LogDirectory/LogPath through the monitor's
  "cri" log driver (Engine.create's ``cri_log_path``).

State: CREATED, RUNNING (running, paused, restarting), EXITED; an exited
container's reason is OOMKilled, Completed (status 0) or Error, with its
exit code and times.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from pybox.cri import meta
from pybox.cri.errors import CRIError
from pybox.cri.sandbox import (
    Pods,
    check_unsupported_lsm,
    matches,
    ns_time,
    security_options,
    user_spec,
)
from pybox.engine.engine import Engine
from pybox.engine.observe import update as engine_update
from pybox.engine.state import ZERO_TIME
from pybox.engine.store import Container
from pybox.errors import BadRequest, Conflict, NotFound, NotModified, PyboxError, StartError

PROPAGATION = {api_pb2.PROPAGATION_PRIVATE: "rprivate",
               api_pb2.PROPAGATION_HOST_TO_CONTAINER: "rslave",
               api_pb2.PROPAGATION_BIDIRECTIONAL: "rshared"}
EXEC_SYNC_MAX_OUTPUT = 16 * 1024 * 1024  # kubelet's own bound on an ExecSync's output


def own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def capability_name(name: str) -> str:
    """CRI's "NET_ADMIN", "CAP_NET_ADMIN" or "ALL" -> docker's form."""
    name = name.upper()
    return name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name


def check_log_path(log_path: str) -> None:
    if os.path.isabs(log_path) or ".." in log_path.split("/"):
        raise BadRequest(f"invalid log path {log_path!r}: must be relative to the pod's "
                         "log directory, without '..'")


class Containers:
    """The CRI containers of one engine."""

    def __init__(self, engine: Engine, pods: Pods) -> None:
        self.engine = engine
        self.pods = pods

    # -- lookups --------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        return meta.find(self.engine, ref, meta.CONTAINER_KIND, "container id must not be empty",
                         f"an error occurred when try to find container {ref!r}: not found")

    def all(self) -> list[Container]:
        return meta.all_of(self.engine, meta.CONTAINER_KIND)

    # -- create ---------------------------------------------------------------------------------
    def mounts(self, config: Any) -> list[dict[str, Any]]:
        out = []
        for m in config.mounts:
            if not m.container_path or not m.host_path:
                raise BadRequest(f"invalid mount {m.host_path!r} -> {m.container_path!r}: "
                                 "both paths are required")
            if not os.path.isabs(m.container_path):
                raise BadRequest(f"mount destination {m.container_path!r} is not absolute")
            host = m.host_path
            if not os.path.isabs(host):
                raise BadRequest(f"mount source {host!r} is not absolute")
            if not os.path.exists(host):
                try:
                    os.makedirs(host, mode=0o755, exist_ok=True)  # containerd's rule
                except OSError as e:
                    raise BadRequest(f"failed to mkdir {host!r}: {e.strerror}") from None
            if m.propagation == api_pb2.PROPAGATION_BIDIRECTIONAL:
                mount_point, fields = mount_of(host)
                if not any(f.startswith("shared:") for f in fields):
                    raise BadRequest(f"path {host!r} is mounted on {mount_point!r} but it is "
                                     "not a shared mount")
            elif m.propagation == api_pb2.PROPAGATION_HOST_TO_CONTAINER:
                mount_point, fields = mount_of(host)
                if not any(f.startswith(("shared:", "master:")) for f in fields):
                    raise BadRequest(f"path {host!r} is mounted on {mount_point!r} but it is "
                                     "not a shared or slave mount")
            out.append({"Type": "bind", "Source": host, "Target": m.container_path,
                        "ReadOnly": m.readonly,
                        "BindOptions": {"Propagation": PROPAGATION.get(m.propagation,
                                                                       "rprivate")}})
        return out

    @staticmethod
    def resources(res: Any, hc: dict[str, Any]) -> dict[str, Any]:
        """LinuxContainerResources into HostConfig's fields (and the engine's
        CRI-only hugepages and unified entries); -> what was set."""
        if res.cpu_shares:
            hc["CpuShares"] = res.cpu_shares
        if res.cpu_period:
            hc["CpuPeriod"] = res.cpu_period
        if res.cpu_quota:
            hc["CpuQuota"] = res.cpu_quota
        if res.cpuset_cpus:
            hc["CpusetCpus"] = res.cpuset_cpus
        if res.cpuset_mems:
            hc["CpusetMems"] = res.cpuset_mems
        if res.memory_limit_in_bytes:
            hc["Memory"] = res.memory_limit_in_bytes
            hc["MemorySwap"] = res.memory_swap_limit_in_bytes or res.memory_limit_in_bytes
        elif res.memory_swap_limit_in_bytes:
            hc["MemorySwap"] = res.memory_swap_limit_in_bytes
        if res.oom_score_adj:
            hc["OomScoreAdj"] = max(res.oom_score_adj, own_oom_score_adj())
        if res.hugepage_limits:
            hc["CriHugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit}
                                       for h in res.hugepage_limits]
        if res.unified:
            hc["CriUnified"] = dict(res.unified)
        return hc

    def create_body(self, pod: Container, pod_config: Any, config: Any) -> dict[str, Any]:
        pod_ns = pod_config.linux.security_context.namespace_options
        linux = config.linux
        sc = linux.security_context
        ns = sc.namespace_options
        check_unsupported_lsm(sc.apparmor if sc.HasField("apparmor") else None,
                              sc.apparmor_profile,
                              sc.selinux_options if sc.HasField("selinux_options") else None)
        if sc.privileged and not pod_config.linux.security_context.privileged:
            raise BadRequest("no privileged container allowed in sandbox")
        if pod_ns.network == api_pb2.NODE:
            network, uts = "host", "host"
        else:
            network, uts = f"container:{pod.id}", ""
        if ns.pid == api_pb2.NODE or pod_ns.pid == api_pb2.NODE:
            pid_mode = "host"
        elif ns.pid == api_pb2.POD:
            pid_mode = f"container:{pod.id}"
        elif ns.pid == api_pb2.TARGET:
            target = self.get(ns.target_id)
            if meta.pod_of(target) != pod.id:
                raise BadRequest(f"target container {ns.target_id!r} is not in pod {pod.id}")
            pid_mode = f"container:{target.id}"
        else:
            pid_mode = ""
        hc: dict[str, Any] = {
            "NetworkMode": network,
            "IpcMode": "host" if pod_ns.ipc == api_pb2.NODE else f"container:{pod.id}",
            "PidMode": pid_mode,
            "CgroupParent": pod_config.linux.cgroup_parent,
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "Mounts": self.mounts(config),
            "Devices": [{"PathOnHost": d.host_path, "PathInContainer": d.container_path,
                         "CgroupPermissions": d.permissions or "rwm"} for d in config.devices],
            "Privileged": sc.privileged,
            "ReadonlyRootfs": sc.readonly_rootfs,
            "GroupAdd": [str(g) for g in sc.supplemental_groups],
            "SecurityOpt": security_options(
                sc.seccomp if sc.HasField("seccomp") else None, sc.seccomp_profile_path,
                no_new_privs=sc.no_new_privs),
        }
        if uts:
            hc["UTSMode"] = uts
        hc["Annotations"] = {  # containerd's, for OCI hooks and tools that read them
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": config.metadata.name,
            "io.kubernetes.cri.image-name": config.image.image,
            "io.kubernetes.cri.sandbox-id": pod.id,
            "io.kubernetes.cri.sandbox-name": pod_config.metadata.name,
            "io.kubernetes.cri.sandbox-namespace": pod_config.metadata.namespace,
            "io.kubernetes.cri.sandbox-uid": pod_config.metadata.uid}
        if sc.HasField("capabilities"):
            hc["CapAdd"] = [capability_name(n) for n in sc.capabilities.add_capabilities]
            hc["CapDrop"] = [capability_name(n) for n in sc.capabilities.drop_capabilities]
        if not sc.privileged:
            if sc.masked_paths:
                hc["MaskedPaths"] = list(sc.masked_paths)
            if sc.readonly_paths:
                hc["ReadonlyPaths"] = list(sc.readonly_paths)
        if linux.HasField("resources"):
            self.resources(linux.resources, hc)
        body: dict[str, Any] = {
            "Image": config.image.image,
            "Env": [f"{kv.key}={kv.value}" for kv in config.envs],
            "WorkingDir": config.working_dir,
            "Labels": meta.container_labels(config, pod.id, pod_config),
            "Tty": config.tty,
            "OpenStdin": config.stdin,
            "StdinOnce": config.stdin_once,
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "User": user_spec(sc.run_as_user if sc.HasField("run_as_user") else None,
                              sc.run_as_group if sc.HasField("run_as_group") else None,
                              sc.run_as_username),
            "HostConfig": hc,
        }
        if config.command:
            body["Entrypoint"] = list(config.command)
            body["Cmd"] = list(config.args)
        elif config.args:
            body["Cmd"] = list(config.args)
        return body

    def create(self, pod_ref: str, config: Any, sandbox_config: Any) -> str:
        """CreateContainer -> the id."""
        if not config.HasField("metadata") or not config.metadata.name:
            raise BadRequest("container config must include metadata")
        if not config.image.image:
            raise BadRequest("container config must include an image")
        pod = self.pods.get(pod_ref)
        pod_config = meta.pod_config(pod)  # what the pod was run with, not the request's copy
        log_path = ""
        if config.log_path and pod_config.log_directory:
            check_log_path(config.log_path)
            log_path = os.path.join(pod_config.log_directory, config.log_path)
        body = self.create_body(pod, pod_config, config)
        name = meta.container_name(config, pod_config)
        try:
            cid, _ = self.engine.create(body, name, cri_log_path=log_path,
                                        monitor_group=pod.name)
        except NotFound as e:  # the image
            raise NotFound(f"failed to get image {config.image.image!r}: {e}") from None
        except Conflict as e:  # the name: this container's attempt exists already
            raise CRIError(grpc.StatusCode.ALREADY_EXISTS,
                           f"failed to reserve container name {name!r}: {e}") from None
        return cid

    # -- start, stop, remove ----------------------------------------------------------------------
    def start(self, ref: str) -> None:
        c = self.get(ref)
        pod = self.pods.get(meta.pod_of(c))
        if not pod.state.running:
            raise CRIError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"sandbox container {pod.id!r} is not running")
        if c.state.running or c.state.status != "created" or start_failed(c):
            raise CRIError(grpc.StatusCode.UNKNOWN,
                           f"container {c.id!r} is in {c.state.status} state, not created")
        try:
            self.engine.start(c.id)
        except StartError as e:  # the runtime's refusal: containerd's Unknown
            raise CRIError(grpc.StatusCode.UNKNOWN, f"failed to start containerd task "
                           f"{c.id!r}: {e}") from None

    def stop(self, ref: str, timeout: int) -> None:
        c = self.get(ref)
        try:
            self.engine.stop(c.id, max(timeout, 0))
        except NotModified:
            pass

    def remove(self, ref: str) -> None:
        try:
            c = self.get(ref)
        except NotFound:
            return  # kubelet retries removals: gone is done
        try:
            self.engine.remove(c.id, force=True)
        except NotFound:
            pass

    def update_resources(self, ref: str, res: Any) -> None:
        """UpdateContainerResources: the limits given, live when running and
        kept in the record (engine/observe.py's docker update), hugepages and
        unified entries through the runtime."""
        c = self.get(ref)
        if res is None:
            return
        body = self.resources(res, {})
        body.pop("OomScoreAdj", None)  # not updatable live (docker's update has no field)
        extra: dict[str, Any] = {k: body.pop(k) for k in ("CriHugepageLimits", "CriUnified")
                                 if k in body}
        if body:
            engine_update(self.engine, c, body)
        if extra:
            with c.lock:
                if c.state.running:
                    live: dict[str, Any] = {}
                    if "CriHugepageLimits" in extra:
                        live["hugepageLimits"] = extra["CriHugepageLimits"]
                    if "CriUnified" in extra:
                        live["unified"] = extra["CriUnified"]
                    self.engine.runner.update(c.id, live)
                c.host_config.update(extra)
                c.save()

    # -- status, list ---------------------------------------------------------------------------
    @staticmethod
    def state_of(c: Container) -> api_pb2.ContainerState.ValueType:
        st = c.state
        if st.running or st.status in ("running", "paused", "restarting"):
            return api_pb2.CONTAINER_RUNNING
        if st.status == "created" and start_failed(c):
            return api_pb2.CONTAINER_EXITED  # containerd's: a failed start has exited
        if st.status == "created":
            return api_pb2.CONTAINER_CREATED
        if st.status in ("exited", "dead"):
            return api_pb2.CONTAINER_EXITED
        return api_pb2.CONTAINER_UNKNOWN

    def image_ref(self, c: Container, digest: bool = False) -> str:
        """The image's Id (sha256:...); with ``digest``, its first repo digest
        when it has one (containerd 1.x's image_ref: kubelet's imageID)."""
        if digest:
            try:
                digests = self.engine.images.inspect(c.image).get("RepoDigests") or []
            except PyboxError:
                digests = []
            if digests:
                return str(digests[0])
        return c.image

    def summary(self, c: Container) -> Any:
        config = meta.container_config(c)
        return api_pb2.Container(
            id=c.id, pod_sandbox_id=meta.pod_of(c), metadata=config.metadata,
            image=api_pb2.ImageSpec(image=config.image.image), image_ref=self.image_ref(c),
            state=self.state_of(c), created_at=ns_time(c.created),
            labels=dict(config.labels), annotations=dict(config.annotations))

    def list(self, flt: Any) -> list[Any]:
        out = []
        for c in self.all():
            if flt is not None:
                if flt.id and not c.id.startswith(flt.id):
                    continue
                if flt.pod_sandbox_id and not meta.pod_of(c).startswith(flt.pod_sandbox_id):
                    continue
                if flt.HasField("state") and self.state_of(c) != flt.state.state:
                    continue
                if flt.label_selector and \
                        not matches(meta.container_config(c).labels, flt.label_selector.items()):
                    continue
            out.append(self.summary(c))
        return out

    def status(self, ref: str, verbose: bool) -> Any:
        c = self.get(ref)
        config = meta.container_config(c)
        st = c.state
        state = self.state_of(c)
        reason = message = ""
        if state == api_pb2.CONTAINER_EXITED:
            if start_failed(c):
                reason = "StartError"
            elif st.oom_killed:
                reason = "OOMKilled"
            elif st.exit_code == 0:
                reason = "Completed"
            else:
                reason = "Error"
            message = st.error or ""
        status = api_pb2.ContainerStatus(
            id=c.id, metadata=config.metadata, state=state, created_at=ns_time(c.created),
            started_at=ns_time(st.started_at) if state != api_pb2.CONTAINER_CREATED else 0,
            finished_at=ns_time(st.finished_at) if state == api_pb2.CONTAINER_EXITED else 0,
            exit_code=st.exit_code if state == api_pb2.CONTAINER_EXITED else 0,
            image=api_pb2.ImageSpec(image=config.image.image),
            image_ref=self.image_ref(c, digest=True), image_id=c.image, reason=reason,
            message=message, labels=dict(config.labels),
            annotations=dict(config.annotations), mounts=list(config.mounts),
            log_path=c.log_path if (c.host_config.get("LogConfig") or {}).get("Type") == "cri"
            else "",
            resources=api_pb2.ContainerResources(linux=self.current_resources(c)))
        info: dict[str, str] = {}
        if verbose:
            info["info"] = json.dumps({"sandboxID": meta.pod_of(c), "pid": st.pid,
                                       "removing": c.removed, "image": c.image,
                                       "config": {"metadata": {"name": config.metadata.name}}})
        return api_pb2.ContainerStatusResponse(status=status, info=info)

    @staticmethod
    def current_resources(c: Container) -> Any:
        hc = c.host_config
        return api_pb2.LinuxContainerResources(
            cpu_period=hc.get("CpuPeriod") or 0, cpu_quota=hc.get("CpuQuota") or 0,
            cpu_shares=hc.get("CpuShares") or 0,
            memory_limit_in_bytes=hc.get("Memory") or 0,
            oom_score_adj=hc.get("OomScoreAdj") or 0,
            cpuset_cpus=hc.get("CpusetCpus") or "", cpuset_mems=hc.get("CpusetMems") or "",
            memory_swap_limit_in_bytes=hc.get("MemorySwap") or 0,
            hugepage_limits=[api_pb2.HugepageLimit(page_size=h["pageSize"], limit=h["limit"])
                             for h in hc.get("CriHugepageLimits") or ()],
            unified=hc.get("CriUnified") or {})

    # -- exec ---------------------------------------------------------------------------------------
    def exec_sync(self, ref: str, cmd: Sequence[str], timeout: int) -> Any:
        """ExecSync: run ``cmd`` in the container, collect its output and exit
        code; past ``timeout`` seconds (0: none) the process is killed and the
        call fails DEADLINE_EXCEEDED, as containerd's does."""
        c = self.get(ref)
        if not cmd:
            raise BadRequest("cmd must not be empty")
        if not c.state.running:
            raise CRIError(grpc.StatusCode.UNKNOWN, f"container {c.id!r} is not running")
        eid = self.engine.exec_create(c.id, {"Cmd": list(cmd), "AttachStdout": True,
                                             "AttachStderr": True})
        session = self.engine.get_exec(eid)
        ours, theirs = socket.socketpair()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                session.start(client=theirs, detach=False, tty=False)
            except BaseException as e:  # noqa: BLE001 - reported by the caller
                failure.append(e)
            finally:
                try:
                    theirs.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                theirs.close()

        thread = threading.Thread(target=run, name=f"execsync-{c.id[:12]}", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout if timeout > 0 else None
        buf = bytearray()
        timed_out = False
        with ours:
            while True:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        timed_out = True
                        break
                    ours.settimeout(left)
                try:
                    data = ours.recv(65536)
                except TimeoutError:
                    timed_out = True
                    break
                if not data:
                    break
                if len(buf) < EXEC_SYNC_MAX_OUTPUT + 8:
                    buf += data
        if timed_out:
            self.kill_exec(session, os.path.join(self.engine.runner.run_dir(c.id),
                                                 f"exec-{eid}.pid"))
            thread.join(10)
            self.forget_exec(c, eid)
            raise CRIError(grpc.StatusCode.DEADLINE_EXCEEDED,
                           f"command {' '.join(cmd)!r} timed out after {timeout}s")
        thread.join(30)
        if failure:
            raise failure[0]
        stdout, stderr = demux(bytes(buf))
        code = session.exit_code
        self.forget_exec(c, eid)
        return api_pb2.ExecSyncResponse(stdout=stdout[:EXEC_SYNC_MAX_OUTPUT],
                                        stderr=stderr[:EXEC_SYNC_MAX_OUTPUT],
                                        exit_code=code if code is not None else 255)

    def forget_exec(self, c: Container, eid: str) -> None:
        """An ExecSync's session is not kept (kubelet's exec probes run one
        every few seconds for the container's life; dockerd's exec GC)."""
        with self.engine.execs_lock:
            self.engine.execs.pop(eid, None)
        with c.lock:
            c.exec_ids = [e for e in c.exec_ids or () if e != eid] or None

    @staticmethod
    def kill_exec(session: Any, pid_file: str) -> None:
        """The timed-out exec's process killed, then the runtime's exec.  Its
        pid comes from the runtime's pid file, waited for while the runtime
        is still starting it (a loaded node: a kill of the runtime alone
        would leave the process running, as critest's pgrep saw)."""
        deadline = time.monotonic() + 10
        pid = session.pid or 0
        proc = session.proc
        while not pid and time.monotonic() < deadline:
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
            if not pid:
                if proc is not None and proc.poll() is not None:
                    break  # the runtime is gone without starting it
                time.sleep(0.01)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def mount_of(path: str) -> tuple[str, list[str]]:
    """The mount ``path`` is on (its mount point, and its mountinfo optional
    fields: shared:N, master:N...), for containerd's propagation checks."""
    real = os.path.realpath(path)
    best: str = "/"
    fields: list[str] = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return best, fields
    for line in lines:
        parts = line.split(" ")
        if len(parts) < 7:
            continue
        point = parts[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the last of equals: the one on top
            best, fields = point, parts[6:parts.index("-")] if "-" in parts else []
    return best, fields


def start_failed(c: Container) -> bool:
    """Whether the container's (only) start failed: the engine keeps it
    created with the start's error; CRI reports it exited, reason StartError."""
    st = c.state
    return st.status == "created" and bool(st.error) and st.finished_at != ZERO_TIME


def demux(data: bytes) -> tuple[bytes, bytes]:
    """docker's multiplexed frames -> (stdout, stderr); the exec's own start
    error (a frame on stdout) stays where docker puts it."""
    out, err = bytearray(), bytearray()
    i = 0
    while i + 8 <= len(data):
        stream = data[i]
        size = int.from_bytes(data[i + 4:i + 8], "big")
        chunk = data[i + 8:i + 8 + size]
        (err if stream == 2 else out).extend(chunk)
        i += 8 + size
    return bytes(out), bytes(err)
