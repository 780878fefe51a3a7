"""Standard CNI networking for CRI pods: the conf dir, the plugin chain, the
result cache.

kubelet expects its runtime to network a pod the way libcni does under
containerd's CRI plugin: the operator drops a network configuration in
/etc/cni/net.d and plugin binaries in /opt/cni/bin (Debian: /usr/lib/cni), and
every pod gets that network.  This module is that runtime side of the CNI
specification (1.0.0, and the 0.3.x/0.4.0 versions Debian's
containernetworking-plugins 1.1.1 speak), written from the spec and from how
libcni and containerd's go-cni behave:

* the conf dir's files (``.conf``, ``.conflist``, ``.json``) in lexical order;
  the first valid network list is the pod network (a single plugin ``.conf``
  is wrapped into a list of one).  A file that does not parse, names no
  plugin, or names a plugin not found in the bin dirs is skipped, so a
  half-written file from a network add-on never takes the node down;
* ADD runs the chain in order, each plugin getting the previous one's result
  as ``prevResult``; DEL runs it in reverse with the cached ADD result (0.4.0
  and later); CHECK (0.4.0 and later) with the cached result too;
* ``runtimeConfig`` carries only the capabilities a plugin declares
  (``portMappings``, ``dns``, ``bandwidth``, ``cgroupPath``, the pod's
  annotations), as libcni filters them;
* ``CNI_ARGS`` is containerd's: ``IgnoreUnknown=1`` and the pod's
  ``K8S_POD_NAMESPACE``, ``K8S_POD_NAME``, ``K8S_POD_INFRA_CONTAINER_ID`` and
  ``K8S_POD_UID``; ``CNI_PATH`` is the bin dirs;
* the loopback plugin brings the pod's ``lo`` up (containerd's
  ``cni-loopback`` network, cniVersion 0.3.1), beside the pod network;
* each attachment is cached under ``cache_dir/results/NET-POD-IFNAME`` in
  libcni's ``cniCacheV1`` layout (config, CNI_ARGS, capability args, netns,
  result), written atomically *before* the first plugin runs (without a
  result) and again after the chain succeeded.  So teardown knows what to
  undo after a pyboxd restart, after a crash in the middle of an ADD, after
  the operator changed the conf dir (the cached config is the one DELeted),
  and after the namespace is gone (``CNI_NETNS`` is then empty, which the
  spec allows on DEL: plugins release addresses and port mappings by
  container ID).

The conf dir and the plugins are the operator's and trusted; what a plugin
prints is not: its output is read up to a bound, must be a JSON object, and
the fields pybox uses (interfaces, ips, routes, dns) are checked before
anything reads them or passes them on as the next plugin's ``prevResult``.
Plugins run as subprocesses (their own session, a minimal environment, a
timeout after which the whole process group is killed).

A failing ADD undoes itself: the chain is DELeted (every plugin, so a plugin
that half-did its work cleans up too), the loopback too, and the cache entries
go.  Errors are :class:`~pybox.errors.NetworkError` (a plugin's own error as
:class:`~pybox.errors.CNIPluginError`, carrying its code, msg and details).
"""

import base64
import errno
import ipaddress
import json
import os
import re
import selectors
import signal
import stat
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pybox.errors import BadRequest, CNIPluginError, NetworkError
from pybox.network import netns as netns_mod
from pybox.oci.state import write_atomic

#: status() while no valid network configuration is found: kubelet's (and
#: every CRI runtime's) words, which operators grep for.
UNINITIALIZED = "cni config uninitialized"

#: containerd's loopback network, run for "lo" beside the pod network.
LOOPBACK_NAME = "cni-loopback"
LOOPBACK_VERSION = "0.3.1"
LOOPBACK_IFNAME = "lo"

CACHE_KIND = "cniCacheV1"
CONF_EXTENSIONS = (".conf", ".conflist", ".json")

MAX_CONF_BYTES = 1 << 20  # a conf file larger than this is not a conf file
MAX_OUTPUT_BYTES = 1 << 20  # a plugin's stdout (its result or error object)
MAX_STDERR_BYTES = 16 << 10  # what is kept of a plugin's stderr for the error message
MAX_CACHE_BYTES = 4 << 20
MAX_LIST_ITEMS = 1024  # interfaces, ips, routes, dns entries in one result
PLUGIN_TIMEOUT = 60.0
TXTBSY_RETRIES = 5  # libcni retries a plugin being written ("text file busy") once a second

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# libcni's checks (pkg/utils): container IDs and network names end up in
# file names, interface names in the kernel.
_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")
_PROTOCOLS = ("tcp", "udp", "sctp")


# -- the interface other modules use ---------------------------------------------


@dataclass(frozen=True)
class CNIPortMapping:
    """One CRI port mapping, as the portmap plugin's ``portMappings``
    capability takes it."""

    host_port: int
    container_port: int
    protocol: str  # "tcp" | "udp" | "sctp"
    host_ip: str = ""


