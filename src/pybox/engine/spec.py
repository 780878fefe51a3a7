"""Docker's container configuration -> an OCI runtime-spec config.json.

This is the one place where docker's vocabulary (Config, HostConfig, image
config) becomes the runtime's (process, mounts, linux.resources...).  Every
HostConfig flag maps to exactly one spec field here; nothing downstream parses
docker's names again.  Defaults are docker's: its 14 capabilities
(engine/security.py), its masked and read-only /proc paths, its /dev/shm size,
its cgroup parent.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pybox import OCI_VERSION
from pybox.engine import logs, security
from pybox.engine.networking import host_ip, host_port_range, parse_port_key
from pybox.engine.rootview import open_in_root
from pybox.errors import BadRequest, NotFound, SpecError, Unsupported, UsageError
from pybox.images import platforms
from pybox.network import etc
from pybox.runtime.rootfs import clean_path
from pybox.runtime.signals import parse_signal

if TYPE_CHECKING:
    from pybox.images.snapshots import IdMap

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# moby's daemon/pkg/oci/defaults.go (docker 28), plus the thermal_throttle
# directory of each possible CPU (masked_paths())
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

ULIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}


# every container's cgroup sits below this one, in each hierarchy (docker's /docker)
CGROUP_PARENT = "/pybox"


def cgroups_path(hc: dict[str, Any], cid: str) -> str:
    """linux.cgroupsPath: the id below --cgroup-parent (checked at create by
    lifecycle.check_cgroup_parent), else below CGROUP_PARENT -- moby's withCgroups
    for the cgroupfs driver, filepath.Join(parent, id).  A relative parent stays
    relative: the runtime puts it below its own cgroup, as runc does."""
    parent = hc.get("CgroupParent") or CGROUP_PARENT
    parts = [p for p in parent.split("/") if p not in ("", ".")]
    return ("/" if parent.startswith("/") else "") + "/".join([*parts, cid])


def command_line(config: dict[str, Any]) -> list[str]:
    """Entrypoint + Cmd, as docker combines them (image defaults already merged)."""
    entry = list(config.get("Entrypoint") or [])
    cmd = list(config.get("Cmd") or [])
    args = entry + cmd
    if args[:1] == [""]:
        args = args[1:]
    if not args:
        raise SpecError("No command specified", errno=22)
    return args


def merge_image_config(config: dict[str, Any],
                       image_config: dict[str, Any] | None) -> dict[str, Any]:
    """Fill a create request's Config with the image's defaults (docker's rules:
    an Entrypoint given in the request drops the image's Cmd; Env is the image's
    then the request's; Labels merge)."""
    img = image_config or {}
    out = dict(config)
    if out.get("Entrypoint") is None:
        out["Entrypoint"] = img.get("Entrypoint")
        if not out.get("Cmd"):
            out["Cmd"] = img.get("Cmd")
    elif not out.get("Cmd"):
        out["Cmd"] = None
    env: dict[str, str] = {}
    order: list[str] = []
    for entry in list(img.get("Env") or []) + list(config.get("Env") or []):
        key = entry.split("=", 1)[0]
        if key not in env:
            order.append(key)
        env[key] = entry
    out["Env"] = [env[k] for k in order] or None  # dockerd: null, not []
    for key in ("WorkingDir", "User", "StopSignal"):
        if not out.get(key):
            out[key] = img.get(key) or ""
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(img.get(key) or {})
        merged.update(config.get(key) or {})
        out[key] = merged or None
    labels = dict(img.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    out["Labels"] = labels
    if out.get("Healthcheck") is None and img.get("Healthcheck"):
        out["Healthcheck"] = img["Healthcheck"]
    return out


MAX_ID = 2**31 - 1  # runc's (libcontainer/user) range for uids and gids


def _resolve_user(rootfs: str, user: str | None) -> tuple[int, int, list[int]]:
    """docker's user spec (name|uid[:group|gid]) -> (uid, gid, supplementary gids:
    the primary one and the groups listing the user), looked up in the
    container's own /etc/passwd and /etc/group."""
    name, _, group = (user or "").partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    uid = gid = 0
    username: str | None = None
    if name:
        if name.isdigit():
            uid = int(name)
            for entry in passwd:
                if entry[2] == name:
                    username, gid = entry[0], int(entry[3])
                    break
        else:
            for entry in passwd:
                if entry[0] == name:
                    username, uid, gid = name, int(entry[2]), int(entry[3])
                    break
            else:
                raise SpecError(f"unable to find user {name}: no matching entries in passwd "
                                "file", errno=2)
    else:
        username = "root"
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for entry in groups:
                if entry[0] == group:
                    gid = int(entry[2])
                    break
            else:
                raise SpecError(f"unable to find group {group}: no matching entries in group "
                                "file", errno=2)
    # the primary group first, as dockerd's getUser (daemon/oci_linux.go): `id`
    # shows groups=GID for `--user 1234:5678` and a passwd user's own group
    extra: list[int] = [gid]
    if username:
        for entry in groups:
            members = entry[3].split(",") if len(entry) > 3 and entry[3] else []
            if username in members and int(entry[2]) not in extra:
                extra.append(int(entry[2]))
    if any(not 0 <= i <= MAX_ID for i in (uid, gid, *extra)):
        # runc's user lookup refuses them too: 4294967295 is (uid_t)-1, which
        # setresuid and setresgid read as "leave it", so `-u 4294967295` (or an
        # image's USER, or a passwd entry) ran the program as root
        raise SpecError("uids and gids must be in range 0-2147483647", errno=22)
    return uid, gid, extra


resolve_user = _resolve_user  # the public name: exec (engine/execs.py, lifecycle) resolves too


def _read_db(rootfs: str, path: str) -> list[list[str]]:
    """The entries of the image's /etc/passwd or /etc/group.  The file is opened
    by the kernel inside ``rootfs`` (openat2 RESOLVE_IN_ROOT, O_NOFOLLOW is not
    wanted: an image may link /etc/passwd), so a container that swapped it for a
    link to a host file cannot have the host's file read; only a regular file
    is read (a fifo would block the daemon)."""
    try:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        fd = open_in_root(root, path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    finally:
        os.close(root)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return []
        with open(fd, errors="replace") as f:
            # an entry whose id is not a number is skipped (as libcontainer's
            # parser does), not a ValueError at start
            return [fields for fields in (line.rstrip("\n").split(":") for line in f
                                          if not line.startswith("#") and line.count(":") >= 2)
                    if len(fields) > 2 and fields[2].isdigit()
                    and (path != "/etc/passwd" or (len(fields) > 3 and fields[3].isdigit()))]
    except OSError:
        return []


def _device_numbers(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise SpecError(f"{path}: {e.strerror}", errno=e.errno) from None
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise SpecError(f"{path} is not a device", errno=22)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def resources(hc: dict[str, Any]) -> dict[str, Any]:
    """HostConfig resource fields -> linux.resources."""
    res: dict[str, Any] = {}
    mem: dict[str, Any] = {}
    memory = hc.get("Memory") or 0
    if memory_swap_problem(memory, hc.get("MemorySwap") or 0) == SWAP_WITHOUT_MEMORY:
        # dockerd lets an update of a stopped container give MemorySwap alone:
        # its start is where swap without memory is refused
        raise SpecError(SWAP_WITHOUT_MEMORY, errno=22)
    if memory:
        mem["limit"] = memory
        mem["swap"] = memory_swap(hc)
    if hc.get("MemoryReservation"):
        mem["reservation"] = hc["MemoryReservation"]
    if hc.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    sw = hc.get("MemorySwappiness")
    if sw is not None and sw >= 0:
        mem["swappiness"] = sw
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if hc.get("NanoCpus"):
        if hc.get("CpuQuota") or hc.get("CpuPeriod"):
            raise SpecError("Conflicting options: Nano CPUs and CPU Period cannot both be set",
                            errno=22)
        cpu["period"] = 100000
        cpu["quota"] = hc["NanoCpus"] * 100000 // 1_000_000_000
    if hc.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if hc.get("CpuQuota"):
        cpu["quota"] = hc["CpuQuota"]
    if hc.get("CpuRealtimePeriod"):
        cpu["realtimePeriod"] = hc["CpuRealtimePeriod"]
    if hc.get("CpuRealtimeRuntime"):
        cpu["realtimeRuntime"] = hc["CpuRealtimeRuntime"]
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    pids = hc.get("PidsLimit")
    if pids and pids > 0:
        res["pids"] = {"limit": pids}
    # pyboxd's CRI only (pybox.cri.containers; the Docker API's schema drops
    # unknown HostConfig fields, so no API body carries them): kubelet's
    # hugepage limits and cgroup v2 unified entries, as OCI takes them
    hugepages = [{"pageSize": h["pageSize"], "limit": h["limit"]}
                 for h in hc.get("CriHugepageLimits") or () if isinstance(h, dict)]
    if hugepages:
        res["hugepageLimits"] = hugepages
    if isinstance(hc.get("CriUnified"), dict) and hc["CriUnified"]:
        res["unified"] = {str(k): str(v) for k, v in hc["CriUnified"].items()}
    blk: dict[str, Any] = {}
    if hc.get("BlkioWeight"):
        blk["weight"] = hc["BlkioWeight"]
    for field, key, value in (("BlkioDeviceReadBps", "throttleReadBpsDevice", "Rate"),
                              ("BlkioDeviceWriteBps", "throttleWriteBpsDevice", "Rate"),
                              ("BlkioDeviceReadIOps", "throttleReadIOPSDevice", "Rate"),
                              ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice", "Rate")):
        for d in hc.get(field) or ():
            major, minor = _device_numbers(d["Path"])
            blk.setdefault(key, []).append({"major": major, "minor": minor,
                                            "rate": d[value]})
    for d in hc.get("BlkioWeightDevice") or ():
        major, minor = _device_numbers(d["Path"])
        blk.setdefault("weightDevice", []).append({"major": major, "minor": minor,
                                                   "weight": d["Weight"]})
    if blk:
        res["blockIO"] = blk
    res["devices"] = [{"allow": False, "access": "rwm"}]
    return res


def default_mounts(hc: dict[str, Any]) -> list[dict[str, Any]]:
    shm = hc.get("ShmSize") or DEFAULT_SHM_SIZE
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]


# docker's --read-only leaves these writable (moby's withMounts)
READ_ONLY_ROOT_KEEPS = ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")
# what docker sets in a container with a network namespace of its own
# (withCommonOptions): ports below 1024 and ICMP echo sockets without privilege
DEFAULT_NET_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0",
                       "net.ipv4.ping_group_range": "0 2147483647"}

_masked_paths: list[str] | None = None


def masked_paths() -> list[str]:
    """docker's masked paths on this host: MASKED_PATHS, then the thermal_throttle
    directory of every possible CPU that has one (its files show and reset the
    host's thermal interrupt counters: GHSA-6fw5-f8r9-fgfm).  Computed once, as
    dockerd does: CPUs do not come and go under a running daemon."""
    global _masked_paths
    if _masked_paths is None:
        paths = list(MASKED_PATHS)
        for cpu in _possible_cpus():
            path = f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"
            if os.path.exists(path):
                paths.append(path)
        _masked_paths = paths
    return list(_masked_paths)


def _possible_cpus() -> list[int]:
    """/sys/devices/system/cpu/possible ("0-3,6") as a list of CPU numbers."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return []
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            cpus.extend(range(int(first), int(last or first) + 1))
        except ValueError:
            continue
    return cpus


def _user_destinations(container: dict[str, Any]) -> set[str]:
    """Destinations of the user's own mounts (volumes, binds, --tmpfs): docker's
    --read-only leaves them as asked."""
    hc = container["HostConfig"]
    dests = {m.get("Destination") for m in container.get("Mounts") or ()}
    dests |= set(hc.get("Tmpfs") or {})
    return {clean_path(d) for d in dests if isinstance(d, str) and d}


def harden_mounts(mounts: list[dict[str, Any]], container: dict[str, Any], *,
                  writable_cgroups: bool) -> None:
    """docker's mount rules on the finished list, in moby's order: --read-only
    makes every mount but the user's and READ_ONLY_ROOT_KEEPS read-only (so
    /etc/hosts, /etc/hostname, /etc/resolv.conf too); --privileged makes /sys
    writable; the cgroup mount is writable with --privileged or
    --security-opt writable-cgroups=true, else "rro": read-only all the way
    down -- on cgroup v1 the tmpfs holding the hierarchies as well, which runc
    (1.0 and later) leaves writable under docker's plain "ro"."""
    hc = container["HostConfig"]
    if hc.get("ReadonlyRootfs"):
        user = _user_destinations(container)
        for m in mounts:
            dest = clean_path(m["destination"])
            if dest in READ_ONLY_ROOT_KEEPS or dest in user:
                continue
            options = list(m.get("options") or ())
            if "ro" not in options and "rro" not in options:
                m["options"] = [o for o in options if o != "rw"] + ["ro"]
    for m in mounts:
        options = list(m.get("options") or ())
        if m["destination"] == "/sys" and hc.get("Privileged"):
            m["options"] = [o for o in options if o not in ("ro", "rro")] + ["rw"]
        elif m["type"] == "cgroup":
            rest = [o for o in options if o not in ("ro", "rro", "rw")]
            m["options"] = rest + ["rw"] if writable_cgroups else ["rro"] + rest


def build(container: dict[str, Any], rootfs: str, *, cgroup_v2: bool = False,
          extra_mounts: Iterable[dict[str, Any]] = (), netns: str | None = None,
          namespace_of: Callable[[str, str], str] | None = None, init_path: str | None = None,
          idmap: IdMap | None = None, shm_source: str | None = None) -> dict[str, Any]:
    """The config.json dict for ``container`` (a docker container record) whose
    root filesystem is mounted at ``rootfs``.  ``namespace_of(ref, kind)`` gives
    the /proc/PID/ns path of another container's namespace (for
    --ipc/--pid/--network container:ID); ``init_path`` is the tini-static binary
    for --init; ``shm_source`` a host directory bound as /dev/shm instead of a
    tmpfs of its own (--ipc shareable, container:ID, host)."""
    config = container["Config"]
    hc = container["HostConfig"]
    check_device_requests(hc.get("DeviceRequests") or ())
    hostname = config.get("Hostname") or container["Id"][:12]
    # docker: a bare NAME (``-e NAME`` unset in the client) unsets, is never passed
    env = [e for e in config.get("Env") or () if "=" in e]
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={hostname}")
    if config.get("Tty") and "TERM" not in keys:
        env.append("TERM=xterm")
    uid, gid, extra = _resolve_user(rootfs, config.get("User"))
    for g in hc.get("GroupAdd") or ():
        if str(g).isdigit():
            extra.append(int(g))
        else:
            for entry in _read_db(rootfs, "/etc/group"):
                if entry[0] == g:
                    extra.append(int(entry[2]))
                    break
            else:
                raise SpecError(f"Unable to find group {g}", errno=2)
    caps = security.capability_set(hc)
    rlimits: list[dict[str, Any]] = []
    for u in hc.get("Ulimits") or ():
        name = ULIMITS.get(u["Name"])
        if name is None:
            raise SpecError(f"invalid ulimit type: {u['Name']}", errno=22)
        rlimits.append({"type": name, "soft": u["Soft"], "hard": u["Hard"]})
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": {"uid": uid, "gid": gid, "additionalGids": sorted(set(extra))},
        "args": command_line(config),
        "env": env,
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "rlimits": rlimits,
        "noNewPrivileges": security.no_new_privileges(hc),
    }
    if hc.get("Init") and init_path:
        process["args"] = ["/sbin/docker-init", "--"] + process["args"]
    # always written, as docker does: otherwise the container would inherit
    # pyboxd's own score (contrib/pyboxd.service: -500, shielding it from the OOM killer)
    process["oomScoreAdj"] = hc.get("OomScoreAdj") or 0
    size = hc.get("ConsoleSize") or [0, 0]
    if config.get("Tty") and size and size[0] and size[1]:
        process["consoleSize"] = {"height": size[0], "width": size[1]}

    namespaces: list[dict[str, str]] = [{"type": "mount"}]

    def mode_ns(kind: str, mode: str | None, field: str) -> None:
        mode = mode or ""
        if mode == "host":
            return
        if mode.startswith("container:"):
            if namespace_of is None:
                raise SpecError(f"{field}: joining another container is not possible here")
            namespaces.append({"type": kind, "path": namespace_of(mode[10:], kind)})
            return
        if mode not in ("", "private", "shareable", "none", "default", "bridge"):
            raise SpecError(f"invalid {field}: {mode!r}")
        namespaces.append({"type": kind})

    mode_ns("uts", hc.get("UTSMode"), "UTS mode")
    mode_ns("pid", hc.get("PidMode"), "PID mode")
    mode_ns("ipc", hc.get("IpcMode"), "IPC mode")
    mode = hc.get("NetworkMode") or "default"
    if mode == "host":
        pass
    elif mode.startswith("container:"):
        mode_ns("network", mode, "network mode")
    elif netns:
        namespaces.append({"type": "network", "path": netns})
    else:
        namespaces.append({"type": "network"})
    if cgroup_v2 and hc.get("CgroupnsMode") != "host" or hc.get("CgroupnsMode") == "private":
        namespaces.append({"type": "cgroup"})

    mounts = default_mounts(hc)
    if shm_source:
        mounts = [m if m["destination"] != "/dev/shm" else
                  {"destination": "/dev/shm", "type": "bind", "source": shm_source,
                   "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]}
                  for m in mounts]
    if idmap:  # pyboxd --userns-remap: a user namespace with the daemon's maps
        namespaces.insert(0, {"type": "user"})
    for path, size in (hc.get("Tmpfs") or {}).items():
        mounts.append({"destination": path, "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec"] + [o for o in
                                                                    size.split(",") if o]})
    mounts += list(extra_mounts)
    if hc.get("Init") and init_path:
        mounts.append({"destination": "/sbin/docker-init", "type": "bind",
                       "source": init_path, "options": ["bind", "ro"]})
    harden_mounts(mounts, container,
                  writable_cgroups=security.writable_cgroups(hc, bool(idmap)))
    dev_list, dev_rules = security.devices(hc)
    res = resources(hc)
    res["devices"] = res["devices"] + dev_rules
    spec = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "resources": res,
            "cgroupsPath": cgroups_path(hc, container["Id"]),
            "namespaces": namespaces,
            "maskedPaths": [] if hc.get("Privileged") else masked_paths(),
            "readonlyPaths": [] if hc.get("Privileged") else list(READONLY_PATHS),
        },
        # HostConfig.Annotations (API 1.43+) are the runtime's, as dockerd passes them
        "annotations": {**(hc.get("Annotations") or {}),
                        "org.pybox.container.name": container["Name"].lstrip("/")},
    }
    if idmap:
        spec["linux"]["uidMappings"] = [{"containerID": c, "hostID": h, "size": n}
                                        for c, h, n in idmap["uid"]]
        spec["linux"]["gidMappings"] = [{"containerID": c, "hostID": h, "size": n}
                                        for c, h, n in idmap["gid"]]
    if dev_list:
        spec["linux"]["devices"] = dev_list
    propagation = rootfs_propagation(mounts)
    if propagation:
        spec["linux"]["rootfsPropagation"] = propagation
    seccomp = security.seccomp_for(hc, caps)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    # --security-opt systempaths=unconfined: the CLI sends both lists empty
    for field, key in (("MaskedPaths", "maskedPaths"), ("ReadonlyPaths", "readonlyPaths")):
        if isinstance(hc.get(field), list):
            spec["linux"][key] = [p for p in hc[field] if isinstance(p, str)]
    sysctl = {}
    # not with --userns-remap: the namespace pyboxd made belongs to the host's user
    # namespace, so the container's root cannot write its sysctls (docker's, made
    # by runc inside the container's user namespace, can)
    if mode != "host" and not mode.startswith("container:") and not idmap:
        for key, value in DEFAULT_NET_SYSCTLS.items():
            if os.path.exists("/proc/sys/" + key.replace(".", "/")):
                sysctl[key] = value
    sysctl.update(hc.get("Sysctls") or {})
    if sysctl:
        spec["linux"]["sysctl"] = sysctl
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if not any(ns["type"] == "uts" for ns in namespaces):
        spec.pop("hostname", None)
        spec.pop("domainname", None)
    return spec


