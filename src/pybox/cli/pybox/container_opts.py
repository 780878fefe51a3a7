"""``create``/``run`` flags -> the Docker API's container create body.

The body is built the way the docker CLI (28) builds it, field for field and in
the same order (Go struct order), so a daemon sees the same request from
``pybox run`` as from ``docker run``: every Config and HostConfig field present,
zero values where docker sends zeros (``MemorySwappiness: -1``, ``Dns: []``,
``PidsLimit: 0``...), ``null`` where docker sends null.  Units: sizes in bytes
(``-m 64m`` -> ``Memory: 67108864``), ``--cpus`` as ``NanoCpus``, durations in
nanoseconds (healthchecks), capabilities as ``CAP_NAME``.  The integration test
(tests/clients) checks this against the real docker CLI's body through a
logging proxy.
"""

from __future__ import annotations

import os

from pybox.cli.pybox.client import version_tuple
from pybox.cli.pybox.units import mem_swap_bytes, nano_cpus
from pybox.errors import FlagError
from pybox.formats import fastjson
from pybox.formats.durations import go_duration
from pybox.formats.sizes import ram_in_bytes

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from pybox.cli.pybox.flags import FlagSet, Options

NON_USER_NETWORKS = ("default", "bridge", "host", "none")
VALID_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                 "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def add_create_flags(fs: FlagSet) -> None:
    """The flags create and run share (docker's containerOptions)."""
    a = fs.add
    # identity and process
    a("name", metavar="string", help="Assign a name to the container")
    a("interactive", "i", "bool", help="Keep STDIN open even if not attached")
    a("tty", "t", "bool", help="Allocate a pseudo-TTY")
    a("attach", "a", "list", convert=_attach_value, help="Attach to STDIN, STDOUT or STDERR")
    a("rm", kind="bool", help="Automatically remove the container and its associated "
                              "anonymous volumes when it exits")
    a("env", "e", "list", help="Set environment variables")
    a("env-file", kind="list", help="Read in a file of environment variables")
    a("workdir", "w", help="Working directory inside the container")
    a("user", "u", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("hostname", "h", help="Container host name")
    a("domainname", help="Container NIS domain name")
    a("entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("label", "l", "list", help="Set meta data on a container")
    a("label-file", kind="list", help="Read in a line delimited file of labels")
    a("stop-signal", help="Signal to stop the container")
    a("stop-timeout", kind="int", help="Timeout (in seconds) to stop a container")
    a("cidfile", help="Write the container ID to the file")
    a("platform", help="Set platform if server is multi-platform capable")
    a("pull", default="missing", help='Pull image before running ("always", "missing", '
                                      '"never")')
    a("quiet", "q", "bool", help="Suppress the pull output")
    a("runtime", help="Runtime to use for this container")
    a("init", kind="bool", help="Run an init inside the container that forwards signals "
                                "and reaps processes")
    a("log-driver", help="Logging driver for the container")
    a("log-opt", kind="list", help="Log driver options")
    a("proc-view", kind="bool", default=True,
      help="pybox: show the container its limits in /proc/meminfo, cpuinfo, stat, "
           "uptime... (--proc-view=false: the host's files; sent as the label "
           "org.pybox.proc-view=false)")
    # resources
    a("memory", "m", convert=ram_in_bytes, default=0, metavar="bytes", help="Memory limit")
    a("memory-swap", convert=mem_swap_bytes, default=0, metavar="bytes",
      help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("memory-reservation", convert=ram_in_bytes, default=0, metavar="bytes",
      help="Memory soft limit")
    a("memory-swappiness", kind="int", default=-1, help="Tune container memory swappiness "
                                                         "(0 to 100)")
    a("oom-kill-disable", kind="bool", help="Disable OOM Killer")
    a("oom-score-adj", kind="int", help="Tune host's OOM preferences (-1000 to 1000)")
    a("cpu-shares", "c", "int", help="CPU shares (relative weight)")
    a("cpus", convert=nano_cpus, default=0, metavar="decimal", help="Number of CPUs")
    a("cpu-period", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("cpu-quota", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("cpu-rt-period", kind="int", help="Limit CPU real-time period in microseconds")
    a("cpu-rt-runtime", kind="int", help="Limit CPU real-time runtime in microseconds")
    a("cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("pids-limit", kind="int", help="Tune container pids limit (set -1 for unlimited)")
    a("blkio-weight", kind="int", convert=_uint16, help="Block IO (relative weight), between "
                                                        "10 and 1000, or 0 to disable")
    a("blkio-weight-device", kind="list", convert=_weight_device,
      help="Block IO weight (relative device weight)")
    a("device-read-bps", kind="list", convert=_throttle_bps,
      help="Limit read rate (bytes per second) from a device")
    a("device-write-bps", kind="list", convert=_throttle_bps,
      help="Limit write rate (bytes per second) to a device")
    a("device-read-iops", kind="list", convert=_throttle_iops,
      help="Limit read rate (IO per second) from a device")
    a("device-write-iops", kind="list", convert=_throttle_iops,
      help="Limit write rate (IO per second) to a device")
    a("ulimit", kind="list", convert=parse_ulimit, help="Ulimit options")
    a("cgroup-parent", help="Optional parent cgroup for the container")
    a("cgroupns", help="Cgroup namespace to use (host|private)")
    a("shm-size", convert=ram_in_bytes, default=0, metavar="bytes", help="Size of /dev/shm")
    # storage
    a("volume", "v", "list", help="Bind mount a volume")
    a("mount", kind="list", convert=parse_mount, help="Attach a filesystem mount to the "
                                                      "container")
    a("tmpfs", kind="list", help="Mount a tmpfs directory")
    a("read-only", kind="bool", help="Mount the container's root filesystem as read only")
    a("volumes-from", kind="list", help="Mount volumes from the specified container(s)")
    a("volume-driver", help="Optional volume driver for the container")
    a("storage-opt", kind="list", help="Storage driver options for the container")
    # lifecycle
    a("restart", default="no", help="Restart policy to apply when a container exits")
    a("health-cmd", help="Command to run to check health")
    a("health-interval", convert=go_duration, default=0, metavar="duration",
      help="Time between running the check (ms|s|m|h) (default 0s)")
    a("health-timeout", convert=go_duration, default=0, metavar="duration",
      help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    a("health-start-period", convert=go_duration, default=0, metavar="duration",
      help="Start period for the container to initialize before starting health-retries "
           "countdown (ms|s|m|h) (default 0s)")
    a("health-start-interval", convert=go_duration, default=0, metavar="duration",
      help="Time between running the check during the start period (ms|s|m|h)")
    a("health-retries", kind="int", help="Consecutive failures needed to report unhealthy")
    a("no-healthcheck", kind="bool", help="Disable any container-specified HEALTHCHECK")
    # security and devices
    a("cap-add", kind="list", help="Add Linux capabilities")
    a("cap-drop", kind="list", help="Drop Linux capabilities")
    a("security-opt", kind="list", help="Security Options")
    a("privileged", kind="bool", help="Give extended privileges to this container")
    a("device", kind="list", help="Add a host device to the container")
    a("device-cgroup-rule", kind="list", help="Add a rule to the cgroup allowed devices list")
    a("ipc", help="IPC mode to use")
    a("pid", help="PID namespace to use")
    a("uts", help="UTS namespace to use")
    a("userns", help="User namespace to use")
    a("group-add", kind="list", help="Add additional groups to join")
    a("sysctl", kind="list", help="Sysctl options")
    a("isolation", help="Container isolation technology")
    # network
    a("network", kind="list", help="Connect a container to a network")
    a("net", kind="list", hidden=True)
    a("network-alias", kind="list", help="Add network-scoped alias for the container")
    a("net-alias", kind="list", hidden=True)
    a("ip", help="IPv4 address (e.g., 172.30.100.104)")
    a("ip6", help="IPv6 address (e.g., 2001:db8::33)")
    a("mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("link", kind="list", help="Add link to another container")
    a("publish", "p", "list", help="Publish a container's port(s) to the host")
    a("publish-all", "P", "bool", help="Publish all exposed ports to random ports")
    a("expose", kind="list", help="Expose a port or a range of ports")
    a("dns", kind="list", help="Set custom DNS servers")
    a("dns-search", kind="list", help="Set custom DNS search domains")
    a("dns-option", kind="list", help="Set DNS options")
    a("dns-opt", kind="list", hidden=True)
    a("add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)")


# -- value parsers (flag converters raise ValueError with docker's wording) -----
def _attach_value(value: str) -> str:
    low = value.lower()
    if low not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return low


def _uint16(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{value}": value out of range')
    return value


def _split_device(value: str, what: str) -> tuple[str, str]:
    path, sep, rest = value.rpartition(":")
    if not sep or not path:
        raise ValueError(f"bad format: {value}")
    if not path.startswith("/dev/"):
        raise ValueError(f"bad format for device path: {value}")
    return path, rest


def _throttle_bps(value: str) -> dict[str, Any]:
    path, text = _split_device(value, "rate")
    try:
        rate = ram_in_bytes(text)
    except ValueError:
        raise ValueError(f"invalid rate for device: {value}. The correct format is "
                         "<device-path>:<number>[<unit>]. Number must be a positive "
                         "integer. Unit is optional and can be kb, mb, or gb") from None
    return {"Path": path, "Rate": rate}


def _throttle_iops(value: str) -> dict[str, Any]:
    path, rate = _split_device(value, "rate")
    if not rate.isdigit():
        raise ValueError(f"invalid rate for device: {value}. The correct format is "
                         "<device-path>:<number>. Number must be a positive integer")
    return {"Path": path, "Rate": int(rate)}


def _weight_device(value: str) -> dict[str, Any]:
    path, weight = _split_device(value, "weight")
    if not weight.isdigit() or not (int(weight) == 0 or 10 <= int(weight) <= 1000):
        raise ValueError(f"invalid weight for device: {value}")
    return {"Path": path, "Weight": int(weight)}


def parse_ulimit(value: str) -> dict[str, Any]:
    """``nofile=1024[:2048]`` -> {"Name", "Hard", "Soft"} (go-units ParseUlimit)."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise ValueError(f"invalid ulimit argument: {value}")
    if name not in VALID_ULIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    soft_text, colon, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        raise ValueError(f"invalid ulimit argument: {value}") from None
    if colon and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def _bool_option(key: str, value: str) -> bool:
    if value == "":
        return True
    low = value.lower()
    if low in ("1", "t", "true", "yes"):
        return True
    if low in ("0", "f", "false", "no"):
        return False
    raise ValueError(f'invalid value for {key}: {value}')


def parse_mount(value: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` -> a HostConfig.Mounts
    entry, as docker's MountOpt builds it (omitted fields stay omitted)."""
    mount: dict[str, Any] = {}
    fields: dict[str, str] = {}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    mount_type = "volume"
    for part in _csv_fields(value):
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        fields[key] = val
        if key == "type":
            mount_type = val
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool_option(key, val if eq else "")
        elif key == "consistency":
            mount["Consistency"] = val
        elif key == "bind-propagation":
            bind["Propagation"] = val
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool_option(key, val if eq else "")
        elif key == "bind-create-mountpoint":
            bind["CreateMountpoint"] = _bool_option(key, val if eq else "")
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool_option(key, val if eq else "")
        elif key == "volume-label":
            k, _, v = val.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-opt":
            k, _, v = val.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            volume["Subpath"] = val
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_in_bytes(val)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(val, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{part}'")
    if mount_type not in ("bind", "volume", "tmpfs", "npipe", "cluster", "image"):
        raise ValueError(f"invalid mount type: {mount_type}" if mount_type else
                         "type is required")
    if "Target" not in mount:
        raise ValueError("target is required")
    if bind and mount_type != "bind":
        raise ValueError(f"cannot mix 'bind-*' options with mount type '{mount_type}'")
    if volume and mount_type != "volume":
        raise ValueError(f"cannot mix 'volume-*' options with mount type '{mount_type}'")
    if tmpfs and mount_type != "tmpfs":
        raise ValueError(f"cannot mix 'tmpfs-*' options with mount type '{mount_type}'")
    out: dict[str, Any] = {"Type": mount_type}
    for key in ("Source", "Target", "ReadOnly", "Consistency"):
        if mount.get(key):
            out[key] = mount[key]
    if bind:
        out["BindOptions"] = bind
    if volume:
        out["VolumeOptions"] = volume
    if tmpfs:
        out["TmpfsOptions"] = tmpfs
    return out


def _csv_fields(value: str) -> list[str]:
    """encoding/csv for one line: commas separate, double quotes protect."""
    fields: list[str] = []
    cur: list[str] = []
    quoted, i = False, 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == '"' and value[i + 1:i + 2] == '"':
                cur.append('"')
                i += 1
            elif c == '"':
                quoted = False
            else:
                cur.append(c)
        elif c == '"':
            quoted = True
        elif c == ",":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return [f for f in fields if f != ""]


def parse_env_file(path: str, environ: Mapping[str, str]) -> list[str]:
    """docker's env-file: ``NAME=value`` verbatim, bare ``NAME`` taken from the
    CLI's environment (dropped when unset), ``#`` comments and blank lines."""
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise FlagError(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    for raw in text.split("\n"):
        line = raw.lstrip()
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not name:
            raise FlagError(f"no variable name on line '{line}'")
        if any(c.isspace() for c in name):
            raise FlagError(f"variable '{name}' contains whitespaces")
        if eq:
            out.append(f"{name}={value}")
        elif name.strip() in environ:
            out.append(f"{name.strip()}={environ[name.strip()]}")
    return out


def parse_label_file(path: str) -> list[str]:
    """docker's label file: the env-file rules without the environment, so a
    line without ``=`` is dropped."""
    return parse_env_file(path, {})


def env_value(item: str, environ: Mapping[str, str]) -> str:
    """``-e NAME=v`` verbatim; ``-e NAME`` becomes NAME=value when the CLI's
    environment has it, else the bare name (docker's ValidateEnv)."""
    name, eq, _ = item.partition("=")
    if not name:
        raise FlagError(f"invalid environment variable: {item}")
    if eq:
        return item
    if item in environ:
        return f"{item}={environ[item]}"
    return item


def parse_device(value: str) -> dict[str, str]:
    """``/dev/sda[:/dev/xvda][:rwm]`` -> a DeviceMapping."""
    parts = value.split(":")
    permissions = "rwm"
    dst = ""
    if len(parts) > 3 or not parts[0]:
        raise FlagError(f"invalid device specification: {value}")
    if len(parts) == 3:
        permissions = parts[2]
        if not _valid_device_mode(permissions):
            raise FlagError(f"invalid device mode: {permissions}")
        dst = parts[1]
    elif len(parts) == 2:
        if _valid_device_mode(parts[1]):
            permissions = parts[1]
        else:
            dst = parts[1]
    src = parts[0]
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": permissions}


def _valid_device_mode(mode: str) -> bool:
    return bool(mode) and all(c in "rwm" for c in mode) and len(set(mode)) == len(mode)


def parse_restart(value: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``."""
    name, colon, count = value.partition(":")
    if colon and name != "on-failure":
        raise FlagError("maximum retry count can only be used with 'on-failure'")
    retries = 0
    if colon:
        try:
            retries = int(count)
        except ValueError:
            raise FlagError(f"invalid restart policy format: maximum retry count must be an "
                            f"integer: {value}") from None
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise FlagError(f"invalid restart policy format: unknown policy '{name}'; use one of "
                        "'no', 'always', 'on-failure', or 'unless-stopped'")
    return {"Name": name, "MaximumRetryCount": retries}


def parse_port_specs(specs: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """docker's -p syntax -> (ExposedPorts, PortBindings), both sorted by key.
    ``[ip:][hostPort:]containerPort[/proto]``, ranges ``8000-8010:80-90``, IPv6
    in brackets, and the long form ``target=80,published=8080,protocol=udp``."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        if "=" in spec:
            spec = _long_port_syntax(spec)
        raw, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise FlagError(f"invalid proto: {proto}")
        ip, host_port, container_port = "", "", raw
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise FlagError(f"invalid IP address: {raw}")
            ip = raw[1:end]
            rest = raw[end + 1:].lstrip(":")
            host_port, _, container_port = rest.rpartition(":")
        else:
            parts = raw.split(":")
            if len(parts) == 1:
                container_port = parts[0]
            elif len(parts) == 2:
                host_port, container_port = parts
            elif len(parts) == 3:
                ip, host_port, container_port = parts
            else:
                ip = ":".join(parts[:-2])
                host_port, container_port = parts[-2], parts[-1]
        if not container_port:
            raise FlagError(f"no port specified: {spec}<empty>")
        start, end = _port_range(container_port, spec)
        if host_port:
            hstart, hend = _port_range(host_port, spec)
            if hend - hstart != end - start and end != start:
                raise FlagError(f"invalid ranges specified for container and host Ports: "
                                f"{container_port} and {host_port}")
        for k in range(end - start + 1):
            key = f"{start + k}/{proto}"
            if not host_port:
                hp = ""
            elif end == start:
                hp = host_port
            else:
                hp = str(hstart + k)
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    return ({k: exposed[k] for k in sorted(exposed)},
            {k: bindings[k] for k in sorted(bindings)})


def _long_port_syntax(spec: str) -> str:
    fields = dict(part.partition("=")[::2] for part in spec.split(","))
    target = fields.get("target")
    if not target:
        raise FlagError("missing mandatory field \"target\"")
    published = fields.get("published", "")
    proto = fields.get("protocol", "tcp")
    host_ip = fields.get("host_ip", "")
    prefix = f"{host_ip}:" if host_ip else ""
    return f"{prefix}{published}:{target}/{proto}" if published or host_ip else \
        f"{target}/{proto}"


def _port_range(text: str, spec: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        start = int(lo)
        end = int(hi) if dash else start
    except ValueError:
        raise FlagError(f"invalid containerPort: {text}" if text else
                        f"invalid port specification: {spec}") from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise FlagError(f"invalid port range: {text}")
    return start, end


def normalize_caps(caps: list[str]) -> list[str] | None:
    """``net_admin`` -> ``CAP_NET_ADMIN``; ``ALL`` alone wins; sorted, unique."""
    out = []
    for cap in caps:
        cap = cap.upper()
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap not in out:
            out.append(cap)
    if "ALL" in out:
        return ["ALL"]
    return sorted(out) or None


def parse_security_opts(opts: list[str]) -> tuple[list[str] | None, list[str] | None,
                                                  list[str] | None]:
    """seccomp=FILE is read and sent inline (compacted JSON), as docker does;
    ``systempaths=unconfined`` becomes empty MaskedPaths/ReadonlyPaths."""
    out = []
    masked: list[str] | None = None
    readonly: list[str] | None = None
    for opt in opts:
        if opt == "systempaths=unconfined":
            masked, readonly = [], []
            continue
        key, eq, value = opt.partition("=")
        if not eq:
            key, eq, value = opt.partition(":")
        if not eq:
            if opt == "no-new-privileges":
                out.append(opt)
                continue
            raise FlagError(f"Invalid --security-opt: {opt!r}")
        if key == "seccomp" and value != "unconfined" and value != "builtin":
            try:
                with open(value, "rb") as f:
                    raw = f.read()
            except OSError as err:
                raise FlagError(f"opening seccomp profile ({value}) failed: open {value}: "
                                f"{(err.strerror or str(err)).lower()}") from None
            try:
                value = fastjson.dumps(fastjson.loads(raw))
            except ValueError as err:
                raise FlagError(f"compacting json for seccomp profile ({value}) failed: "
                                f"{err}") from None
            out.append(f"seccomp={value}")
            continue
        out.append(opt)
    return (out or None), masked, readonly


def _check_mode(value: str, flag: str, allowed_prefixes: Sequence[str],
                allowed: Sequence[str]) -> str:
    if value in allowed:
        return value
    for prefix in allowed_prefixes:
        if value.startswith(prefix) and len(value) > len(prefix):
            return value
    raise FlagError(f"--{flag}: invalid {flag.upper()} mode" if flag != "userns"
                    else "--userns: invalid USER mode")


def _endpoint(ipv4: str = "", ipv6: str = "", aliases: list[str] | None = None,
              links: list[str] | None = None, mac: str = "") -> dict[str, Any]:
    ipam: dict[str, str] | None = None
    if ipv4 or ipv6:
        ipam = {}
        if ipv4:
            ipam["IPv4Address"] = ipv4
        if ipv6:
            ipam["IPv6Address"] = ipv6
    return {"IPAMConfig": ipam, "Links": links or None, "Aliases": aliases or None,
            "MacAddress": mac, "DriverOpts": None, "GwPriority": 0, "NetworkID": "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None}


def build_create_body(opts: Options, api_version: str = "1.44",
                      environ: Mapping[str, str] | None = None,
                      console_size: tuple[int, int] | None = None,
                      detach: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (query for /containers/create, JSON body).

    ``opts``: the parsed flags; ``opts.args`` = [IMAGE, COMMAND...].
    ``console_size``: (h, w) of the CLI's terminal for ``run -t`` (docker sends it
    as HostConfig.ConsoleSize), else [0, 0].  ``detach``: run -d (no attach)."""
    environ = os.environ if environ is None else environ
    image, command = opts.args[0], list(opts.args[1:])
    attach = list(opts.attach)
    if detach and attach:
        raise FlagError("Conflicting options: -a and -d")
    attach_stdin = "stdin" in attach or opts.interactive
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    if detach:
        attach_stdin = attach_stdout = attach_stderr = False
    if opts.memory_swappiness != -1 and not 0 <= opts.memory_swappiness <= 100:
        raise FlagError(f"invalid value: {opts.memory_swappiness}. Valid memory swappiness "
                        "range is 0-100")
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise FlagError(f"invalid value {opts.oom_score_adj}, range for oom score adj is "
                        "[-1000, 1000]")
    # volumes: a bind (source:target) goes to Binds, a bare path is anonymous
    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for spec in opts.volume:
        parts = spec.split(":")
        if len(parts) == 1:
            volumes[spec] = {}
        elif not parts[0]:
            raise FlagError(f"invalid spec: {spec}: empty section between colons")
        else:
            binds.append(spec)
    tmpfs = {}
    for spec in opts.tmpfs:
        target, _, options = spec.partition(":")
        tmpfs[target] = options
    entrypoint = None
    if opts.entrypoint:
        entrypoint = [opts.entrypoint]
    elif opts.given("entrypoint"):
        entrypoint = [""]
    exposed, port_bindings = parse_port_specs(opts.publish)
    for spec in opts.expose:
        if ":" in spec:
            raise FlagError(f"invalid port format for --expose: {spec}")
        port, _, proto = spec.partition("/")
        start, end = _port_range(port, spec)
        for p in range(start, end + 1):
            exposed.setdefault(f"{p}/{proto or 'tcp'}", {})
    exposed = {k: exposed[k] for k in sorted(exposed)}
    devices = [parse_device(d) for d in opts.device]
    env = []
    for path in opts.env_file:
        env.extend(parse_env_file(path, environ))
    env.extend(env_value(e, environ) for e in opts.env)
    labels = {}
    for path in opts.label_file:
        for item in parse_label_file(path):
            k, _, v = item.partition("=")
            labels[k] = v
    for item in opts.label:
        k, _, v = item.partition("=")
        labels[k] = v
    if not opts.proc_view:
        labels["org.pybox.proc-view"] = "false"  # pybox.procview.LABEL
    pid_mode = _check_mode(opts.pid, "pid", ("container:",), ("", "host"))
    uts_mode = _check_mode(opts.uts, "uts", (), ("", "host"))
    userns_mode = _check_mode(opts.userns, "userns", (), ("", "host"))
    if opts.cgroupns not in ("", "host", "private"):
        raise FlagError("--cgroupns: invalid CGROUP mode")
    if opts.ipc not in ("", "none", "private", "shareable", "host") and \
            not opts.ipc.startswith("container:"):
        raise FlagError("--ipc: invalid IPC mode")
    restart = parse_restart(opts.restart)
    log_config = {"Type": opts.log_driver, "Config": {}}
    for item in opts.log_opt:
        k, eq, v = item.partition("=")
        if not eq:
            raise FlagError(f"invalid key-value pair format in log-opt: {item}")
        log_config["Config"][k] = v
    if opts.log_driver == "none" and opts.log_opt:
        raise FlagError("invalid logging opts for driver none")
    security_opt, masked_paths, readonly_paths = parse_security_opts(opts.security_opt)
    storage_opt = {}
    for item in opts.storage_opt:
        k, eq, v = item.partition("=")
        if not eq:
            raise FlagError("invalid storage option")
        storage_opt[k] = v
    # healthcheck
    health = None
    have_health = (opts.health_cmd or opts.health_interval or opts.health_timeout
                   or opts.health_start_period or opts.health_retries
                   or opts.health_start_interval)
    if opts.no_healthcheck:
        if have_health:
            raise FlagError("--no-healthcheck conflicts with --health-* options")
        health = {"Test": ["NONE"]}
    elif have_health:
        for name in ("interval", "timeout", "start_period", "start_interval", "retries"):
            if getattr(opts, "health_" + name) < 0:
                raise FlagError(f"--health-{name.replace('_', '-')} cannot be negative")
        health = {}
        if opts.health_cmd:
            health["Test"] = ["CMD-SHELL", opts.health_cmd]
        for key, value in (("Interval", opts.health_interval), ("Timeout", opts.health_timeout),
                           ("StartPeriod", opts.health_start_period),
                           ("StartInterval", opts.health_start_interval),
                           ("Retries", opts.health_retries)):
            if value:
                health[key] = value
    sysctls = {}
    for item in opts.sysctl:
        k, eq, v = item.partition("=")
        if not eq:
            raise FlagError(f"invalid argument \"{item}\" for \"--sysctl\" flag: sysctl "
                            f"'{item}' is not allowed")
        sysctls[k] = v
    extra_hosts = []
    for item in opts.add_host:
        host, sep, ip = item.partition("=")
        if not sep:
            host, sep, ip = item.partition(":")
        if not sep or not host or not ip:
            raise FlagError(f"invalid argument \"{item}\" for \"--add-host\" flag: bad "
                            f"format for add-host: \"{item}\"")
        extra_hosts.append(f"{host}:{ip}")
    cap_add = normalize_caps(opts.cap_add)
    cap_drop = normalize_caps(opts.cap_drop)
    if cap_add and cap_drop and cap_add != ["ALL"]:
        cap_drop = [c for c in cap_drop if c not in cap_add] or None
    # networks
    networks = list(opts.network) + list(opts.net)
    aliases = list(opts.network_alias) + list(opts.net_alias)
    network_mode = networks[0] if networks else "default"
    new_mac_api = version_tuple(api_version) >= (1, 44)
    endpoint_options = bool(aliases or opts.ip or opts.ip6 or opts.link
                            or (opts.mac_address and new_mac_api))
    endpoints = {}
    if aliases and network_mode in NON_USER_NETWORKS or \
            (aliases and network_mode.startswith("container:")):
        raise FlagError("network-scoped aliases are only supported for user-defined networks")
    target_networks = networks or ["default"]
    for index, name in enumerate(target_networks):
        if index == 0:
            if endpoint_options:
                endpoints[name] = _endpoint(opts.ip, opts.ip6, aliases, None,
                                            opts.mac_address if new_mac_api else "")
            elif not networks:
                endpoints[name] = _endpoint()
        else:
            endpoints[name] = _endpoint()
    if len(networks) > 1 and any(n in NON_USER_NETWORKS for n in networks):
        raise FlagError("conflicting options: cannot attach both user-defined and "
                        "non-user-defined network-modes")
    if opts.rm and restart["Name"] not in ("", "no"):
        raise FlagError("conflicting options: cannot specify both --restart and --rm")

    config = {
        "Hostname": opts.hostname, "Domainname": opts.domainname, "User": opts.user,
        "AttachStdin": attach_stdin, "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    config.update({"Tty": opts.tty, "OpenStdin": opts.interactive,
                   "StdinOnce": bool(opts.interactive and attach_stdin),
                   "Env": env or None, "Cmd": command or None})
    if health is not None:
        config["Healthcheck"] = health
    config["Image"] = image
    config["Volumes"] = volumes
    config["WorkingDir"] = opts.workdir
    config["Entrypoint"] = entrypoint
    if opts.mac_address and not new_mac_api:
        config["MacAddress"] = opts.mac_address
    config["OnBuild"] = None
    config["Labels"] = labels
    if opts.given("stop-signal"):
        config["StopSignal"] = opts.stop_signal
    if opts.given("stop-timeout"):
        config["StopTimeout"] = opts.stop_timeout

    host = {
        "Binds": binds or None, "ContainerIDFile": opts.cidfile, "LogConfig": log_config,
        "NetworkMode": network_mode, "PortBindings": port_bindings,
        "RestartPolicy": restart, "AutoRemove": opts.rm, "VolumeDriver": opts.volume_driver,
        "VolumesFrom": opts.volumes_from or None,
        "ConsoleSize": list(console_size) if console_size else [0, 0],
        "CapAdd": cap_add, "CapDrop": cap_drop, "CgroupnsMode": opts.cgroupns,
        "Dns": list(opts.dns), "DnsOptions": list(opts.dns_option) + list(opts.dns_opt),
        "DnsSearch": list(opts.dns_search), "ExtraHosts": extra_hosts or None,
        "GroupAdd": opts.group_add or None, "IpcMode": opts.ipc, "Cgroup": "",
        "Links": opts.link or None, "OomScoreAdj": opts.oom_score_adj, "PidMode": pid_mode,
        "Privileged": opts.privileged, "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only, "SecurityOpt": security_opt,
    }
    if storage_opt:
        host["StorageOpt"] = storage_opt
    if tmpfs:
        host["Tmpfs"] = tmpfs
    host.update({"UTSMode": uts_mode, "UsernsMode": userns_mode, "ShmSize": opts.shm_size})
    if sysctls:
        host["Sysctls"] = sysctls
    if opts.runtime:
        host["Runtime"] = opts.runtime
    host.update({
        "Isolation": opts.isolation,
        "CpuShares": opts.cpu_shares, "Memory": opts.memory, "NanoCpus": opts.cpus,
        "CgroupParent": opts.cgroup_parent, "BlkioWeight": opts.blkio_weight,
        "BlkioWeightDevice": list(opts.blkio_weight_device),
        "BlkioDeviceReadBps": list(opts.device_read_bps),
        "BlkioDeviceWriteBps": list(opts.device_write_bps),
        "BlkioDeviceReadIOps": list(opts.device_read_iops),
        "BlkioDeviceWriteIOps": list(opts.device_write_iops),
        "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota,
        "CpuRealtimePeriod": opts.cpu_rt_period, "CpuRealtimeRuntime": opts.cpu_rt_runtime,
        "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems,
        "Devices": devices, "DeviceCgroupRules": opts.device_cgroup_rule or None,
        "DeviceRequests": None, "MemoryReservation": opts.memory_reservation,
        "MemorySwap": opts.memory_swap, "MemorySwappiness": opts.memory_swappiness,
        "OomKillDisable": opts.oom_kill_disable, "PidsLimit": opts.pids_limit,
        "Ulimits": _dedupe_ulimits(opts.ulimit), "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    })
    if opts.mount:
        host["Mounts"] = list(opts.mount)
    host["MaskedPaths"] = masked_paths
    host["ReadonlyPaths"] = readonly_paths
    if opts.given("init"):
        host["Init"] = opts.init
    body = dict(config)
    body["HostConfig"] = host
    body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    query = {"name": opts.name or None}
    if opts.platform:
        query["platform"] = opts.platform
    return query, body


def _dedupe_ulimits(ulimits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {}
    for u in ulimits:
        by_name[u["Name"]] = u
    return list(by_name.values())
