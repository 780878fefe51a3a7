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

import ipaddress
import os

from pybox.crashpoints import crashpoint
from pybox.errors import BadRequest, Conflict, NotFound
from pybox.network import etc
from pybox.network import ports as portsmod
from pybox.oci.state import write_atomic

NO_SANDBOX = ("none", "host")


def network_mode(hc):
    mode = (hc or {}).get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _blank_endpoint():
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
            "DriverOpts": None, "NetworkID": "", "EndpointID": "", "Gateway": "",
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": None}


RUNTIME_FIELDS = ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen")


class EngineNetworking:
    def __init__(self, engine) -> None:
        self.engine = engine
        self._manager = None

    @property
    def manager(self):
        if self._manager is None:
            from pybox.network.manager import NetworkManager

            # PYBOX_HOST_RESOLV_CONF: the resolv.conf whose servers containers
            # and the embedded DNS use (tests point it at a resolver of their own)
            self._manager = NetworkManager(
                self.engine.data_root, self.engine.run_root,
                container_name=self._container_name,
                host_resolv_conf=os.environ.get("PYBOX_HOST_RESOLV_CONF")
                or etc.HOST_RESOLV_CONF)
        return self._manager

    def _container_name(self, cid):
        c = self.engine.store.by_id.get(cid)
        return c.name if c is not None else cid[:12]

    # -- create -------------------------------------------------------------------------
    def check_create(self, body, hc):
        mode = network_mode(hc)
        if mode not in NO_SANDBOX and not mode.startswith("container:"):
            self.manager.get(mode)  # NotFound: "network X not found"
        portsmod.validate(hc)
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
        mac = (body.get("MacAddress") or "").strip()
        if mac and mode in NO_SANDBOX:
            raise BadRequest("conflicting options: mac-address and the network mode")
        if mac:
            from pybox.network.manager import check_mac

            check_mac(mac)  # the primary endpoint's when it names none
        if mode.startswith("container:") and (hc.get("PortBindings") or
                                              hc.get("PublishAllPorts")):
            raise BadRequest("conflicting options: port publishing and the container type "
                             "network mode")

    def on_create(self, record, body) -> None:
        hc = record["HostConfig"]
        mode = network_mode(hc)
        settings = record["NetworkSettings"]
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
            networks[rec["Name"]] = ep
        settings["Networks"] = networks

    # -- start / exit ---------------------------------------------------------------------
    def prepare(self, c):
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
        attachments = []
        for name, ep in networks.items():
            ref = ep.get("NetworkID") or name
            try:
                self.manager.get(ref)
            except NotFound:
                ref = name  # recreated under the same name
            attachments.append((ref, {"Aliases": ep.get("Aliases"),
                                      "IPAMConfig": ep.get("IPAMConfig"),
                                      "MacAddress": ep.get("MacAddress")}))
        wanted = portsmod.requested(rec["Config"], hc)
        from pybox.network.manager import NetworkError

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
        return sb["netns"]

    def _fill_settings(self, c, sb) -> None:
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
                        "DNSNames": None if self.manager.is_default(net) else
                        [c.name, c.id[:12]] + list(ep.get("Aliases") or [])})
        settings["Ports"] = portsmod.docker_ports(sb["ports"], rec["Config"],
                                                  rec["HostConfig"])
        settings["SandboxKey"] = sb["netns"]
        settings["SandboxID"] = c.id
        bridge_ep = networks.get("bridge") if "bridge" in networks else None
        for key, value in (("EndpointID", ""), ("Gateway", ""), ("IPAddress", ""),
                           ("IPPrefixLen", 0), ("MacAddress", "")):
            settings[key] = bridge_ep.get(key, value) if bridge_ep else value

    def _write_etc_files(self, c, sb, live: bool=False) -> None:
        """hosts, hostname and resolv.conf for the sandbox ``sb``.  ``live``:
        the container runs with them bind-mounted, so they are rewritten in
        place (a rename would leave the container on the old file)."""
        rec = c.record
        config, hc = rec["Config"], rec["HostConfig"]
        first = sb["endpoints"][sb["order"][0]] if sb["order"] else None
        hostname = config.get("Hostname") or c.id[:12]
        gateway = first["Gateway"] if first else None
        write = _write_in_place if live else _write_new
        if not live:
            write(rec["HostnamePath"], hostname + "\n")
            write(rec["HostsPath"], etc.hosts(
                hostname, domainname=config.get("Domainname") or "",
                addresses=[first["IPAddress"]] if first else [],
                extra_hosts=hc.get("ExtraHosts"), gateway=gateway))
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

    def _share_etc_files(self, c, ref) -> None:
        """--network container:ID: the other container's hosts and resolv.conf,
        as docker shares them."""
        try:
            other = self.engine.get(ref)
        except NotFound:
            return
        import shutil

        for key in ("HostsPath", "ResolvConfPath", "HostnamePath"):
            src, dst = other.record.get(key), c.record.get(key)
            if src and dst and os.path.exists(src):
                try:
                    shutil.copyfile(src, dst)
                except OSError:
                    pass

    def release(self, c) -> None:
        """After exit or a failed start (idempotent)."""
        mode = network_mode(c.record["HostConfig"])
        if mode in NO_SANDBOX or mode.startswith("container:"):
            return
        self.manager.teardown(c.id)
        settings = c.record["NetworkSettings"]
        for ep in (settings.get("Networks") or {}).values():
            for key in RUNTIME_FIELDS:
                ep[key] = 0 if key == "IPPrefixLen" else ""
            ep["DNSNames"] = None
        settings["Ports"] = {}
        settings["SandboxKey"] = ""
        for key, value in (("EndpointID", ""), ("Gateway", ""), ("IPAddress", ""),
                           ("IPPrefixLen", 0), ("MacAddress", "")):
            settings[key] = value

    def forget(self, c) -> None:
        self.release(c)

    def ps_ports(self, c):
        if not c.state.get("Running"):
            return []
        sb = self.manager.sandbox(c.id)
        return portsmod.ps_ports(sb["ports"] if sb else [], c.record["Config"])

    # -- connect / disconnect -------------------------------------------------------------------
    def connect(self, net_ref, container_ref, endpoint_config=None):
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
                       "MacAddress": cfg.get("MacAddress") or ""})
            if c.state.get("Running"):
                live = self.manager.connect(c.id, net["Id"], cfg)
                crashpoint("engine.connect.attached")
                self._write_etc_files(c, self.manager.sandbox(c.id), live=True)
                ep.update({"EndpointID": live["EndpointID"], "Gateway": live["Gateway"],
                           "IPAddress": live["IPAddress"], "IPPrefixLen": live["IPPrefixLen"],
                           "MacAddress": live["MacAddress"],
                           "DNSNames": [c.name, c.id[:12]] + list(cfg.get("Aliases") or [])})
            networks[net["Name"]] = ep
            c.save()
        self.engine.events.emit("network", "connect", net["Id"],
                                {"container": c.id, "name": net["Name"], "type": "bridge"})

    def disconnect(self, net_ref, container_ref, force: bool=False):
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
            if net is not None and c.state.get("Running") and self.manager.sandbox(c.id):
                self.manager.disconnect(c.id, net["Id"])
                crashpoint("engine.disconnect.detached")
                self._write_etc_files(c, self.manager.sandbox(c.id), live=True)
            del networks[name]
            c.save()
        if net is not None:
            self.engine.events.emit("network", "disconnect", net["Id"],
                                    {"container": c.id, "name": name, "type": "bridge"})

    def networks_in_use(self):
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
    def recover(self) -> None:
        running = [c.id for c in self.engine.store.all() if c.state.get("Running")]
        self.manager.recover(running)
        self.manager.warm()

    def shutdown(self) -> None:
        if self._manager is not None:
            self._manager.shutdown()


def _write_new(path, text) -> None:
    write_atomic(path, text, mode=0o644)


def _write_in_place(path, text) -> None:
    with open(path, "r+") as f:
        f.write(text)
        f.truncate()
