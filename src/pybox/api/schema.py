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
daemon's view of the machine.  Go's scanner words and typed decoding are
pybox.formats.gojson's (the engine's plugin configs use them too); this module
holds docker's types and the 400s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pybox.errors import BadRequest
from pybox.formats import gojson
from pybox.formats.gojson import (
    OMIT,
    AnyValue,
    Array,
    Bool,
    Empty,
    EmptyStruct,
    GoType,
    Int,
    Map,
    Ptr,
    Slice,
    Str,
    Struct,
    clean_str,
)


class StrSlice(GoType):
    """strslice.StrSlice: a string or a list of strings (its UnmarshalJSON
    tries []string, then string, and returns the second error)."""

    go = "strslice.StrSlice"
    nullable = True

    def decode(self, v: Any, st: gojson.DecodeState) -> Any:
        if isinstance(v, str):
            return [clean_str(v)]
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return [clean_str(x) for x in v]
        raise gojson.Fatal(st.message(gojson.kind_of(v), "string"))


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
    return gojson.render(value, typ)


# -- JSON text (Go's scanner and decoder: pybox.formats.gojson) -----------------------------
def loads(data: bytes | str) -> Any:
    """One JSON value as Go's json.Decoder reads it from a request body, then
    dockerd's "unexpected content after JSON" check.  Raises BadRequest with
    Go's words, or Empty for a body that is empty or all white space."""
    try:
        value, more = gojson.read_value(data)
    except Empty:
        raise
    except gojson.GoJSONError as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    if more:
        raise BadRequest("unexpected content after JSON")
    return value


def decode_value(value: Any, typ: GoType) -> Any:
    """A parsed JSON value decoded into ``typ``; BadRequest("invalid JSON:
    json: cannot unmarshal ...") on the first type error, as Go reports it."""
    try:
        return gojson.decode(value, typ)
    except gojson.GoJSONError as e:
        raise BadRequest(f"invalid JSON: {e}") from None


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
        return {clean_str(k): [clean_str(x) for x in (v or {})] for k, v in data.items()}
    legacy = all(v is None or (isinstance(v, list) and
                               all(isinstance(x, str) or x is None for x in v))
                 for v in data.values())
    if legacy:
        return {clean_str(k): list(dict.fromkeys(clean_str(x) for x in (v or ())
                                                  if x is not None))
                for k, v in data.items()}
    raise BadRequest("invalid filter")


def check_filters(filters: dict[str, list[str]], accepted: Callable[[str], bool] | set) -> None:
    """Args.Validate: a filter key the endpoint does not know is a 400."""
    for key in filters:
        ok = accepted(key) if callable(accepted) else key in accepted
        if not ok:
            raise BadRequest(f"invalid filter '{key}'")
