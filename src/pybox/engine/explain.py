"""``pybox explain``: the kernel objects behind one container, read from the
kernel (GET /containers/{id}/explain, a pybox extension of the Docker API).

Everything shown is read now from /proc, cgroupfs and mountinfo -- not from
what pybox meant to do -- and tied back to what asked for it:

- namespaces: /proc/PID/ns/* inodes next to the host's (pid 1's) and other
  running containers', and the config.json entry (new, or joined by path);
- cgroups: every directory of the container (the runtime's state says which
  pybox created), each limit file's value and the docker flag, HostConfig
  field and linux.resources field that set it (or "default");
- the root filesystem: the overlay mount the container runs on, each lower
  directory mapped to its image layer (diff-id, chain-id), upper and work;
- every mount, from the container's own mountinfo;
- processes: the container's cgroup, host pid next to the container's pid
  (NSpid), as a tree;
- security: capability sets decoded by name, seccomp mode and filter count,
  no_new_privs, uid/gid maps;
- files: config.json of the OCI bundle, the runtime's state, the record.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pybox.cgroups.layout import unescape_mountinfo
from pybox.errors import PyboxError
from pybox.linux.caps import from_mask

if TYPE_CHECKING:
    from pybox.engine.engine import Engine

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
              "time_for_children", "user", "uts")
# /proc/PID/ns name -> runtime-spec type
SPEC_TYPES = {"cgroup": "cgroup", "ipc": "ipc", "mnt": "mount", "net": "network",
              "pid": "pid", "time": "time", "user": "user", "uts": "uts"}

# limit files: (names: v1 first, then v2), linux.resources path, docker flag, HostConfig
LIMITS = (
    (("memory.limit_in_bytes", "memory.max"), "memory.limit", "-m, --memory", "Memory"),
    (("memory.memsw.limit_in_bytes", "memory.swap.max"), "memory.swap", "--memory-swap",
     "MemorySwap"),
    (("memory.soft_limit_in_bytes", "memory.low"), "memory.reservation",
     "--memory-reservation", "MemoryReservation"),
    (("memory.swappiness",), "memory.swappiness", "--memory-swappiness",
     "MemorySwappiness"),
    (("memory.oom_control",), "memory.disableOOMKiller", "--oom-kill-disable",
     "OomKillDisable"),
    (("cpu.shares", "cpu.weight"), "cpu.shares", "-c, --cpu-shares", "CpuShares"),
    (("cpu.cfs_quota_us",), "cpu.quota", "--cpus / --cpu-quota", "NanoCpus / CpuQuota"),
    (("cpu.cfs_period_us",), "cpu.period", "--cpus / --cpu-period", "NanoCpus / CpuPeriod"),
    (("cpu.max",), "cpu.quota", "--cpus / --cpu-quota / --cpu-period",
     "NanoCpus / CpuQuota / CpuPeriod"),
    (("cpu.rt_runtime_us",), "cpu.realtimeRuntime", "--cpu-rt-runtime", "CpuRealtimeRuntime"),
    (("cpu.rt_period_us",), "cpu.realtimePeriod", "--cpu-rt-period", "CpuRealtimePeriod"),
    (("cpuset.cpus",), "cpu.cpus", "--cpuset-cpus", "CpusetCpus"),
    (("cpuset.mems",), "cpu.mems", "--cpuset-mems", "CpusetMems"),
    (("pids.max",), "pids.limit", "--pids-limit", "PidsLimit"),
    (("blkio.weight", "blkio.bfq.weight", "io.weight", "io.bfq.weight"), "blockIO.weight",
     "--blkio-weight", "BlkioWeight"),
    (("blkio.throttle.read_bps_device",), "blockIO.throttleReadBpsDevice",
     "--device-read-bps", "BlkioDeviceReadBps"),
    (("blkio.throttle.write_bps_device",), "blockIO.throttleWriteBpsDevice",
     "--device-write-bps", "BlkioDeviceWriteBps"),
    (("blkio.throttle.read_iops_device",), "blockIO.throttleReadIOPSDevice",
     "--device-read-iops", "BlkioDeviceReadIOps"),
    (("blkio.throttle.write_iops_device",), "blockIO.throttleWriteIOPSDevice",
     "--device-write-iops", "BlkioDeviceWriteIOps"),
    (("io.max",), "blockIO.throttle*", "--device-{read,write}-{bps,iops}",
     "BlkioDevice{Read,Write}{Bps,IOps}"),
    (("devices.list",), "devices", "--device / --device-cgroup-rule / --privileged",
     "Devices / DeviceCgroupRules / Privileged"),
)
# live counters shown next to the limits
USAGE = ("memory.usage_in_bytes", "memory.current", "memory.max_usage_in_bytes",
         "memory.peak", "pids.current", "cpuacct.usage")
UNLIMITED = 1 << 62


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _field(tree: Any, dotted: str) -> Any:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _status(pid: int) -> dict[str, str] | None:
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return []
    return [a.decode(errors="replace") for a in args if a]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# -- sections --------------------------------------------------------------------
def namespaces(pid: int, config: dict[str, Any], others: dict[str, int]) -> list[dict[str, Any]]:
    """``others``: {container name: pid} of the other running containers.  The
    host's namespaces are pid 1's, or pyboxd's own where pid 1's cannot be read
    (a sandbox, a hardened /proc)."""
    spec = {ns.get("type"): ns for ns in (config.get("linux") or {}).get("namespaces") or ()}
    out = []
    for name in NAMESPACES:
        try:
            ino = os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except OSError:
            continue
        host = None
        for ref in ("1", "self"):  # init's; pyboxd's own where init's are hidden
            try:
                host = os.stat(f"/proc/{ref}/ns/{name}").st_ino
                break
            except OSError:
                continue
        shared = []
        for other, opid in others.items():
            try:
                if os.stat(f"/proc/{opid}/ns/{name}").st_ino == ino:
                    shared.append(other)
            except OSError:
                pass
        entry = spec.get(SPEC_TYPES.get(name.replace("_for_children", "")))
        out.append({"type": name, "inode": ino, "host_inode": host, "host_shares": ino == host,
                    "shared_with": sorted(shared),
                    "config": ("joined " + entry["path"]) if entry and entry.get("path")
                    else ("new" if entry else "none (the host's)")})
    return out


def cgroups(saved: dict[str, Any] | None, resources: dict[str, Any],
            host_config: dict[str, Any]) -> dict[str, Any]:
    """Every directory in the runtime's saved cgroup state with its limit files."""
    if not saved:
        return {"driver": None, "directories": []}
    paths = saved.get("paths") or {}
    created = set(saved.get("created") or ())
    dirs: dict[str, list[str]] = {}
    for ctrl, d in sorted(paths.items(), key=lambda kv: kv[1]):
        dirs.setdefault(d, []).append(ctrl or "cgroup2")
    out = []
    for d, controllers in dirs.items():
        limits = []
        for names, oci, flag, docker in LIMITS:
            for name in names:
                text = _read(os.path.join(d, name))
                if text is None:
                    continue
                value = text.strip()
                configured = _field(resources, oci) if "*" not in oci else None
                if oci.startswith("blockIO.throttle") and "*" in oci:
                    configured = any(k.startswith("throttle") for k in
                                     (resources.get("blockIO") or {}))
                docker_value = None
                for key in docker.split(" / "):
                    key = key.strip()
                    if host_config.get(key) not in (None, 0, "", [], False):
                        docker_value = host_config.get(key)
                        break
                limits.append({
                    "file": name, "value": value, "display": _display(name, value),
                    "set_by": ({"flag": flag, "docker": "HostConfig." + docker.replace(
                        " / ", " / HostConfig."), "oci": "linux.resources." + oci,
                        "requested": docker_value}
                        if configured not in (None, False, [], {}) else None)})
        usage = {}
        for name in USAGE:
            text = _read(os.path.join(d, name))
            if text is not None:
                usage[name] = text.strip()
        out.append({"path": d, "controllers": controllers, "created_by_pybox": d in created,
                    "limits": limits, "usage": usage})
    parents = sorted(p for p in created if p not in dirs)
    return {"driver": saved.get("driver"), "path": saved.get("path"), "directories": out,
            "parents_created": parents}


