"""Request bodies and query values decoded by type, as dockerd decodes them.

dockerd reads every JSON body with Go's encoding/json into its API structs
(container.CreateRequest, UpdateConfig, ExecOptions, network.CreateRequest...):
a value of the wrong JSON type is refused before anything happens ("invalid
JSON: json: cannot unmarshal string into Go struct field
HostConfig.HostConfig.Privileged of type bool", HTTP 400), field names match
case-insensitively, unknown fields are ignored, and ``null`` leaves a field
unset.  pybox used to hand the raw JSON to the engine, which took truthiness
for types: ``"Privileged": "false"`` made a privileged container (an
authorization proxy that blocks ``Privileged: true`` was bypassed), and a
``Cmd`` of ``[5]`` was stored and broke ``docker ps`` for every client.

Here each body's Go types are declared once (docker 28's api/types, built with
Go 1.24, whose error paths name embedded structs: ``HostConfig.HostConfig.
Resources.Memory``) and decoded into plain dicts with docker's canonical field
names and Python values of the declared types; the engine sees nothing else.
The range and meaning checks (signals, capabilities, sizes...) are the
engine's (pybox.engine.spec.validate_create and friends): they need the
daemon's view of the machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pybox.errors import BadRequest

OMIT = object()  # a field whose JSON value leaves the Go field untouched
_SURROGATE = re.compile("[\ud800-\udfff]")
INT_RANGES = {
    "int": (-(1 << 63), (1 << 63) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "uint": (0, (1 << 64) - 1), "uint64": (0, (1 << 64) - 1), "uint32": (0, (1 << 32) - 1),
    "uint16": (0, (1 << 16) - 1), "uint8": (0, 255),
}


class _Float(float):
    """A JSON number written with a fraction or an exponent; keeps its text,
    which Go quotes when the number does not fit an integer field."""

    text: str

    def __new__(cls, text: str) -> _Float:
        try:
            obj = super().__new__(cls, text)
        except OverflowError:  # pragma: no cover - float("1e999") is inf, not an error
            obj = super().__new__(cls, "inf")
        obj.text = text
        return obj


def _number_text(v: Any) -> str:
    return v.text if isinstance(v, _Float) else str(v)


def _kind(v: Any) -> str:
    """Go's name for a JSON value's kind in an UnmarshalTypeError."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _clean_str(s: str) -> str:
    # Go replaces invalid UTF-16 surrogates in JSON strings with U+FFFD;
    # Python keeps them, and they fail later when written as UTF-8
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


