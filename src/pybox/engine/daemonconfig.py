"""pyboxd's configuration: its flags merged with daemon.json, as dockerd merges them.

One reading, in one place, of everything that configures the daemon as a whole
(pybox.cli.pyboxd parses the command line; the engine, the network and the API
listeners receive the typed ``DaemonConfig`` this module returns).  The file is
docker's daemon.json (``/etc/pybox/daemon.json`` by default, ``--config-file``
to name another), with dockerd's keys and dockerd's rules:

* every flag has a key of the same name, except the repeatable ones, whose key
  is a plural (``-H``/``hosts``, ``--dns-opt``/``dns-opts``, ``--log-opt``/
  ``log-opts``, ``--default-ulimit``/``default-ulimits``, ...);
* a key given both in the file and as a flag is an error, as is a key that
  matches no option ("the following directives ... " in dockerd's words): a
  typo in daemon.json must not leave the daemon running without the setting;
* a key dockerd knows and pyboxd does not implement is an error too (naming
  them), rather than a setting silently ignored;
* a missing file is an empty one, unless ``--config-file`` named it.

What the settings do, and where:

* ``log-driver``/``log-opts``: the LogConfig of a container created without
  one (``apply_log_defaults``, at create, as dockerd's
  mergeAndVerifyLogConfig: the default options join a container's own when
  it uses the default driver);
* ``default-address-pools``: the subnets of networks created without one
  (pybox.network.ipam.set_default_pools);
* ``dns``, ``dns-opts``, ``dns-search``: the containers' resolv.conf where the
  container sets none (pybox.network.etc.set_daemon_dns);
* ``default-ulimits``: joined to a container's own at each start
  (``merge_ulimits``, dockerd's mergeUlimits: the container's win);
* ``live-restore``: containers outlive pyboxd by default in pybox (their
  monitors keep them); ``"live-restore": false`` makes pyboxd stop its
  running containers when it shuts down, as dockerd does without live restore;
* ``hosts`` with ``tls``, ``tlsverify``, ``tlscacert``, ``tlscert``, ``tlskey``:
  the API listeners (pybox.api.listeners);
* ``cri-socket`` (pybox's own, not dockerd's): the Kubernetes CRI's socket
  (pybox.cri), EXEC_ROOT/cri.sock unless set ("" turns the CRI off), with
  ``cni-conf-dir``, ``cni-bin-dirs`` and ``pod-infra-container-image`` (a
  sandbox image instead of pybox's own pause);
* ``cri-registry-mirrors`` (pybox's own): the CRI's pulls' per-registry
  mirrors, as containerd's CRI plugin's ``registry.mirrors`` (pybox.cri.images);
* ``cri-stream-idle-timeout`` (pybox's own): how long a CRI streaming
  connection (exec, attach, port-forward) may stay idle before it is closed,
  a Go duration (containerd's ``stream_idle_timeout``: "4h"; "0": never).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pybox.engine.spec import ULIMITS
from pybox.errors import DaemonConfigError, RegistryError
from pybox.formats.durations import SECOND, go_duration
from pybox.images.registry_config import mirrors_by_registry
from pybox.locations import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT, DEFAULT_SOCKET
from pybox.network import etc, ipam

DEFAULT_CONFIG_FILE = "/etc/pybox/daemon.json"
DEFAULT_LOG_DRIVER = "json-file"
DEFAULT_TLS_PORT = 2376  # docker's: 2376 with TLS, 2375 without
DEFAULT_TCP_PORT = 2375

# dockerd's daemon.json keys pyboxd has no implementation of: refused by name
# (a setting silently ignored would leave the user believing it applies)
DOCKERD_ONLY_KEYS = frozenset((
    "allow-direct-routing", "authorization-plugins", "bip", "bip6", "bridge",
    "bridge-accept-fwmark", "cdi-spec-dirs", "cgroup-parent", "containerd",
    "containerd-namespace", "containerd-plugin-namespace", "cpu-rt-period", "cpu-rt-runtime",
    "cri-containerd", "default-cgroupns-mode", "default-gateway", "default-gateway-v6",
    "default-init", "default-ipc-mode", "default-network-opts", "default-runtime",
    "default-shm-size", "default-stop-timeout", "exec-opts", "experimental", "firewall-backend",
    "fixed-cidr", "fixed-cidr-v6", "host-gateway-ip", "host-gateway-ips", "http-proxy",
    "https-proxy", "icc", "init", "init-path", "ip", "ip-forward", "ip-forward-no-drop",
    "ip-masq", "ip6tables", "iptables", "ipv6", "labels", "log-format", "log-level",
    "metrics-addr", "mtu", "network-control-plane-mtu", "network-diagnostic-port",
    "no-new-privileges", "no-proxy", "node-generic-resources", "nri-opts", "proxies",
    "raw-logs", "resolv-conf", "rootless", "runtimes", "seccomp-profile", "selinux-enabled",
    "shutdown-timeout", "storage-driver", "storage-opts", "swarm-default-advertise-addr",
    "swarm-raft-election-tick", "swarm-raft-heartbeat-tick", "userland-proxy",
    "userland-proxy-path", "api-cors-header", "oom-score-adjust", "min-api-version",
))
# dockerd's deprecated keys it ignores when present (its skipValidateOptions)
IGNORED_KEYS = frozenset(("deprecated-key-path", "allow-nondistributable-artifacts"))
# keys of subsystems pybox has not (BuildKit, its builder's GC): accepted, with a
# warning at start, so a daemon.json written for dockerd (most set features.buildkit)
# still starts pyboxd, and says what it does not do
WARNED_KEYS = frozenset(("features", "builder"))


@dataclass(frozen=True)
class AddressPool:
    """One of default-address-pools: networks' subnets are cut from ``base``
    in /``size`` pieces."""

    base: str
    size: int


@dataclass(frozen=True)
class Ulimit:
    """One of default-ulimits (docker's units.Ulimit)."""

    name: str
    soft: int
    hard: int

    def as_docker(self) -> dict[str, Any]:
        """HostConfig.Ulimits' shape."""
        return {"Name": self.name, "Hard": self.hard, "Soft": self.soft}


def _default_cert_dir() -> str:
    """dockerd's default place for the TLS files: $DOCKER_CERT_PATH, else ~/.docker."""
    return os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")


@dataclass
class DaemonConfig:
    """What configures pyboxd, flags and file merged (see the module's docstring)."""

    hosts: list[str] = field(default_factory=list)
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    pidfile: str | None = None
    group: str | None = None
    debug: bool = False
    userns_remap: str = ""
    proc_view: bool = True
    log_driver: str = DEFAULT_LOG_DRIVER
    log_opts: dict[str, str] = field(default_factory=dict)
    default_address_pools: list[AddressPool] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    default_ulimits: dict[str, Ulimit] = field(default_factory=dict)
    live_restore: bool = True  # pybox's default: containers outlive the daemon
    tls: bool | None = None  # None: not set (dockerd's *bool)
    tlsverify: bool | None = None
    tlscacert: str = field(default_factory=lambda: os.path.join(_default_cert_dir(), "ca.pem"))
    tlscert: str = field(default_factory=lambda: os.path.join(_default_cert_dir(), "cert.pem"))
    tlskey: str = field(default_factory=lambda: os.path.join(_default_cert_dir(), "key.pem"))
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    max_concurrent_downloads: int | None = None
    max_concurrent_uploads: int | None = None
    max_download_attempts: int | None = None
    cri_socket: str | None = None  # None: EXEC_ROOT/cri.sock; "": no CRI server
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: list[str] = field(default_factory=list)  # []: /opt/cni/bin, /usr/lib/cni
    pod_infra_container_image: str = ""  # "": pybox's own pause
    # the CRI's pulls: registry host -> mirror URLs (containerd's registry.mirrors)
    cri_registry_mirrors: dict[str, list[str]] = field(default_factory=dict)
    # the CRI streaming server's idle connections closed after (containerd's
    # stream_idle_timeout, "4h0m0s"); 0: never
    cri_stream_idle_timeout: float = 4 * 3600.0
    config_file: str = DEFAULT_CONFIG_FILE
    warnings: list[str] = field(default_factory=list)  # to show at start

    @property
    def tls_enabled(self) -> bool:
        """TLS on the TCP listeners: --tls, or --tlsverify (set at all, as dockerd)."""
        return bool(self.tls) or self.tlsverify is not None

    @property
    def verify_clients(self) -> bool:
        """Clients must show a certificate the CA signed: --tlsverify, or --tls
        without --tlsverify=false (dockerd's default since 19.03)."""
        return self.tls_enabled and self.tlsverify is not False

    @property
    def cri_socket_path(self) -> str:
        """The CRI's socket ("" when off): beside the Docker API's default
        socket, in the exec root, so a private pyboxd never takes the
        system's /run/pybox/cri.sock."""
        if self.cri_socket is None:
            return os.path.join(self.exec_root, "cri.sock")
        return self.cri_socket.removeprefix("unix://")

    def log_config(self) -> dict[str, Any]:
        """The daemon's default LogConfig, in HostConfig's shape."""
        return {"Type": self.log_driver, "Config": dict(self.log_opts)}


# -- the values: JSON in, typed out ------------------------------------------------------------
def _go_value(value: Any) -> str:
    """A value as Go's %v prints it (dockerd's conflict message shows both)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _type_error(key: str, value: Any, want: str) -> DaemonConfigError:
    return DaemonConfigError(f"invalid value for {key}: {json.dumps(value)} (want {want})")


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _type_error(key, value, "a string")
    return value


def _duration(value: Any, key: str) -> float:
    """A Go duration ("4h", "30m", "1m30s"; "0" for none) -> seconds."""
    text = _string(value, key)
    try:
        ns = go_duration(text)
    except ValueError as e:
        raise DaemonConfigError(f"invalid value for {key}: {e}") from None
    if ns < 0:
        raise DaemonConfigError(f"invalid value for {key}: {text!r} is negative")
    return ns / SECOND


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, value, "true or false")
    return value


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise _type_error(key, value, "an integer")
    return int(value)


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _type_error(key, value, "a list of strings")
    return list(value)


def _string_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _type_error(key, value, "an object of strings")
    return dict(value)


def _dns(value: Any, key: str) -> list[str]:
    servers = _strings(value, key)
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise DaemonConfigError(f"{server} is not an ip address") from None
    return servers


def _pools(value: Any, key: str) -> list[AddressPool]:
    if not isinstance(value, list):
        raise _type_error(key, value, 'a list of {"base": CIDR, "size": N}')
    pools = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"base", "size"}:
            raise _type_error(key, entry, '{"base": CIDR, "size": N}')
        base = entry.get("base")
        size = entry.get("size")
        if not isinstance(base, str):
            raise DaemonConfigError(f"invalid default address pool {json.dumps(entry)}: "
                                    "missing base")
        try:
            net = ipaddress.ip_network(base)
        except ValueError as e:
            raise DaemonConfigError(f"invalid default address pool base {base}: {e}") from None
        if isinstance(size, bool) or not isinstance(size, int | float) or int(size) != size:
            raise DaemonConfigError(f"invalid default address pool {json.dumps(entry)}: "
                                    "missing or invalid size")
        if not net.prefixlen <= int(size) <= net.max_prefixlen:
            raise DaemonConfigError(f"invalid pools size: {int(size)} for base {base}")
        pools.append(AddressPool(str(net), int(size)))
    return pools


def _ulimits(value: Any, key: str) -> dict[str, Ulimit]:
    if not isinstance(value, dict):
        raise _type_error(key, value, 'an object {"NAME": {"Name": ..., "Soft": N, "Hard": N}}')
    out: dict[str, Ulimit] = {}
    for name, entry in value.items():
        if not isinstance(entry, dict):
            raise _type_error(f"{key}.{name}", entry, '{"Name": ..., "Soft": N, "Hard": N}')
        real = entry.get("Name", name)
        if real not in ULIMITS:
            raise DaemonConfigError(f"invalid ulimit type: {real}")
        soft = _integer(entry.get("Soft", 0), f"{key}.{name}.Soft")
        hard = _integer(entry.get("Hard", 0), f"{key}.{name}.Hard")
        if soft > hard:
            raise DaemonConfigError(f"ulimit soft limit must be less than or equal to hard "
                                    f"limit: {soft} > {hard}")
        out[real] = Ulimit(real, soft, hard)
    return out


def _mirror_map(value: Any, key: str) -> dict[str, list[str]]:
    """cri-registry-mirrors: {"registry.k8s.io": ["http://127.0.0.1:5000"], ...},
    hosts and URLs checked as the registry client will use them."""
    if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(isinstance(u, str) for u in v) for v in value.values()):
        raise _type_error(key, value, 'an object {"HOST": ["URL", ...]}')
    try:
        return mirrors_by_registry(value)
    except RegistryError as e:
        raise DaemonConfigError(f"invalid {key}: {e}") from None


# -- the flags' text, in the file's shape ------------------------------------------------------
def _key_values(texts: list[str], what: str) -> dict[str, str]:
    out = {}
    for text in texts:
        k, sep, v = text.partition("=")
        if not sep or not k:
            raise DaemonConfigError(f"invalid {what} {text!r}: must be KEY=VALUE")
        out[k] = v
    return out


def mirror_flags(texts: list[str]) -> dict[str, list[str]]:
    """--cri-registry-mirror HOST=URL (repeatable; a host's URLs in order)."""
    out: dict[str, list[str]] = {}
    for text in texts:
        host, sep, url = text.partition("=")
        if not sep or not host or not url:
            raise DaemonConfigError(f"invalid cri registry mirror {text!r}: must be HOST=URL")
        out.setdefault(host, []).append(url)
    return out


def pool_flags(texts: list[str]) -> list[dict[str, Any]]:
    """--default-address-pool base=CIDR,size=N (repeatable)."""
    out: list[dict[str, Any]] = []
    for text in texts:
        fields = _key_values(text.split(","), "default address pool")
        if set(fields) - {"base", "size"}:
            raise DaemonConfigError(f"invalid field in default address pool {text!r}")
        entry: dict[str, Any] = {"base": fields.get("base")}
        try:
            entry["size"] = int(fields.get("size", ""))
        except ValueError:
            raise DaemonConfigError(f"invalid default address pool {text!r}: size must be "
                                    "a number") from None
        out.append(entry)
    return out


def ulimit_flags(texts: list[str]) -> dict[str, dict[str, Any]]:
    """--default-ulimit NAME=SOFT[:HARD] (repeatable), docker's units.ParseUlimit."""
    out: dict[str, dict[str, Any]] = {}
    for text in texts:
        name, sep, limits = text.partition("=")
        if not sep:
            raise DaemonConfigError(f"invalid ulimit argument: {text}")
        soft, _, hard = limits.partition(":")
        try:
            out[name] = {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
        except ValueError:
            raise DaemonConfigError(f"invalid ulimit argument: {text}") from None
    return out


# -- the options -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One setting: its flag (without --), its daemon.json key, the DaemonConfig
    field it fills, how a JSON value becomes that field's value, and how the
    flag's argparse value becomes JSON (None: already is)."""

    flag: str
    key: str
    attr: str
    parse: Callable[[Any, str], Any]
    from_flag: Callable[[Any], Any] | None = None


def _opt(flag: str, parse: Callable[[Any, str], Any], key: str | None = None,
         from_flag: Callable[[Any], Any] | None = None) -> Option:
    return Option(flag, key or flag, (key or flag).replace("-", "_"), parse, from_flag)


OPTIONS = (
    Option("host", "hosts", "hosts", _strings),
    _opt("data-root", _string),
    _opt("exec-root", _string),
    _opt("pidfile", _string),
    _opt("group", _string),
    _opt("debug", _boolean),
    _opt("userns-remap", _string),
    Option("no-proc-view", "no-proc-view", "proc_view", lambda v, k: not _boolean(v, k)),
    _opt("log-driver", _string),
    _opt("log-opt", _string_map, "log-opts", lambda v: _key_values(v, "log-opt")),
    _opt("default-address-pool", _pools, "default-address-pools", pool_flags),
    _opt("dns", _dns),
    _opt("dns-opt", _strings, "dns-opts"),
    _opt("dns-search", _strings),
    _opt("default-ulimit", _ulimits, "default-ulimits", ulimit_flags),
    _opt("live-restore", _boolean),
    _opt("tls", _boolean),
    _opt("tlsverify", _boolean),
    _opt("tlscacert", _string),
    _opt("tlscert", _string),
    _opt("tlskey", _string),
    _opt("insecure-registry", _strings, "insecure-registries"),
    _opt("registry-mirror", _strings, "registry-mirrors"),
    _opt("max-concurrent-downloads", _integer),
    _opt("max-concurrent-uploads", _integer),
    _opt("max-download-attempts", _integer),
    _opt("cri-socket", _string),
    _opt("cni-conf-dir", _string),
    _opt("cni-bin-dir", _strings, "cni-bin-dirs"),
    _opt("pod-infra-container-image", _string),
    _opt("cri-registry-mirror", _mirror_map, "cri-registry-mirrors", mirror_flags),
    _opt("cri-stream-idle-timeout", _duration),
)
BY_FLAG = {o.flag: o for o in OPTIONS}
BY_KEY = {o.key: o for o in OPTIONS}


def read_file(path: str, required: bool) -> dict[str, Any]:
    """daemon.json's object; {} for a missing file unless ``required`` (named
    with --config-file), or an empty one."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise DaemonConfigError(f"unable to configure the daemon with file {path}: "
                                    f"open {path}: no such file or directory") from None
        return {}
    except OSError as e:
        raise DaemonConfigError(f"unable to configure the daemon with file {path}: "
                                f"{e.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark, as dockerd accepts
        raw = raw[3:]
    raw = raw.strip()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise DaemonConfigError(f"unable to configure the daemon with file {path}: "
                                f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise DaemonConfigError(f"unable to configure the daemon with file {path}: "
                                "invalid JSON: not an object")
    return doc


def check_directives(doc: Mapping[str, Any], flags: Mapping[str, Any]) -> None:
    """dockerd's findConfigurationConflicts: keys nothing knows, then keys also
    given as flags (``flags``: flag name -> the value given)."""
    known = DOCKERD_ONLY_KEYS | IGNORED_KEYS | WARNED_KEYS
    unknown = sorted(k for k in doc if k not in BY_KEY and k not in known)
    if unknown:
        raise DaemonConfigError("the following directives don't match any configuration "
                                f"option: {', '.join(unknown)}")
    conflicts = [f"{BY_FLAG[flag].key}: (from flag: {_go_value(value)}, "
                 f"from file: {_go_value(doc[BY_FLAG[flag].key])})"
                 for flag, value in flags.items() if BY_FLAG[flag].key in doc]
    if conflicts:
        raise DaemonConfigError("the following directives are specified both as a flag and "
                                f"in the configuration file: {', '.join(conflicts)}")
    unsupported = sorted(k for k in doc if k in DOCKERD_ONLY_KEYS)
    if unsupported:
        raise DaemonConfigError("the following directives are not supported by pyboxd: "
                                f"{', '.join(unsupported)}")


def load(flags: Mapping[str, Any], config_file: str | None = None) -> DaemonConfig:
    """The daemon's configuration from the flags given on the command line
    (flag name -> argparse's value; only the flags given) and the file."""
    unknown_flags = set(flags) - set(BY_FLAG)
    if unknown_flags:
        raise ValueError(f"not daemon options: {sorted(unknown_flags)}")
    path = config_file or DEFAULT_CONFIG_FILE
    try:
        doc = read_file(path, required=config_file is not None)
        check_directives(doc, flags)
    except DaemonConfigError as e:
        text = str(e)
        if not text.startswith("unable to configure"):
            text = f"unable to configure the daemon with file {path}: {text}"
        raise DaemonConfigError(text) from None
    values: dict[str, Any] = dict(doc)
    for flag, value in flags.items():
        option = BY_FLAG[flag]
        values[option.key] = option.from_flag(value) if option.from_flag else value
    config = DaemonConfig(config_file=path)
    ignored = sorted(k for k in doc if k in WARNED_KEYS)
    if ignored:
        config.warnings.append(f"{path}: {', '.join(ignored)} ignored (pyboxd has no BuildKit "
                               "builder)")
    for key, value in values.items():
        known = BY_KEY.get(key)
        if known is not None and value is not None:
            setattr(config, known.attr, known.parse(value, key))
    if not config.hosts:
        config.hosts = ["tcp://127.0.0.1:2376" if config.tls_enabled
                        else "unix://" + DEFAULT_SOCKET]
    config.hosts = [normalize_host(h, config.tls_enabled) for h in config.hosts if h.strip()]
    return config


def normalize_host(text: str, tls: bool) -> str:
    """-H's forms, dockerd's: unix://PATH (unix:// alone: the default socket),
    tcp://[HOST]:PORT (HOST defaults to 127.0.0.1, PORT to 2376 with TLS, else
    2375), fd:// refused (no socket activation in pyboxd)."""
    text = text.strip()
    proto, sep, addr = text.partition("://")
    if not sep:
        raise DaemonConfigError(f"bad format {text}, expected PROTO://ADDR")
    if proto == "unix":
        return "unix://" + (addr or DEFAULT_SOCKET)
    if proto == "tcp":
        addr = addr.rstrip("/")
        if "/" in addr:
            raise DaemonConfigError(f"invalid bind address ({text}): should not contain a path "
                                    "element")
        host, port = split_host_port(addr)
        if port is None:
            port = DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT
        return f"tcp://{host or '127.0.0.1'}:{port}" if ":" not in (host or "") \
            else f"tcp://[{host}]:{port}"
    raise DaemonConfigError(f"invalid bind address ({text}): unsupported proto '{proto}' "
                            "(pyboxd listens on unix:// and tcp://)")


def tcp_address(host: str) -> tuple[str, int]:
    """A normalized tcp://HOST:PORT -> (HOST, PORT)."""
    address, port = split_host_port(host.removeprefix("tcp://"))
    return address, port or DEFAULT_TCP_PORT


def split_host_port(addr: str) -> tuple[str, int | None]:
    """"HOST:PORT", "[V6]:PORT", "HOST", ":PORT" -> (host, port or None)."""
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif addr.count(":") == 1:
        host, _, port_text = addr.partition(":")
    else:
        host, port_text = addr, ""
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DaemonConfigError(f"invalid bind address ({addr}): invalid port")
    return host, int(port_text)


# -- applying the defaults ---------------------------------------------------------------------
def apply_network_defaults(config: DaemonConfig) -> None:
    """The address pools and the DNS defaults, where the network layer reads
    them (set for the daemon's process: one engine per pyboxd)."""
    ipam.set_default_pools((p.base, p.size) for p in config.default_address_pools)
    etc.set_daemon_dns(config.dns, config.dns_search, config.dns_opts)


def apply_log_defaults(hc: dict[str, Any], default: Mapping[str, Any]) -> None:
    """dockerd's mergeAndVerifyLogConfig, in ``hc`` (a create's HostConfig): no
    driver -> the daemon's; the daemon's options join a container's own when
    it uses the daemon's driver (its own win).  Validation stays with create."""
    log = hc.get("LogConfig")
    log = dict(log) if isinstance(log, dict) else {}
    if not log.get("Type"):
        log["Type"] = default["Type"]
    opts = log.get("Config")
    opts = dict(opts) if isinstance(opts, dict) else {}
    if log["Type"] == default["Type"]:
        for k, v in (default.get("Config") or {}).items():
            opts.setdefault(k, v)
    log["Config"] = opts
    hc["LogConfig"] = log


def merge_ulimits(hc: dict[str, Any], defaults: Mapping[str, Ulimit]) -> None:
    """dockerd's mergeUlimits, at start: the daemon's default-ulimits join the
    container's own (HostConfig.Ulimits, the container's win) and stay
    recorded there, as dockerd leaves them."""
    if not defaults:
        return
    own = list(hc.get("Ulimits") or [])
    names = {u.get("Name") for u in own if isinstance(u, dict)}
    own += [u.as_docker() for name, u in sorted(defaults.items()) if name not in names]
    hc["Ulimits"] = own