def _display(name: str, value: str) -> str:
    if value == "max" or (value.isdigit() and int(value) >= UNLIMITED):
        return "unlimited"
    if name.startswith("memory.") and value.isdigit() and "swappiness" not in name:
        return human_bytes(int(value))
    if name == "cpu.cfs_quota_us" and value == "-1":
        return "unlimited"
    if name == "cpu.max":
        quota, _, period = value.partition(" ")
        if quota != "max" and period:
            return f"{int(quota) / int(period):g} cpus"
    if "\n" in value:
        return "; ".join(value.splitlines())
    return value


def parse_mountinfo(text: str | None) -> list[dict[str, Any]]:
    out = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        f = left.split()
        r = right.split()
        if len(f) < 6 or len(r) < 2:
            continue
        out.append({"id": int(f[0]), "parent": int(f[1]), "device": f[2],
                    "root": _unescape(f[3]), "mount_point": _unescape(f[4]),
                    "options": f[5], "propagation": " ".join(f[6:]) or "private",
                    "fstype": r[0], "source": _unescape(r[1]),
                    "super_options": r[2] if len(r) > 2 else ""})
    return out


def _unescape(field: str) -> str:
    return unescape_mountinfo(field)


def rootfs(mounts: list[dict[str, Any]], graph: dict[str, Any],
           image_layers: list[Any]) -> dict[str, Any]:
    """The container's root: its "/" mount (overlay: lower dirs -> image layers)."""
    root = None
    for m in mounts:
        if m["mount_point"] == "/":
            root = m  # the last one is on top
    out: dict[str, Any] = {"merged": graph.get("MergedDir"), "upper": graph.get("UpperDir"),
           "work": graph.get("WorkDir"), "lower": [], "mount": None}
    lowers = []
    if root is not None:
        out["mount"] = {"fstype": root["fstype"], "source": root["source"],
                        "options": root["options"]}
        opts = {}
        for item in root["super_options"].split(","):
            key, _, value = item.partition("=")
            opts[key] = value
        if root["fstype"] == "overlay":
            lowers = [p for p in opts.get("lowerdir", "").split(":") if p]
            out["upper"] = opts.get("upperdir") or out["upper"]
            out["work"] = opts.get("workdir") or out["work"]
    if not lowers and graph.get("LowerDir"):
        lowers = graph["LowerDir"].split(":")
    by_chain = {layer["chain_id"].split(":")[-1]: (i, layer)
                for i, layer in enumerate(image_layers)}
    for position, path in enumerate(lowers):
        real = os.path.realpath(path)
        entry = {"position": position, "path": path, "resolved": real, "layer": None}
        parts = real.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-1] == "diff" and parts[-2] in by_chain:
            index, layer = by_chain[parts[-2]]
            entry["layer"] = {"index": index, "of": len(image_layers),
                              "diff_id": layer.get("diff_id"),
                              "chain_id": layer.get("chain_id"),
                              "digest": (layer.get("blob") or {}).get("digest"),
                              "size": (layer.get("blob") or {}).get("size")}
        out["lower"].append(entry)
    return out


