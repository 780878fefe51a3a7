"""NetworkManager: the facade the engine calls for everything network.

Networks (docker's objects: ``bridge``, ``host``, ``none`` and user-defined
bridge networks) are records under DATA_ROOT/network/networks/ID.json, written
atomically; their IPAM state (ipam.py) lives in them.  A running container's
network state -- its *sandbox*: namespace path, one endpoint per network,
published ports -- is RUN_ROOT/network/sandboxes/CID.json, since it describes
kernel objects that a reboot ends.

Kernel objects exist only while they have a user: a network's bridge, rules
and DNS listener are made when its first endpoint attaches ("activation") and
removed when its last one goes; pybox's nftables table goes with the last
active network.  ``shutdown`` (pyboxd stopping) keeps everything running
containers use -- they outlive pyboxd -- and ``cleanup`` removes every object
of this pyboxd, found by name (pybox.network.Names), after a crash too.

One lock serialises changes; netlink calls run on one worker thread
(links.py).  Setting up a container's networking is: a namespace (unshare on
a short-lived thread), one veth pair created straight into it, four netlink
messages inside it, a few nftables elements and port sockets.
"""

from __future__ import annotations

import builtins
import fcntl
import ipaddress
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NotRequired, TypedDict

from pybox.crashpoints import crashpoint
from pybox.errors import BadRequest, Conflict, NetworkError, NotFound, PyboxError
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.network import Names, etc, ifname_problem, ipam, is_reserved_name
from pybox.network import netns as netnsmod
from pybox.network import ports as portsmod
from pybox.network.dns import DNSServer
from pybox.network.firewall import Firewall
from pybox.network.links import (
    LinkError,
    Links,
    V6Address,
    disable_ipv6_path,
    read_sysctl,
    route_localnet_path,
    write_sysctl,
)
from pybox.network.ports import PortMapping, PortRequest
from pybox.oci.state import write_atomic

# A network's record: docker's network JSON (what inspect shows) plus pybox's
# own section under "pybox" (bridge, ipam state, ownership of the bridge)
NetworkRecord = dict[str, Any]
Filters = Mapping[str, Iterable[str]]


class Endpoint(TypedDict):
    """A container's attachment to one network (docker's names for what
    inspect shows, plus the interface names pybox needs to undo it)."""

    NetworkID: str
    EndpointID: str
    Gateway: str
    IPAddress: str
    IPPrefixLen: int
    MacAddress: str
    ifname: str
    veth: str
    Aliases: list[str]
    IPAMConfig: dict[str, Any] | None
    # legacy links on a user-defined network ("name:alias"): names only this
    # container's DNS queries resolve (absent in a sandbox of an older pybox)
    Links: NotRequired[list[str] | None]
    # a dual-stack network's IPv6 side ("" and 0 on an IPv4-only network)
    GlobalIPv6Address: NotRequired[str]
    GlobalIPv6PrefixLen: NotRequired[int]
    IPv6Gateway: NotRequired[str]


class Sandbox(TypedDict):
    """A running container's network state (RUN_ROOT/network/sandboxes/CID.json)."""

    id: str
    netns: str
    endpoints: dict[str, Endpoint]  # network id -> endpoint
    ports: list[PortMapping]
    hostname: str
    dns: list[str]
    order: list[str]  # network ids in attach order: the first has eth0

PREDEFINED = ("bridge", "host", "none")
DEFAULT_NETWORK = "bridge"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MTU_OPTION = "com.docker.network.driver.mtu"
MIN_MTU, MAX_MTU = 68, 65535  # what the kernel takes for a bridge and a veth


def _now() -> str:
    return rfc3339_nano_fixed()


def _version(subnet: object) -> int:
    """The IP version of an IPAM.Config entry's subnet (4 when it has none or
    it does not parse: make_config reports that with docker's words)."""
    try:
        return ipaddress.ip_network(str(subnet), strict=False).version if subnet else 4
    except ValueError:
        return 4


def _addresses(ep: Endpoint) -> list[str]:
    """An endpoint's addresses: IPv4, and IPv6 on a dual-stack network."""
    v6 = ep.get("GlobalIPv6Address")
    return [ep["IPAddress"], v6] if v6 else [ep["IPAddress"]]


