"""docker's security defaults and options, as runtime-spec fields.

- capabilities: docker's 14 defaults, --cap-add / --cap-drop (names with or
  without CAP_, and ALL), --privileged (every capability);
- the default seccomp profile: like docker's, a default action of ERRNO(EPERM)
  and an allow list -- here, every system call this libseccomp knows minus the
  ones that reach beyond a container (module loading, kexec, mount and namespace
  syscalls, kcmp, keyrings, clock setting, ...), some of them allowed back when
  the container holds the capability that makes them safe (CAP_SYS_ADMIN for
  mount/unshare/setns, CAP_SYS_PTRACE for kcmp, ...), and clone/clone3/unshare
  refused namespace flags unless CAP_SYS_ADMIN.  System calls newer than this
  libseccomp are refused, as with docker.
- --security-opt seccomp=unconfined|<profile JSON>, no-new-privileges;
- --device and --device-cgroup-rule; --privileged's host devices.
"""

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NotRequired, TypedDict

from pybox.errors import BadRequest
from pybox.formats import fastjson
from pybox.linux.caps import CAPABILITY_NAMES, is_known, last_cap


class SeccompArg(TypedDict):
    """A runtime-spec seccomp rule's argument condition."""

    index: int
    value: int
    valueTwo: NotRequired[int]
    op: str


class SeccompRule(TypedDict):
    """An entry of linux.seccomp.syscalls."""

    names: list[str]
    action: str
    args: NotRequired[list[SeccompArg]]
    errnoRet: NotRequired[int]


class Seccomp(TypedDict):
    """linux.seccomp of the runtime spec, as pybox writes it."""

    defaultAction: str
    defaultErrnoRet: NotRequired[int]
    architectures: NotRequired[list[str]]
    flags: NotRequired[list[str]]
    syscalls: NotRequired[list[SeccompRule]]


class Device(TypedDict):
    """An entry of linux.devices: a device node made in the container."""

    type: str
    path: str
    major: int
    minor: int
    fileMode: int
    uid: int
    gid: int


class DeviceRule(TypedDict):
    """An entry of linux.resources.devices: the device cgroup's allow list."""

    allow: bool
    type: NotRequired[str]
    major: NotRequired[int]
    minor: NotRequired[int]
    access: str


# docker's default capabilities (moby's oci/caps/defaults.go)
DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