def processes(pids: list[int]) -> list[dict[str, Any]]:
    out = []
    for pid in sorted(pids):
        st = _status(pid)
        if st is None:
            continue
        nspid = st.get("NSpid", str(pid)).split()
        uid = st.get("Uid", "").split()
        out.append({"pid": pid, "container_pid": int(nspid[-1]), "ppid": int(st.get("PPid", 0)),
                    "uid": int(uid[0]) if uid else None, "state": st.get("State", ""),
                    "threads": int(st.get("Threads", 1)), "name": st.get("Name", ""),
                    "command": _cmdline(pid)})
    return out


def security(pid: int) -> dict[str, Any]:
    st = _status(pid) or {}
    caps: dict[str, Any] = {}
    for key, name in (("CapEff", "effective"), ("CapPrm", "permitted"),
                      ("CapInh", "inheritable"), ("CapBnd", "bounding"),
                      ("CapAmb", "ambient")):
        if key in st:
            mask = int(st[key], 16)
            caps[name] = {"mask": st[key], "names": from_mask(mask)}
    modes = {"0": "disabled", "1": "strict", "2": "filter"}
    maps: dict[str, list[list[int]]] = {}
    for name in ("uid_map", "gid_map"):
        text = _read(f"/proc/{pid}/{name}") or ""
        maps[name] = [[int(x) for x in line.split()] for line in text.splitlines()
                      if line.strip()]
    return {"capabilities": caps,
            "seccomp": {"mode": modes.get(st.get("Seccomp") or "", st.get("Seccomp")),
                        "filters": int(st.get("Seccomp_filters", 0) or 0)},
            "no_new_privs": st.get("NoNewPrivs") == "1",
            "uid_map": maps["uid_map"], "gid_map": maps["gid_map"],
            "user_namespace": maps["uid_map"] != [[0, 0, 4294967295]]}


