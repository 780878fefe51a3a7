"""The runtime-spec config.json: load, check types against the spec's schema, and
check the semantic rules a runtime must enforce before it touches the kernel.

The config stays a plain dict (cheap to load, trivially saved back into the state
file); this module guarantees that every field it knows has the right JSON type
and range, so later code can index it without re-checking.  Every error names the
JSON path of the offending field: ``linux.resources.memory.limit: must be an
integer``.  Unknown fields are ignored, as the spec requires.
"""

from __future__ import annotations

from pybox.errors import ConfigError
from pybox.formats import fastjson
from pybox.linux.caps import is_known
from pybox.oci.resources import check_resources

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any, Literal, overload
else:
    def overload(function: object) -> object:  # typing's, without importing typing
        return function

# -- a tiny schema language --------------------------------------------------
# ("str",) ("bool",) ("int", lo, hi) ("arr", item) ("map", value) ("obj", fields, required)
if TYPE_CHECKING:
    Schema = tuple[Any, ...]

STR = ("str",)
BOOL = ("bool",)
INT64 = ("int", -(1 << 63), (1 << 63) - 1)
UINT64 = ("int", 0, (1 << 64) - 1)
INT32 = ("int", -(1 << 31), (1 << 31) - 1)
UINT32 = ("int", 0, (1 << 32) - 1)
UINT16 = ("int", 0, (1 << 16) - 1)
STRS = ("arr", STR)


