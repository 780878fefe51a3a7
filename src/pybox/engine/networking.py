"""The engine's side of networking: container records <-> pybox.network.

engine.py calls a handful of hooks and nothing else network-related:

    check_create(body, hc)   POST /containers/create: NetworkMode names a known
                             network, ports/--ip/--alias/--dns/--add-host valid
    on_create(record, body)  fill NetworkSettings.Networks from NetworkMode and
                             NetworkingConfig.EndpointsConfig (aliases, --ip,
                             --mac-address), before the record is first saved
    prepare(c) -> path|None  before the spec is built at start: the container's
                             namespace with its interfaces, published ports and
                             /etc files; the path goes to spec.build(netns=...)
    release(c)               after the container exited or failed to start:
                             everything prepare made goes, the record's
                             runtime fields (IP, ports) are cleared
    forget(c)                when the container is removed
    recover()                pyboxd started: re-adopt running containers'
                             networking, tear down the rest
    shutdown()               pyboxd stopping
    ps_ports(c)              the Ports column of GET /containers/json

plus ``connect``/``disconnect`` and ``manager`` (networks) for the API.  The
modes: ``none`` (a private namespace with lo, made by the runtime), ``host``
(no namespace), ``container:ID`` (the other container's, joined by the spec),
``bridge``/``default`` and user-defined network names or ids (a namespace
of pybox's, see pybox.network.netns).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pybox.crashpoints import crashpoint
from pybox.engine import etcfiles
from pybox.errors import BadRequest, Conflict, NotFound, PyboxError
from pybox.formats import fastjson
from pybox.network import etc
from pybox.network.links import interface_counters
from pybox.network.manager import NetworkError, NetworkManager, Sandbox, check_mac
from pybox.network.ports import PROTOCOLS, PortMapping, PortRequest

if TYPE_CHECKING:
    from pybox.engine.engine import Engine
    from pybox.engine.store import Container

NO_SANDBOX = ("none", "host")


def network_mode(hc: dict[str, Any] | None) -> str:
    mode = (hc or {}).get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def is_user_defined(mode: str) -> bool:
    """docker's NetworkMode.IsUserDefined: a network named by the client,
    where legacy links are endpoint aliases instead of hosts entries."""
    return mode not in ("bridge", "default", "host", "none") and not mode.startswith("container:")


def parse_link(value: object) -> tuple[str, str]:
    """One --link, "name:alias" or "name" (or the "/name:/parent/alias" form
    inspect shows) -> (name, alias), with dockerd's ParseLink messages."""
    text = str(value)
    if not text:
        raise BadRequest("empty string specified for links")
    parts = text.split(":")
    if len(parts) > 2:
        raise BadRequest(f"bad format for links: {text}")
    if len(parts) == 1:
        return text, text
    name, alias = parts
    if name.startswith("/"):
        return name[1:], alias.rsplit("/", 1)[-1]
    return name, alias


def _link_alias(link: object) -> str | None:
    """The alias of one HostConfig.Links entry, None if it does not parse."""
    try:
        return parse_link(link)[1]
    except BadRequest:
        return None


def link_env(alias: str, child_ip: str, full_name: str, child_env: Iterable[str],
             exposed: Iterable[str]) -> list[str]:
    """The environment a legacy link gives (dockerd's links.ToEnv): ALIAS_PORT
    and ALIAS_PORT_<n>_<PROTO>[_ADDR|_PORT|_PROTO] for the child's exposed
    ports (TCP first, then by number; runs of consecutive ports also get
    _START/_END), ALIAS_NAME (/parent/alias) and ALIAS_ENV_<VAR> for the
    child's variables other than HOME and PATH."""
    name = alias.upper().replace("-", "_")
    ports: list[tuple[int, str]] = []
    for key in exposed:
        try:
            ports.append(parse_port_key(key))
        except BadRequest:
            continue
    ports.sort(key=lambda p: (p[1] != "tcp", p[1], p[0]))
    env: list[str] = []
    start = end = ports[0] if ports else (0, "")
    for i, (num, proto) in enumerate(ports):
        if i == 0:
            env.append(f"{name}_PORT={proto}://{child_ip}:{num}")
        prefix = f"{name}_PORT_{num}_{proto.upper()}"
        env += [f"{prefix}={proto}://{child_ip}:{num}", f"{prefix}_ADDR={child_ip}",
                f"{prefix}_PORT={num}", f"{prefix}_PROTO={proto}"]
        if num == end[0] + 1 and proto == end[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{name}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{prefix}_START={start[1]}://{child_ip}:{start[0]}",
                    f"{prefix}_PORT_START={start[0]}",
                    f"{prefix}_END={end[1]}://{child_ip}:{end[0]}",
                    f"{prefix}_PORT_END={end[0]}"]
        start = end = (num, proto)
    env.append(f"{name}_NAME={full_name}")
    for entry in child_env:
        var, sep, value = str(entry).partition("=")
        if sep and var not in ("HOME", "PATH"):
            env.append(f"{name}_ENV_{var}={value}")
    return env