def rootfs_propagation(mounts: Iterable[dict[str, Any]]) -> str:
    """linux.rootfsPropagation for the container's bind mounts, as dockerd's
    WithMounts sets it: a shared bind mount needs a shared root ("shared") for
    the container's own mounts under it to reach the host; a slave one a
    slave root ("rslave"); "" (the runtime's rslave default) otherwise."""
    props = {o for m in mounts if m.get("type") == "bind" for o in m.get("options") or ()}
    if props & {"shared", "rshared"}:
        return "shared"
    if props & {"slave", "rslave"}:
        return "rslave"
    return ""


def _go_quote(text: str) -> str:
    """Go's %q of a string, for the printable text of names."""
    return json.dumps(text, ensure_ascii=False)


def _go_list(value: object) -> str:
    """Go's %v of a []string or [][]string: [[gpu utility] [compute]]."""
    if isinstance(value, list):
        return "[" + " ".join(_go_list(v) for v in value) + "]"
    return str(value)


def check_device_requests(requests: Iterable[dict[str, Any]]) -> None:
    """--gpus and HostConfig.DeviceRequests: dockerd's handleDevice when no
    device driver is registered (the NVIDIA one only exists where its
    container toolkit is installed; pybox has none): the start fails with
    dockerd's words, a 500, rather than run the container without the device."""
    for req in requests:
        req = req or {}
        raise Unsupported(f"could not select device driver {_go_quote(req.get('Driver') or '')} "
                          f"with capabilities: {_go_list(req.get('Capabilities') or [])}")