def proc_view(mounts: list[dict[str, Any]]) -> dict[str, Any]:
    files = [m["mount_point"] for m in mounts if m["fstype"] == "fuse.pybox-procview"]
    source = next((m["source"] for m in mounts if m["fstype"] == "fuse.pybox-procview"), None)
    return {"on": bool(files), "files": files, "server": source}


# -- the whole report -------------------------------------------------------------
def explain(engine: Engine, ref: str) -> dict[str, Any]:
    c = engine.get(ref)
    st = c.state
    out: dict[str, Any] = {
           "id": c.id, "name": c.name, "image": c.config.get("Image"),
           "image_id": c.image if c.has("Image") else None, "status": st.docker_status(),
           "running": st.running, "pid": st.pid or None,
           "files": {"record": os.path.join(c.dir, "config.v2.json"),
                     "bundle": engine.run_dir(c),
                     "config": os.path.join(engine.run_dir(c), "config.json"),
                     "runtime_state": os.path.join(engine.runtime_root, c.id, "state.json")}}
    image_layers: list[Any] = []
    try:
        image_layers = engine.images.images.store.get_record(c.image).get("layers") or []
    except PyboxError:
        pass
    try:
        graph = engine.images.rootfs_info(c.id)
    except PyboxError:
        graph = (c.extra.get("GraphDriver") or {}).get("Data") or {}
    if not st.running or not st.pid:
        out["rootfs"] = rootfs([], graph, image_layers)
        out["note"] = "not running: no namespaces, cgroups, mounts or processes to show"
        return out
    pid = st.pid
    rc = engine.runner.container(c.id)
    config: dict[str, Any] = {}
    try:
        config = rc.config or {}
    except (OSError, ValueError, PyboxError):
        pass
    others = {o.name: o.state.pid for o in engine.store.all()
              if o.id != c.id and o.state.running and o.state.pid}
    mounts = parse_mountinfo(_read(f"/proc/{pid}/mountinfo"))
    resources = (config.get("linux") or {}).get("resources") or {}
    saved = rc.record.get("cgroup")
    pids = []
    mgr = rc.cgroup_manager()
    if mgr is not None:
        try:
            pids = mgr.pids()
        except (OSError, PyboxError):
            pids = []
    if pid not in pids:
        pids.append(pid)
    out.update({
        "namespaces": namespaces(pid, config, others),
        "cgroups": cgroups(saved, resources, c.host_config or {}),
        "rootfs": rootfs(mounts, graph, image_layers),
        "mounts": mounts,
        "processes": processes(pids),
        "security": security(pid),
        "proc_view": proc_view(mounts),
    })
    return out