DENIED = {
    # kernel modules and boot
    "create_module", "delete_module", "finit_module", "init_module", "query_module",
    "get_kernel_syms", "kexec_file_load", "kexec_load", "reboot",
    # accounting, quotas, swap, obsolete or dangerous interfaces
    "acct", "quotactl", "quotactl_fd", "swapon", "swapoff", "sysfs", "_sysctl", "uselib",
    "ustat", "nfsservctl", "lookup_dcookie", "vm86", "vm86old", "iopl", "ioperm",
    # setting the time (adjtimex and clock_adjtime stay allowed, as in docker's
    # profile: the kernel itself wants CAP_SYS_TIME for a change, and reading is
    # how ntp clients and chrony's -Q check the clock)
    "clock_settime", "settimeofday", "stime",
    # keyrings (not namespaced)
    "add_key", "keyctl", "request_key",
    # tracing beyond ptrace (ptrace and process_vm_readv/writev stay allowed, as
    # docker's profile allows them on kernels >= 4.8, where seccomp can no longer
    # be bypassed through ptrace: strace and gdb work in a default container, and
    # the kernel's own ptrace checks still keep a process to its own kind)
    "kcmp", "perf_event_open",
    "userfaultfd", "bpf",
    # NUMA policy of the host
    "get_mempolicy", "set_mempolicy", "mbind", "move_pages", "set_mempolicy_home_node",
    # mounts and namespaces
    "mount", "umount", "umount2", "pivot_root", "unshare", "setns", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "open_by_handle_at", "chroot", "syslog",
    "fanotify_init", "vhangup", "pidfd_getfd", "lsm_set_self_attr",
    # the rest of what docker 28's default profile refuses (moby/profiles): io_uring
    # (since docker 25), memory of other processes, host and domain names, LSM
    # attributes, the 6.15 open_tree_attr, and names Linux never implemented
    "io_uring_setup", "io_uring_enter", "io_uring_register", "migrate_pages",
    "process_madvise", "sethostname", "setdomainname", "lsm_get_self_attr",
    "lsm_list_modules", "open_tree_attr", "afs_syscall", "getpmsg", "putpmsg", "security",
    "tuxcall", "vserver",
    # 32-bit x86 leftovers docker's profile does not list either
    "bdflush", "break", "ftime", "gtty", "idle", "lock", "mpx", "nice", "oldfstat",
    "oldlstat", "oldolduname", "oldstat", "olduname", "prof", "profil", "readdir",
    "sgetmask", "sigaction", "signal", "sigpending", "sigsuspend", "ssetmask", "stty",
    "ulimit", "clock_settime64",
    # allowed with docker's argument conditions only (ARGUMENT_RULES)
    "personality", "socket",
}
# allowed back when the container has this capability
CAPABILITY_GRANTS = {
    # docker's CAP_SYS_ADMIN list (pivot_root stays refused, as there)
    "CAP_SYS_ADMIN": {"mount", "umount", "umount2", "unshare", "setns",
                      "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
                      "mount_setattr", "quotactl", "quotactl_fd",
                      "lookup_dcookie", "perf_event_open", "bpf", "fanotify_init",
                      "syslog", "setdomainname", "sethostname", "lsm_get_self_attr",
                      "lsm_list_modules", "lsm_set_self_attr"},
    "CAP_SYS_TTY_CONFIG": {"vhangup"},
    "CAP_SYS_BOOT": {"reboot"},
    "CAP_SYS_CHROOT": {"chroot"},
    "CAP_SYS_MODULE": {"delete_module", "init_module", "finit_module"},
    "CAP_SYS_PACCT": {"acct"},
    "CAP_SYS_PTRACE": {"kcmp", "pidfd_getfd", "process_madvise"},
    "CAP_SYS_RAWIO": {"iopl", "ioperm"},
    "CAP_SYS_TIME": {"clock_settime", "settimeofday", "stime", "clock_settime64"},
    "CAP_SYS_NICE": {"get_mempolicy", "set_mempolicy", "mbind", "set_mempolicy_home_node"},
    "CAP_SYSLOG": {"syslog"},
    "CAP_DAC_READ_SEARCH": {"open_by_handle_at"},
    "CAP_BPF": {"bpf"},
    "CAP_PERFMON": {"perf_event_open"},
}
CLONE_NAMESPACE_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
AF_VSOCK = 40
# docker's conditional rules: personality only to query or to set what 32-bit and
# uname26 programs use (not ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...); socket for
# every address family but AF_VSOCK (a channel to the hypervisor)
ARGUMENT_RULES: list[SeccompRule] = [
    *(SeccompRule(names=["personality"], action="SCMP_ACT_ALLOW",
                  args=[SeccompArg(index=0, value=value, op="SCMP_CMP_EQ")])
      for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)),
    {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]},
]
# 32-bit programs run under these too; their syscall names join the profile
COMPAT_ARCHES = {"x86_64": ("X86",), "aarch64": ("ARM",)}

_known: list[str] | None = None


def known_syscalls() -> list[str]:
    """Every system call name libseccomp knows for this machine, its own and
    those of the 32-bit programs it runs (mmap2, socketcall, stat64...: without
    them an i386 binary fails where docker runs it)."""
    global _known
    if _known is None:
        import seccomp  # noqa: PLC0415 -- an optional dependency, for the default profile only

        arches = [seccomp.Arch.NATIVE] + [getattr(seccomp.Arch, a) for a in
                                          COMPAT_ARCHES.get(os.uname().machine, ())
                                          if hasattr(seccomp.Arch, a)]
        names: list[str] = []
        for arch in arches:
            for nr in range(0, 1024):
                try:
                    names.append(seccomp.resolve_syscall(arch, nr).decode())
                except (ValueError, RuntimeError, OSError):
                    continue
        _known = sorted(set(names))
    return _known


def default_seccomp_profile(capabilities: Iterable[str]) -> Seccomp:
    """docker's default profile's behaviour for a container holding
    ``capabilities`` (the bounding set it will run with)."""
    caps = set(capabilities)
    denied = set(DENIED)
    for cap, names in CAPABILITY_GRANTS.items():
        if cap in caps:
            denied -= names
    allowed = [n for n in known_syscalls() if n not in denied and n not in ("clone", "clone3")]
    syscalls: list[SeccompRule] = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    syscalls += [{**rule, "args": [arg.copy() for arg in rule["args"]]} for rule in ARGUMENT_RULES]
    if "CAP_SYS_ADMIN" in caps:
        syscalls.append({"names": ["clone", "clone3"], "action": "SCMP_ACT_ALLOW"})
    else:
        # clone without namespace flags only; clone3 hides its flags in memory,
        # so it answers ENOSYS and libc falls back to clone (docker does the same)
        syscalls.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS,
                                   "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    arches = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
              "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}.get(os.uname().machine, [])
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": arches,
            "syscalls": syscalls}


