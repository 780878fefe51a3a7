"""Docker's container configuration -> an OCI runtime-spec config.json.

This is the one place where docker's vocabulary (Config, HostConfig, image
config) becomes the runtime's (process, mounts, linux.resources...).  Every
HostConfig flag maps to exactly one spec field here; nothing downstream parses
docker's names again.  Defaults are docker's: its 14 capabilities, its masked
and read-only /proc paths, its /dev/shm size, its cgroup parent.
"""

import os

from pybox.errors import PyboxError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
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


class SpecError(PyboxError):
    """A container configuration that cannot be turned into a runtime spec."""

# every container's cgroup sits below this one, in each hierarchy (docker's /docker)
CGROUP_PARENT = "/pybox"


def command_line(config):
    """Entrypoint + Cmd, as docker combines them (image defaults already merged)."""
    entry = list(config.get("Entrypoint") or [])
    cmd = list(config.get("Cmd") or [])
    args = entry + cmd
    if args[:1] == [""]:
        args = args[1:]
    if not args:
        raise SpecError("No command specified", errno=22)
    return args


def merge_image_config(config, image_config):
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
    env = {}
    order = []
    for entry in list(img.get("Env") or []) + list(config.get("Env") or []):
        key = entry.split("=", 1)[0]
        if key not in env:
            order.append(key)
        env[key] = entry
    out["Env"] = [env[k] for k in order]
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


def _resolve_user(rootfs, user):
    """docker's user spec (name|uid[:group|gid]) -> (uid, gid, extra gids), looked
    up in the container's own /etc/passwd and /etc/group."""
    name, _, group = (user or "").partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    uid = gid = 0
    username = None
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
    extra = []
    if username:
        for entry in groups:
            members = entry[3].split(",") if len(entry) > 3 and entry[3] else []
            if username in members and int(entry[2]) != gid:
                extra.append(int(entry[2]))
    return uid, gid, extra


def _read_db(rootfs, path):
    from pybox.runtime.rootfs import secure_join

    try:
        with open(secure_join(rootfs, path)) as f:
            return [line.rstrip("\n").split(":") for line in f
                    if line.strip() and not line.startswith("#") and line.count(":") >= 2]
    except OSError:
        return []


def _device_numbers(path):
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise SpecError(f"{path}: {e.strerror}", errno=e.errno) from None
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise SpecError(f"{path} is not a device", errno=22)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def resources(hc):
    """HostConfig resource fields -> linux.resources."""
    res = {}
    mem = {}
    memory = hc.get("Memory") or 0
    if memory:
        mem["limit"] = memory
        swap = hc.get("MemorySwap") or 0
        # docker: unset swap with a memory limit means "as much swap as memory"
        mem["swap"] = swap if swap else memory * 2
    elif hc.get("MemorySwap") and hc["MemorySwap"] > 0:
        raise SpecError("You should always set the Memory limit when using Memoryswap limit, "
                        "see usage", errno=22)
    if hc.get("MemoryReservation"):
        mem["reservation"] = hc["MemoryReservation"]
    if hc.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    sw = hc.get("MemorySwappiness")
    if sw is not None and sw >= 0:
        mem["swappiness"] = sw
    if mem:
        res["memory"] = mem
    cpu = {}
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
    blk = {}
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


def default_mounts(hc):
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
    cpus = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            cpus.extend(range(int(first), int(last or first) + 1))
        except ValueError:
            continue
    return cpus


def _user_destinations(container: dict) -> set[str]:
    """Destinations of the user's own mounts (volumes, binds, --tmpfs): docker's
    --read-only leaves them as asked."""
    from pybox.runtime.rootfs import clean_path

    hc = container["HostConfig"]
    dests = {m.get("Destination") for m in container.get("Mounts") or ()}
    dests |= set(hc.get("Tmpfs") or {})
    return {clean_path(d) for d in dests if isinstance(d, str) and d}


def harden_mounts(mounts: list[dict], container: dict, *, writable_cgroups: bool) -> None:
    """docker's mount rules on the finished list, in moby's order: --read-only
    makes every mount but the user's and READ_ONLY_ROOT_KEEPS read-only (so
    /etc/hosts, /etc/hostname, /etc/resolv.conf too); --privileged makes /sys
    writable; the cgroup mount is writable with --privileged or
    --security-opt writable-cgroups=true, else "rro": read-only all the way
    down -- on cgroup v1 the tmpfs holding the hierarchies as well, which runc
    (1.0 and later) leaves writable under docker's plain "ro"."""
    from pybox.runtime.rootfs import clean_path

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


def build(container, rootfs, *, cgroup_v2=False, extra_mounts=(), netns=None,
          namespace_of=None, init_path=None, idmap=None, shm_source=None):
    """The config.json dict for ``container`` (a docker container record) whose
    root filesystem is mounted at ``rootfs``.  ``namespace_of(ref, kind)`` gives
    the /proc/PID/ns path of another container's namespace (for
    --ipc/--pid/--network container:ID); ``init_path`` is the tini-static binary
    for --init; ``shm_source`` a host directory bound as /dev/shm instead of a
    tmpfs of its own (--ipc shareable, container:ID, host)."""
    from pybox.engine import security
    from pybox import OCI_VERSION

    config = container["Config"]
    hc = container["HostConfig"]
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
    rlimits = []
    for u in hc.get("Ulimits") or ():
        name = ULIMITS.get(u["Name"])
        if name is None:
            raise SpecError(f"invalid ulimit type: {u['Name']}", errno=22)
        rlimits.append({"type": name, "soft": u["Soft"], "hard": u["Hard"]})
    process = {
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

    namespaces = [{"type": "mount"}]

    def mode_ns(kind, mode, field):
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
            "cgroupsPath": f"{CGROUP_PARENT}/{container['Id']}",
            "namespaces": namespaces,
            "maskedPaths": [] if hc.get("Privileged") else masked_paths(),
            "readonlyPaths": [] if hc.get("Privileged") else list(READONLY_PATHS),
        },
        "annotations": {"org.pybox.container.name": container["Name"].lstrip("/")},
    }
    if idmap:
        spec["linux"]["uidMappings"] = [{"containerID": c, "hostID": h, "size": n}
                                        for c, h, n in idmap["uid"]]
        spec["linux"]["gidMappings"] = [{"containerID": c, "hostID": h, "size": n}
                                        for c, h, n in idmap["gid"]]
    if dev_list:
        spec["linux"]["devices"] = dev_list
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