@dataclass(frozen=True)
class CNIDNS:
    """The pod's DNS config, for plugins declaring the ``dns`` capability
    (containerd passes the CRI DNSConfig)."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class CNIBandwidth:
    """Traffic shaping for the ``bandwidth`` capability (bits per second and
    bits of burst, as the bandwidth plugin and containerd's annotations use);
    0 means unset."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0


@dataclass(frozen=True)
class CNIResult:
    """What the pod got: ``ips`` are the addresses (no prefix length) on
    ``interface`` inside the pod, IPv4 first; ``raw`` is the chain's final
    result (validated JSON)."""

    interface: str
    ips: tuple[str, ...]
    raw: dict[str, Any]


@dataclass(frozen=True)
class NetworkList:
    """One loaded network configuration list (a ``.conflist``, or a ``.conf``
    wrapped into one): ``raw`` is the list as bytes, what the cache keeps and
    a later DEL parses again."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    raw: bytes
    source: str
    disable_check: bool = False


@dataclass(frozen=True)
class _Cached:
    """One cache entry (libcni's cniCacheV1)."""

    path: str
    network: NetworkList | None  # None: its config no longer parses
    network_name: str
    ifname: str
    netns: str
    cni_args: tuple[tuple[str, str], ...]
    capability_args: dict[str, Any]
    result: dict[str, Any] | None  # None: the ADD never finished


# -- versions ------------------------------------------------------------------------


def _version(text: str) -> tuple[int, int, int]:
    m = _VERSION_RE.match(text)
    if not m:
        raise ValueError(f"invalid cniVersion {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _at_least(version: str, minimum: str) -> bool:
    return _version(version) >= _version(minimum)


# -- configuration -------------------------------------------------------------------


def _bool_field(raw: Mapping[str, Any], key: str) -> bool:
    """libcni's readBool: a JSON bool or the strings "true"/"false"."""
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"invalid value {value!r} for {key}")


def _check_plugin(plugin: Any, index: int) -> dict[str, Any]:
    if not isinstance(plugin, dict):
        raise ValueError(f"plugin {index} is not an object")
    ptype = plugin.get("type")
    if not isinstance(ptype, str) or not ptype:
        raise ValueError(f"plugin {index}: missing 'type'")
    if "/" in ptype or ptype in (".", ".."):
        raise ValueError(f"plugin {index}: invalid plugin name {ptype!r}")
    caps = plugin.get("capabilities", {})
    if not isinstance(caps, dict):
        raise ValueError(f"plugin {index}: 'capabilities' is not an object")
    return plugin


def _check_name_version(name: Any, version: Any) -> tuple[str, str]:
    if not isinstance(name, str) or not name:
        raise ValueError("no name")
    if not _ID_RE.match(name):
        raise ValueError(f"invalid network name {name!r}")
    if version is None or version == "":
        version = "0.1.0"  # the spec's default
    if not isinstance(version, str):
        raise ValueError(f"invalid cniVersion type {type(version).__name__}")
    _version(version)
    return name, version


def parse_conf_list(data: bytes, source: str = "") -> NetworkList:
    """A ``.conflist``'s bytes -> NetworkList; ValueError saying what is wrong."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"error parsing configuration list: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError("error parsing configuration list: not an object")
    name, version = _check_name_version(raw.get("name"), raw.get("cniVersion"))
    plugins = raw.get("plugins")
    if not isinstance(plugins, list):
        raise ValueError("error parsing configuration list: no 'plugins' list")
    if not plugins:
        raise ValueError("error parsing configuration list: no plugins in list")
    checked = tuple(_check_plugin(p, i) for i, p in enumerate(plugins))
    return NetworkList(name=name, cni_version=version, plugins=checked, raw=bytes(data),
                       source=source, disable_check=_bool_field(raw, "disableCheck"))


def parse_conf(data: bytes, source: str = "") -> NetworkList:
    """A single plugin's ``.conf``/``.json`` -> a NetworkList of one (libcni's
    ConfListFromConf)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"error parsing configuration: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError("error parsing configuration: not an object")
    if "type" not in raw and "plugins" in raw:
        raise ValueError("network type not found (a network list in a .conf file?)")
    plugin = _check_plugin(raw, 0)
    name, version = _check_name_version(raw.get("name"), raw.get("cniVersion"))
    wrapped = json.dumps({"cniVersion": version, "name": name, "plugins": [plugin]},
                         separators=(",", ":")).encode()
    return NetworkList(name=name, cni_version=version, plugins=(plugin,), raw=wrapped,
                       source=source)


def find_plugin(ptype: str, bin_dirs: Sequence[str]) -> str | None:
    """The plugin binary's path: the first bin dir holding a regular file of
    that name (libcni's FindInPath)."""
    if not ptype or "/" in ptype:
        return None
    for d in bin_dirs:
        path = os.path.join(d, ptype)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return path
    return None


def load_conf_dir(conf_dir: str, bin_dirs: Sequence[str]) -> tuple[NetworkList | None, list[str]]:
    """The pod network: the first valid list of the dir's conf files in
    lexical order -> (list or None, why each file before it was skipped).
    Valid: it parses, and its plugins and the loopback plugin (which every
    pod needs too) are in the bin dirs."""
    problems: list[str] = []
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return None, [f"no network config found in {conf_dir}"]
    except OSError as e:
        return None, [f"cannot read {conf_dir}: {e.strerror}"]
    candidates = [n for n in names if os.path.splitext(n)[1] in CONF_EXTENSIONS]
    if not candidates:
        return None, [f"no network config found in {conf_dir}"]
    for name in candidates:
        path = os.path.join(conf_dir, name)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue  # a directory (libcni skips them), never a fifo to block on
            with open(path, "rb") as f:
                data = f.read(MAX_CONF_BYTES + 1)
        except OSError as e:
            problems.append(f"{path}: {e.strerror}")
            continue
        if len(data) > MAX_CONF_BYTES:
            problems.append(f"{path}: larger than {MAX_CONF_BYTES} bytes")
            continue
        try:
            nets = parse_conf_list(data, path) if name.endswith(".conflist") else parse_conf(data, path)
        except ValueError as e:
            problems.append(f"{path}: {e}")
            continue
        missing = [p["type"] for p in nets.plugins + ({"type": "loopback"},)
                   if find_plugin(p["type"], bin_dirs) is None]
        if missing:
            problems.append(f"{path}: plugin {missing[0]!r} not found in {list(bin_dirs)}")
            continue
        return nets, problems
    return None, problems


def loopback_network() -> NetworkList:
    """containerd's ``cni-loopback`` list."""
    return parse_conf_list(json.dumps({"cniVersion": LOOPBACK_VERSION, "name": LOOPBACK_NAME,
                                       "plugins": [{"type": "loopback"}]}).encode(), "<loopback>")


# -- plugin output -------------------------------------------------------------------


class _BadResult(ValueError):
    pass


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        raise _BadResult(f"{what} is not a list")
    for v in value:
        if not isinstance(v, str):
            raise _BadResult(f"{what} holds a non-string")
    return value


def _check_ip(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise _BadResult(f"{what} is not a string")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _BadResult(f"{what} {value[:64]!r} is not an IP address") from None


def _check_cidr(value: Any, what: str, network: bool = False) -> None:
    if not isinstance(value, str):
        raise _BadResult(f"{what} is not a string")
    try:
        if network:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_interface(value)
        if "/" not in value:
            raise ValueError
    except ValueError:
        raise _BadResult(f"{what} {value[:64]!r} is not an address with a prefix length") from None


def _check_dns(value: Any) -> None:
    if not isinstance(value, dict):
        raise _BadResult("dns is not an object")
    for key in ("nameservers", "search", "options"):
        if key in value and value[key] is not None:
            _str_list(value[key], f"dns.{key}")
    if value.get("domain") is not None and not isinstance(value["domain"], str):
        raise _BadResult("dns.domain is not a string")


def _check_routes(value: Any, what: str) -> None:
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        raise _BadResult(f"{what} is not a list")
    for i, r in enumerate(value):
        if not isinstance(r, dict):
            raise _BadResult(f"{what}[{i}] is not an object")
        _check_cidr(r.get("dst"), f"{what}[{i}].dst", network=True)
        if r.get("gw") not in (None, ""):
            _check_ip(r["gw"], f"{what}[{i}].gw")


def validate_result(obj: Any, conf_version: str) -> dict[str, Any]:
    """A plugin's parsed stdout -> the same dict, its fields checked and its
    ``cniVersion`` set (to the conf's when missing, as libcni does); raises
    ValueError.  The result formats of 0.3.0 and later (interfaces/ips/routes)
    and of 0.1.0/0.2.0 (ip4/ip6) are both understood."""
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise _BadResult("not a JSON object")
    version = obj.get("cniVersion") or conf_version
    if not isinstance(version, str):
        raise _BadResult("cniVersion is not a string")
    try:
        _version(version)
    except ValueError as e:
        raise _BadResult(str(e)) from None
    obj["cniVersion"] = version
    if not _at_least(version, "0.3.0"):
        for key in ("ip4", "ip6"):
            ipc = obj.get(key)
            if ipc is None:
                continue
            if not isinstance(ipc, dict):
                raise _BadResult(f"{key} is not an object")
            _check_cidr(ipc.get("ip"), f"{key}.ip")
            if ipc.get("gateway") not in (None, ""):
                _check_ip(ipc["gateway"], f"{key}.gateway")
            if ipc.get("routes") is not None:
                _check_routes(ipc["routes"], f"{key}.routes")
        if obj.get("dns") is not None:
            _check_dns(obj["dns"])
        return obj
    interfaces = obj.get("interfaces")
    count = 0
    if interfaces is not None:
        if not isinstance(interfaces, list) or len(interfaces) > MAX_LIST_ITEMS:
            raise _BadResult("interfaces is not a list")
        for i, itf in enumerate(interfaces):
            if not isinstance(itf, dict):
                raise _BadResult(f"interfaces[{i}] is not an object")
            name = itf.get("name")
            if not isinstance(name, str) or not name or len(name) > 255:
                raise _BadResult(f"interfaces[{i}].name is missing or invalid")
            for key in ("mac", "sandbox"):
                if itf.get(key) is not None and not isinstance(itf[key], str):
                    raise _BadResult(f"interfaces[{i}].{key} is not a string")
        count = len(interfaces)
    ips = obj.get("ips")
    if ips is not None:
        if not isinstance(ips, list) or len(ips) > MAX_LIST_ITEMS:
            raise _BadResult("ips is not a list")
        for i, ipc in enumerate(ips):
            if not isinstance(ipc, dict):
                raise _BadResult(f"ips[{i}] is not an object")
            _check_cidr(ipc.get("address"), f"ips[{i}].address")
            if ipc.get("gateway") not in (None, ""):
                _check_ip(ipc["gateway"], f"ips[{i}].gateway")
            index = ipc.get("interface")
            if index is not None and (type(index) is not int or not 0 <= index < count):
                raise _BadResult(f"ips[{i}].interface is not an index into interfaces")
            fam = ipc.get("version")
            if fam is not None and fam not in ("4", "6"):
                raise _BadResult(f"ips[{i}].version is not \"4\" or \"6\"")
    if obj.get("routes") is not None:
        _check_routes(obj["routes"], "routes")
    if obj.get("dns") is not None:
        _check_dns(obj["dns"])
    return obj


def convert_result(result: dict[str, Any], to_version: str) -> dict[str, Any]:
    """``result`` as a plugin of ``to_version`` expects its ``prevResult``
    (libcni's GetAsVersion, for the formats that differ only in the ips'
    ``version`` field: 0.3.x/0.4.0 carry it, 1.0.0 dropped it).  Results of
    0.1.0/0.2.0 are not converted (no plugin list of those versions takes a
    prevResult)."""
    out = dict(result)
    if not _at_least(str(out.get("cniVersion", "0.1.0")), "0.3.0") or not _at_least(to_version, "0.3.0"):
        return out
    out["cniVersion"] = to_version
    ips = []
    for ipc in out.get("ips") or []:
        ipc = dict(ipc)
        if _at_least(to_version, "1.0.0"):
            ipc.pop("version", None)
        else:
            ipc["version"] = str(ipaddress.ip_interface(ipc["address"]).version)
        ips.append(ipc)
    if "ips" in out:
        out["ips"] = ips
    return out


def result_ips(result: Mapping[str, Any], ifname: str) -> tuple[str, ...]:
    """The addresses (no prefix) the result gives ``ifname`` inside the
    sandbox, IPv4 first: an IP whose ``interface`` index names a sandbox
    interface called ``ifname``, or one with no index at all (go-cni groups
    by interface; plugins that omit the index mean the container's)."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    if not _at_least(str(result.get("cniVersion", "0.1.0")), "0.3.0"):
        for key in ("ip4", "ip6"):
            ipc = result.get(key)
            if isinstance(ipc, dict) and isinstance(ipc.get("ip"), str):
                found.append(ipaddress.ip_interface(ipc["ip"]).ip)
    else:
        interfaces = result.get("interfaces") or []
        for ipc in result.get("ips") or []:
            index = ipc.get("interface")
            if index is not None:
                itf = interfaces[index]
                if itf.get("name") != ifname or not itf.get("sandbox"):
                    continue
            found.append(ipaddress.ip_interface(ipc["address"]).ip)
    ordered = [a for a in found if a.version == 4] + [a for a in found if a.version == 6]
    return tuple(dict.fromkeys(str(a) for a in ordered))


# -- running plugins -----------------------------------------------------------------


def _plugin_desc(plugin: Mapping[str, Any], net_name: str) -> str:
    """libcni's pluginDescription: ``type="bridge" name="net"``."""
    return f"type={json.dumps(plugin.get('type'))} name={json.dumps(net_name)}"


def _plugin_env(command: str, container_id: str, netns: str, ifname: str,
                cni_args: Sequence[tuple[str, str]], bin_dirs: Sequence[str]) -> dict[str, str]:
    """A plugin's environment: the CNI variables and a PATH that finds the
    tools plugins run (iptables, ip6tables, in the sbin dirs).  Nothing else
    of pyboxd's environment leaks into plugins."""
    path = os.environ.get("PATH") or DEFAULT_PATH
    have = path.split(":")
    path = ":".join(have + [d for d in DEFAULT_PATH.split(":") if d not in have])
    return {
        "PATH": path,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": ";".join(f"{k}={v}" for k, v in cni_args),
        "CNI_PATH": ":".join(bin_dirs),
    }


def _communicate(proc: "subprocess.Popen[bytes]", data: bytes, deadline: float) -> tuple[bytes, bytes, bool]:
    """Feed ``data`` to the plugin and read its stdout and stderr up to the
    bounds until both close -> (stdout, stderr, stdout overflowed).  Raises
    TimeoutError at ``deadline``."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    overflow = False
    view = memoryview(data)
    sel = selectors.DefaultSelector()
    try:
        if view:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            for key, _ in sel.select(left):
                fobj = key.fileobj
                if fobj is proc.stdin:
                    try:
                        n = os.write(proc.stdin.fileno(), view[:65536])
                    except BrokenPipeError:
                        n = len(view)
                    except BlockingIOError:
                        continue
                    view = view[n:]
                    if not view:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                assert fobj is proc.stdout or fobj is proc.stderr
                chunk = os.read(fobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(fobj)
                    continue
                if fobj is proc.stdout:
                    if len(out) + len(chunk) > MAX_OUTPUT_BYTES:
                        overflow = True
                    else:
                        out += chunk
                elif len(err) < MAX_STDERR_BYTES:
                    err += chunk[:MAX_STDERR_BYTES - len(err)]
    finally:
        sel.close()
        if not proc.stdin.closed:
            proc.stdin.close()
    return bytes(out), bytes(err), overflow


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    """Kill the plugin and whatever it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _text(raw: bytes, limit: int = 2048) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def exec_plugin(path: str, stdin: bytes, env: Mapping[str, str], *, desc: str, command: str,
                timeout: float = PLUGIN_TIMEOUT) -> bytes:
    """Run one plugin -> its stdout.  A plugin's failure raises
    CNIPluginError with its error object's code/msg/details (or its stderr,
    when it printed no JSON), as libcni's pluginErr."""
    for attempt in range(TXTBSY_RETRIES + 1):
        try:
            proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=dict(env), cwd="/",
                                    start_new_session=True, close_fds=True)
            break
        except OSError as e:
            if e.errno == errno.ETXTBSY and attempt < TXTBSY_RETRIES:
                time.sleep(1)
                continue
            raise CNIPluginError(f"plugin {desc} failed ({command.lower()}): cannot run {path}: "
                                 f"{e.strerror}", plugin=desc, command=command,
                                 msg=str(e.strerror)) from None
    deadline = time.monotonic() + timeout
    try:
        out, err, overflow = _communicate(proc, stdin, deadline)
        rc = proc.wait(max(0.0, deadline - time.monotonic()))
    except (TimeoutError, subprocess.TimeoutExpired):
        _kill(proc)
        raise CNIPluginError(f"plugin {desc} failed ({command.lower()}): timed out after "
                             f"{timeout:g}s and was killed", plugin=desc, command=command,
                             msg="timed out") from None
    except BaseException:
        _kill(proc)
        raise
    if overflow:
        raise CNIPluginError(f"plugin {desc} failed ({command.lower()}): its output is larger "
                             f"than {MAX_OUTPUT_BYTES} bytes", plugin=desc, command=command,
                             msg="output too large")
    if rc == 0:
        return out
    code, msg, details = 0, "", ""
    if out.strip():
        try:
            eobj = json.loads(out)
        except (ValueError, RecursionError):
            eobj = None
        if isinstance(eobj, dict) and isinstance(eobj.get("msg"), str):
            code = eobj["code"] if type(eobj.get("code")) is int else 0
            msg = _text(eobj["msg"].encode())
            details = _text(eobj["details"].encode()) if isinstance(eobj.get("details"), str) else ""
        else:
            msg = f"netplugin failed but error parsing its diagnostic message {_text(out)!r}"
    elif err.strip():
        msg = f"netplugin failed: {_text(err)!r}: exit status {rc}"
    else:
        msg = f"netplugin failed with no error message: exit status {rc}"
    text = msg + (f"; {details}" if details else "")
    raise CNIPluginError(f"plugin {desc} failed ({command.lower()}): {text}", plugin=desc,
                         command=command, code=code, msg=msg, details=details)


# -- the cache -----------------------------------------------------------------------


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- the runtime side ----------------------------------------------------------------


class CNI:
    """The pod network of one pyboxd: reads ``conf_dir`` on every call (so a
    network add-on installing its conf later is picked up, as containerd's
    watcher does), runs plugins from ``bin_dirs``, caches attachments under
    ``cache_dir``.  Thread-safe: calls for one pod are serialized, calls for
    different pods run in parallel (plugins lock what they share: host-local's
    store, iptables)."""

    def __init__(self, conf_dir: str = "/etc/cni/net.d",
                 bin_dirs: Sequence[str] = ("/opt/cni/bin", "/usr/lib/cni"),
                 cache_dir: str = "/var/lib/pybox/cni", *,
                 plugin_timeout: float = PLUGIN_TIMEOUT) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = tuple(bin_dirs)
        self.cache_dir = cache_dir
        self.plugin_timeout = plugin_timeout
        # one lock per pod while someone holds it (so the dict does not grow with
        # every pod ever networked)
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    # -- status and config

    def network(self) -> NetworkList | None:
        """The pod network now (None: none valid)."""
        return load_conf_dir(self.conf_dir, self.bin_dirs)[0]

    def status(self) -> str | None:
        """None when pods can be networked; else the reason."""
        nets, _ = load_conf_dir(self.conf_dir, self.bin_dirs)
        return None if nets is not None else UNINITIALIZED

    def status_detail(self) -> str | None:
        """status() with why: each conf file skipped and its problem."""
        nets, problems = load_conf_dir(self.conf_dir, self.bin_dirs)
        if nets is not None:
            return None
        return UNINITIALIZED + (": " + "; ".join(problems) if problems else "")

    def _require_network(self) -> NetworkList:
        nets, problems = load_conf_dir(self.conf_dir, self.bin_dirs)
        if nets is None:
            raise NetworkError(UNINITIALIZED + (": " + "; ".join(problems) if problems else ""))
        return nets

    # -- setup / teardown

    def setup(self, pod_id: str, netns: str, *, pod_name: str, pod_namespace: str,
              pod_uid: str, port_mappings: Sequence[CNIPortMapping] = (),
              ifname: str = "eth0", dns: CNIDNS | None = None,
              bandwidth: CNIBandwidth | None = None,
              annotations: Mapping[str, str] | None = None,
              cgroup_path: str = "") -> CNIResult:
        """ADD: loopback and the pod network (at once, as containerd attaches
        its networks) through ``netns`` (a path to a network namespace: a bind
        mount or /proc/PID/ns/net).  On any failure everything it did is
        DELeted and NetworkError raised."""
        _check_id(pod_id)
        _check_ifname(ifname)
        args = _cni_args(pod_id, pod_name, pod_namespace, pod_uid)
        caps = _capability_args(port_mappings, dns, bandwidth, annotations, cgroup_path)
        netns = os.path.abspath(netns)  # plugins run in /
        if not netns_mod.is_mounted(netns):
            raise NetworkError(f"cannot set up the network of pod {pod_id}: {netns} is not a "
                               "network namespace")
        with self._lock(pod_id):
            nets = self._require_network()
            if self._cached(pod_id):  # a setup before this one was never torn down
                self._teardown_locked(pod_id, netns, args, ifname)
            # loopback and the pod network at once, as containerd attaches its networks
            lo = loopback_network()
            lo_failed: list[BaseException] = []

            def add_lo() -> None:
                try:
                    self._add(lo, pod_id, netns, LOOPBACK_IFNAME, args, {})
                except BaseException as e:  # noqa: BLE001 - raised by the caller below
                    lo_failed.append(e)

            lo_thread = threading.Thread(target=add_lo, name="pybox-cni-lo")
            lo_thread.start()
            try:
                result = self._add(nets, pod_id, netns, ifname, args, caps)
                ips = result_ips(result, ifname)
                if not ips:
                    problem = NetworkError(f"failed to find network info for sandbox {pod_id!r}: "
                                           f"network {nets.name!r} gave {ifname} no address")
                    try:
                        self._del_entry(self._read_cache(self._cache_path(nets.name, pod_id,
                                                                          ifname)), pod_id, netns)
                    except NetworkError as e:  # the entry stays: a teardown tries again
                        raise problem from e
                    raise problem
            except BaseException:
                lo_thread.join()
                if not lo_failed:
                    try:
                        self._del_entry(self._read_cache(self._cache_path(lo.name, pod_id,
                                                                          LOOPBACK_IFNAME)),
                                        pod_id, netns)
                    except NetworkError:
                        pass
                raise
            lo_thread.join()
            if lo_failed:  # its own ADD undid it; undo the pod network's
                try:
                    self._del_entry(self._read_cache(self._cache_path(nets.name, pod_id, ifname)),
                                    pod_id, netns)
                except NetworkError:
                    pass
                raise lo_failed[0]
            return CNIResult(interface=ifname, ips=ips, raw=result)

    def teardown(self, pod_id: str, netns: str | None, *, pod_name: str,
                 pod_namespace: str, pod_uid: str, ifname: str = "eth0") -> None:
        """DEL what setup made, from the cache: idempotent, and works after a
        restart, with the conf dir changed or emptied, and once the namespace
        is gone.  A plugin's failure raises (the cache entry stays, so a later
        teardown tries again)."""
        _check_id(pod_id)
        _check_ifname(ifname)
        args = _cni_args(pod_id, pod_name, pod_namespace, pod_uid)
        with self._lock(pod_id):
            self._teardown_locked(pod_id, netns, args, ifname)

    def check(self, pod_id: str, netns: str, *, ifname: str = "eth0") -> None:
        """CHECK (cniVersion 0.4.0 and later, unless the list disables it):
        the plugins confirm the pod's network is as ADD left it; raises
        NetworkError if not, or if the pod has no cached network."""
        _check_id(pod_id)
        _check_ifname(ifname)
        with self._lock(pod_id):
            entries = [e for e in self._cached(pod_id) if e.ifname == ifname]
            if not entries or entries[0].network is None or entries[0].result is None:
                raise NetworkError(f"pod {pod_id} has no network attachment {ifname} to check")
            entry = entries[0]
            nets = entry.network
            assert nets is not None and entry.result is not None
            if not _at_least(nets.cni_version, "0.4.0") or nets.disable_check:
                return
            prev = convert_result(entry.result, nets.cni_version)
            for plugin in nets.plugins:
                self._run(nets, plugin, "CHECK", pod_id, netns, ifname, entry.cni_args,
                          entry.capability_args, prev)

    def cached_pods(self) -> set[str]:
        """Pod IDs with cached attachments (setups not yet torn down), for a
        restarted pyboxd to tear down the pods it no longer knows."""
        return {pod_id for pod_id, _ in self._scan()}

    # -- internals

    def _lock(self, pod_id: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(pod_id)
            if lock is None:
                lock = threading.Lock()
                self._locks[pod_id] = lock
            return lock

    def _cache_path(self, net_name: str, pod_id: str, ifname: str) -> str:
        return os.path.join(self.cache_dir, "results", f"{net_name}-{pod_id}-{ifname}")

    def _write_cache(self, nets: NetworkList, pod_id: str, netns: str, ifname: str,
                     args: Sequence[tuple[str, str]], caps: Mapping[str, Any],
                     result: dict[str, Any] | None) -> str:
        entry: dict[str, Any] = {
            "kind": CACHE_KIND, "containerId": pod_id,
            "config": base64.b64encode(nets.raw).decode(), "ifName": ifname,
            "networkName": nets.name, "netns": netns,
            "cniArgs": [list(a) for a in args], "capabilityArgs": dict(caps),
        }
        if result is not None:
            entry["result"] = result
        path = self._cache_path(nets.name, pod_id, ifname)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            write_atomic(path, json.dumps(entry), durable=True)
        except OSError as e:
            raise NetworkError(f"failed to set network {nets.name!r} cached result: {e}") from None
        return path

    def _read_cache(self, path: str) -> _Cached | None:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_CACHE_BYTES + 1)
            raw = json.loads(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):
            raw = None
        if not isinstance(raw, dict) or raw.get("kind") != CACHE_KIND:
            return None  # not a cache entry (writes are atomic: never a torn one of ours)
        network: NetworkList | None
        try:
            network = parse_conf_list(base64.b64decode(raw.get("config") or ""), path)
        except (ValueError, TypeError):
            network = None
        result = raw.get("result")
        if result is not None:
            try:
                result = validate_result(result, network.cni_version if network else "1.0.0")
            except ValueError:
                result = None
        args_raw = raw.get("cniArgs") or []
        args = tuple((str(a[0]), str(a[1])) for a in args_raw
                     if isinstance(a, list) and len(a) == 2) if isinstance(args_raw, list) else ()
        caps = raw.get("capabilityArgs")
        return _Cached(path=path, network=network, network_name=str(raw.get("networkName", "")),
                       ifname=str(raw.get("ifName", "")), netns=str(raw.get("netns", "")),
                       cni_args=args, capability_args=caps if isinstance(caps, dict) else {},
                       result=result)

    def _scan(self, pod_id: str | None = None) -> Iterator[tuple[str, str]]:
        """(pod ID, cache file) of the cache entries, only ``pod_id``'s when
        given (file names hold the pod ID, as libcni's GetCachedAttachments
        filters them before reading)."""
        results = os.path.join(self.cache_dir, "results")
        try:
            names = sorted(os.listdir(results))
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(".") or (pod_id is not None and f"-{pod_id}-" not in name):
                continue
            path = os.path.join(results, name)
            try:
                with open(path, "rb") as f:
                    raw = json.loads(f.read(MAX_CACHE_BYTES + 1))
            except (OSError, ValueError, RecursionError):
                continue
            if isinstance(raw, dict) and raw.get("kind") == CACHE_KIND and \
                    isinstance(raw.get("containerId"), str) and \
                    (pod_id is None or raw["containerId"] == pod_id):
                yield raw["containerId"], path

    def _cached(self, pod_id: str) -> list[_Cached]:
        """This pod's cache entries, the pod network's before the loopback's."""
        entries = []
        for _, path in self._scan(pod_id):
            c = self._read_cache(path)
            if c is not None:
                entries.append(c)
        entries.sort(key=lambda c: c.network_name == LOOPBACK_NAME)
        return entries

    def _run(self, nets: NetworkList, plugin: Mapping[str, Any], command: str, pod_id: str,
             netns: str, ifname: str, args: Sequence[tuple[str, str]], caps: Mapping[str, Any],
             prev: dict[str, Any] | None) -> bytes:
        """One plugin invocation with libcni's stdin: the plugin's conf with
        the list's name and cniVersion, prevResult, runtimeConfig."""
        desc = _plugin_desc(plugin, nets.name)
        path = find_plugin(str(plugin["type"]), self.bin_dirs)
        if path is None:
            raise CNIPluginError(f"plugin {desc} failed ({command.lower()}): failed to find plugin "
                                 f"{plugin['type']!r} in path {list(self.bin_dirs)}",
                                 plugin=desc, command=command, msg="failed to find plugin")
        conf = dict(plugin)
        conf["name"] = nets.name
        conf["cniVersion"] = nets.cni_version
        if prev is not None:
            conf["prevResult"] = prev
        declared = plugin.get("capabilities") or {}
        runtime = {k: v for k, v in caps.items() if declared.get(k) is True}
        if runtime:
            conf["runtimeConfig"] = runtime
        env = _plugin_env(command, pod_id, netns, ifname, args, self.bin_dirs)
        return exec_plugin(path, json.dumps(conf).encode(), env, desc=desc, command=command,
                           timeout=self.plugin_timeout)

    def _add(self, nets: NetworkList, pod_id: str, netns: str, ifname: str,
             args: Sequence[tuple[str, str]], caps: Mapping[str, Any]) -> dict[str, Any]:
        """ADD the list; on failure DEL it all and drop the cache entry."""
        path = self._write_cache(nets, pod_id, netns, ifname, args, caps, None)
        result: dict[str, Any] | None = None
        try:
            for plugin in nets.plugins:
                prev = convert_result(result, nets.cni_version) if result is not None and \
                    _at_least(nets.cni_version, "0.3.0") else None
                out = self._run(nets, plugin, "ADD", pod_id, netns, ifname, args, caps, prev)
                try:
                    parsed = json.loads(out) if out.strip() else None
                    result = validate_result(parsed, nets.cni_version)
                except (ValueError, RecursionError) as e:
                    desc = _plugin_desc(plugin, nets.name)
                    raise CNIPluginError(f"plugin {desc} failed (add): invalid result: {e}",
                                         plugin=desc, command="ADD", msg=f"invalid result: {e}") from None
            assert result is not None
            self._write_cache(nets, pod_id, netns, ifname, args, caps, result)
            return result
        except BaseException:
            try:
                self._del(nets, pod_id, netns, ifname, args, caps, None)
            except NetworkError:
                pass  # the ADD's error is the one to report
            else:
                _unlink(path)
            raise

    def _del(self, nets: NetworkList, pod_id: str, netns: str, ifname: str,
             args: Sequence[tuple[str, str]], caps: Mapping[str, Any],
             result: dict[str, Any] | None) -> None:
        prev = None
        if result is not None and _at_least(nets.cni_version, "0.4.0"):
            prev = convert_result(result, nets.cni_version)
        for plugin in reversed(nets.plugins):
            try:
                self._run(nets, plugin, "DEL", pod_id, netns, ifname, args, caps, prev)
            except CNIPluginError as e:
                # go-cni's Remove: "not found" means already gone
                if "not found" in e.msg or (not netns and "no such file or directory" in e.msg):
                    continue
                raise

    def _del_entry(self, entry: _Cached | None, pod_id: str, netns: str | None) -> None:
        """DEL one cache entry's attachment and drop the entry."""
        if entry is None:
            return
        nets = entry.network
        if nets is None:
            if entry.network_name == LOOPBACK_NAME:
                nets = loopback_network()
            else:
                nets = load_conf_dir(self.conf_dir, self.bin_dirs)[0]
            if nets is None:
                raise NetworkError(f"cannot tear down the network of pod {pod_id}: its cached "
                                   f"config {entry.path} is unreadable and {UNINITIALIZED}")
        ns = os.path.abspath(netns) if netns and netns_mod.is_mounted(netns) else ""
        ifname = entry.ifname or "eth0"
        self._del(nets, pod_id, ns, ifname, entry.cni_args, entry.capability_args, entry.result)
        _unlink(entry.path)

    def _teardown_locked(self, pod_id: str, netns: str | None, args: Sequence[tuple[str, str]],
                         ifname: str) -> None:
        entries = self._cached(pod_id)
        netns = os.path.abspath(netns) if netns else None
        if not any(e.network_name != LOOPBACK_NAME for e in entries) and netns and \
                netns_mod.is_mounted(netns):
            # no cache entry but a namespace: a setup whose cache was lost; DEL
            # with the current config as containerd does (DEL is idempotent)
            nets = load_conf_dir(self.conf_dir, self.bin_dirs)[0]
            if nets is not None:
                self._del(nets, pod_id, netns, ifname, args, {}, None)
        first: NetworkError | None = None
        for entry in entries:
            try:
                self._del_entry(entry, pod_id, netns)
            except NetworkError as e:
                first = first or e
        if first is not None:
            raise first


# -- argument checks -----------------------------------------------------------------


def _check_id(pod_id: str) -> None:
    if not isinstance(pod_id, str) or not _ID_RE.match(pod_id) or len(pod_id) > 255:
        raise BadRequest(f"invalid pod sandbox ID {pod_id!r} for CNI")


def _check_ifname(ifname: str) -> None:
    """libcni's ValidateInterfaceName."""
    if not ifname or len(ifname) > 15 or ifname in (".", "..") or \
            any(c in ifname for c in "/:") or any(c.isspace() for c in ifname):
        raise BadRequest(f"invalid interface name {ifname!r}")


def _cni_args(pod_id: str, pod_name: str, pod_namespace: str, pod_uid: str) -> tuple[tuple[str, str], ...]:
    """containerd's CNI_ARGS (toCNILabels) in a fixed order.  Values reach a
    plugin as ``K=V;K=V``: one holding ``;`` or ``=`` would forge arguments."""
    pairs = (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", pod_namespace),
             ("K8S_POD_NAME", pod_name), ("K8S_POD_INFRA_CONTAINER_ID", pod_id),
             ("K8S_POD_UID", pod_uid))
    for key, value in pairs:
        if not isinstance(value, str) or any(c in value for c in ";=\0\n") or len(value) > 1024:
            raise BadRequest(f"invalid {key} {value!r} for CNI")
    return pairs


def _capability_args(port_mappings: Sequence[CNIPortMapping], dns: CNIDNS | None,
                     bandwidth: CNIBandwidth | None, annotations: Mapping[str, str] | None,
                     cgroup_path: str) -> dict[str, Any]:
    """The runtimeConfig candidates, in the keys and JSON shapes of the
    CNI conventions (go-cni's PortMapping, DNS, BandWidth).  Port mappings
    without a host port are not mappings (containerd skips them)."""
    mappings = []
    for pm in port_mappings:
        if pm.host_port <= 0:
            continue
        proto = pm.protocol.lower()
        if proto not in _PROTOCOLS:
            raise BadRequest(f"unknown protocol {pm.protocol!r} in port mapping")
        if not 0 < pm.host_port < 65536 or not 0 < pm.container_port < 65536:
            raise BadRequest(f"invalid port mapping {pm.host_port}:{pm.container_port}")
        if pm.host_ip:
            try:
                ipaddress.ip_address(pm.host_ip)
            except ValueError:
                raise BadRequest(f"invalid host IP {pm.host_ip!r} in port mapping") from None
        mappings.append({"hostPort": pm.host_port, "containerPort": pm.container_port,
                         "protocol": proto, "hostIP": pm.host_ip})
    caps: dict[str, Any] = {"portMappings": mappings}
    if dns is not None:
        caps["dns"] = {"servers": list(dns.servers), "searches": list(dns.searches),
                       "options": list(dns.options)}
    if bandwidth is not None:
        caps["bandwidth"] = {"ingressRate": bandwidth.ingress_rate,
                             "ingressBurst": bandwidth.ingress_burst,
                             "egressRate": bandwidth.egress_rate,
                             "egressBurst": bandwidth.egress_burst}
    if annotations:
        caps["io.kubernetes.cri.pod-annotations"] = dict(annotations)
    if cgroup_path:
        caps["cgroupPath"] = cgroup_path
    return caps