def mac_for(ip: str) -> str:
    """docker's MAC for an address: 02:42 then the IPv4 bytes."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


class NetworkManager:
    def __init__(self, data_root: str, run_root: str, *,
                 container_name: Callable[[str], str] | None = None,
                 host_resolv_conf: str = etc.HOST_RESOLV_CONF) -> None:
        self.root = os.path.join(data_root, "network")
        self.records_dir = os.path.join(self.root, "networks")
        self.sandbox_dir = os.path.join(run_root, "network", "sandboxes")
        self.netns_dir = os.path.join(run_root, "netns")
        for d in (self.records_dir, self.sandbox_dir, self.netns_dir):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self.names = Names(run_root)
        self.links = Links()
        self.firewall = Firewall(self.names.table)
        self.reservations = portsmod.Reservations()
        self.container_name: Callable[[str], str] = container_name or (lambda cid: cid[:12])
        self.host_resolv_conf = host_resolv_conf
        self.lock = threading.RLock()
        self.networks: dict[str, NetworkRecord] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.active: set[str] = set()
        self.bridge_index: dict[str, int] = {}  # network id -> ifindex of its (active) bridge
        # a thread of its own: flushes are off the exit path
        self._conntrack: ThreadPoolExecutor | None = None
        self._dns: DNSServer | None = None
        self._mtu: int | None = None
        self._load()

    # -- records ----------------------------------------------------------------------
    def _load(self) -> None:
        for name in os.listdir(self.records_dir):
            if name.endswith(".json"):
                try:
                    rec = fastjson.load_file(os.path.join(self.records_dir, name))
                except (OSError, ValueError):
                    continue
                if self.is_default(rec) and rec["IPAM"].get("Options") == {}:
                    rec["IPAM"]["Options"] = None  # a record of an older pybox: dockerd's null
                self.networks[rec["Id"]] = rec
        for name in os.listdir(self.sandbox_dir):
            if name.endswith(".json"):
                try:
                    sb = fastjson.load_file(os.path.join(self.sandbox_dir, name))
                    sb["ports"] = [PortMapping.from_json(m) for m in sb.get("ports") or ()]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                self.sandboxes[sb["id"]] = sb
        self._from_disk = set(self.sandboxes)
        have = {r["Name"] for r in self.networks.values()}
        for name in PREDEFINED:
            if name not in have:
                self._create_predefined(name)

    def _save(self, rec: NetworkRecord, durable: bool = False) -> None:
        write_atomic(os.path.join(self.records_dir, rec["Id"] + ".json"),
                     fastjson.dumps(rec), mode=0o600, durable=durable)

    def _save_sandbox(self, sb: Sandbox) -> None:
        saved = dict(sb, ports=[m.to_json() for m in sb["ports"]])
        write_atomic(os.path.join(self.sandbox_dir, sb["id"] + ".json"), fastjson.dumps(saved),
                     mode=0o600)

    def _record(self, name: str, driver: str, *, ipam_config: list[dict[str, Any]] | None = None,
                internal: bool | None = False, options: dict[str, str] | None = None,
                labels: dict[str, str] | None = None, attachable: bool | None = False,
                ipam_options: dict[str, str] | None = None, enable_ipv6: bool = False,
                pybox: dict[str, Any] | None = None) -> NetworkRecord:
        """A new network's record.  IPAM.Options is what the client sent, as
        dockerd keeps it: null when it sent none (docker-py, the predefined
        networks), {} from the docker CLI, which always sends the map."""
        return {
            "Name": name, "Id": secrets.token_hex(32), "Created": _now(), "Scope": "local",
            "Driver": driver, "EnableIPv4": True, "EnableIPv6": enable_ipv6,
            "IPAM": {"Driver": "default", "Options": ipam_options,
                     "Config": ipam_config or []},
            "Internal": bool(internal), "Attachable": bool(attachable), "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Options": options or {}, "Labels": labels or {}, "pybox": pybox or {},
        }

    def _create_predefined(self, name: str) -> None:
        if name == "bridge":
            rec = self._record("bridge", "bridge", options={
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                BRIDGE_NAME_OPTION: self.names.default_bridge,
                MTU_OPTION: "0"})
            rec["pybox"] = {"bridge": self.names.default_bridge, "default": True,
                            "ipam": None}
        else:
            rec = self._record(name, "host" if name == "host" else "null")
        self.networks[rec["Id"]] = rec
        self._save(rec, durable=True)

    def get(self, ref: object) -> NetworkRecord:
        """A network record by full id, name, or unique id prefix (docker's order)."""
        ref = str(ref or "")
        if ref == "default":  # the docker CLI's name for the default network mode
            ref = DEFAULT_NETWORK
        with self.lock:
            if ref in self.networks:
                return self.networks[ref]
            for rec in self.networks.values():
                if rec["Name"] == ref:
                    return rec
            found = [r for r in self.networks.values() if ref and r["Id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BadRequest(f"network {ref} is ambiguous ({len(found)} matches found based "
                             "on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def is_bridge(self, rec: NetworkRecord) -> bool:
        return rec["Driver"] == "bridge"

    @staticmethod
    def is_default(rec: NetworkRecord) -> bool:
        return bool(rec.get("pybox", {}).get("default"))

    # -- create / remove / list / inspect / prune ------------------------------------------
    def _taken_subnets(self, exclude: str | None = None) -> list[ipam.Network]:
        out: list[ipam.Network] = []
        for rec in self.networks.values():
            if rec["Id"] == exclude:
                continue
            for cfg in rec["IPAM"]["Config"] or ():
                if cfg.get("Subnet"):
                    out.append(ipaddress.ip_network(cfg["Subnet"]))
        return out

    def _host_networks(self) -> list[ipaddress.IPv4Network]:
        # routes on pybox's own bridges are its networks'; a user's bridge may
        # carry subnets of its own, which later networks must avoid
        mine = {r["pybox"]["bridge"] for r in self.networks.values()
                if r.get("pybox", {}).get("bridge") and self._owns_bridge(r)}
        return self.links.host_networks(exclude=mine)

    def _owns_bridge(self, rec: NetworkRecord) -> bool:
        """Whether the network's bridge is pybox's to delete: a name of
        pybox's own pattern (Names), or a bridge pybox created under the
        name the client chose (``bridge_created`` in the record, set before
        the link is made and cleared once it is deleted, so a restarted or
        crashed pyboxd knows too).  A bridge that existed before is the
        user's: docker's ifaceCreatedByUser, never deleted."""
        pb = rec.get("pybox") or {}
        return bool(pb.get("bridge_created")) or self.names.is_bridge(pb.get("bridge") or "")

    def _check_bridge_options(self, options: dict[str, str]) -> None:
        """docker's checks of a bridge network's driver options at create, and
        the name checks docker leaves to the kernel (which then answers
        "invalid argument" with a 500): a client naming eth0 or "../x" must
        not get pybox to re-address, or later delete, a host interface."""
        name = options.get(BRIDGE_NAME_OPTION)
        if name:
            problem = ifname_problem(name)
            if problem:
                # the kernel's errno text, as docker passes it on
                errtext = "numerical result out of range" if "longer" in problem \
                    else "invalid argument"
                raise BadRequest(f"{errtext}: bridge name {name!r} {problem}")
            if is_reserved_name(name):
                raise BadRequest(f"invalid argument: bridge name {name!r} is reserved for "
                                 "pybox's own interfaces")
            kind = self.links.link_kind(name)
            if kind is not None and kind != "bridge":
                raise BadRequest(f"existing interface {name} is not a bridge")
        mtu = options.get(MTU_OPTION)
        if mtu is not None and mtu != "":
            if not re.fullmatch(r"[+-]?[0-9]+", mtu):
                raise BadRequest(f"failed to parse {MTU_OPTION} value: {mtu} "
                                 f'(strconv.Atoi: parsing "{mtu}": invalid syntax)')
            value = int(mtu)
            if value < 0 or (value and not MIN_MTU <= value <= MAX_MTU):
                raise BadRequest(f"invalid MTU number: {value}")

    def create(self, body: dict[str, Any]) -> tuple[str, str]:
        """POST /networks/create -> (id, warning)."""
        name = (body.get("Name") or "").strip()
        if not name:
            raise BadRequest("network name is required")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Conflict(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        enable6 = bool(body.get("EnableIPv6"))
        options = dict(body.get("Options") or {})
        self._check_bridge_options(options)
        configs = list((body.get("IPAM") or {}).get("Config") or [])
        v6 = [c for c in configs if _version(c.get("Subnet")) == 6]
        v4 = [c for c in configs if _version(c.get("Subnet")) != 6]
        if len(v4) > 1 or len(v6) > 1:
            raise BadRequest("pybox networks have one IPv4 subnet and at most one IPv6 subnet")
        cfg = v4[0] if v4 else {}
        cfg6 = v6[0] if v6 else {}
        with self.lock:
            if any(r["Name"] == name for r in self.networks.values()):
                raise Conflict(f"network with name {name} already exists")
            host = self._host_networks() if not cfg.get("Subnet") else []
            config = ipam.make_config(cfg.get("Subnet"), cfg.get("Gateway"),
                                      cfg.get("IPRange"), taken=self._taken_subnets(),
                                      host=host, aux_addresses=cfg.get("AuxiliaryAddresses"))
            configs_out: list[dict[str, Any]] = [dict(config)]
            config6: ipam.IpamConfig | None = None
            if enable6 or cfg6:
                # an IPv6 subnet without --ipv6 is kept and unused, as dockerd 20.10 keeps it
                config6 = ipam.make_config(cfg6.get("Subnet"), cfg6.get("Gateway"),
                                           cfg6.get("IPRange"), taken=self._taken_subnets(),
                                           version=6,
                                           aux_addresses=cfg6.get("AuxiliaryAddresses"))
                configs_out.append(dict(config6))
            rec = self._record(name, "bridge", ipam_config=configs_out,
                               internal=body.get("Internal"), options=options,
                               labels=body.get("Labels"), attachable=body.get("Attachable"),
                               ipam_options=(body.get("IPAM") or {}).get("Options"),
                               enable_ipv6=enable6)
            bridge = options.get(BRIDGE_NAME_OPTION) or self.names.bridge(rec["Id"])
            if any(r.get("pybox", {}).get("bridge") == bridge for r in self.networks.values()):
                raise Conflict(f"bridge name {bridge} is used by another network")
            state = dict(config, allocated={})
            # the bridge is made (or a user's adopted) when the network is
            # first used; bridge_created records whether pybox made it
            rec["pybox"] = {"bridge": bridge, "ipam": state, "bridge_created": False,
                            "user_subnet": bool(cfg.get("Subnet"))}
            if enable6 and config6 is not None:
                rec["pybox"]["ipam6"] = dict(config6, allocated={})
            self.networks[rec["Id"]] = rec
            self._save(rec, durable=True)
        return rec["Id"], ""

    def remove(self, ref: object) -> NetworkRecord:
        with self.lock:
            rec = self.get(ref)
            if rec["Name"] in PREDEFINED and not rec.get("pybox", {}).get("user"):
                raise Conflict(f"{rec['Name']} is a pre-defined network and cannot be removed")
            users = self._endpoints_on(rec["Id"])
            if users:
                raise Conflict(f"error while removing network: network {rec['Name']} id "
                               f"{rec['Id']} has active endpoints")
            self._deactivate(rec)
            del self.networks[rec["Id"]]
            try:
                os.unlink(os.path.join(self.records_dir, rec["Id"] + ".json"))
            except FileNotFoundError:
                pass
        return rec

    def _endpoints_on(self, netid: str) -> list[tuple[str, Endpoint]]:
        return [(cid, sb["endpoints"][netid]) for cid, sb in self.sandboxes.items()
                if netid in sb["endpoints"]]

    def inspect(self, ref: object, containers: bool = True) -> dict[str, Any]:
        with self.lock:
            rec = self.get(ref)
            out = {k: v for k, v in rec.items() if k != "pybox"}
            out = fastjson.loads(fastjson.dumps(out))
            if rec["Driver"] == "bridge" and not out["IPAM"]["Config"]:
                state = rec["pybox"].get("ipam")
                if state:
                    out["IPAM"]["Config"] = [{"Subnet": state["Subnet"],
                                              "Gateway": state["Gateway"]}]
            for cfg in out["IPAM"]["Config"] or ():
                cfg.pop("allocated", None)
                cfg.pop("last", None)
            out["Containers"] = {}
            if containers:
                for cid, ep in self._endpoints_on(rec["Id"]):
                    out["Containers"][cid] = {
                        "Name": self.container_name(cid), "EndpointID": ep["EndpointID"],
                        "MacAddress": ep["MacAddress"],
                        "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}",
                        "IPv6Address": f"{ep['GlobalIPv6Address']}/{ep['GlobalIPv6PrefixLen']}"
                        if ep.get("GlobalIPv6Address") else ""}
            # dockerd's field order: Containers before Options and Labels
            tail = {k: out.pop(k) for k in ("Options", "Labels") if k in out}
            out.update(tail)
            return out

    def list(self, filters: Filters | None = None) -> builtins.list[dict[str, Any]]:
        filters = filters or {}
        out = []
        for rec in list(self.networks.values()):
            if not self._matches(rec, filters):
                continue
            item = self.inspect(rec["Id"], containers=False)
            out.append(item)
        out.sort(key=lambda r: r["Name"])
        return out

    def _matches(self, rec: NetworkRecord, filters: Filters) -> bool:
        for key, values in filters.items():
            values = list(values)
            if key == "name" and not any(v in rec["Name"] for v in values):
                return False
            if key == "id" and not any(rec["Id"].startswith(v) for v in values):
                return False
            if key == "driver" and rec["Driver"] not in values:
                return False
            if key == "type":
                kind = "builtin" if rec["Name"] in PREDEFINED else "custom"
                if kind not in values:
                    return False
            if key == "scope" and "local" not in values:
                return False
            if key == "label":
                labels = rec.get("Labels") or {}
                for v in values:
                    k, _, val = v.partition("=")
                    if k not in labels or (val and labels[k] != val):
                        return False
            if key == "dangling":
                dangling = not self._endpoints_on(rec["Id"])
                if str(dangling).lower() not in [str(v).lower() for v in values] and \
                        not ({"1"} & set(values) and dangling):
                    return False
        return True

    def prune(self, filters: Filters | None = None, in_use: Collection[str] = frozenset(),
              keep: Callable[[NetworkRecord], bool] | None = None) -> builtins.list[str]:
        """Remove unused user-defined networks -> their names.  ``in_use``: ids of
        networks that containers (running or not) name; ``keep(rec)``: the
        caller's own reasons to keep one (docker's until and label! filters)."""
        removed = []
        with self.lock:
            for rec in list(self.networks.values()):
                if rec["Name"] in PREDEFINED or rec["Id"] in in_use:
                    continue
                if keep is not None and keep(rec):
                    continue
                if filters and not self._matches(rec, {k: v for k, v in filters.items()
                                                       if k in ("label",)}):
                    continue
                if self._endpoints_on(rec["Id"]):
                    continue
                try:
                    self.remove(rec["Id"])
                except PyboxError:
                    continue
                removed.append(rec["Name"])
        return removed

    # -- activation: a network's kernel objects ---------------------------------------------
    def mtu(self, rec: NetworkRecord) -> int:
        try:
            value = int((rec.get("Options") or {}).get(MTU_OPTION) or 0)
        except ValueError:  # a record from before the create checked it
            value = 0
        if MIN_MTU <= value <= MAX_MTU:
            return value
        if self._mtu is None:
            self._mtu = self.links.default_mtu()
        return self._mtu

    def _ipam_state(self, rec: NetworkRecord) -> ipam.IpamState:
        """The network's IPAM state.  A subnet pybox chose (the default
        bridge's, chosen on first use; a network created without --subnet) is
        chosen again when the host has taken it since (another pyboxd's network,
        docker started with the same pool, a VPN) while nothing uses it: two
        bridges with one subnet would break both."""
        state = rec["pybox"].get("ipam")
        auto = self.is_default(rec) or not rec["pybox"].get("user_subnet")
        if not auto:
            return state
        host = None
        if state and not state.get("allocated"):
            host = self._host_networks()
            if ipam.overlaps_any(ipaddress.ip_network(state["Subnet"]), host):
                state = None
        if not state:
            host = host if host is not None else self._host_networks()
            config = ipam.make_config(taken=self._taken_subnets(exclude=rec["Id"]),
                                      host=host)
            state = ipam.IpamState(**config, allocated={})
            rec["pybox"]["ipam"] = state
            rec["IPAM"]["Config"] = [{"Subnet": config["Subnet"], "Gateway": config["Gateway"]}] \
                + [c for c in rec["IPAM"]["Config"] or () if _version(c.get("Subnet")) == 6]
            self._save(rec, durable=True)
        return state

    def _activate(self, rec: NetworkRecord) -> None:
        """Make the network's kernel objects.  The subnet check and the
        bridge's creation run under a host-wide lock, so two pyboxds never
        both pick a subnet that neither has routed yet.

        The bridge: made by pybox if no link has its name (and then pybox's:
        ``bridge_created`` is saved before the link is made); a bridge that
        exists and is not pybox's is the user's (docker's user-provided
        bridge), used as docker uses one: the gateway address added, set up,
        pybox's nft rules for it.  What pybox changes on a user's bridge is
        saved first (``adopted``) and undone when the network goes idle
        (``_deactivate``) or, after a crash, by ``recover``.  Any other kind
        of link is refused and left as it is."""
        if rec["Id"] in self.active:
            return
        pb = rec["pybox"]
        bridge = pb["bridge"]
        with _host_lock():
            state = self._ipam_state(rec)
            prefixlen = ipaddress.ip_network(state["Subnet"]).prefixlen
            gateway = state["Gateway"]
            state6 = pb.get("ipam6")
            prefixlen6 = ipaddress.ip_network(state6["Subnet"]).prefixlen if state6 else 0
            try:
                owned = self._claim_bridge(rec, gateway, prefixlen)
                if not rec["Internal"]:
                    _enable_ip_forwarding()
                index, _, added = self.links.ensure_bridge(
                    bridge, gateway, prefixlen, self.mtu(rec), create=owned)
                added6 = False
                if state6:  # a dual-stack network: the IPv6 gateway too
                    if not rec["Internal"]:
                        _enable_ip_forwarding(IPV6_FORWARDING)
                    added6 = self.links.add_address6(bridge, state6["Gateway"], prefixlen6)
            except BaseException as e:
                self._deactivate(rec, force=True)
                if isinstance(e, (LinkError, NetworkError)):
                    raise NetworkError(f"network {rec['Name']}: {e}") from None
                raise
            adopted = pb.get("adopted")
            if added and adopted is not None and not adopted.get("address"):
                adopted["address"] = [gateway, prefixlen]  # gone since the claim
                self._save(rec)
            if added6 and adopted is not None and state6:
                adopted["address6"] = [state6["Gateway"], prefixlen6]  # pybox's to remove
                self._save(rec)
            self.bridge_index[rec["Id"]] = index
            crashpoint("network.activate.bridge")
        try:
            self.firewall.ensure()
            self.firewall.add_network(bridge, state["Subnet"], internal=rec["Internal"],
                                      subnet6=state6["Subnet"] if state6 else None)
            crashpoint("network.activate.rules")
            # published ports on 127.0.0.1 (see firewall.py): only once the
            # guard chain covers the bridge
            write_sysctl(route_localnet_path(bridge), "1")
            if not self.is_default(rec):
                try:
                    self.dns.add(rec["Id"], state["Gateway"], state["Subnet"])
                except OSError as e:
                    raise Conflict(f"network {rec['Name']}: cannot serve DNS on "
                                   f"{state['Gateway']}:53: {e.strerror} (is the subnet "
                                   f"{state['Subnet']} used elsewhere on this host?)") \
                        from None
        except BaseException:
            self._deactivate(rec, force=True)
            raise
        self.active.add(rec["Id"])

    def _claim_bridge(self, rec: NetworkRecord, gateway: str, prefixlen: int) -> bool:
        """Decide whose the network's bridge is before anything changes it
        -> True if pybox's (it may create it).  A user's bridge: what will be
        changed on it is saved (its route_localnet, the gateway address if it
        lacks it), to be undone.  A link that is not a bridge is refused."""
        pb = rec["pybox"]
        bridge = pb["bridge"]
        kind = self.links.link_kind(bridge)
        if kind is not None and kind != "bridge":
            raise NetworkError(f"existing interface {bridge} is not a bridge")
        if self._owns_bridge(rec):
            return True
        if kind is None:  # pybox makes it: record that first
            pb["bridge_created"] = True
            pb.pop("adopted", None)
            self._save(rec, durable=True)
            return True
        if "adopted" not in pb:  # else a crashed pyboxd's, to be undone as saved
            have = self.links.addresses(bridge)
            pb["adopted"] = {
                "route_localnet": read_sysctl(route_localnet_path(bridge)),
                "address": None if (gateway, prefixlen) in have else [gateway, prefixlen]}
            if pb.get("ipam6"):  # a dual-stack network switches IPv6 on for the bridge
                pb["adopted"]["disable_ipv6"] = read_sysctl(disable_ipv6_path(bridge))
            self._save(rec, durable=True)
        return False

    def _release_bridge(self, rec: NetworkRecord) -> None:
        """The network goes idle: pybox's bridge is deleted (if that name is
        still the bridge it made); a user's bridge gets back what pybox changed
        (route_localnet before the firewall's guard goes, the address pybox
        added) and stays."""
        pb = rec.get("pybox") or {}
        bridge: str = pb.get("bridge") or ""  # callers check that there is one
        adopted = pb.get("adopted")
        if adopted is not None:
            old = adopted.get("route_localnet")
            if old is not None and self.links.link_kind(bridge) == "bridge":
                write_sysctl(route_localnet_path(bridge), old)
        try:
            self.firewall.remove_network(bridge)
        except PyboxError:
            pass
        crashpoint("network.deactivate.rules")
        index = self.bridge_index.pop(rec["Id"], None)
        if adopted is not None:
            for key in ("address", "address6"):
                if adopted.get(key) and self.links.link_kind(bridge) == "bridge":
                    addr, prefixlen = adopted[key]
                    try:
                        self.links.remove_address(bridge, addr, prefixlen)
                    except LinkError:
                        pass
            if adopted.get("disable_ipv6") is not None and \
                    self.links.link_kind(bridge) == "bridge":
                write_sysctl(disable_ipv6_path(bridge), adopted["disable_ipv6"])
            del pb["adopted"]
            self._save(rec)
        elif self._owns_bridge(rec):
            if index is not None:
                self.links.delete_link(bridge, index=index)
            else:
                self.links.delete_link(bridge, kind="bridge")
            if pb.get("bridge_created"):
                pb["bridge_created"] = False
                self._save(rec)

    def _deactivate(self, rec: NetworkRecord, force: bool = False) -> None:
        if rec["Id"] not in self.active and not force:
            return
        self.active.discard(rec["Id"])
        bridge = rec.get("pybox", {}).get("bridge")
        if not bridge:
            self.bridge_index.pop(rec["Id"], None)
            return
        if self._dns is not None:
            self._dns.remove(rec["Id"])
        self._release_bridge(rec)
        state = rec["pybox"].get("ipam")
        if state:
            # everything of the subnet: its containers', the gateway's own IGMP
            self._flush_conntrack(subnets=[state["Subnet"]])
        if not self.active:
            self.firewall.remove_table()

    @property
    def dns(self) -> DNSServer:
        if self._dns is None:
            self._dns = DNSServer(self._dns_lookup, self._dns_reverse, self._dns_upstreams)
        return self._dns

    # -- DNS views ---------------------------------------------------------------------------
    def _client_networks(self, netid: str, client_ip: str | None) -> builtins.list[str]:
        """The networks of the container that asked (found by its address on
        ``netid``); just ``netid`` if it is not one of ours."""
        for cid, ep in self._endpoints_on(netid):
            if ep["IPAddress"] == client_ip:
                return list(self.sandboxes[cid]["endpoints"])
        return [netid]

    def _link_targets(self, netid: str, client_ip: str | None,
                      name: str) -> builtins.list[tuple[str, str]]:
        """(network id, container name or id) pairs that ``name`` stands for
        through the asking container's legacy links (its endpoints' Links,
        "target:alias"): libnetwork's endpoint aliases, seen by that
        container alone."""
        out: list[tuple[str, str]] = []
        for cid, ep in self._endpoints_on(netid):
            if ep["IPAddress"] != client_ip:
                continue
            for net, own in self.sandboxes[cid]["endpoints"].items():
                for link in own.get("Links") or ():
                    target, sep, alias = str(link).partition(":")
                    alias = (alias if sep else target).rsplit("/", 1)[-1]
                    if alias.lower() == name:
                        out.append((net, target.lstrip("/")))
        return out

    def _dns_lookup(self, netid: str, name: str, client_ip: str | None = None) -> builtins.list[str]:
        name = name.lower().rstrip(".")
        out: list[str] = []
        with self.lock:
            for net, target in self._link_targets(netid, client_ip, name):
                for cid, ep in self._endpoints_on(net):
                    if target and (self.container_name(cid) == target or cid.startswith(target)):
                        out += [ip for ip in _addresses(ep) if ip not in out]
            for net in self._client_networks(netid, client_ip):
                for cid, ep in self._endpoints_on(net):
                    sb = self.sandboxes[cid]
                    names = {self.container_name(cid).lower(), cid[:12]}
                    names.update(a.lower() for a in ep.get("Aliases") or ())
                    if sb.get("hostname"):
                        names.add(sb["hostname"].lower())
                    if name in names:
                        out += [ip for ip in _addresses(ep) if ip not in out]
        return out

    def _dns_reverse(self, netid: str, ip: str, client_ip: str | None = None) -> str | None:
        with self.lock:
            for net in self._client_networks(netid, client_ip):
                for cid, ep in self._endpoints_on(net):
                    if ip in _addresses(ep):
                        rec = self.networks.get(net)
                        return f"{self.container_name(cid)}.{rec['Name'] if rec else ''}" \
                            .rstrip(".")
        return None

    def _dns_upstreams(self, netid: str, client_ip: str) -> builtins.list[str]:
        with self.lock:
            for cid, ep in self._endpoints_on(netid):
                if ep["IPAddress"] == client_ip and self.sandboxes[cid].get("dns"):
                    return list(self.sandboxes[cid]["dns"])
        return etc.host_resolvers(self.host_resolv_conf)["nameservers"]

    # -- a container's sandbox ----------------------------------------------------------------
    def netns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid)

    def check_endpoint_config(self, rec: NetworkRecord, config: dict[str, Any] | None) -> None:
        """docker's rules for --ip, --alias and --mac-address on a network."""
        config = config or {}
        ipv4 = ((config.get("IPAMConfig") or {}).get("IPv4Address") or "").strip()
        ipv6 = ((config.get("IPAMConfig") or {}).get("IPv6Address") or "").strip()
        if ipv6:
            try:
                if ipaddress.ip_address(ipv6).version != 6:
                    raise ValueError(ipv6)
            except ValueError:
                raise BadRequest(f"invalid IPv6 address: {ipv6}") from None
        if rec["Driver"] != "bridge":
            if ipv4 or ipv6 or config.get("Aliases"):
                raise BadRequest(f"container cannot be connected to network {rec['Name']} "
                                 "with an address or aliases")
            return
        if ipv4 and (self.is_default(rec) or not rec["pybox"].get("user_subnet")) or \
                ipv6 and not rec["pybox"].get("ipam6"):
            raise BadRequest("user specified IP address is supported only when connecting "
                             "to networks with user configured subnets")
        if config.get("Aliases") and self.is_default(rec):
            raise BadRequest("network-scoped alias is supported only for containers in user "
                             "defined networks")
        mac = config.get("MacAddress")
        if mac:
            check_mac(mac)

    def setup(self, cid: str, attachments: Sequence[tuple[str, dict[str, Any]]], *,
              hostname: str = "", wanted_ports: Sequence[PortRequest] = (),
              dns: Iterable[str] = ()) -> Sandbox:
        """Create the container's namespace, attach it to every network of
        ``attachments`` ([(network ref, endpoint config)], in order: the first
        gets eth0 and the default route) and publish ``wanted_ports``
        (PortRequests).  All or nothing.  -> the sandbox dict:
        {"netns", "endpoints": {netid: endpoint}, "ports": [mapping]}."""
        path = self.netns_path(cid)
        with self.lock:
            if cid in self.sandboxes:
                self.teardown(cid)
            sb: Sandbox = {"id": cid, "netns": path, "endpoints": {}, "ports": [],
                  "hostname": hostname, "dns": list(dns), "order": []}
            sock = None
            try:
                netnsmod.remove(path)  # a leftover of a crash
                sock = netnsmod.create(path)[0]
                crashpoint("network.setup.netns")
                self.sandboxes[cid] = sb
                for n, (ref, config) in enumerate(attachments):
                    # the first attach checks that the new namespace holds only lo
                    self._attach(sb, sock, self.get(ref), config, fresh=(n == 0))
                    crashpoint("network.setup.attached")
                if wanted_ports:
                    self._publish(sb, wanted_ports)
                    crashpoint("network.setup.published")
                self._save_sandbox(sb)
            except BaseException:
                if sock is not None:
                    sock.close()
                    sock = None
                self.sandboxes.setdefault(cid, sb)
                self.teardown(cid)
                raise
            finally:
                if sock is not None:
                    sock.close()
            return sb

    def _next_ifname(self, sb: Sandbox) -> str:
        used = {ep["ifname"] for ep in sb["endpoints"].values()}
        n = 0
        while f"eth{n}" in used:
            n += 1
        return f"eth{n}"

    def _attach(self, sb: Sandbox, sock: socket.socket, rec: NetworkRecord,
                config: dict[str, Any] | None, fresh: bool = False) -> Endpoint:
        config = config or {}
        if rec["Id"] in sb["endpoints"]:
            raise Conflict(f"endpoint with name {self.container_name(sb['id'])} already "
                           f"exists in network {rec['Name']}")
        if rec["Driver"] != "bridge":
            raise BadRequest(f"container cannot be disconnected from host network or "
                             f"connected to {rec['Name']} network")
        self.check_endpoint_config(rec, config)
        self._activate(rec)
        state = rec["pybox"]["ipam"]
        alloc = ipam.Allocator(state, rec["Name"])
        requested = ((config.get("IPAMConfig") or {}).get("IPv4Address") or "").strip()
        ip = alloc.allocate(sb["id"], requested or None)
        state6 = rec["pybox"].get("ipam6")
        alloc6 = ipam.Allocator(state6, rec["Name"]) if state6 else None
        ip6 = ""
        if alloc6 is not None:
            requested6 = ((config.get("IPAMConfig") or {}).get("IPv6Address") or "").strip()
            try:
                ip6 = alloc6.allocate(sb["id"], requested6 or None)
            except BaseException:
                alloc.release(ip, sb["id"])
                self._save(rec)
                if not self._endpoints_on(rec["Id"]):
                    self._deactivate(rec)
                raise
        self._save(rec)
        crashpoint("network.attach.allocated")
        ifname = self._next_ifname(sb)
        mac = (config.get("MacAddress") or "").lower() or mac_for(ip)
        veth = self.names.veth(secrets.token_hex(8))
        internal = rec["Internal"]
        gateway = None if internal or sb["endpoints"] else state["Gateway"]
        v6 = V6Address(ip6, alloc6.prefixlen, state6["Gateway"]) \
            if alloc6 is not None and state6 else None
        try:
            self.links.attach_veth(sock, sb["netns"], veth, ifname,
                                   self.bridge_index[rec["Id"]], self.mtu(rec), ip,
                                   alloc.prefixlen, mac, gateway, expect_fresh=fresh, v6=v6)
        except BaseException as e:
            alloc.release(ip, sb["id"])
            if alloc6 is not None:
                alloc6.release(ip6, sb["id"])
            self._save(rec)
            if not self._endpoints_on(rec["Id"]):
                self._deactivate(rec)
            if isinstance(e, LinkError):
                raise NetworkError(str(e)) from None
            raise
        ep: Endpoint = {"NetworkID": rec["Id"], "EndpointID": secrets.token_hex(32),
              "Gateway": "" if internal else state["Gateway"], "IPAddress": ip,
              "IPPrefixLen": alloc.prefixlen, "MacAddress": mac, "ifname": ifname,
              "veth": veth, "Aliases": list(config.get("Aliases") or []),
              "IPAMConfig": config.get("IPAMConfig") or None,
              "Links": list(config.get("Links") or []) or None,
              "GlobalIPv6Address": ip6,
              "GlobalIPv6PrefixLen": alloc6.prefixlen if alloc6 is not None else 0,
              "IPv6Gateway": state6["Gateway"] if state6 and not internal else ""}
        sb["endpoints"][rec["Id"]] = ep
        sb["order"].append(rec["Id"])
        return ep

    def _publish(self, sb: Sandbox, wanted: Sequence[PortRequest]) -> None:
        """Reserve host ports and add their DNAT, toward the container's address
        on its first network that is not internal."""
        target = None
        for netid in sb["order"]:
            rec = self.networks.get(netid)
            if rec is not None and not rec["Internal"]:
                target = sb["endpoints"][netid]["IPAddress"]
                break
        if target is None:
            return
        mappings = portsmod.with_container_ip(self.reservations.reserve(sb["id"], wanted), target)
        try:
            self.firewall.add_ports(mappings)
        except BaseException:
            self.reservations.release(mappings)
            raise
        sb["ports"] = mappings

    def teardown(self, cid: str) -> None:
        """Undo ``setup`` (and every connect since): ports, conntrack entries,
        addresses, the namespace (and with it the veths), networks left without
        users.  Idempotent; safe after a crash (works from the saved state)."""
        with self.lock:
            sb = self.sandboxes.pop(cid, None)
            if sb is None:
                netnsmod.remove(self.netns_path(cid))
                return
            if sb.get("ports"):
                self.firewall.remove_ports(sb["ports"])
                crashpoint("network.teardown.ports")
            self.reservations.release_owner(cid)
            ips = [ep["IPAddress"] for ep in sb["endpoints"].values()] + \
                [ep["GlobalIPv6Address"] for ep in sb["endpoints"].values()
                 if ep.get("GlobalIPv6Address")]
            netnsmod.remove(sb["netns"])
            crashpoint("network.teardown.netns")
            for netid in sb["endpoints"]:
                rec = self.networks.get(netid)
                if rec is None or not rec.get("pybox", {}).get("ipam"):
                    continue
                ipam.Allocator(rec["pybox"]["ipam"]).release_owner(cid)
                if rec["pybox"].get("ipam6"):
                    ipam.Allocator(rec["pybox"]["ipam6"]).release_owner(cid)
                self._save(rec)
                crashpoint("network.teardown.released")
            if any(m.protocol == "udp" for m in sb.get("ports") or ()):
                # a UDP "connection" DNATed to this address would otherwise keep
                # going to it for its timeout (docker flushes these too); other
                # entries go with the network's flush when its last user leaves
                self._flush_conntrack(ips)
            for netid in list(sb["endpoints"]):
                rec = self.networks.get(netid)
                if rec is not None and not self._endpoints_on(netid):
                    self._deactivate(rec)
            try:
                os.unlink(os.path.join(self.sandbox_dir, cid + ".json"))
            except FileNotFoundError:
                pass

    def _flush_conntrack(self, ips: Iterable[str] = (), subnets: Iterable[str] = ()) -> None:
        """Delete conntrack entries to or from the container's addresses (or
        anything in ``subnets``).  Queued to a thread of its own: the kernel
        walks its whole conntrack hash table for a dump (~10 ms here, however
        few entries), and nobody needs to wait for it: addresses are handed out
        again only after the whole range went round."""
        wanted = set(ips)
        nets = [ipaddress.ip_network(n) for n in subnets]
        if not wanted and not nets:
            return

        def ours(addr: str) -> bool:
            if addr in wanted:
                return True
            try:
                a = ipaddress.ip_address(addr)
            except ValueError:
                return False
            return any(a in n for n in nets if a.version == n.version)

        def work() -> None:
            from pyroute2 import Conntrack  # noqa: PLC0415 -- pyroute2: see links.Links.host

            ct = Conntrack()
            try:
                for entry in list(ct.dump_entries()):
                    o, r = entry.tuple_orig, entry.tuple_reply
                    if any(ours(a) for a in (o.saddr, o.daddr, r.saddr, r.daddr)):
                        try:
                            ct.entry("del", tuple_orig=o)
                        except Exception:  # noqa: BLE001 - gone meanwhile
                            pass
            except Exception:  # noqa: BLE001 - conntrack support may be missing
                pass
            finally:
                ct.close()
        if self._conntrack is None:
            self._conntrack = ThreadPoolExecutor(1, thread_name_prefix="pybox-conntrack")
        self._conntrack.submit(work)

    def flush_pending(self) -> None:
        """Wait for queued conntrack flushes (shutdown, tests)."""
        if self._conntrack is not None:
            self._conntrack.submit(lambda: None).result()

    # -- live connect / disconnect -----------------------------------------------------------
    def connect(self, cid: str, ref: object, config: dict[str, Any] | None = None) -> Endpoint:
        """Attach a running container's sandbox to one more network -> endpoint."""
        with self.lock:
            sb = self.sandboxes.get(cid)
            if sb is None:
                raise Conflict(f"container {cid} has no network namespace of its own")
            rec = self.get(ref)
            sock = netnsmod.open_sockets(sb["netns"])[0]
            try:
                ep = self._attach(sb, sock, rec, config)
                crashpoint("network.connect.attached")
            finally:
                sock.close()
            self._save_sandbox(sb)
            return ep

    def disconnect(self, cid: str, ref: object) -> Endpoint:
        with self.lock:
            sb = self.sandboxes.get(cid)
            rec = self.get(ref)
            if sb is None or rec["Id"] not in sb["endpoints"]:
                raise Conflict(f"container {cid} is not connected to network {rec['Name']}")
            ep = sb["endpoints"].pop(rec["Id"])
            sb["order"].remove(rec["Id"])
            if self.names.is_veth(ep["veth"]):
                self.links.delete_link(ep["veth"], kind="veth")
            crashpoint("network.disconnect.unlinked")
            ipam.Allocator(rec["pybox"]["ipam"]).release(ep["IPAddress"], cid)
            if rec["pybox"].get("ipam6"):
                ipam.Allocator(rec["pybox"]["ipam6"]).release(ep.get("GlobalIPv6Address"), cid)
            self._save(rec)
            crashpoint("network.disconnect.released")
            if not self._endpoints_on(rec["Id"]):
                self._deactivate(rec)
            self._save_sandbox(sb)
            return ep

    def sandbox(self, cid: str) -> Sandbox | None:
        return self.sandboxes.get(cid)

    # -- daemon life -------------------------------------------------------------------------
    def recover(self, running: Iterable[str]) -> None:
        """After a pyboxd (re)start: keep the sandboxes of ``running`` container
        ids (their port sockets re-bound, their networks active again, DNS back),
        tear down the others, free addresses nobody holds, and remove leftovers
        of this pyboxd that no sandbox explains."""
        alive = set(running)
        with self.lock:
            # only sandboxes of a previous pyboxd: one set up since (a restart
            # policy bringing a container back) is not judged by ``running``
            for cid in list(self.sandboxes):
                if cid in self._from_disk and cid not in alive:
                    self.teardown(cid)
            for cid, sb in self.sandboxes.items():
                if sb.get("ports"):
                    self.reservations.adopt(cid, sb["ports"])
                    try:
                        self.firewall.ensure()
                        self.firewall.add_ports([m for m in sb["ports"]
                                                 if not self._port_present(m)])
                    except PyboxError:
                        pass
            for rec in self.networks.values():
                for key in ("ipam", "ipam6"):
                    self._free_stale(rec, key)
                if self._endpoints_on(rec["Id"]):
                    self._activate(rec)
            self._remove_leftovers()

    def _free_stale(self, rec: NetworkRecord, key: str) -> None:
        """recover: the network's addresses (of its ``key`` IPAM state) whose
        owner is gone go back."""
        state = rec.get("pybox", {}).get(key)
        if not state:
            return
        # an address is stale when its owner has no sandbox, or has one not
        # attached to this network (a connect cut after the lease, before the
        # sandbox was saved)
        stale = [ip for ip, owner in state.get("allocated", {}).items()
                 if owner not in self.sandboxes
                 or rec["Id"] not in self.sandboxes[owner]["endpoints"]]
        for ip in stale:
            del state["allocated"][ip]
        if stale:
            self._save(rec)

    def remove_unowned_ports(self) -> builtins.list[tuple[str, str | None]]:
        """Published-port elements of the nftables table that no sandbox owns
        go (see Firewall.remove_unowned_ports); nothing when no network is
        active (recover removed the table then)."""
        if not self.active:
            return []
        with self.lock:
            try:
                return self.firewall.remove_unowned_ports(
                    [m for sb in self.sandboxes.values() for m in sb.get("ports") or ()])
            except PyboxError:
                return []

    def warm(self) -> None:
        """Import pyroute2 and libnftables and open the host's netlink socket
        on a background thread, so the first container's start does not pay
        ~0.2 s for them (pyboxd calls this once it is up)."""
        def work() -> None:
            try:
                self.links.call(lambda: self.links.host)
                self.firewall.nft  # noqa: B018 - loads libnftables
            except Exception:  # noqa: BLE001 - the first real use reports errors
                pass
        threading.Thread(target=work, name="pybox-network-warm", daemon=True).start()

    def _port_present(self, mapping: PortMapping) -> bool:
        name, elem = Firewall.port_element(mapping)
        for obj in self.firewall.list_table():
            m = obj.get("map")
            if m and m["name"] == name:
                for e in m.get("elem") or ():
                    if e[0] == elem[0]:
                        return True
        return False

    def _remove_leftovers(self) -> None:
        """Objects named as this pyboxd's that no active network or sandbox
        explains: namespaces in the netns dir, links, the nft table."""
        for name in netnsmod.list_dir(self.netns_dir):
            if name not in self.sandboxes:
                netnsmod.remove(os.path.join(self.netns_dir, name))
        bridges = {self.networks[n]["pybox"]["bridge"] for n in self.active}
        veths = {ep["veth"] for sb in self.sandboxes.values()
                 for ep in sb["endpoints"].values()}
        # idle networks whose bridge a crash left as it was while in use: the
        # one pybox made under a client's name goes, a user's is given back
        for rec in list(self.networks.values()):
            pb = rec.get("pybox") or {}
            if rec["Id"] not in self.active and pb.get("bridge") and \
                    (pb.get("adopted") is not None or pb.get("bridge_created")):
                self._release_bridge(rec)
        # links of pybox's name patterns, if they are of the kind pybox makes
        for name, kind in self.links.link_kinds().items():
            if self.names.is_bridge(name) and kind == "bridge" and name not in bridges or \
                    self.names.is_veth(name) and kind == "veth" and name not in veths:
                self.links.delete_link(name, kind=kind)
        for bridge in self.firewall.networks():
            if bridge not in bridges:
                self.firewall.remove_network(bridge)
        if not self.active:
            self.firewall.remove_table()

    def shutdown(self) -> None:
        """pyboxd is stopping: running containers keep their networking (they
        outlive pyboxd); if none has any, everything pybox made goes."""
        with self.lock:
            if self._dns is not None:
                self._dns.close()
                self._dns = None
            self.reservations.close()
            if not self.sandboxes:
                self.cleanup()
            self.flush_pending()
            self.links.close()

    def cleanup(self) -> None:
        """Remove every kernel object of this pyboxd: sandboxes, namespaces,
        bridges and veths by name, the nft table.  Records stay."""
        with self.lock:
            for cid in list(self.sandboxes):
                self.teardown(cid)
            for rec in self.networks.values():
                self._deactivate(rec, force=bool(rec.get("pybox", {}).get("bridge")))
            self.active.clear()
            self._remove_leftovers()


HOST_LOCK = "/run/pybox-network.lock"


class _host_lock:
    """flock on one file for every pyboxd of the host (their run roots
    differ; /run is the host's)."""

    def __enter__(self) -> _host_lock:
        self.fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


IPV6_FORWARDING = "/proc/sys/net/ipv6/conf/all/forwarding"


def _enable_ip_forwarding(path: str="/proc/sys/net/ipv4/ip_forward") -> None:
    """Routing between a bridge and the host's other links (outbound NAT,
    published ports reached from other hosts) needs IPv4 forwarding on, as
    docker turns it on (IPv6 forwarding, ``IPV6_FORWARDING``, for a
    dual-stack network, as docker's ip6tables setup does); it is left on
    (other software may rely on it by then)."""
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        pass


def check_mac(mac: str) -> None:
    """A MAC address for a container's interface: six colon-separated octets
    (docker's net.ParseMAC also takes the 8- and 20-octet forms, which a veth
    cannot have) of a unicast address that is not all zeros -- the kernel
    refuses others when the veth is made, so a bad one would only fail the
    start.  BadRequest with docker's "invalid MAC address X"."""
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF"
                                                       for c in p) for p in parts):
        raise BadRequest(f"invalid MAC address {mac}")
    first = int(parts[0], 16)
    if first & 1:
        raise BadRequest(f"invalid MAC address {mac}: a multicast address cannot be an "
                         "interface's")
    if not any(int(p, 16) for p in parts):
        raise BadRequest(f"invalid MAC address {mac}: the all-zero address cannot be an "
                         "interface's")