def dns_names(c: Container, aliases: Iterable[str]) -> list[str]:
    """An endpoint's DNSNames as dockerd's buildEndpointDNSNames makes them:
    the name, the aliases, the short id, the hostname, each once."""
    out: list[str] = []
    for name in (c.name, *aliases, c.id[:12], c.config.get("Hostname") or ""):
        if name and name not in out:
            out.append(name)
    return out


def _blank_endpoint() -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
            "DriverOpts": None, "NetworkID": "", "EndpointID": "", "Gateway": "",
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": None}


RUNTIME_FIELDS = ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway",
                  "GlobalIPv6Address", "GlobalIPv6PrefixLen")


# -- docker's port vocabulary <-> pybox.network's PortRequest/PortMapping --------
# Docker names a container port "80/tcp" (PortBindings' and ExposedPorts' keys,
# NetworkSettings.Ports'), a host side {"HostIp": "", "HostPort": "8080"} (a
# HostPort may be empty -- an ephemeral port -- or a range "8000-8010" -- the
# first free one); PublishAllPorts puts every ExposedPorts entry on an ephemeral
# port.  pybox.network gets and gives typed values only.


def parse_port_key(key: object) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"), with docker's messages."""
    port, _, protocol = str(key).partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise BadRequest(f"invalid proto: {protocol}")
    return _port_number(port, "containerPort"), protocol


def _port_number(text: Any, what: str) -> int:
    """``text``: any JSON value from the request; int() decides."""
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid {what}: {text}") from None
    if not 1 <= n <= 65535:
        raise BadRequest(f"invalid {what}: {text}")
    return n


def host_port_range(text: str | None) -> tuple[int, int]:
    """A binding's HostPort -> (first, last); (0, 0) for an ephemeral port."""
    text = (text or "").strip()
    if not text or text == "0":
        return 0, 0
    lo, sep, hi = text.partition("-")
    first = _port_number(lo, "hostPort")
    last = _port_number(hi, "hostPort") if sep else first
    if last < first:
        raise BadRequest(f"invalid hostPort: {text}")
    return first, last


def host_ip(text: str | None) -> str | None:
    """A binding's HostIp -> the IPv4 address to publish on; None for "::"
    (docker binds v4 and v6; pybox publishes IPv4 only)."""
    text = (text or "").strip().strip("[]")
    if not text:
        return "0.0.0.0"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(f"invalid IP address: {text}") from None
    if ip.version != 4:
        if str(ip) == "::":
            return None
        raise BadRequest(f"IPv6 host address {text}: pybox publishes IPv4 ports only")
    return str(ip)


def requested_ports(config: dict[str, Any], hc: dict[str, Any]) -> list[PortRequest]:
    """The ports to publish: PortBindings first, then ephemeral ones for -P."""
    out = []
    bound = set()
    for key, bindings in sorted((hc.get("PortBindings") or {}).items()):
        port, protocol = parse_port_key(key)
        for b in bindings or [{}]:
            b = b or {}
            ip = host_ip(b.get("HostIp"))
            if ip is None:
                continue
            first, last = host_port_range(b.get("HostPort"))
            out.append(PortRequest(protocol=protocol, container_port=port, host_ip=ip,
                                   host_port=first, host_port_last=last))
            bound.add((port, protocol))
    if hc.get("PublishAllPorts"):
        for key in sorted(config.get("ExposedPorts") or {}):
            port, protocol = parse_port_key(key)
            if (port, protocol) not in bound:
                out.append(PortRequest(protocol=protocol, container_port=port))
    return out