def capability_set(hc: Mapping[str, Any]) -> list[str]:
    """The bounding (= effective = permitted) set for a container."""
    # "all" is what pyboxd itself may grant: its bounding set (podman's rule; a
    # sandbox's root may lack some, e.g. CAP_SYS_RESOURCE, and asking for more
    # would only make the start fail)
    bounding = _own_bounding_set()
    everything = [c for i, c in enumerate(CAPABILITY_NAMES[:last_cap() + 1])
                  if bounding >> i & 1]
    if hc.get("Privileged"):
        return everything

    try:
        add = normalize_capabilities(hc.get("CapAdd") or ())
        drop = normalize_capabilities(hc.get("CapDrop") or ())
    except ValueError as e:
        raise BadRequest(str(e)) from None
    caps = list(everything) if "ALL" in add else list(DOCKER_DEFAULT_CAPS)
    if "ALL" in drop:
        caps = []
    caps = [c for c in caps if c not in drop]
    for c in add:
        if c != "ALL" and c not in caps:
            caps.append(c)
    return [c for c in caps if c in everything]


def normalize_capabilities(names: Iterable[object]) -> list[str]:
    """moby's NormalizeLegacyCapabilities: upper-cased, CAP_ added where
    missing, "ALL" kept; ValueError with docker's words for an unknown one
    (create refuses it as "invalid CapAdd: ...")."""
    out = []
    for name in names:
        n = str(name).upper()
        if n != "ALL":
            n = n if n.startswith("CAP_") else "CAP_" + n
            if not is_known(n):
                raise ValueError(f'unknown capability: "{n}"')
        out.append(n)
    return out


def _own_bounding_set() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return (1 << 64) - 1


def seccomp_for(hc: Mapping[str, Any], capabilities: Iterable[str]) -> Seccomp | None:
    """linux.seccomp for the container (None = unconfined)."""
    if hc.get("Privileged"):
        return None
    for opt in hc.get("SecurityOpt") or ():
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "seccomp":
            if value == "unconfined":
                return None
            return seccomp_profile(value)
    return default_seccomp_profile(capabilities)


_PROFILE_SHAPE: dict[str, type] = {"defaultAction": str, "defaultErrnoRet": int, "architectures": list,
                  "archMap": list, "flags": list, "syscalls": list, "listenerPath": str,
                  "listenerMetadata": str}
_RULE_SHAPE: dict[str, type] = {"names": list, "name": str, "action": str, "args": list, "errnoRet": int}
_ARG_SHAPE: dict[str, type] = {"index": int, "value": int, "valueTwo": int, "op": str}


def seccomp_profile(text: str) -> Seccomp:
    """--security-opt seccomp=<profile JSON> -> linux.seccomp; a profile that is
    not JSON or not of docker's shape (seccomp.Seccomp) is a 400 at create,
    not a failure half way through a start."""
    def fail(problem: str) -> BadRequest:
        return BadRequest(f"Decoding seccomp profile failed: {problem}")

    def shape(obj: object, fields: Mapping[str, type], where: str) -> None:
        if not isinstance(obj, dict):
            raise fail(f"{where}: not a JSON object")
        for key, kind in fields.items():
            value = obj.get(key)
            if value is not None and (not isinstance(value, kind) or
                                      (kind is int and isinstance(value, bool))):
                raise fail(f"{where}.{key}: not a JSON {kind.__name__}")

    try:
        profile = fastjson.loads(text)
    except ValueError:
        raise fail("invalid JSON") from None
    shape(profile, _PROFILE_SHAPE, "profile")
    for i, entry in enumerate(profile.get("archMap") or ()):
        shape(entry, {"architecture": str, "subArchitectures": list}, f"archMap[{i}]")
    for i, rule in enumerate(profile.get("syscalls") or ()):
        shape(rule, _RULE_SHAPE, f"syscalls[{i}]")
        if not isinstance(rule.get("action"), str):
            raise fail(f"syscalls[{i}].action: required")
        if not all(isinstance(n, str) for n in rule.get("names") or ()):
            raise fail(f"syscalls[{i}].names: not a list of strings")
        for j, arg in enumerate(rule.get("args") or ()):
            shape(arg, _ARG_SHAPE, f"syscalls[{i}].args[{j}]")
    for key in ("architectures", "flags"):
        if not all(isinstance(n, str) for n in profile.get(key) or ()):
            raise fail(f"{key}: not a list of strings")
    return docker_profile_to_spec(profile)


def docker_profile_to_spec(profile: Mapping[str, Any]) -> Seccomp:
    """A docker seccomp profile file -> linux.seccomp (docker's format adds
    archMap/includes/excludes around the runtime-spec's fields)."""
    out: Seccomp = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW")}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == {"x86_64": "SCMP_ARCH_X86_64",
                                         "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine):
            arches += [entry["architecture"]] + list(entry.get("subArchitectures") or [])
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = profile["flags"]
    rules: list[SeccompRule] = []
    for rule in profile.get("syscalls") or ():
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        item: SeccompRule = {"names": names, "action": rule["action"]}
        if rule.get("args") is not None:
            item["args"] = rule["args"]
        if rule.get("errnoRet") is not None:
            item["errnoRet"] = rule["errnoRet"]
        rules.append(item)
    out["syscalls"] = rules
    return out