# -- the image of a create: --platform, --storage-opt ---------------------------------------
STORAGE_OPT_UNSUPPORTED = ("--storage-opt is supported only for overlay over xfs with 'pquota' "
                           "mount option")
_PLATFORM_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")
# containerd's knownOS and knownArch
_KNOWN_OS = frozenset("aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd "
                      "openbsd plan9 solaris windows zos".split())
_KNOWN_ARCH = frozenset("386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips "
                        "mipsle mips64 mips64le mips64p32 mips64p32le ppc riscv riscv64 s390 "
                        "s390x sparc sparc64 wasm".split())


def parse_platform(text: str) -> platforms.Platform | None:
    """The create's ``platform`` query value (API 1.41+), as dockerd parses
    it (containerd's platforms.Parse): None when empty; BadRequest with
    containerd's words when it is not a platform."""
    if not text:
        return None
    invalid = f"{_go_quote(text)}: %s: invalid argument"
    if "*" in text:
        raise BadRequest(invalid % "wildcards not yet supported")
    parts = text.split("/")
    for part in parts:
        if not _PLATFORM_COMPONENT.match(part):
            raise BadRequest(f"{_go_quote(part)} is an invalid component of {_go_quote(text)}: "
                             "platform specifier component must match "
                             f"{_go_quote(_PLATFORM_COMPONENT.pattern)}: invalid argument")
    if len(parts) > 3:
        raise BadRequest(invalid % "cannot parse platform specifier")
    if len(parts) == 1 and parts[0].lower() not in _KNOWN_OS and \
            platforms.normalise_arch(parts[0].lower()) not in _KNOWN_ARCH:
        raise BadRequest(invalid % "unknown operating system or architecture")
    return platforms.parse(text)