def _plain(v: Any) -> Any:
    """A JSON value for an interface{} field: plain Python types only."""
    if isinstance(v, str):
        return _clean_str(v)
    if isinstance(v, _Float):
        return float(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {_clean_str(k): _plain(x) for k, x in v.items()}
    return v


class _Fatal(Exception):
    """An error from a type with its own UnmarshalJSON: Go stops there."""


class _State:
    """Go's decodeState error bookkeeping: the first type error is kept and
    decoding goes on; the struct and field path say where it happened."""

    def __init__(self, render: bool = False) -> None:
        self.saved: str | None = None
        self.struct: str | None = None
        self.stack: list[str] = []
        # rendering a stored record (see render): exact names, unknown fields
        # kept, a value of the wrong type dropped instead of refused
        self.render = render

    def message(self, kind: str, go: str) -> str:
        if self.struct is not None or self.stack:
            where = f"{self.struct or ''}.{'.'.join(self.stack)}"
            return f"json: cannot unmarshal {kind} into Go struct field {where} of type {go}"
        return f"json: cannot unmarshal {kind} into Go value of type {go}"

    def save(self, kind: str, go: str) -> None:
        if self.saved is None:
            self.saved = self.message(kind, go)


class GoType:
    """One Go type: ``go`` is its reflect.Type.String(); ``nullable`` when JSON
    null sets it to nil (pointers, slices, maps, interfaces)."""

    go = "?"
    nullable = False

    def decode(self, v: Any, st: _State) -> Any:
        raise NotImplementedError

    def null(self) -> Any:
        return None if self.nullable else OMIT


class Bool(GoType):
    go = "bool"

    def decode(self, v: Any, st: _State) -> Any:
        if isinstance(v, bool):
            return v
        st.save(_kind(v), self.go)
        return OMIT


class Int(GoType):
    def __init__(self, go: str = "int64", base: str | None = None) -> None:
        self.go = go
        self.lo, self.hi = INT_RANGES[base or go]

    def decode(self, v: Any, st: _State) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            st.save(_kind(v), self.go)
            return OMIT
        if isinstance(v, float) or not self.lo <= v <= self.hi:
            st.save("number " + _number_text(v), self.go)
            return OMIT
        return v


class Str(GoType):
    def __init__(self, go: str = "string") -> None:
        self.go = go

    def decode(self, v: Any, st: _State) -> Any:
        if isinstance(v, str):
            return _clean_str(v)
        st.save(_kind(v), self.go)
        return OMIT


class AnyValue(GoType):
    go = "interface {}"
    nullable = True

    def decode(self, v: Any, st: _State) -> Any:
        return _plain(v)


class Slice(GoType):
    nullable = True

    def __init__(self, elem: GoType, go: str | None = None) -> None:
        self.elem = elem
        self.go = go or "[]" + elem.go

    def decode(self, v: Any, st: _State) -> Any:
        if not isinstance(v, list):
            st.save(_kind(v), self.go)
            return OMIT
        out = []
        for item in v:
            value = self.elem.null() if item is None else self.elem.decode(item, st)
            out.append(_zero(self.elem) if value is OMIT else value)
        return out


class Array(GoType):
    """A Go array ([2]uint): extra elements are dropped, missing ones zero."""

    def __init__(self, elem: GoType, n: int) -> None:
        self.elem, self.n = elem, n
        self.go = f"[{n}]{elem.go}"

    def decode(self, v: Any, st: _State) -> Any:
        if not isinstance(v, list):
            st.save(_kind(v), self.go)
            return OMIT
        out = []
        for item in v[:self.n]:
            value = OMIT if item is None else self.elem.decode(item, st)
            out.append(_zero(self.elem) if value is OMIT else value)
        return out + [_zero(self.elem)] * (self.n - len(out))


class Ptr(GoType):
    """*T: null is nil; errors name T (Go reports the pointed-to type)."""

    nullable = True

    def __init__(self, elem: GoType) -> None:
        self.elem = elem
        self.go = elem.go

    def decode(self, v: Any, st: _State) -> Any:
        return self.elem.decode(v, st)


class Map(GoType):
    nullable = True

    def __init__(self, elem: GoType, go: str | None = None) -> None:
        self.elem = elem
        self.go = go or "map[string]" + elem.go

    def decode(self, v: Any, st: _State) -> Any:
        if not isinstance(v, dict):
            st.save(_kind(v), self.go)
            return OMIT
        out = {}
        for key, item in v.items():
            value = self.elem.null() if item is None else self.elem.decode(item, st)
            out[_clean_str(key)] = _zero(self.elem) if value is OMIT else value
        return out


class EmptyStruct(GoType):
    go = "struct {}"

    def decode(self, v: Any, st: _State) -> Any:
        if isinstance(v, dict):
            return {}
        st.save(_kind(v), self.go)
        return OMIT


class StrSlice(GoType):
    """strslice.StrSlice: a string or a list of strings (its UnmarshalJSON
    tries []string, then string, and returns the second error)."""

    go = "strslice.StrSlice"
    nullable = True

    def decode(self, v: Any, st: _State) -> Any:
        if isinstance(v, str):
            return [_clean_str(v)]
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return [_clean_str(x) for x in v]
        raise _Fatal(st.message(_kind(v), "string"))


class Struct(GoType):
    """A Go struct.  ``fields``: (json name, type) pairs, or ("*", Struct) for
    an embedded struct, whose fields are promoted (and named with the embedded
    struct's type name in error paths, as Go 1.24 does)."""

    def __init__(self, name: str, go: str, fields: list[tuple[str, GoType]]) -> None:
        self.name, self.go = name, go
        self.fields: dict[str, tuple[GoType, list[str]]] = {}
        for json_name, typ in fields:
            if json_name == "*":
                assert isinstance(typ, Struct)
                for inner, (t, path) in typ.fields.items():
                    self.fields.setdefault(inner, (t, [typ.name] + path))
            else:
                self.fields[json_name] = (typ, [])
        self.folded: dict[str, str] = {}
        for json_name in self.fields:
            self.folded.setdefault(_fold(json_name), json_name)

    def field(self, key: str) -> str | None:
        if key in self.fields:
            return key
        return self.folded.get(_fold(key))

    def decode(self, v: Any, st: _State) -> Any:
        if not isinstance(v, dict):
            st.save(_kind(v), self.go)
            return OMIT
        out = {}
        for key, item in v.items():
            name = (key if key in self.fields else None) if st.render else self.field(key)
            if name is None:
                if st.render and self.field(key) is None:
                    # (a case variant of a known field would reach it in Go's decoder)
                    out[key] = _plain(item)
                continue  # Go ignores unknown fields
            typ, path = self.fields[name]
            saved_struct, depth = st.struct, len(st.stack)
            st.struct = self.name
            st.stack.extend(path)
            st.stack.append(name)
            try:
                value = typ.null() if item is None else typ.decode(item, st)
            except _Fatal:
                if not st.render:
                    raise
                value = OMIT
            st.struct = saved_struct
            del st.stack[depth:]
            if value is not OMIT:
                out[name] = value
        return out


_FOLD_NON_ASCII = {"\u017f": "S", "\u212a": "K"}


def _fold(name: str) -> str:
    """Go's foldName as far as ASCII field names can tell: ASCII letters
    upper-cased, and the two non-ASCII runes whose fold set holds an ASCII
    letter (the long s, the Kelvin sign) taken as that letter."""
    if name.isascii():
        return name.upper()
    return "".join(c.upper() if c.isascii() else _FOLD_NON_ASCII.get(c, c) for c in name)


def _zero(t: GoType) -> Any:
    if isinstance(t, Bool):
        return False
    if isinstance(t, Int):
        return 0
    if isinstance(t, Str):
        return ""
    if isinstance(t, Array):
        return [_zero(t.elem)] * t.n
    if isinstance(t, (Struct, EmptyStruct)):
        return {}
    return None


# -- docker's API types (docker 28, api/types/...) ------------------------------------------
BOOL, STRING, INT, INT64 = Bool(), Str(), Int("int"), Int("int64")
STRINGS = Slice(STRING)
STRMAP = Map(STRING)
DURATION = Int("time.Duration", "int64")

HEALTH = Struct("HealthcheckConfig", "v1.HealthcheckConfig", [
    ("Test", STRINGS), ("Interval", DURATION), ("Timeout", DURATION),
    ("StartPeriod", DURATION), ("StartInterval", DURATION), ("Retries", INT)])

PORT_BINDING = Struct("PortBinding", "nat.PortBinding", [("HostIp", STRING),
                                                         ("HostPort", STRING)])

CONFIG = Struct("Config", "container.Config", [
    ("Hostname", STRING), ("Domainname", STRING), ("User", STRING),
    ("AttachStdin", BOOL), ("AttachStdout", BOOL), ("AttachStderr", BOOL),
    ("ExposedPorts", Map(EmptyStruct(), "nat.PortSet")), ("Tty", BOOL),
    ("OpenStdin", BOOL), ("StdinOnce", BOOL), ("Env", STRINGS), ("Cmd", StrSlice()),
    ("Healthcheck", Ptr(HEALTH)), ("ArgsEscaped", BOOL), ("Image", STRING),
    ("Volumes", Map(EmptyStruct())), ("WorkingDir", STRING), ("Entrypoint", StrSlice()),
    ("NetworkDisabled", BOOL), ("MacAddress", STRING), ("OnBuild", STRINGS),
    ("Labels", STRMAP), ("StopSignal", STRING), ("StopTimeout", Ptr(INT)),
    ("Shell", StrSlice())])

WEIGHT_DEVICE = Struct("WeightDevice", "blkiodev.WeightDevice", [
    ("Path", STRING), ("Weight", Int("uint16"))])
THROTTLE_DEVICE = Struct("ThrottleDevice", "blkiodev.ThrottleDevice", [
    ("Path", STRING), ("Rate", Int("uint64"))])
THROTTLE_DEVICES = Slice(Ptr(THROTTLE_DEVICE), "[]*blkiodev.ThrottleDevice")
DEVICE_MAPPING = Struct("DeviceMapping", "container.DeviceMapping", [
    ("PathOnHost", STRING), ("PathInContainer", STRING), ("CgroupPermissions", STRING)])
DEVICE_REQUEST = Struct("DeviceRequest", "container.DeviceRequest", [
    ("Driver", STRING), ("Count", INT), ("DeviceIDs", STRINGS),
    ("Capabilities", Slice(STRINGS)), ("Options", STRMAP)])
ULIMIT = Struct("Ulimit", "units.Ulimit", [("Name", STRING), ("Hard", INT64),
                                          ("Soft", INT64)])

RESOURCES = Struct("Resources", "container.Resources", [
    ("CpuShares", INT64), ("Memory", INT64), ("NanoCpus", INT64), ("CgroupParent", STRING),
    ("BlkioWeight", Int("uint16")),
    ("BlkioWeightDevice", Slice(Ptr(WEIGHT_DEVICE), "[]*blkiodev.WeightDevice")),
    ("BlkioDeviceReadBps", THROTTLE_DEVICES), ("BlkioDeviceWriteBps", THROTTLE_DEVICES),
    ("BlkioDeviceReadIOps", THROTTLE_DEVICES), ("BlkioDeviceWriteIOps", THROTTLE_DEVICES),
    ("CpuPeriod", INT64), ("CpuQuota", INT64), ("CpuRealtimePeriod", INT64),
    ("CpuRealtimeRuntime", INT64), ("CpusetCpus", STRING), ("CpusetMems", STRING),
    ("Devices", Slice(DEVICE_MAPPING)), ("DeviceCgroupRules", STRINGS),
    ("DeviceRequests", Slice(DEVICE_REQUEST)), ("KernelMemory", INT64),
    ("KernelMemoryTCP", INT64), ("MemoryReservation", INT64), ("MemorySwap", INT64),
    ("MemorySwappiness", Ptr(INT64)), ("OomKillDisable", Ptr(BOOL)),
    ("PidsLimit", Ptr(INT64)), ("Ulimits", Slice(Ptr(ULIMIT), "[]*units.Ulimit")),
    ("CpuCount", INT64), ("CpuPercent", INT64), ("IOMaximumIOps", Int("uint64")),
    ("IOMaximumBandwidth", Int("uint64"))])

RESTART_POLICY = Struct("RestartPolicy", "container.RestartPolicy", [
    ("Name", Str("container.RestartPolicyMode")), ("MaximumRetryCount", INT)])

MOUNT = Struct("Mount", "mount.Mount", [
    ("Type", Str("mount.Type")), ("Source", STRING), ("Target", STRING),
    ("ReadOnly", BOOL), ("Consistency", Str("mount.Consistency")),
    ("BindOptions", Ptr(Struct("BindOptions", "mount.BindOptions", [
        ("Propagation", Str("mount.Propagation")), ("NonRecursive", BOOL),
        ("CreateMountpoint", BOOL), ("ReadOnlyNonRecursive", BOOL),
        ("ReadOnlyForceRecursive", BOOL)]))),
    ("VolumeOptions", Ptr(Struct("VolumeOptions", "mount.VolumeOptions", [
        ("NoCopy", BOOL), ("Labels", STRMAP), ("Subpath", STRING),
        ("DriverConfig", Ptr(Struct("Driver", "mount.Driver", [
            ("Name", STRING), ("Options", STRMAP)])))]))),
    ("ImageOptions", Ptr(Struct("ImageOptions", "mount.ImageOptions", [
        ("Subpath", STRING)]))),
    ("TmpfsOptions", Ptr(Struct("TmpfsOptions", "mount.TmpfsOptions", [
        ("SizeBytes", INT64), ("Mode", Int("fs.FileMode", "uint32")),
        ("Options", Slice(STRINGS))]))),
    ("ClusterOptions", Ptr(Struct("ClusterOptions", "mount.ClusterOptions", [])))])

HOST_CONFIG = Struct("HostConfig", "container.HostConfig", [
    ("Binds", STRINGS), ("ContainerIDFile", STRING),
    ("LogConfig", Struct("LogConfig", "container.LogConfig", [("Type", STRING),
                                                             ("Config", STRMAP)])),
    ("NetworkMode", Str("container.NetworkMode")),
    ("PortBindings", Map(Slice(PORT_BINDING), "nat.PortMap")),
    ("RestartPolicy", RESTART_POLICY), ("AutoRemove", BOOL), ("VolumeDriver", STRING),
    ("VolumesFrom", STRINGS), ("ConsoleSize", Array(Int("uint"), 2)),
    ("Annotations", STRMAP), ("CapAdd", StrSlice()), ("CapDrop", StrSlice()),
    ("CgroupnsMode", Str("container.CgroupnsMode")), ("Dns", STRINGS),
    ("DnsOptions", STRINGS), ("DnsSearch", STRINGS), ("ExtraHosts", STRINGS),
    ("GroupAdd", STRINGS), ("IpcMode", Str("container.IpcMode")),
    ("Cgroup", Str("container.CgroupSpec")), ("Links", STRINGS), ("OomScoreAdj", INT),
    ("PidMode", Str("container.PidMode")), ("Privileged", BOOL),
    ("PublishAllPorts", BOOL), ("ReadonlyRootfs", BOOL), ("SecurityOpt", STRINGS),
    ("StorageOpt", STRMAP), ("Tmpfs", STRMAP), ("UTSMode", Str("container.UTSMode")),
    ("UsernsMode", Str("container.UsernsMode")), ("ShmSize", INT64), ("Sysctls", STRMAP),
    ("Runtime", STRING), ("Isolation", Str("container.Isolation")), ("*", RESOURCES),
    ("Mounts", Slice(MOUNT)), ("MaskedPaths", STRINGS), ("ReadonlyPaths", STRINGS),
    ("Init", Ptr(BOOL))])

ENDPOINT_SETTINGS = Struct("EndpointSettings", "network.EndpointSettings", [
    ("IPAMConfig", Ptr(Struct("EndpointIPAMConfig", "network.EndpointIPAMConfig", [
        ("IPv4Address", STRING), ("IPv6Address", STRING), ("LinkLocalIPs", STRINGS)]))),
    ("Links", STRINGS), ("Aliases", STRINGS), ("MacAddress", STRING),
    ("DriverOpts", STRMAP), ("GwPriority", INT), ("NetworkID", STRING),
    ("EndpointID", STRING), ("Gateway", STRING), ("IPAddress", STRING),
    ("IPPrefixLen", INT), ("IPv6Gateway", STRING), ("GlobalIPv6Address", STRING),
    ("GlobalIPv6PrefixLen", INT), ("DNSNames", STRINGS)])

CREATE_REQUEST = Struct("CreateRequest", "container.CreateRequest", [
    ("*", CONFIG), ("HostConfig", Ptr(HOST_CONFIG)),
    ("NetworkingConfig", Ptr(Struct("NetworkingConfig", "network.NetworkingConfig", [
        ("EndpointsConfig", Map(Ptr(ENDPOINT_SETTINGS),
                                "map[string]*network.EndpointSettings"))])))])

# what API versions up to docker 26 decode a create body into (runconfig's
# ContainerConfigWrapper): the HostConfig's fields are also read at the top
# level, next to the Config's (the API before 1.18 had them there; docker-py
# still sends ``Runtime`` so), with the legacy ``Cpuset``.  See read_create.  Named as
# docker 28 names its CreateRequest: the words of a type error stay docker's.
CREATE_WRAPPER = Struct("CreateRequest", "container.CreateRequest", [
    ("*", CONFIG), ("HostConfig", Ptr(HOST_CONFIG)), ("Cpuset", STRING),
    ("NetworkingConfig", CREATE_REQUEST.fields["NetworkingConfig"][0]), ("*", HOST_CONFIG)])
# the top-level fields a HostConfig sent alongside still takes, when it leaves them unset
_TOP_LEVEL_MERGED = ("Memory", "MemorySwap", "CpuShares", "CpusetCpus", "VolumeDriver")

UPDATE_CONFIG = Struct("UpdateConfig", "container.UpdateConfig", [
    ("*", RESOURCES), ("RestartPolicy", RESTART_POLICY)])

CONSOLE_SIZE = Ptr(Array(Int("uint"), 2))
EXEC_OPTIONS = Struct("ExecOptions", "container.ExecOptions", [
    ("User", STRING), ("Privileged", BOOL), ("Tty", BOOL), ("ConsoleSize", CONSOLE_SIZE),
    ("AttachStdin", BOOL), ("AttachStderr", BOOL), ("AttachStdout", BOOL),
    ("Detach", BOOL), ("DetachKeys", STRING), ("Env", STRINGS), ("WorkingDir", STRING),
    ("Cmd", STRINGS)])
EXEC_START = Struct("ExecStartOptions", "container.ExecStartOptions", [
    ("Detach", BOOL), ("Tty", BOOL), ("ConsoleSize", CONSOLE_SIZE)])

NETWORK_CREATE = Struct("CreateRequest", "network.CreateRequest", [
    ("*", Struct("CreateOptions", "network.CreateOptions", [
        ("Driver", STRING), ("Scope", STRING), ("EnableIPv4", Ptr(BOOL)),
        ("EnableIPv6", Ptr(BOOL)),
        ("IPAM", Ptr(Struct("IPAM", "network.IPAM", [
            ("Driver", STRING), ("Options", STRMAP),
            ("Config", Slice(Struct("IPAMConfig", "network.IPAMConfig", [
                ("Subnet", STRING), ("IPRange", STRING), ("Gateway", STRING),
                ("AuxiliaryAddresses", STRMAP)])))]))),
        ("Internal", BOOL), ("Attachable", BOOL), ("Ingress", BOOL), ("ConfigOnly", BOOL),
        ("ConfigFrom", Ptr(Struct("ConfigReference", "network.ConfigReference", [
            ("Network", STRING)]))),
        ("Options", STRMAP), ("Labels", STRMAP)])),
    ("Name", STRING), ("CheckDuplicate", Ptr(BOOL))])
NETWORK_CONNECT = Struct("ConnectOptions", "network.ConnectOptions", [
    ("Container", STRING), ("EndpointConfig", Ptr(ENDPOINT_SETTINGS))])
NETWORK_DISCONNECT = Struct("DisconnectOptions", "network.DisconnectOptions", [
    ("Container", STRING), ("Force", BOOL)])

VOLUME_CREATE = Struct("CreateOptions", "volume.CreateOptions", [
    ("ClusterVolumeSpec", AnyValue()), ("Driver", STRING), ("DriverOpts", STRMAP),
    ("Labels", STRMAP), ("Name", STRING)])

AUTH_CONFIG = Struct("AuthConfig", "registry.AuthConfig", [
    ("username", STRING), ("password", STRING), ("auth", STRING), ("email", STRING),
    ("serveraddress", STRING), ("identitytoken", STRING), ("registrytoken", STRING)])


# -- what the API answers (rendered from stored records, see render) -----------------
MOUNT_POINT = Struct("MountPoint", "container.MountPoint", [
    ("Type", Str("mount.Type")), ("Name", STRING), ("Source", STRING),
    ("Destination", STRING), ("Driver", STRING), ("Mode", STRING), ("RW", BOOL),
    ("Propagation", Str("mount.Propagation"))])
ADDRESS = Struct("Address", "network.Address", [("Addr", STRING), ("PrefixLen", INT)])
NETWORK_SETTINGS = Struct("NetworkSettings", "container.NetworkSettings", [
    ("Bridge", STRING), ("SandboxID", STRING), ("HairpinMode", BOOL),
    ("LinkLocalIPv6Address", STRING), ("LinkLocalIPv6PrefixLen", INT),
    ("Ports", Map(Slice(PORT_BINDING), "nat.PortMap")), ("SandboxKey", STRING),
    ("SecondaryIPAddresses", Slice(ADDRESS)), ("SecondaryIPv6Addresses", Slice(ADDRESS)),
    ("EndpointID", STRING), ("Gateway", STRING), ("GlobalIPv6Address", STRING),
    ("GlobalIPv6PrefixLen", INT), ("IPAddress", STRING), ("IPPrefixLen", INT),
    ("IPv6Gateway", STRING), ("MacAddress", STRING),
    ("Networks", Map(Ptr(ENDPOINT_SETTINGS), "map[string]*network.EndpointSettings"))])
STATE = Struct("State", "container.State", [
    ("Status", STRING), ("Running", BOOL), ("Paused", BOOL), ("Restarting", BOOL),
    ("OOMKilled", BOOL), ("Dead", BOOL), ("Pid", INT), ("ExitCode", INT), ("Error", STRING),
    ("StartedAt", STRING), ("FinishedAt", STRING),
    ("Health", Ptr(Struct("Health", "container.Health", [
        ("Status", STRING), ("FailingStreak", INT),
        ("Log", Slice(Ptr(Struct("HealthcheckResult", "container.HealthcheckResult", [
            ("Start", STRING), ("End", STRING), ("ExitCode", INT),
            ("Output", STRING)]))))])))])
CONTAINER_JSON = Struct("InspectResponse", "container.InspectResponse", [
    ("Id", STRING), ("Created", STRING), ("Path", STRING), ("Args", STRINGS),
    ("State", Ptr(STATE)), ("Image", STRING), ("ResolvConfPath", STRING),
    ("HostnamePath", STRING), ("HostsPath", STRING), ("LogPath", STRING), ("Name", STRING),
    ("RestartCount", INT), ("Driver", STRING), ("Platform", STRING), ("MountLabel", STRING),
    ("ProcessLabel", STRING), ("AppArmorProfile", STRING), ("ExecIDs", STRINGS),
    ("HostConfig", Ptr(HOST_CONFIG)),
    ("GraphDriver", Struct("DriverData", "storage.DriverData", [("Name", STRING),
                                                                ("Data", STRMAP)])),
    ("SizeRw", Ptr(INT64)), ("SizeRootFs", Ptr(INT64)), ("Mounts", Slice(MOUNT_POINT)),
    ("Config", Ptr(CONFIG)), ("NetworkSettings", Ptr(NETWORK_SETTINGS))])
SUMMARY = Struct("Summary", "container.Summary", [
    ("Id", STRING), ("Names", STRINGS), ("Image", STRING), ("ImageID", STRING),
    ("Command", STRING), ("Created", INT64),
    ("Ports", Slice(Struct("Port", "container.Port", [
        ("IP", STRING), ("PrivatePort", Int("uint16")), ("PublicPort", Int("uint16")),
        ("Type", STRING)]))),
    ("SizeRw", INT64), ("SizeRootFs", INT64), ("Labels", STRMAP), ("State", STRING),
    ("Status", STRING),
    ("HostConfig", Struct("HostConfigSummary", "struct", [("NetworkMode", STRING),
                                                          ("Annotations", STRMAP)])),
    ("NetworkSettings", Ptr(Struct("NetworkSettingsSummary", "container.NetworkSettingsSummary",
                                   [("Networks", Map(Ptr(ENDPOINT_SETTINGS)))]))),
    ("Mounts", Slice(MOUNT_POINT))])


def render(value: Any, typ: GoType) -> Any:
    """A stored record (or a view built from one) as a client can decode it:
    every field docker's Go types declare holds a value of that type, or is
    left out (a list or map entry of the wrong type becomes its zero value);
    other fields pass as they are.  A record written by an older pyboxd with
    ``Cmd: [5]`` used to break ``docker ps -a`` for every client."""
    st = _State(render=True)
    try:
        out = typ.decode(value, st)
    except _Fatal:
        return {}
    return {} if out is OMIT else out


# -- JSON text -----------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _parse_int(text: str) -> int | _Float:
    # past Python's int conversion limit: no Go integer holds it either
    return int(text) if len(text) < 4000 else _Float(text)


_DECODER = json.JSONDecoder(parse_float=_Float, parse_int=_parse_int,
                            parse_constant=_reject_constant)
_WS = " \t\r\n"


def _quote_char(c: str) -> str:
    """Go's quoteChar for scanner errors: 'x', '\\n', '\\x01'."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + json.dumps(c)[1:-1].replace("\\u00", "\\x") + "'" if not c.isprintable() \
        else f"'{c}'"


def _innermost(text: str, pos: int) -> str:
    """'{' or '[': the container open at ``pos`` (for Go's "after ..." words)."""
    stack = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _syntax_message(text: str, err: json.JSONDecodeError) -> str:
    """Python's JSON error -> the words of Go's scanner."""
    pos, msg = err.pos, err.msg
    if pos >= len(text) or msg.startswith("Unterminated string"):
        return "unexpected EOF"
    c = text[pos]
    if msg.startswith("Expecting value"):
        return f"invalid character {_quote_char(c)} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {_quote_char(c)} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {_quote_char(c)} after object key"
    if msg.startswith("Expecting ','"):
        what = "object key:value pair" if _innermost(text, pos) == "{" else "array element"
        return f"invalid character {_quote_char(c)} after {what}"
    if msg.startswith("Invalid control character"):
        return f"invalid character {_quote_char(c)} in string literal"
    if msg.startswith("Invalid \\u"):
        bad = next((ch for ch in text[pos + 2:pos + 6] if ch not in "0123456789abcdefABCDEF"),
                   c)
        return f"invalid character {_quote_char(bad)} in \\u hexadecimal character escape"
    if msg.startswith("Invalid \\escape"):
        nxt = text[pos + 1] if pos + 1 < len(text) else c
        return f"invalid character {_quote_char(nxt)} in string escape code"
    return f"invalid character {_quote_char(c)} looking for beginning of value"


class Empty(Exception):
    """The body had no JSON value at all (Go's io.EOF)."""


def loads(data: bytes | str) -> Any:
    """One JSON value as Go's json.Decoder reads it from a request body, then
    dockerd's "unexpected content after JSON" check.  Raises BadRequest with
    Go's words, or Empty for a body that is empty or all white space."""
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    i = 0
    while i < len(text) and text[i] in _WS:
        i += 1
    if i == len(text):
        raise Empty()
    try:
        value, end = _DECODER.raw_decode(text, i)
    except json.JSONDecodeError as e:
        raise BadRequest("invalid JSON: " + _syntax_message(text, e)) from None
    except ValueError as e:  # NaN, Infinity: not JSON for Go
        if str(e).startswith("-"):
            raise BadRequest("invalid JSON: invalid character 'I' in numeric literal") from None
        raise BadRequest(f"invalid JSON: invalid character {_quote_char(str(e)[:1] or '?')} "
                         "looking for beginning of value") from None
    except RecursionError:
        raise BadRequest("invalid JSON: exceeded max depth") from None
    rest = end
    while rest < len(text) and text[rest] in _WS:
        rest += 1
    if rest < len(text):
        if not isinstance(value, (dict, list)) and rest == end:
            raise BadRequest(f"invalid JSON: invalid character {_quote_char(text[rest])} after "
                             "top-level value")
        if text[rest] not in "]}":
            raise BadRequest("unexpected content after JSON")
    return value


def decode_value(value: Any, typ: GoType) -> Any:
    """A parsed JSON value decoded into ``typ``; BadRequest("invalid JSON:
    json: cannot unmarshal ...") on the first type error, as Go reports it."""
    st = _State()
    try:
        out = typ.null() if value is None else typ.decode(value, st)
    except _Fatal as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    if st.saved is not None:
        raise BadRequest(f"invalid JSON: {st.saved}")
    return out


def _check_content_type(req: Any) -> None:
    """httputils.CheckForJSON, leniently: a body sent with another media type
    is refused as dockerd refuses it; one sent with none is read as JSON."""
    ct = (req.headers.get("content-type") or "").strip()
    if not ct:
        return
    media = ct.split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise BadRequest(f"unsupported Content-Type header ({ct}): must be 'application/json'")


def read_json(req: Any, typ: GoType) -> dict:
    """httputils.ReadJSON: a body of type ``typ``; an empty body is the zero
    value ({}), as for dockerd (Content-Length 0)."""
    data = req.body()
    if not data:
        return {}
    _check_content_type(req)
    try:
        value = loads(data)
    except Empty:
        raise BadRequest("invalid JSON: got EOF while reading request body") from None
    out = decode_value(value, typ)
    return {} if out is None or out is OMIT else out


def read_create(req: Any) -> dict:
    """POST /containers/create: a container.CreateRequest (Config fields at the
    top, HostConfig, NetworkingConfig), as runconfig.decodeContainerConfig."""
    data = req.body()
    if data:
        _check_content_type(req)
    try:
        value = loads(data)
    except Empty:
        raise BadRequest("invalid JSON: got EOF while reading request body") from None
    out = decode_value(value, CREATE_WRAPPER)
    if out is None or out is OMIT:
        raise BadRequest("config cannot be empty in order to create a container")
    return _host_config_of(out)


def _host_config_of(wrapper: dict[str, Any]) -> dict[str, Any]:
    """runconfig's getHostConfig (docker 20.10 to 26): the HostConfig fields
    found at the top level of a create body are the HostConfig when the body
    has none; next to a HostConfig, only Memory, MemorySwap, CpuShares,
    CpusetCpus and VolumeDriver are taken from the top, and only where the
    HostConfig leaves them unset; the top-level Cpuset fills an unset
    CpusetCpus.  -> the create request (Config fields, HostConfig,
    NetworkingConfig)."""
    out = {k: v for k, v in wrapper.items() if k not in HOST_CONFIG.fields and k != "Cpuset"}
    top = {k: v for k, v in wrapper.items() if k in HOST_CONFIG.fields}
    inner = wrapper.get("HostConfig")
    hc: dict[str, Any] | None
    if inner is None:
        hc = top or None
    else:
        hc = dict(inner)
        for key in _TOP_LEVEL_MERGED:
            if top.get(key) and not hc.get(key):
                hc[key] = top[key]
    if hc is not None and wrapper.get("Cpuset") and not hc.get("CpusetCpus"):
        hc["CpusetCpus"] = wrapper["Cpuset"]
    if hc is not None:
        out["HostConfig"] = hc
    else:
        out.pop("HostConfig", None)
    return out


def read_commit_config(req: Any) -> dict:
    """POST /commit: the body is read as a create request (dockerd's
    DecodeConfig); an empty one is no config."""
    data = req.body()
    if data:
        _check_content_type(req)
    try:
        value = loads(data)
    except Empty:
        return {}
    out = decode_value(value, CREATE_REQUEST)
    if not out or out is OMIT:
        return {}
    return {k: v for k, v in out.items() if k not in ("HostConfig", "NetworkingConfig")}


# -- query values -----------------------------------------------------------------------------
def atoi(req: Any, name: str) -> int | None:
    """strconv.Atoi of a query value (stop/restart ``t``, list ``limit``);
    None when absent or empty.  dockerd answers a bad one with Go's error text
    (as a 500; a client mistake is a 400 here)."""
    raw = req.arg(name)
    if raw is None or raw == "":
        return None
    text = raw[1:] if raw[:1] in "+-" else raw
    if not text or not text.isascii() or not text.isdigit():
        raise BadRequest(f'strconv.Atoi: parsing "{raw}": invalid syntax')
    value = int(raw)
    if not -(1 << 63) <= value < (1 << 63):
        raise BadRequest(f'strconv.Atoi: parsing "{raw}": value out of range')
    return value


def uint32_arg(req: Any, name: str, what: str) -> int:
    """httputils.Uint32Value (resize h and w): required, 0..2^32-1."""
    raw = req.arg(name) or ""
    text = raw[1:] if raw.startswith("-") else raw
    if not text or not text.isascii() or not text.isdigit():
        raise BadRequest(f'invalid resize {what} "{raw}": invalid syntax')
    if raw.startswith("-") or int(text) >= 1 << 32:
        raise BadRequest(f'invalid resize {what} "{raw}": value out of range')
    return int(text)


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """filters.FromJSON: {"key": {"value": true}} or the legacy
    {"key": ["value"]}; anything else is docker's 400 "invalid filter"."""
    if not raw:
        return {}
    try:
        data = loads(raw)
    except (BadRequest, Empty):
        raise BadRequest("invalid filter") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("invalid filter")
    modern = all(v is None or (isinstance(v, dict) and
                               all(isinstance(b, bool) or b is None for b in v.values()))
                 for v in data.values())
    if modern:
        return {_clean_str(k): [_clean_str(x) for x in (v or {})] for k, v in data.items()}
    legacy = all(v is None or (isinstance(v, list) and
                               all(isinstance(x, str) or x is None for x in v))
                 for v in data.values())
    if legacy:
        return {_clean_str(k): list(dict.fromkeys(_clean_str(x) for x in (v or ())
                                                  if x is not None))
                for k, v in data.items()}
    raise BadRequest("invalid filter")


def check_filters(filters: dict[str, list[str]], accepted: Callable[[str], bool] | set) -> None:
    """Args.Validate: a filter key the endpoint does not know is a 400."""
    for key in filters:
        ok = accepted(key) if callable(accepted) else key in accepted
        if not ok:
            raise BadRequest(f"invalid filter '{key}'")