def docker_ports(mappings: Iterable[PortMapping], config: dict[str, Any],
                 hc: dict[str, Any]) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: every exposed/bound port -> its host bindings."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in (config.get("ExposedPorts") or {}):
        port, protocol = parse_port_key(key)
        out.setdefault(f"{port}/{protocol}", None)
    for key in (hc.get("PortBindings") or {}):
        port, protocol = parse_port_key(key)
        out.setdefault(f"{port}/{protocol}", None)
    for m in mappings:
        bindings = out.get(f"{m.container_port}/{m.protocol}")
        if bindings is None:
            bindings = out[f"{m.container_port}/{m.protocol}"] = []
        bindings.append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
    return out


def ps_ports(mappings: Iterable[PortMapping], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``Ports`` list of GET /containers/json."""
    out: list[dict[str, Any]] = []
    bound = set()
    for m in mappings:
        out.append({"IP": m.host_ip, "PrivatePort": m.container_port,
                    "PublicPort": m.host_port, "Type": m.protocol})
        bound.add((m.container_port, m.protocol))
    for key in (config.get("ExposedPorts") or {}):
        try:
            port, protocol = parse_port_key(key)
        except BadRequest:
            continue
        if (port, protocol) not in bound:
            out.append({"PrivatePort": port, "Type": protocol})
    return out


class EngineNetworking:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._manager: NetworkManager | None = None

    @property
    def manager(self) -> NetworkManager:
        if self._manager is None:
            # PYBOX_HOST_RESOLV_CONF: the resolv.conf whose servers containers
            # and the embedded DNS use (tests point it at a resolver of their own)
            self._manager = NetworkManager(
                self.engine.data_root, self.engine.run_root,
                container_name=self._container_name,
                host_resolv_conf=os.environ.get("PYBOX_HOST_RESOLV_CONF")
                or etc.HOST_RESOLV_CONF)
        return self._manager

    def _container_name(self, cid: str) -> str:
        c = self.engine.store.by_id.get(cid)
        return c.name if c is not None else cid[:12]

    # -- create -------------------------------------------------------------------------
    def check_create(self, body: dict[str, Any], hc: dict[str, Any]) -> None:
        """What only the network side can check (the networks named exist, their
        endpoint configs, extra hosts, DNS addresses, a MAC), after
        spec.validate_create has checked the request's own syntax and conflicts
        (ports, network modes)."""
        mode = network_mode(hc)
        if mode not in NO_SANDBOX and not mode.startswith("container:"):
            self.manager.get(mode)  # NotFound: "network X not found"
        etc.validate_extra_hosts(hc.get("ExtraHosts"))
        for server in hc.get("Dns") or ():
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise BadRequest(f"IP address is not correctly formatted: {server}") from None
        endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        if endpoints and (mode in NO_SANDBOX or mode.startswith("container:")):
            extra = [n for n in endpoints if n != mode]
            if extra:
                raise BadRequest("conflicting options: container cannot be connected to "
                                 f"other networks in {mode.split(':')[0]} network mode")
        for name, cfg in endpoints.items():
            if name in NO_SANDBOX:
                continue
            self.manager.check_endpoint_config(self.manager.get(name), cfg or {})
        if hc.get("Links") and not is_user_defined(mode):
            self._legacy_children(hc["Links"])  # dockerd's registerLinks checks
        mac = (body.get("MacAddress") or "").strip()
        if mac and mode in NO_SANDBOX:
            raise BadRequest("conflicting options: mac-address and the network mode")
        if mac:
            check_mac(mac)  # the primary endpoint's when it names none

    def on_create(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        hc = record["HostConfig"]
        mode = network_mode(hc)
        settings = record["NetworkSettings"]
        if hc.get("Links"):
            # dockerd's link index, as inspect shows it ("/child:/parent/alias");
            # on a user-defined network HostConfig.Links does nothing (links
            # there are the endpoint's Links) and inspect shows null
            hc["Links"] = None if is_user_defined(mode) else [
                f"{child.docker_name}:{record['Name']}/{alias}"
                for alias, child in self._legacy_children(hc["Links"]).items()] or None
        if mode.startswith("container:"):
            settings["Networks"] = {}
            return
        if mode in NO_SANDBOX:
            ep = _blank_endpoint()
            ep["NetworkID"] = self.manager.get(mode)["Id"]
            settings["Networks"] = {mode: ep}
            return
        endpoints = dict((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        primary = self.manager.get(mode)
        configs = []
        for key in (hc.get("NetworkMode"), primary["Name"], primary["Id"]):
            if key in endpoints:
                configs.append((primary, endpoints.pop(key) or {}))
                break
        else:
            configs.append((primary, {}))
        for name, cfg in endpoints.items():
            rec = self.manager.get(name)
            if rec["Id"] != primary["Id"]:
                configs.append((rec, cfg or {}))
        networks = {}
        legacy_mac = (body.get("MacAddress") or "").strip()
        for rec, cfg in configs:
            ep = _blank_endpoint()
            ep["NetworkID"] = rec["Id"]
            ep["Aliases"] = list(cfg.get("Aliases") or []) or None
            ep["IPAMConfig"] = cfg.get("IPAMConfig") or None
            ep["MacAddress"] = cfg.get("MacAddress") or (legacy_mac if rec is primary else "")
            ep["DriverOpts"] = cfg.get("DriverOpts") or None
            ep["Links"] = list(cfg.get("Links") or []) or None
            networks[rec["Name"]] = ep
        settings["Networks"] = networks

    # -- start / exit ---------------------------------------------------------------------
    def prepare(self, c: Container) -> str | None:
        """Before the spec is built: -> the namespace path the runtime joins, or
        None (none/host/container: modes)."""
        rec = c.record
        hc = rec["HostConfig"]
        mode = network_mode(hc)
        if mode in NO_SANDBOX:
            return None
        if mode.startswith("container:"):
            self._share_etc_files(c, mode[len("container:"):])
            return None
        networks = rec["NetworkSettings"].get("Networks") or {}
        self._running_children(c)  # dockerd's setupLinkedContainers checks, before anything
        attachments = []
        for name, ep in networks.items():
            ref = ep.get("NetworkID") or name
            try:
                self.manager.get(ref)
            except NotFound:
                ref = name  # recreated under the same name
            attachments.append((ref, {"Aliases": ep.get("Aliases"),
                                      "IPAMConfig": ep.get("IPAMConfig"),
                                      "MacAddress": ep.get("MacAddress"),
                                      "Links": ep.get("Links")}))
        wanted = requested_ports(rec["Config"], hc)
        try:
            sb = self.manager.setup(c.id, attachments,
                                    hostname=rec["Config"].get("Hostname", ""),
                                    wanted_ports=wanted, dns=hc.get("Dns") or ())
        except NetworkError as e:  # setup left nothing behind; docker's words
            raise NetworkError(f"failed to set up container networking: {e}") from None
        crashpoint("engine.network.setup")
        try:
            self._fill_settings(c, sb)
            self._write_etc_files(c, sb)
        except BaseException:
            self.manager.teardown(c.id)
            raise
        self._update_parents(c)
        return sb["netns"]

    def _fill_settings(self, c: Container, sb: Sandbox) -> None:
        rec = c.record
        settings = rec["NetworkSettings"]
        networks = settings.setdefault("Networks", {})
        by_id = {}
        for name, ep in list(networks.items()):
            try:
                by_id[self.manager.get(ep.get("NetworkID") or name)["Id"]] = name
            except NotFound:
                continue
        for netid, ep in sb["endpoints"].items():
            net = self.manager.networks[netid]
            name = by_id.get(netid, net["Name"])
            out = networks.setdefault(name, _blank_endpoint())
            out.update({"NetworkID": netid, "EndpointID": ep["EndpointID"],
                        "Gateway": ep["Gateway"], "IPAddress": ep["IPAddress"],
                        "IPPrefixLen": ep["IPPrefixLen"], "MacAddress": ep["MacAddress"],
                        "IPv6Gateway": ep.get("IPv6Gateway") or "",
                        "GlobalIPv6Address": ep.get("GlobalIPv6Address") or "",
                        "GlobalIPv6PrefixLen": ep.get("GlobalIPv6PrefixLen") or 0,
                        "DNSNames": None if self.manager.is_default(net) else
                        dns_names(c, ep.get("Aliases") or ())})
        settings["Ports"] = docker_ports(sb["ports"], rec["Config"], rec["HostConfig"])
        settings["SandboxKey"] = sb["netns"]
        settings["SandboxID"] = c.id
        bridge_ep = networks.get("bridge") if "bridge" in networks else None
        for key, value in (("EndpointID", ""), ("Gateway", ""), ("IPAddress", ""),
                           ("IPPrefixLen", 0), ("MacAddress", ""), ("IPv6Gateway", ""),
                           ("GlobalIPv6Address", ""), ("GlobalIPv6PrefixLen", 0)):
            settings[key] = bridge_ep.get(key, value) if bridge_ep else value

    def _write_etc_files(self, c: Container, sb: Sandbox, live: bool = False) -> None:
        """hosts, hostname and resolv.conf for the sandbox ``sb``.  ``live``:
        the container runs with them bind-mounted, so they are rewritten in
        place (a rename would leave the container on the old file)."""
        rec = c.record
        config, hc = rec["Config"], rec["HostConfig"]
        hostname = config.get("Hostname") or c.id[:12]
        write = etcfiles.write_in_place if live else etcfiles.write_new
        if not live:
            write(rec["HostnamePath"], hostname + "\n")
            write(rec["HostsPath"], self._hosts(c, sb))
        # the embedded DNS of the first user-defined network, if any (docker
        # switches a default-bridge container to it when it is connected to one)
        embedded = None
        for netid in sb["order"]:
            net = self.manager.networks.get(netid)
            if net is not None and not self.manager.is_default(net):
                embedded = net["pybox"]["ipam"]["Gateway"]
                break
        write(rec["ResolvConfPath"], etc.resolv_conf(
            etc.host_resolvers(self.manager.host_resolv_conf), dns=hc.get("Dns") or (),
            dns_search=hc.get("DnsSearch") or (), dns_options=hc.get("DnsOptions") or (),
            embedded=embedded))

    def _hosts(self, c: Container, sb: Sandbox) -> str:
        """The /etc/hosts text of container ``c`` in sandbox ``sb``: its
        address on its first network, --add-host entries and, on the default
        bridge, an entry per legacy link: the child's address with the alias,
        the child's hostname and its name (when the alias is not the name)."""
        config, hc = c.record["Config"], c.record["HostConfig"]
        first = sb["endpoints"][sb["order"][0]] if sb["order"] else None
        links: list[tuple[str, str]] = []
        if "bridge" in (c.record["NetworkSettings"].get("Networks") or {}):
            for alias, child in self._linked(c).items():
                ip = ((child.record["NetworkSettings"].get("Networks") or {})
                      .get("bridge") or {}).get("IPAddress")
                if not ip:
                    continue
                names = f"{alias} {child.config.get('Hostname') or child.id[:12]}"
                if alias != child.name:
                    names += f" {child.name}"
                links.append((ip, names))
        return etc.hosts(config.get("Hostname") or c.id[:12],
                         domainname=config.get("Domainname") or "",
                         addresses=[first["IPAddress"]] + ([first["GlobalIPv6Address"]]
                                                           if first.get("GlobalIPv6Address")
                                                           else []) if first else [],
                         extra_hosts=hc.get("ExtraHosts"),
                         gateway=first["Gateway"] if first else None, links=links)

    # -- legacy links (the default bridge) -------------------------------------------------
    def _legacy_children(self, links: Iterable[object]) -> dict[str, Container]:
        """HostConfig.Links of a container not on a user-defined network ->
        {alias: the linked container}, with dockerd's registerLinks errors: a
        missing container, a host-mode one.  A container sharing another's
        network stands for that one; a second link under one alias is
        ignored, as dockerd's name reservation ignores it."""
        out: dict[str, Container] = {}
        for link in links:
            name, alias = parse_link(link)
            if not name.strip("/"):
                raise BadRequest(f'could not get container for {name}: invalid name or ID '
                                 f'supplied: "{name}"')
            try:
                child = self.engine.get(name)
            except NotFound as e:
                raise BadRequest(f"could not get container for {name}: {e}") from None
            for _ in range(16):
                mode = network_mode(child.host_config)
                if not mode.startswith("container:"):
                    break
                ref = mode[len("container:"):]
                try:
                    child = self.engine.get(ref)
                except NotFound as e:
                    raise BadRequest(f"could not get container for {ref}: {e}") from None
            if network_mode(child.host_config) == "host":
                raise BadRequest("conflicting options: host type networking can't be used "
                                 "with links. This would result in undefined behavior")
            if alias:
                out.setdefault(alias, child)
        return out

    def _linked(self, c: Container) -> dict[str, Container]:
        """The containers ``c`` links to now: {alias: container}, from its
        HostConfig.Links ("/child:/parent/alias"); one removed since is gone
        from the links, as from dockerd's link index."""
        out: dict[str, Container] = {}
        if is_user_defined(network_mode(c.host_config)):
            return out
        for link in c.host_config.get("Links") or ():
            try:
                name, alias = parse_link(link)
                child = self.engine.get(name)
            except (BadRequest, NotFound):
                continue
            if alias:
                out.setdefault(alias, child)
        return out

    def _running_children(self, c: Container) -> dict[str, Container]:
        """At start, on the default bridge: every linked container must run
        and be on the default bridge too (dockerd's setupLinkedContainers)."""
        if "bridge" not in (c.record["NetworkSettings"].get("Networks") or {}):
            return {}
        children = self._linked(c)
        if not is_user_defined(network_mode(c.host_config)):
            for link in c.host_config.get("Links") or ():
                try:
                    name, alias = parse_link(link)
                except BadRequest:
                    continue
                if alias and alias not in children:  # removed since: dockerd's stale link
                    raise Conflict(f"Cannot link to a non running container: /{name} AS "
                                   f"{c.docker_name}/{alias}")
        for alias, child in children.items():
            if not child.state.running:
                raise Conflict(f"Cannot link to a non running container: {child.docker_name} "
                               f"AS {c.docker_name}/{alias}")
            if "bridge" not in (child.record["NetworkSettings"].get("Networks") or {}):
                raise Conflict(f"Cannot link to {child.docker_name}, as it does not belong to "
                               "the default network")
        return children

    def with_link_env(self, c: Container, env: list[str]) -> list[str]:
        """The process environment ``env`` with the legacy links' variables
        (see link_env) for a container on the default bridge; the container's
        own variables win, as in dockerd's CreateDaemonEnvironment."""
        if "bridge" not in (c.record["NetworkSettings"].get("Networks") or {}):
            return env
        extra: list[str] = []
        for alias, child in self._linked(c).items():
            ip = ((child.record["NetworkSettings"].get("Networks") or {})
                  .get("bridge") or {}).get("IPAddress") or ""
            extra += link_env(alias, ip, f"{c.docker_name}/{alias}",
                              child.config.get("Env") or (),
                              child.config.get("ExposedPorts") or {})
        if not extra:
            return env
        own = {e.partition("=")[0] for e in env}
        return env + [e for e in extra if e.partition("=")[0] not in own]

    def remove_link(self, name: str) -> None:
        """docker rm --link PARENT/ALIAS: the parent's legacy link ALIAS goes
        (its /etc/hosts entry at once if it runs; its environment stays until
        the next start, as in dockerd's rmLink); the linked container stays."""
        full = "/" + name.lstrip("/")
        parent_name, _, alias = full.rpartition("/")
        if not parent_name:
            raise PyboxError("Conflict, cannot remove the default link name of the container")
        try:
            parent = self.engine.get(parent_name)
        except NotFound:
            raise PyboxError(f"Cannot get parent {parent_name} for link name {full}") from None
        with parent.lock:
            links = parent.host_config.get("Links") or []
            kept = [link for link in links if _link_alias(link) != alias]
            if len(kept) == len(links):
                return  # dockerd: releasing a name nobody holds is no error
            parent.host_config["Links"] = kept or None
            parent.save()
            sb = self.manager.sandbox(parent.id) if parent.state.running else None
            path = parent.record.get("HostsPath")
            if sb is not None and path:
                try:
                    etcfiles.write_in_place(path, self._hosts(parent, sb))
                except OSError:
                    pass

    def _update_parents(self, c: Container) -> None:
        """``c`` started on the default bridge: running containers linking to
        it get its new address in their /etc/hosts (dockerd's addLegacyLinks
        for parents), rewritten in place."""
        if "bridge" not in (c.record["NetworkSettings"].get("Networks") or {}):
            return
        for parent in self.engine.store.all():
            if parent.id == c.id or not parent.state.running or \
                    not parent.host_config.get("Links"):
                continue
            if not any(child.id == c.id for child in self._linked(parent).values()):
                continue
            sb = self.manager.sandbox(parent.id)
            path = parent.record.get("HostsPath")
            if sb is None or not path:
                continue
            try:
                etcfiles.write_in_place(path, self._hosts(parent, sb))
            except OSError:
                pass

    def _share_etc_files(self, c: Container, ref: str) -> None:
        """--network container:ID: the other container's hosts and resolv.conf,
        as docker shares them, and its hostname and domain name (dockerd's
        initializeNetworking sets Config.Hostname and Domainname from the
        container joined: `hostname` in a pod's container names the pod)."""
        try:
            other = self.engine.get(ref)
        except NotFound:
            return
        for key in ("Hostname", "Domainname"):
            if other.config.get(key):
                c.config[key] = other.config[key]
        for key in ("HostsPath", "ResolvConfPath", "HostnamePath"):
            src, dst = other.record.get(key), c.record.get(key)
            if src and dst and os.path.exists(src):
                try:
                    etcfiles.copy(src, dst)
                except OSError:
                    pass

    def release(self, c: Container) -> None:
        """After exit or a failed start (idempotent)."""
        mode = network_mode(c.record["HostConfig"])
        if mode in NO_SANDBOX or mode.startswith("container:"):
            return
        self.manager.teardown(c.id)
        settings = c.record["NetworkSettings"]
        for ep in (settings.get("Networks") or {}).values():
            for key in RUNTIME_FIELDS:
                ep[key] = 0 if key.endswith("PrefixLen") else ""
            ep["DNSNames"] = None
        settings["Ports"] = {}
        settings["SandboxKey"] = ""
        for key, value in (("EndpointID", ""), ("Gateway", ""), ("IPAddress", ""),
                           ("IPPrefixLen", 0), ("MacAddress", ""), ("IPv6Gateway", ""),
                           ("GlobalIPv6Address", ""), ("GlobalIPv6PrefixLen", 0)):
            settings[key] = value

    def forget(self, c: Container) -> None:
        """``c`` is being removed.  Links other containers have to it stay,
        as dockerd's link index keeps them: their inspect still shows them
        and their start fails until `docker rm --link` removes them."""
        self.release(c)

    def interface_stats(self, c: Container) -> dict[str, dict[str, int]]:
        """docker stats' ``networks``: the counters of the interfaces of the
        sandbox the container's processes run in (another container's with
        --network container:ID, followed as dockerd's getNetworkSandboxID
        does), keyed by their names in the container (eth0...).  {} for
        --network none and host: dockerd's sandbox there has no interfaces of
        its own, so the section is left out."""
        target = c
        for _ in range(16):  # a chain of container: modes, never a loop
            mode = network_mode(target.record["HostConfig"])
            if not mode.startswith("container:"):
                break
            try:
                target = self.engine.get(mode[len("container:"):])
            except NotFound:
                return {}
        else:
            return {}
        sb = self.manager.sandbox(target.id) if self._manager is not None else None
        pid = c.state.pid
        if sb is None or not pid:
            return {}
        return interface_counters(pid, {ep["ifname"] for ep in sb["endpoints"].values()})

    def ps_ports(self, c: Container) -> list[dict[str, Any]]:
        if not c.state.running:
            return []
        sb = self.manager.sandbox(c.id)
        return ps_ports(sb["ports"] if sb else [], c.record["Config"])

    # -- connect / disconnect -------------------------------------------------------------------
    def connect(self, net_ref: str, container_ref: str,
                endpoint_config: dict[str, Any] | None = None) -> None:
        net = self.manager.get(net_ref)
        c = self.engine.get(container_ref)
        cfg = dict(endpoint_config or {})
        with c.lock:
            mode = network_mode(c.record["HostConfig"])
            networks = c.record["NetworkSettings"].setdefault("Networks", {})
            if net["Name"] in networks:
                raise Conflict(f"endpoint with name {c.name} already exists in network "
                               f"{net['Name']}")
            if mode in NO_SANDBOX or mode.startswith("container:") or \
                    net["Driver"] != "bridge":
                raise BadRequest("container cannot be disconnected from host network or "
                                 "connected to host network" if "host" in (mode, net["Name"])
                                 else f"container sharing network namespace with another "
                                 f"container or in {mode} mode cannot be connected to "
                                 f"network {net['Name']}")
            self.manager.check_endpoint_config(net, cfg)
            ep = _blank_endpoint()
            ep.update({"NetworkID": net["Id"], "Aliases": list(cfg.get("Aliases") or []) or None,
                       "IPAMConfig": cfg.get("IPAMConfig") or None,
                       "MacAddress": cfg.get("MacAddress") or "",
                       "Links": list(cfg.get("Links") or []) or None})
            for link in cfg.get("Links") or ():
                parse_link(link)
            if c.state.running:
                live = self.manager.connect(c.id, net["Id"], cfg)
                crashpoint("engine.connect.attached")
                self._write_etc_files(c, self._sandbox(c.id), live=True)
                ep.update({"EndpointID": live["EndpointID"], "Gateway": live["Gateway"],
                           "IPAddress": live["IPAddress"], "IPPrefixLen": live["IPPrefixLen"],
                           "IPv6Gateway": live.get("IPv6Gateway") or "",
                           "GlobalIPv6Address": live.get("GlobalIPv6Address") or "",
                           "GlobalIPv6PrefixLen": live.get("GlobalIPv6PrefixLen") or 0,
                           "MacAddress": live["MacAddress"],
                           "DNSNames": dns_names(c, cfg.get("Aliases") or ())})
            networks[net["Name"]] = ep
            c.save()
        self.engine.events.emit("network", "connect", net["Id"],
                                {"container": c.id, "name": net["Name"], "type": "bridge"})

    def disconnect(self, net_ref: str, container_ref: str, force: bool = False) -> None:
        c = self.engine.get(container_ref)
        with c.lock:
            networks = c.record["NetworkSettings"].get("Networks") or {}
            try:
                net = self.manager.get(net_ref)
                name = net["Name"]
            except NotFound:
                if not force:
                    raise
                net, name = None, net_ref
            if name not in networks:
                raise Conflict(f"container {c.id} is not connected to network {name}")
            if name in NO_SANDBOX:
                raise BadRequest(f"container cannot be disconnected from {name} network")
            if net is not None and c.state.running and self.manager.sandbox(c.id):
                self.manager.disconnect(c.id, net["Id"])
                crashpoint("engine.disconnect.detached")
                self._write_etc_files(c, self._sandbox(c.id), live=True)
            del networks[name]
            c.save()
        if net is not None:
            self.engine.events.emit("network", "disconnect", net["Id"],
                                    {"container": c.id, "name": name, "type": "bridge"})

    def _sandbox(self, cid: str) -> Sandbox:
        """The sandbox of a container that has one (connect/disconnect just
        used it)."""
        sb = self.manager.sandbox(cid)
        if sb is None:
            raise Conflict(f"container {cid} has no network namespace of its own")
        return sb

    def networks_in_use(self) -> set[str]:
        """Ids of networks any container record names (network prune keeps them)."""
        out = set()
        for c in self.engine.store.all():
            for name, ep in (c.record["NetworkSettings"].get("Networks") or {}).items():
                out.add(ep.get("NetworkID") or "")
                try:
                    out.add(self.manager.get(name)["Id"])
                except (NotFound, BadRequest):
                    pass
        return out

    # -- daemon life ----------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """After a (re)start: the manager keeps the running containers'
        sandboxes and removes the rest (recover), then published ports nobody
        owns; each running container's record is brought in line with its
        sandbox (reconcile).  Returns what was done, for recovery's log."""
        running = [c.id for c in self.engine.store.all() if c.state.running]
        self.manager.recover(running)
        notes = [f"published port {key}: {err or 'no sandbox owns it: removed'}"
                 for key, err in self.manager.remove_unowned_ports()]
        for c in self.engine.store.all():
            if not c.state.running:
                continue
            try:
                if self.reconcile(c):
                    notes.append(f"container {c.id[:12]}: network settings brought in line "
                                 "with its sandbox")
            except Exception as err:  # noqa: BLE001 -- one container's trouble stops no other
                notes.append(f"container {c.id[:12]}: its network settings: {err}")
        self.manager.warm()
        return notes

    def reconcile(self, c: Container) -> bool:
        """A running container's record says what its sandbox has: a start,
        connect or disconnect cut between the kernel and the record's save
        left the record behind (no address, a network it is not on, or not
        one it is on).  True if the record changed (and was saved)."""
        mode = network_mode(c.host_config)
        if mode in NO_SANDBOX or mode.startswith("container:"):
            return False
        sb = self.manager.sandbox(c.id)
        if sb is None:
            return False
        with c.lock:
            before = fastjson.dumps(c.network_settings)
            networks = c.network_settings.setdefault("Networks", {})
            for name, ep in list(networks.items()):
                if ep.get("EndpointID") and ep.get("NetworkID") not in sb["endpoints"]:
                    del networks[name]  # disconnected in the kernel
            self._fill_settings(c, sb)
            if fastjson.dumps(c.network_settings) == before:
                return False
            c.save()
            return True

    def shutdown(self) -> None:
        if self._manager is not None:
            self._manager.shutdown()