# x86-64 micro-architecture levels by /proc/cpuinfo's flags (klauspost/cpuid's
# X64Level, which dockerd's maximumSpec names the host's amd64 variant with)
_AMD64_LEVELS = (
    ("v2", {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
    ("v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ("v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
)
_host_spec: platforms.Platform | None = None


def _host_maximum_spec() -> platforms.Platform:
    """dockerd's maximumSpec: the host's platform, an amd64 one with its
    micro-architecture level as variant (linux/amd64/v3)."""
    global _host_spec
    if _host_spec is None:
        host = platforms.host_platform()
        if host.architecture == "amd64":
            flags: set[str] = set()
            try:
                with open("/proc/cpuinfo") as f:
                    for line in f:
                        if line.startswith("flags"):
                            flags = set(line.partition(":")[2].split())
                            break
            except OSError:
                pass
            level = "v1"
            for name, needed in _AMD64_LEVELS:
                if not needed <= flags:
                    break
                level = name
            host = platforms.Platform(host.os, host.architecture, level)
        _host_spec = host
    return _host_spec


def _platform_matches(wanted: platforms.Platform, image: platforms.Platform) -> bool:
    """dockerd's OnlyPlatformWithFallback(wanted).Match(image): the same OS and
    architecture; a variant on both sides must fit (an older ARM variant runs
    on a newer one), an image without one is taken."""
    if image.os != wanted.os or image.architecture != wanted.architecture:
        return False
    if not image.variant or not wanted.variant:
        return True
    if wanted.architecture in ("arm", "arm64"):
        return image.variant <= wanted.variant
    return image.variant == wanted.variant


def check_image(ref: str, image: Mapping[str, object], wanted: platforms.Platform | None,
                hc: dict[str, Any]) -> list[str]:
    """What dockerd's create checks once it has the image (``image``: its Os,
    Architecture and Variant): a ``--platform`` the image is not for is a 404
    in dockerd's words (the docker CLI then pulls that platform), without one
    an image for another platform is a warning; then --storage-opt, which the
    layer store refuses (pybox's overlay has no disk quotas).  -> warnings."""
    warnings: list[str] = []
    image_platform = platforms.Platform(str(image.get("Os") or ""),
                                        platforms.normalise_arch(str(image.get("Architecture")
                                                                     or "")),
                                        str(image.get("Variant") or ""))
    if wanted is not None:
        if not _platform_matches(wanted, image_platform):
            raise NotFound(f"image with reference {ref} was found but does not match the "
                           f"specified platform: wanted {wanted}, actual: {image_platform}")
    else:
        host = _host_maximum_spec()
        if not _platform_matches(platforms.Platform(host.os, host.architecture),
                                 image_platform):
            warnings.append(f"The requested image's platform ({image_platform}) does not match "
                            f"the detected host platform ({host}) and no specific platform "
                            "was requested")
    if hc.get("StorageOpt"):
        raise Unsupported(STORAGE_OPT_UNSUPPORTED)
    return warnings


# -- validation of a create or update request -------------------------------------------------
# dockerd's checks of a (typed: pybox.api.schema) Config and HostConfig before
# anything is made: runconfig's decodeContainerConfig, the create route, and
# daemon.verifyContainerSettings / verifyPlatformContainerSettings / the log
# and security option checks, with docker's messages.  A value that the runtime
# would refuse at start, or that would reach a cgroup file, a mount or a signal
# unchecked, is refused here: a 400 with nothing left behind.

MIN_MEMORY = 6 * 1024 * 1024  # linuxMinMemory
MIN_DURATION = 1_000_000  # container.MinimumDuration: 1 ms
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


# -- memory and swap: docker's rules, here only ----------------------------------

SWAP_BELOW_MEMORY = "Minimum memoryswap limit should be larger than memory limit, see usage"
SWAP_WITHOUT_MEMORY = ("You should always set the Memory limit when using Memoryswap limit, "
                       "see usage")
SWAP_BELOW_NEW_MEMORY = ("Memory limit should be smaller than already set memoryswap limit, "
                         "update the memoryswap at the same time")


def memory_swap_problem(memory: int, swap: int) -> str | None:
    """docker's rule for a Memory and MemorySwap pair (MemorySwap is memory plus
    swap; -1 unlimited, 0 unset): dockerd's words for what is wrong, or None."""
    if memory > 0 and 0 < swap < memory:
        return SWAP_BELOW_MEMORY
    if memory == 0 and swap > 0:
        return SWAP_WITHOUT_MEMORY
    return None


def memory_swap(hc: dict[str, Any]) -> int:
    """The memory+swap limit a HostConfig gives: MemorySwap, or when it is unset
    with a memory limit, twice the memory (dockerd's adaptContainerSettings:
    "as much swap as memory")."""
    memory = hc.get("Memory") or 0
    swap = hc.get("MemorySwap") or 0
    return memory * 2 if memory > 0 and not swap else swap


def adapt_host_config(hc: dict[str, Any]) -> None:
    """dockerd's adaptContainerSettings at create: the implicit swap limit is
    recorded, so inspect shows it and a later `update -m` past it is refused as
    docker refuses it."""
    if (hc.get("Memory") or 0) > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = memory_swap(hc)


def validate_update(hc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """An update's ``changes`` over the container's HostConfig ``hc``: dockerd's
    UpdateContainer check (a new memory limit above the swap limit already set),
    then its resource checks on the result, which is returned (``hc`` is left
    as it is)."""
    memory = changes.get("Memory") or 0
    if memory and not changes.get("MemorySwap") and 0 < (hc.get("MemorySwap") or 0) < memory:
        raise _bad(SWAP_BELOW_NEW_MEMORY)
    merged = dict(hc)
    merged.update(changes)
    validate_resources(merged, update=True)
    return merged


def _bad(message: str) -> Exception:
    return BadRequest(message)


def go_atoi(text: str) -> int | None:
    """strconv.Atoi's grammar (optional sign, ASCII digits), or None."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def parse_uint_list(text: str, maximum: int = 0) -> set[int]:
    """moby's parsers.ParseUintList ("0-2,4"); ValueError with its words."""
    if text == "":
        return set()
    out: set[int] = set()
    for part in text.split(","):
        if "-" not in part:
            lo = hi = go_atoi(part)
        else:
            a, _, b = part.partition("-")
            lo, hi = go_atoi(a), go_atoi(b)
        if lo is None or hi is None or hi < lo:
            raise ValueError(f"invalid format: {text}")
        if maximum and hi > maximum:
            raise ValueError(f"value of out range, maximum is {maximum}")
        if hi - lo > 1 << 16:
            raise ValueError(f"value of out range, maximum is {maximum or hi}")
        out.update(range(lo, hi + 1))
    return out


def _read_first(*paths: str) -> str | None:
    for path in paths:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            continue
    return None


def available_cpus() -> str:
    return _read_first("/sys/fs/cgroup/cpuset.cpus.effective",
                       "/sys/fs/cgroup/cpuset/cpuset.effective_cpus",
                       "/sys/fs/cgroup/cpuset/cpuset.cpus",
                       "/sys/devices/system/cpu/online") or "0"


def available_mems() -> str:
    return _read_first("/sys/fs/cgroup/cpuset.mems.effective",
                       "/sys/fs/cgroup/cpuset/cpuset.effective_mems",
                       "/sys/fs/cgroup/cpuset/cpuset.mems",
                       "/sys/devices/system/node/online") or "0"


def _check_cpuset(requested: str, available: str, what: str, label: str) -> None:
    """sysinfo.IsCpusetCpusAvailable / IsCpusetMemsAvailable."""
    if not requested:
        return
    try:
        have = parse_uint_list(available)
    except ValueError:
        have = set()
    try:
        want = parse_uint_list(requested, max([8192, *have]))
    except ValueError as e:
        raise _bad(f"Invalid value {requested} for cpuset {what}: {e}") from None
    if not want <= have:
        raise _bad(f"Requested {label} are not available - requested {requested}, "
                   f"available: {available}")


def cpu_realtime_supported() -> bool:
    """cgroup v1's cpu.rt_period_us (v2 has no real-time group scheduling)."""
    return any(os.path.exists(f"/sys/fs/cgroup/{d}/cpu.rt_period_us")
               for d in ("cpu", "cpu,cpuacct", "cpuacct,cpu"))


def validate_resources(hc: dict[str, Any], update: bool = False) -> None:
    """verifyPlatformContainerResources and runconfig's validateResources and
    validateQoS, for create and update (``update``: Memory may be left as it
    was when only MemorySwap is given).  Normalizes as dockerd does:
    MemorySwappiness -1 means unset, PidsLimit 0 or below means unlimited."""
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None
    if hc.get("PidsLimit") is not None and hc["PidsLimit"] <= 0 and not update:
        hc["PidsLimit"] = None
    if hc.get("IOMaximumBandwidth"):
        raise _bad("invalid option: QoS maximum bandwidth configuration is not supported on "
                   "linux")
    if hc.get("IOMaximumIOps"):
        raise _bad("invalid option: QoS maximum IOPs configuration is not supported on linux")
    rt_period, rt_runtime = hc.get("CpuRealtimePeriod") or 0, hc.get("CpuRealtimeRuntime") or 0
    if (rt_period or rt_runtime) and not cpu_realtime_supported():
        raise _bad("kernel does not support CPU real-time scheduler")
    if rt_period and rt_runtime and rt_runtime > rt_period:
        raise _bad("cpu real-time runtime cannot be higher than cpu real-time period")
    shares = hc.get("CpuShares") or 0
    if shares < 0:
        raise _bad(f"invalid CPU shares ({shares}): value must be a positive integer")
    memory = hc.get("Memory") or 0
    if memory and memory < MIN_MEMORY:
        raise _bad("Minimum memory limit allowed is 6MB")
    problem = memory_swap_problem(memory, hc.get("MemorySwap") or 0)
    # dockerd lets an update give MemorySwap alone (its Memory 0 means "as it was")
    if problem and not (update and problem == SWAP_WITHOUT_MEMORY):
        raise _bad(problem)
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise _bad(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    reservation = hc.get("MemoryReservation") or 0
    if reservation > 0 and reservation < MIN_MEMORY:
        raise _bad("Minimum memory reservation allowed is 6MB")
    if memory > 0 and 0 < reservation and memory < reservation:
        raise _bad("Minimum memory limit can not be less than memory reservation limit, see "
                   "usage")
    if reservation < 0:
        raise _bad("Minimum memory reservation allowed is 6MB")
    nano = hc.get("NanoCpus") or 0
    if nano > 0 and (hc.get("CpuPeriod") or 0) > 0:
        raise _bad("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and (hc.get("CpuQuota") or 0) > 0:
        raise _bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano and not 0 < nano <= ncpu * 1_000_000_000:
        raise _bad(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs "
                   "available")
    period = hc.get("CpuPeriod") or 0
    if period and not 1000 <= period <= 1000000:
        raise _bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                   "(i.e. 1000000)")
    quota = hc.get("CpuQuota") or 0
    if 0 < quota < 1000:
        raise _bad("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    _check_cpuset(hc.get("CpusetCpus") or "", available_cpus(), "cpus", "CPUs")
    _check_cpuset(hc.get("CpusetMems") or "", available_mems(), "mems", "memory nodes")
    weight = hc.get("BlkioWeight") or 0
    if weight and not 10 <= weight <= 1000:
        raise _bad("Range of blkio weight is from 10 to 1000")
    for d in hc.get("BlkioWeightDevice") or ():
        w = (d or {}).get("Weight") or 0
        if w and not 10 <= w <= 1000:
            raise _bad(f"invalid weight for device: {w}")
    for key in ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"):
        for d in hc.get(key) or ():
            path = (d or {}).get("Path") or ""
            if "\x00" in path or not os.path.exists(path):
                raise _bad(f"error evaluating symlinks from device path {path}: no such file "
                           "or directory")


def _check_mode(value: str, what: str, allowed: tuple[str, ...], container: bool) -> None:
    if value in allowed:
        return
    if container and value.startswith("container:") and value[len("container:"):]:
        return
    raise _bad(f"invalid {what}: {value}")


def _abs_clean(path: str) -> str:
    cleaned = os.path.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _check_mount(m: dict, engine_paths: bool) -> None:
    """volumemounts' ValidateMountConfig for one HostConfig.Mounts entry."""
    kind = m.get("Type") or ""

    def fail(problem: str) -> Exception:
        return _bad(f'invalid mount config for type "{kind}": {problem}')

    for opt, ok in (("VolumeOptions", "volume"), ("BindOptions", "bind"),
                    ("TmpfsOptions", "tmpfs")):
        if m.get(opt) is not None and kind != ok:
            raise _bad(f'{opt} must not be specified on mount type "{kind}"')
    target = m.get("Target") or ""
    if not target:
        raise fail("field Target must not be empty")
    if _abs_clean(target) == "/":
        raise fail("invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise fail(f"invalid mount path: '{target}' mount path must be absolute")
    source = m.get("Source") or ""
    if "\x00" in target or "\x00" in source:
        raise fail("invalid argument")
    if kind == "bind":
        if not source:
            raise fail("field Source must not be empty")
        prop = (m.get("BindOptions") or {}).get("Propagation") or ""
        if prop and prop not in PROPAGATIONS:
            raise fail(f"invalid propagation mode: {prop}")
        if m.get("ImageOptions") is not None:
            raise fail("field ImageOptions must not be specified")
        if not source.startswith("/"):
            raise fail(f"invalid mount path: '{source}' mount path must be absolute")
        if engine_paths and not os.path.exists(source) and \
                not (m.get("BindOptions") or {}).get("CreateMountpoint"):
            raise fail(f"bind source path does not exist: {source}")
    elif kind == "volume":
        if m.get("ImageOptions") is not None:
            raise fail("field ImageOptions must not be specified")
        subpath = (m.get("VolumeOptions") or {}).get("Subpath") or ""
        if subpath and not source:
            raise fail("must not set Subpath when using anonymous volumes")
        if subpath and (subpath.startswith("/") or ".." in subpath.split("/")):
            raise fail("subpath must be a relative path within the volume")
        if m.get("ReadOnly") and not source:
            raise fail("must not set ReadOnly mode when using anonymous volumes")
    elif kind == "tmpfs":
        if m.get("ImageOptions") is not None:
            raise fail("field ImageOptions must not be specified")
        if source:
            raise fail("field Source must not be specified")
        opts = m.get("TmpfsOptions") or {}
        if (opts.get("SizeBytes") or 0) < 0:
            raise fail(f"invalid tmpfs size: {opts['SizeBytes']}")
        if (opts.get("Mode") or 0) > 0o7777:
            raise fail(f"invalid tmpfs mode: {opts['Mode']:o}")
    elif kind == "image":
        raise fail("image mounts are not supported by pybox")
    else:
        raise fail("mount type unknown")


def parse_signal_name(text: str) -> int:
    """moby/sys/signal.ParseSignal: a non-zero number, or a name with or
    without SIG; ValueError("invalid signal: X") otherwise."""
    number = go_atoi(text)
    if number is not None:
        if number == 0:
            raise ValueError(f"invalid signal: {text}")
        return number
    name = text.upper()
    if not name or not name.isascii() or name.strip() != name or name.isdigit():
        raise ValueError(f"invalid signal: {text}")
    try:
        return parse_signal(name)
    except UsageError:
        raise ValueError(f"invalid signal: {text}") from None


def validate_restart_policy(policy: dict[str, Any]) -> None:
    """container.ValidateRestartPolicy (an empty name is taken as before docker
    25: no policy, any retry count)."""
    name, retries = policy.get("Name") or "", policy.get("MaximumRetryCount") or 0
    if name == "":
        return
    if name not in RESTART_POLICIES:
        raise _bad(f"invalid restart policy: unknown policy '{name}'; use one of 'no', "
                   "'always', 'on-failure', or 'unless-stopped'")
    if name != "on-failure" and retries:
        raise _bad("invalid restart policy: maximum retry count can only be used with "
                   "'on-failure'" + (" and cannot be negative" if retries < 0 else ""))
    if retries < 0:
        raise _bad("invalid restart policy: maximum retry count cannot be negative")


_NUL_CONFIG = ("Hostname", "Domainname", "User", "WorkingDir", "Cmd", "Entrypoint", "Env",
               "Volumes", "Shell", "Image", "StopSignal")
_NUL_HOST = ("Binds", "Tmpfs", "ExtraHosts", "Dns", "DnsSearch", "DnsOptions", "Sysctls",
             "SecurityOpt", "GroupAdd", "VolumesFrom", "Links", "CgroupParent", "MaskedPaths",
             "ReadonlyPaths", "DeviceCgroupRules")


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def validate_create(config: dict[str, Any], hc: dict[str, Any], *,
                    remapped: bool = False) -> list[str]:
    """Every dockerd check of a create request, in dockerd's order; normalizes
    ``config`` and ``hc`` in place as dockerd does (NetworkMode "" is
    "default", RestartPolicy "" is "no", WorkingDir cleaned, unset limits
    dropped).  Raises BadRequest with docker's message; -> warnings."""
    warnings: list[str] = []
    # strings that become paths, argv, the environment or kernel names: a NUL
    # byte is a client's mistake the kernel would refuse half way through a start
    for obj, keys in ((config, _NUL_CONFIG), (hc, _NUL_HOST)):
        for key in keys:
            if _has_nul(obj.get(key)):
                raise _bad(f"invalid {key}: a NUL byte is not allowed")
    # runconfig.decodeContainerConfig
    if not hc.get("NetworkMode"):
        hc["NetworkMode"] = "default"
    mode = hc["NetworkMode"]
    if mode == "container" or mode.startswith("container:"):
        if not mode[len("container:"):]:
            raise _bad("invalid network mode: invalid container format container:<name|id>")
        for present, message in (
                (config.get("Hostname"), "conflicting options: hostname and the network mode"),
                (hc.get("Links"), "conflicting options: container type network can't be used "
                                  "with links. This would result in undefined behavior"),
                (hc.get("Dns"), "conflicting options: dns and the network mode"),
                (hc.get("ExtraHosts"), "conflicting options: custom host-to-IP mapping and the "
                                       "network mode"),
                (hc.get("PortBindings") or hc.get("PublishAllPorts"),
                 "conflicting options: port publishing and the container type network mode"),
                (config.get("ExposedPorts"), "conflicting options: port exposing and the "
                                             "container type network mode")):
            if present:
                raise _bad(message)
    if hc.get("UTSMode") == "host" and config.get("Hostname"):
        raise _bad("conflicting options: hostname and the UTS mode")
    if mode == "host" and hc.get("Links"):
        raise _bad("conflicting options: host type networking can't be used with links. This "
                   "would result in undefined behavior")
    isolation = hc.get("Isolation") or ""
    if isolation.lower() not in ("", "default"):
        raise _bad(f"invalid isolation ({isolation}): linux only supports 'default'")
    # the create route
    for m in hc.get("Mounts") or ():
        kind = m.get("Type") or ""
        for opt, ok in (("VolumeOptions", "volume"), ("BindOptions", "bind"),
                        ("TmpfsOptions", "tmpfs")):
            if m.get(opt) is not None and kind != ok:
                raise _bad(f'{opt} must not be specified on mount type "{kind}"')
    policy = hc.setdefault("RestartPolicy", {})
    if not policy.get("Name"):
        policy["Name"] = "no"
    policy.setdefault("MaximumRetryCount", 0)
    # validateContainerConfig
    workdir = config.get("WorkingDir") or ""
    if workdir:
        if not workdir.startswith("/"):
            raise _bad(f"the working directory '{workdir}' is invalid, it needs to be an "
                       "absolute path")
        config["WorkingDir"] = _abs_clean(workdir)
    if config.get("StopSignal"):
        try:
            parse_signal_name(config["StopSignal"])
        except ValueError as e:
            raise _bad(str(e)) from None
    for entry in config.get("Env") or ():
        if not entry.partition("=")[0]:
            raise _bad(f"invalid environment variable: {entry}")
    check = config.get("Healthcheck") or {}
    for key in ("Interval", "Timeout", "Retries", "StartPeriod", "StartInterval"):
        value = check.get(key) or 0
        if key == "Retries" and value < 0:
            raise _bad("Retries in Healthcheck cannot be negative")
        if key != "Retries" and value and value < MIN_DURATION:
            raise _bad(f"{key} in Healthcheck cannot be less than 1ms")
    # validateHostConfig
    if hc.get("AutoRemove") and policy["Name"] != "no":
        raise _bad("can't create 'AutoRemove' container with restart policy")
    for m in hc.get("Mounts") or ():
        _check_mount(m, engine_paths=True)
    for entry in hc.get("ExtraHosts") or ():
        name, sep, ip = entry.partition(":")
        if not sep or not name:
            raise _bad(f'bad format for add-host: "{entry}"')
    etc.validate_extra_hosts(hc.get("ExtraHosts"))
    # values written into the container's /etc/hostname, /etc/hosts and
    # /etc/resolv.conf: a newline would add lines of the client's choosing (a
    # nameserver, a hosts entry).  opts.ValidateDNSSearch and the CLI's
    # ValidateIPAddress where docker has them, else a 400 naming the field
    for domain in hc.get("DnsSearch") or ():
        d = domain.strip(" ")
        m = re.match(r"(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))(:?\.(:?"
                     r"[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?[\t\n\f\r ]*\Z",
                     d)
        if d != "." and not (re.search("[a-zA-Z]", d) and m and len(m.group(1)) < 255):
            raise _bad(f"{domain} is not a valid domain")
    for server in hc.get("Dns") or ():
        if re.search(r"[\x00-\x20\x7f]", server):
            raise _bad(f"IP address is not correctly formatted: {server}")
    for obj, text_keys in ((config, ("Hostname", "Domainname")),
                           (hc, ("DnsSearch", "DnsOptions", "ExtraHosts"))):
        for key in text_keys:
            values = obj.get(key) or ()
            for value in [values] if isinstance(values, str) else values:
                if re.search(r"[\x00-\x1f\x7f]", value):
                    raise _bad(f"invalid {key} {json.dumps(value)}: control characters "
                               "(a newline...) are not allowed")
    for key, bindings in (hc.get("PortBindings") or {}).items():
        try:
            parse_port_key(key)
        except Exception:  # noqa: BLE001 - any refusal is docker's one message
            raise _bad(f'invalid port specification: "{key.partition("/")[0]}"') from None
        for b in bindings or ():
            try:
                host_port_range((b or {}).get("HostPort"))
            except Exception:  # noqa: BLE001
                raise _bad(f'invalid port specification: "{(b or {}).get("HostPort")}"') \
                    from None
            host_ip((b or {}).get("HostIp"))  # BadRequest: invalid IP address
    validate_restart_policy(policy)
    for field in ("CapAdd", "CapDrop"):
        try:
            security.normalize_capabilities(hc.get(field) or ())
        except ValueError as e:
            raise _bad(f"invalid {field}: {e}") from None
    if "" in (hc.get("Annotations") or {}):
        raise _bad("invalid Annotations: the empty string is not permitted as an annotation "
                   "key")
    # verifyPlatformContainerSettings
    validate_resources(hc)
    _check_mode(hc.get("IpcMode") or "", "IPC mode",
                ("", "none", "private", "host", "shareable"), container=True)
    _check_mode(hc.get("PidMode") or "", "PID mode", ("", "host"), container=True)
    if (hc.get("ShmSize") or 0) < 0:
        raise _bad("SHM size can not be less than 0")
    _check_mode(hc.get("UTSMode") or "", "UTS mode", ("", "host"), container=False)
    score = hc.get("OomScoreAdj") or 0
    if not -1000 <= score <= 1000:
        raise _bad(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
    if remapped and hc.get("UsernsMode") != "host":
        if hc.get("Privileged"):
            raise _bad("privileged mode is incompatible with user namespaces.  You must run "
                       "the container in the host namespace when running privileged mode")
        if mode == "host":
            raise _bad("cannot share the host's network namespace when user namespaces are "
                       "enabled")
        if hc.get("PidMode") == "host":
            raise _bad("cannot share the host PID namespace when user namespaces are enabled")
    runtime = hc.get("Runtime") or ""
    if runtime not in ("", "pybox", "runc"):
        raise _bad(f"unknown or invalid runtime name: {runtime}")
    for dest in hc.get("Tmpfs") or {}:
        if _abs_clean(dest or ".") == "/":
            raise _bad("invalid specification: destination can't be '/'")
        if not dest.startswith("/") or "\x00" in dest:
            raise _bad(f"invalid mount path: '{dest}' mount path must be absolute")
    _check_mode(hc.get("CgroupnsMode") or "", "cgroup namespace mode", ("", "private", "host"),
                container=False)
    # the rest of create: log driver and options, security options, ulimits,
    # host paths the engine opens at create
    log = hc.get("LogConfig") or {}
    logs.validate_log_opts(log.get("Type") or "json-file", dict(log.get("Config") or {}))
    security.check_security_options(hc)
    for u in hc.get("Ulimits") or ():
        u = u or {}
        if u.get("Name") not in ULIMITS:
            raise _bad(f"invalid ulimit type: {u.get('Name')}")
        if (u.get("Soft") or 0) > (u.get("Hard") or 0):
            raise _bad("ulimit soft limit must be less than or equal to hard limit: "
                       f"{u.get('Soft') or 0} > {u.get('Hard') or 0}")
    for d in hc.get("Devices") or ():
        for key in ("PathOnHost", "PathInContainer"):
            if "\x00" in ((d or {}).get(key) or ""):
                raise _bad(f"invalid device path: {d[key]!r}")
    for text in hc.get("DeviceCgroupRules") or ():
        security.parse_cgroup_rule(text)
    for dest in config.get("Volumes") or {}:
        if _abs_clean(dest or ".") == "/":
            raise _bad("invalid volume: path can't be '/'")
    return warnings