def _obj(fields: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    return ("obj", fields, tuple(required))


def _arr(item: Schema) -> Schema:
    return ("arr", item)


def _map(value: Schema) -> Schema:
    return ("map", value)


_ID_MAPPING = _obj({"containerID": UINT32, "hostID": UINT32, "size": UINT32},
                   ("containerID", "hostID", "size"))
_HOOK = _obj({"path": STR, "args": STRS, "env": STRS, "timeout": INT64}, ("path",))
_DEVICE_RULE = _obj({"allow": BOOL, "type": STR, "major": INT64, "minor": INT64, "access": STR},
                    ("allow",))
_THROTTLE = _obj({"major": INT64, "minor": INT64, "rate": UINT64}, ("major", "minor", "rate"))

RESOURCES_SCHEMA = _obj({
    "devices": _arr(_DEVICE_RULE),
    "memory": _obj({
        "limit": INT64, "reservation": INT64, "swap": INT64, "kernel": INT64,
        "kernelTCP": INT64, "swappiness": UINT64, "disableOOMKiller": BOOL,
        "useHierarchy": BOOL, "checkBeforeUpdate": BOOL,
    }),
    "cpu": _obj({
        "shares": UINT64, "quota": INT64, "burst": UINT64, "period": UINT64,
        "realtimeRuntime": INT64, "realtimePeriod": UINT64, "cpus": STR, "mems": STR,
        "idle": INT64,
    }),
    "pids": _obj({"limit": INT64}, ("limit",)),
    "blockIO": _obj({
        "weight": UINT16, "leafWeight": UINT16,
        "weightDevice": _arr(_obj({"major": INT64, "minor": INT64, "weight": UINT16,
                                   "leafWeight": UINT16}, ("major", "minor"))),
        "throttleReadBpsDevice": _arr(_THROTTLE),
        "throttleWriteBpsDevice": _arr(_THROTTLE),
        "throttleReadIOPSDevice": _arr(_THROTTLE),
        "throttleWriteIOPSDevice": _arr(_THROTTLE),
    }),
    "hugepageLimits": _arr(_obj({"pageSize": STR, "limit": UINT64}, ("pageSize", "limit"))),
    "network": _obj({
        "classID": UINT32,
        "priorities": _arr(_obj({"name": STR, "priority": UINT32}, ("name", "priority"))),
    }),
    "rdma": _map(_obj({"hcaHandles": UINT32, "hcaObjects": UINT32})),
    "unified": _map(STR),
})

_CAPS = _obj({"bounding": STRS, "effective": STRS, "inheritable": STRS,
              "permitted": STRS, "ambient": STRS})

PROCESS_SCHEMA = _obj({
    "terminal": BOOL,
    "consoleSize": _obj({"height": UINT32, "width": UINT32}, ("height", "width")),
    "user": _obj({"uid": UINT32, "gid": UINT32, "umask": UINT32,
                  "additionalGids": _arr(UINT32), "username": STR}, ("uid", "gid")),
    "args": STRS,
    "commandLine": STR,
    "env": STRS,
    "cwd": STR,
    "capabilities": _CAPS,
    "rlimits": _arr(_obj({"type": STR, "soft": UINT64, "hard": UINT64},
                         ("type", "soft", "hard"))),
    "noNewPrivileges": BOOL,
    "apparmorProfile": STR,
    "oomScoreAdj": INT32,
    "selinuxLabel": STR,
    "ioPriority": _obj({"class": STR, "priority": INT32}, ("class",)),
    "scheduler": _obj({"policy": STR, "nice": INT32, "priority": INT32, "flags": STRS,
                       "runtime": UINT64, "deadline": UINT64, "period": UINT64}, ("policy",)),
    "execCPUAffinity": _obj({"initial": STR, "final": STR}),
}, ("cwd",))

_SECCOMP = _obj({
    "defaultAction": STR, "defaultErrnoRet": UINT32, "architectures": STRS, "flags": STRS,
    "listenerPath": STR, "listenerMetadata": STR,
    "syscalls": _arr(_obj({
        "names": STRS, "action": STR, "errnoRet": UINT32,
        "args": _arr(_obj({"index": UINT32, "value": UINT64, "valueTwo": UINT64, "op": STR},
                          ("index", "value", "op"))),
    }, ("names", "action"))),
}, ("defaultAction",))

CONFIG_SCHEMA = _obj({
    "ociVersion": STR,
    "root": _obj({"path": STR, "readonly": BOOL}, ("path",)),
    "mounts": _arr(_obj({"destination": STR, "type": STR, "source": STR, "options": STRS,
                         "uidMappings": _arr(_ID_MAPPING), "gidMappings": _arr(_ID_MAPPING)},
                        ("destination",))),
    "process": PROCESS_SCHEMA,
    "hostname": STR,
    "domainname": STR,
    "hooks": _obj({k: _arr(_HOOK) for k in (
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
        "poststop")}),
    "annotations": _map(STR),
    "linux": _obj({
        "namespaces": _arr(_obj({"type": STR, "path": STR}, ("type",))),
        "uidMappings": _arr(_ID_MAPPING),
        "gidMappings": _arr(_ID_MAPPING),
        "timeOffsets": _map(_obj({"secs": INT64, "nanosecs": UINT32})),
        "devices": _arr(_obj({"type": STR, "path": STR, "major": INT64, "minor": INT64,
                              "fileMode": UINT32, "uid": UINT32, "gid": UINT32},
                             ("type", "path"))),
        "cgroupsPath": STR,
        "resources": RESOURCES_SCHEMA,
        "intelRdt": _obj({"closID": STR, "l3CacheSchema": STR, "memBwSchema": STR}),
        "sysctl": _map(STR),
        "seccomp": _SECCOMP,
        "rootfsPropagation": STR,
        "maskedPaths": STRS,
        "readonlyPaths": STRS,
        "mountLabel": STR,
        "personality": _obj({"domain": STR, "flags": STRS}, ("domain",)),
    }),
}, ("ociVersion", "root"))

_TYPE_WORDS = {"str": "a string", "bool": "a boolean", "int": "an integer",
               "arr": "an array", "map": "an object", "obj": "an object"}


def check_schema(value: Any, schema: Schema, path: str) -> None:
    """Raise ConfigError at the first field whose JSON type or range is wrong."""
    kind = schema[0]
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(path, "must be a string")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(path, "must be a boolean")
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(path, "must be an integer")
        if not schema[1] <= value <= schema[2]:
            raise ConfigError(path, f"{value} is out of range [{schema[1]}, {schema[2]}]")
    elif kind == "arr":
        if not isinstance(value, list):
            raise ConfigError(path, "must be an array")
        for i, item in enumerate(value):
            check_schema(item, schema[1], f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise ConfigError(path, "must be an object")
        for k, v in value.items():
            check_schema(v, schema[1], f"{path}.{k}")
    elif kind == "obj":
        if not isinstance(value, dict):
            raise ConfigError(path, "must be an object")
        fields, required = schema[1], schema[2]
        for name in required:
            if name not in value:
                raise ConfigError(f"{path}.{name}" if path else name, "is required")
        for name, v in value.items():
            sub = fields.get(name)
            if sub is not None and v is not None:
                check_schema(v, sub, f"{path}.{name}" if path else name)


# -- semantic rules ---------------------------------------------------------

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
ROOTFS_PROPAGATIONS = ("", "shared", "slave", "private", "unbindable",
                       "rshared", "rslave", "rprivate", "runbindable")
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
DEVICE_TYPES = ("c", "b", "u", "p")
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")
# sysctls that live in a namespace, and which one (runc's validator and the kernel)
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def namespace_map(config: dict[str, Any]) -> dict[str, str | None]:
    """{type: path-or-None} of linux.namespaces (validated: no duplicates)."""
    return {ns["type"]: ns.get("path") or None
            for ns in (config.get("linux") or {}).get("namespaces") or ()}


def _check_abs(path_value: str, where: str) -> None:
    if not path_value.startswith("/"):
        raise ConfigError(where, f"{path_value!r} must be an absolute path")


UNCHANGED_ID = 0xFFFFFFFF


def check_process(process: dict[str, Any], path: str = "process") -> None:
    """Rules for process (also used for runc exec's process.json)."""
    args = process.get("args") or []
    if not args:
        raise ConfigError(f"{path}.args", "must not be empty")
    if "cwd" not in process or process["cwd"] == "":
        raise ConfigError(f"{path}.cwd", "is required")
    _check_abs(process["cwd"], f"{path}.cwd")
    if "user" not in process:
        raise ConfigError(f"{path}.user", "is required")
    user = process["user"]
    for field, ids in (("uid", [user.get("uid")]), ("gid", [user.get("gid")]),
                       ("additionalGids", user.get("additionalGids") or [])):
        if UNCHANGED_ID in ids:
            # setresuid/setresgid/setgroups read (uid_t)-1 as "leave it as it
            # is": the process would keep the runtime's root
            raise ConfigError(f"{path}.user.{field}",
                              "4294967295 is (uid_t)-1, which the kernel reads as "
                              "'unchanged': refused")
    for i, entry in enumerate(process.get("env") or ()):
        if "=" not in entry:
            raise ConfigError(f"{path}.env[{i}]", f"{entry!r} is not of the form KEY=VALUE")
    caps = process.get("capabilities") or {}
    if caps:
        for set_name, names in caps.items():
            for i, name in enumerate(names or ()):
                if not is_known(name):
                    raise ConfigError(f"{path}.capabilities.{set_name}[{i}]",
                                      f"unknown capability {name!r}")
    seen = set()
    for i, rl in enumerate(process.get("rlimits") or ()):
        kind = rl["type"]
        if kind not in RLIMITS:
            raise ConfigError(f"{path}.rlimits[{i}].type", f"unknown rlimit {kind!r}")
        if kind in seen:
            raise ConfigError(f"{path}.rlimits[{i}].type", f"{kind} given twice")
        if rl["soft"] > rl["hard"]:
            raise ConfigError(f"{path}.rlimits[{i}]",
                              f"soft limit {rl['soft']} exceeds hard limit {rl['hard']}")
        seen.add(kind)
    if process.get("terminal") and process.get("consoleSize") is not None:
        pass  # any size is fine; 0x0 means "leave as is"


def check_config(config: Any, *, need_process: bool = True) -> dict[str, Any]:
    """Type-check and rule-check a config dict.  Returns it unchanged."""
    if not isinstance(config, dict):
        raise ConfigError("", "config.json must contain a JSON object")
    check_schema(config, CONFIG_SCHEMA, "")
    version = config["ociVersion"]
    if not version.startswith("1."):
        raise ConfigError("ociVersion", f"unsupported runtime-spec version {version!r} "
                          "(this runtime implements 1.x)")
    if not config["root"]["path"]:
        raise ConfigError("root.path", "must not be empty")

    process = config.get("process")
    if process is None:
        if need_process:
            raise ConfigError("process", "is required to create a container")
    else:
        check_process(process)

    linux = config.get("linux") or {}
    namespaces = {}
    for i, ns in enumerate(linux.get("namespaces") or ()):
        kind = ns["type"]
        if kind not in NAMESPACE_TYPES:
            raise ConfigError(f"linux.namespaces[{i}].type", f"unknown namespace type {kind!r}")
        if kind in namespaces:
            raise ConfigError(f"linux.namespaces[{i}].type", f"namespace {kind!r} given twice")
        if ns.get("path"):
            _check_abs(ns["path"], f"linux.namespaces[{i}].path")
        namespaces[kind] = ns.get("path") or None

    if config.get("hostname") and "uts" not in namespaces:
        raise ConfigError("hostname", "cannot be set without a private UTS namespace "
                          "(add {\"type\": \"uts\"} to linux.namespaces)")
    if config.get("domainname") and "uts" not in namespaces:
        raise ConfigError("domainname", "cannot be set without a private UTS namespace")

    if "user" in namespaces and not namespaces["user"]:
        if not linux.get("uidMappings") or not linux.get("gidMappings"):
            raise ConfigError("linux.uidMappings",
                              "a new user namespace needs uidMappings and gidMappings")
    elif linux.get("uidMappings") or linux.get("gidMappings"):
        if "user" not in namespaces:
            raise ConfigError("linux.uidMappings", "mappings need a user namespace")

    prop = linux.get("rootfsPropagation", "")
    if prop not in ROOTFS_PROPAGATIONS:
        raise ConfigError("linux.rootfsPropagation", f"unknown propagation {prop!r}")

    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(linux.get(key) or ()):
            _check_abs(p, f"linux.{key}[{i}]")

    for i, dev in enumerate(linux.get("devices") or ()):
        where = f"linux.devices[{i}]"
        if dev["type"] not in DEVICE_TYPES:
            raise ConfigError(f"{where}.type", f"unknown device type {dev['type']!r}")
        _check_abs(dev["path"], f"{where}.path")
        if dev["type"] != "p" and ("major" not in dev or "minor" not in dev):
            raise ConfigError(where, "major and minor are required for c, b and u devices")

    for key in linux.get("sysctl") or {}:
        check_sysctl(key, namespaces)

    for i, mnt in enumerate(config.get("mounts") or ()):
        if not mnt["destination"]:
            raise ConfigError(f"mounts[{i}].destination", "must not be empty")

    for name, hooks in (config.get("hooks") or {}).items():
        for i, hook in enumerate(hooks or ()):
            _check_abs(hook["path"], f"hooks.{name}[{i}].path")
            if "timeout" in hook and hook["timeout"] <= 0:
                raise ConfigError(f"hooks.{name}[{i}].timeout", "must be greater than zero")

    check_resources(linux.get("resources") or {}, "linux.resources")
    cg = linux.get("cgroupsPath", "")
    if cg and ".." in cg.split("/"):
        raise ConfigError("linux.cgroupsPath", f"{cg!r} must not contain '..'")
    return config


def check_sysctl(key: str, namespaces: dict[str, str | None]) -> None:
    """A sysctl may only be set if it belongs to a namespace the container owns."""
    where = f"linux.sysctl.{key}"
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if "ipc" not in namespaces:
            raise ConfigError(where, "needs a private IPC namespace")
        return
    if key.startswith("net."):
        if "network" not in namespaces:
            raise ConfigError(where, "needs a private network namespace")
        return
    if key in ("kernel.hostname", "kernel.domainname"):
        if "uts" not in namespaces:
            raise ConfigError(where, "needs a private UTS namespace")
        return
    raise ConfigError(where, "is not namespaced and cannot be set for a container")


@overload
def load_bundle_config(bundle: str, with_raw: Literal[False] = False) -> dict[str, Any]: ...


@overload
def load_bundle_config(  # noqa: F811 -- overload variants (ruff cannot see typing's through the stand-in)
        bundle: str, with_raw: Literal[True]) -> tuple[dict[str, Any], bytes]: ...


def load_bundle_config(bundle: str, with_raw: bool = False  # noqa: F811 -- the implementation
                       ) -> dict[str, Any] | tuple[dict[str, Any], bytes]:
    """Read and check BUNDLE/config.json (and return its bytes too if asked)."""
    path = f"{bundle}/config.json"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError("", f"{path} does not exist") from None
    except OSError as e:
        raise ConfigError("", f"cannot read {path}: {e.strerror}") from None
    try:
        config = fastjson.loads(data)
    except ValueError as e:
        raise ConfigError("", f"{path} is not valid JSON: {e}") from None
    check_config(config)
    return (config, data) if with_raw else config