def check_security_options(hc: Mapping[str, Any]) -> None:
    """dockerd's parseSecurityOpt at create: label, apparmor, seccomp,
    no-new-privileges[=bool] and writable-cgroups; anything else is a 400
    (it used to be accepted and ignored -- a typo silently ran the container
    without the option meant)."""
    for opt in hc.get("SecurityOpt") or ():
        if opt in ("no-new-privileges", "disable"):
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else None
        if sep is None:
            raise BadRequest(f'invalid --security-opt 1: "{opt}"')
        key, _, value = opt.partition(sep)
        if key in ("no-new-privileges", "writable-cgroups"):
            if value not in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE",
                             "false", "False"):
                raise BadRequest(f'invalid --security-opt 2: "{opt}"')
        elif key not in ("label", "apparmor", "seccomp"):
            raise BadRequest(f'invalid --security-opt 2: "{opt}"')
        elif key == "seccomp" and value != "unconfined":
            seccomp_profile(value)


def writable_cgroups(hc: Mapping[str, Any], userns: bool = False) -> bool:
    """/sys/fs/cgroup writable?  --privileged's default, or what
    --security-opt writable-cgroups=BOOL says (the last one wins), as dockerd;
    asking for it in a user namespace is refused, as dockerd does."""
    writable = bool(hc.get("Privileged"))
    asked = None
    for opt in hc.get("SecurityOpt") or ():
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "writable-cgroups":
            asked = value in ("1", "t", "T", "TRUE", "true", "True")
    if asked is not None:
        if userns:
            raise BadRequest("option WritableCgroups conflicts with user namespaces and "
                             "rootless mode")
        writable = asked
    return writable


def no_new_privileges(hc: Mapping[str, Any]) -> bool:
    on = False
    for opt in hc.get("SecurityOpt") or ():
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            on = value in ("", "1", "t", "T", "TRUE", "true", "True")  # the last one wins
    return on


def devices(hc: Mapping[str, Any]) -> tuple[list[Device], list[DeviceRule]]:
    """(linux.devices, cgroup device rules) for --device, --device-cgroup-rule and
    --privileged."""
    out: list[Device] = []
    rules: list[DeviceRule] = []
    if hc.get("Privileged"):
        for path in _host_devices("/dev"):
            out.append(_device_entry(path, path))
        rules.append({"allow": True, "access": "rwm"})
        return out, rules
    for d in hc.get("Devices") or ():
        host = d.get("PathOnHost") or ""
        inside = d.get("PathInContainer") or host
        perms = d.get("CgroupPermissions") or "rwm"
        if not os.path.exists(host):
            raise BadRequest(f"error gathering device information while adding custom device "
                             f"{host!r}: no such file or directory")
        if os.path.isdir(host):
            for path in _host_devices(host):
                entry = _device_entry(path, inside + path[len(host):])
                out.append(entry)
                rules.append(_rule_for(entry, perms))
        else:
            entry = _device_entry(host, inside)
            out.append(entry)
            rules.append(_rule_for(entry, perms))
    for text in hc.get("DeviceCgroupRules") or ():
        rules.append(parse_cgroup_rule(text))
    return out, rules


def _host_devices(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        # containerd's HostDevices: not these directories, and not the host's console
        dirnames[:] = [d for d in dirnames if d not in ("pts", "shm", "fd", "mqueue", ".lxc",
                                                        ".lxd-mounts", ".udev")]
        for name in filenames:
            if root == "/dev" and dirpath == root and name == "console":
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                yield path


def _device_entry(host: str, inside: str) -> Device:
    st = os.stat(host)
    kind = "b" if stat.S_ISBLK(st.st_mode) else "c"
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise BadRequest(f"{host} is not a device node")
    return {"type": kind, "path": inside, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def _rule_for(entry: Device, perms: str) -> DeviceRule:
    return {"allow": True, "type": entry["type"], "major": entry["major"],
            "minor": entry["minor"], "access": perms}


def parse_cgroup_rule(text: str) -> DeviceRule:
    """--device-cgroup-rule 'c 1:3 rwm' (major/minor may be *)."""
    try:
        kind, numbers, access = text.split()
        major, minor = numbers.split(":")
        if kind not in ("a", "b", "c") or any(ch not in "rwm" for ch in access):
            raise ValueError
        return {"allow": True, "type": kind,
                "major": -1 if major == "*" else int(major),
                "minor": -1 if minor == "*" else int(minor), "access": access}
    except ValueError:
        raise BadRequest(f"invalid device cgroup format {text!r}") from None
