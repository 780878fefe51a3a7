"""Published ports: -p [ip:]hostPort:containerPort[/tcp|udp], ranges, -P.

The Docker API carries them as ``HostConfig.PortBindings``
(``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``, a HostPort may be empty
-- an ephemeral port -- or a range ``8000-8010`` -- the first free one) and
``PublishAllPorts`` (every ``Config.ExposedPorts`` entry on an ephemeral port).
``plan`` turns them into concrete mappings before anything is set up, with
docker's messages for bad input.

A published host port is *reserved* by a socket pyboxd binds on it (listening,
for TCP) and holds while the container runs, as docker does with
userland-proxy off.  That is what makes "address already in use" (a host
process has it) and "port is already allocated" (another container has it)
real errors instead of silently shadowed services, and what the kernel's own
port allocator uses to pick ephemeral host ports.  Traffic never reaches these
sockets: DNAT (firewall.py) rewrites it first.  ``reserve`` is all-or-nothing.
"""

import errno
import socket

from pybox.errors import BadRequest, Conflict

PROTOCOLS = ("tcp", "udp", "sctp")


def parse_port_key(key):
    """"80/tcp" -> (80, "tcp"), with docker's messages."""
    port, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise BadRequest(f"invalid proto: {proto}")
    number = _port_number(port, "containerPort")
    return number, proto


def _port_number(text, what):
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid {what}: {text}") from None
    if not 1 <= n <= 65535:
        raise BadRequest(f"invalid {what}: {text}")
    return n


def _host_ports(text):
    """HostPort -> (first, last); (0, 0) for an ephemeral port."""
    text = (text or "").strip()
    if not text or text == "0":
        return 0, 0
    lo, sep, hi = text.partition("-")
    first = _port_number(lo, "hostPort")
    last = _port_number(hi, "hostPort") if sep else first
    if last < first:
        raise BadRequest(f"invalid hostPort: {text}")
    return first, last


def _host_ip(text):
    import ipaddress

    text = (text or "").strip().strip("[]")
    if not text:
        return "0.0.0.0"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(f"invalid IP address: {text}") from None
    if ip.version != 4:
        if str(ip) == "::":
            return None  # docker binds v4 and v6; pybox publishes IPv4 only
        raise BadRequest(f"IPv6 host address {text}: pybox publishes IPv4 ports only")
    return str(ip)


def validate(host_config) -> None:
    """Check PortBindings at create time (400 on bad input)."""
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        parse_port_key(key)
        for b in bindings or ():
            _host_ports((b or {}).get("HostPort"))
            _host_ip((b or {}).get("HostIp"))


def requested(config, host_config):
    """The wanted bindings: [(host_ip, first, last, proto, container_port)],
    PortBindings first, then ephemeral ones for -P."""
    out = []
    bound = set()
    for key, bindings in sorted((host_config.get("PortBindings") or {}).items()):
        port, proto = parse_port_key(key)
        for b in bindings or [{}]:
            b = b or {}
            ip = _host_ip(b.get("HostIp"))
            if ip is None:
                continue
            first, last = _host_ports(b.get("HostPort"))
            out.append((ip, first, last, proto, port))
            bound.add((port, proto))
    if host_config.get("PublishAllPorts"):
        for key in sorted(config.get("ExposedPorts") or {}):
            port, proto = parse_port_key(key)
            if (port, proto) not in bound:
                out.append(("0.0.0.0", 0, 0, proto, port))
    return out


class Reservations:
    """Host ports held by pyboxd: {(host_ip, proto, port): (socket, owner)}."""

    def __init__(self) -> None:
        self.held = {}

    def _bind(self, host_ip, proto, port):
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        if proto == "sctp":
            kind = socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind,
                          socket.IPPROTO_SCTP if proto == "sctp" else 0)
        try:
            s.set_inheritable(False)
            if proto == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host_ip, port))
            if proto in ("tcp", "sctp"):
                s.listen(1)
        except BaseException:
            s.close()
            raise
        return s

    def _taken_by_us(self, host_ip, proto, port):
        for (ip, pr, p), (_, owner) in self.held.items():
            if pr == proto and p == port and (ip == host_ip or "0.0.0.0" in (ip, host_ip)):
                return owner
        return None

    def reserve(self, owner, wanted):
        """Bind every wanted port -> mappings [{host_ip, host_port, proto, port}]
        (the container's ip is added by the caller).  On any failure, what this
        call bound is released and docker's error raised."""
        made = []
        try:
            for host_ip, first, last, proto, port in wanted:
                made.append(self._reserve_one(owner, host_ip, first, last, proto, port))
        except BaseException:
            self.release([m for m in made])
            raise
        return made

    def _reserve_one(self, owner, host_ip, first, last, proto, port):
        if first == 0:
            s = self._bind(host_ip, proto, 0)
            chosen = s.getsockname()[1]
            self.held[(host_ip, proto, chosen)] = (s, owner)
            return {"host_ip": host_ip, "host_port": chosen, "proto": proto, "port": port}
        error = None
        for candidate in range(first, last + 1):
            if self._taken_by_us(host_ip, proto, candidate):
                error = Conflict(f"Bind for {host_ip}:{candidate} failed: port is already "
                                 "allocated")
                continue
            try:
                s = self._bind(host_ip, proto, candidate)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    error = Conflict(f"failed to bind host port for {host_ip}:{candidate}:"
                                     f"{port}/{proto}: address already in use")
                    continue
                if e.errno == errno.EADDRNOTAVAIL:
                    raise BadRequest(f"failed to bind host port for {host_ip}:{candidate}:"
                                     f"{port}/{proto}: cannot assign requested address") \
                        from None
                raise
            self.held[(host_ip, proto, candidate)] = (s, owner)
            return {"host_ip": host_ip, "host_port": candidate, "proto": proto, "port": port}
        if first != last:
            raise Conflict(f"Bind for {host_ip}:{first}-{last} failed: all ports are already "
                           "allocated") from None
        raise error

    def adopt(self, owner, mappings) -> None:
        """Re-bind the ports of a running container after a pyboxd restart.
        A port lost meanwhile is skipped (its DNAT still works)."""
        for m in mappings:
            key = (m["host_ip"], m["proto"], int(m["host_port"]))
            if key in self.held:
                continue
            try:
                self.held[key] = (self._bind(*key), owner)
            except OSError:
                pass

    def release(self, mappings) -> None:
        for m in mappings:
            entry = self.held.pop((m["host_ip"], m["proto"], int(m["host_port"])), None)
            if entry is not None:
                entry[0].close()

    def release_owner(self, owner) -> None:
        for key in [k for k, (_, o) in self.held.items() if o == owner]:
            self.held.pop(key)[0].close()

    def close(self) -> None:
        for s, _ in self.held.values():
            s.close()
        self.held.clear()


def docker_ports(mappings, config, host_config):
    """NetworkSettings.Ports: every exposed/bound port -> its host bindings."""
    out = {}
    for key in (config.get("ExposedPorts") or {}):
        port, proto = parse_port_key(key)
        out.setdefault(f"{port}/{proto}", None)
    for key in (host_config.get("PortBindings") or {}):
        port, proto = parse_port_key(key)
        out.setdefault(f"{port}/{proto}", None)
    for m in mappings:
        key = f"{m['port']}/{m['proto']}"
        if out.get(key) is None:
            out[key] = []
        out[key].append({"HostIp": m["host_ip"], "HostPort": str(m["host_port"])})
    return out


def ps_ports(mappings, config):
    """The ``Ports`` list of GET /containers/json."""
    out = []
    bound = set()
    for m in mappings:
        out.append({"IP": m["host_ip"], "PrivatePort": int(m["port"]),
                    "PublicPort": int(m["host_port"]), "Type": m["proto"]})
        bound.add((int(m["port"]), m["proto"]))
    for key in (config.get("ExposedPorts") or {}):
        try:
            port, proto = parse_port_key(key)
        except BadRequest:
            continue
        if (port, proto) not in bound:
            out.append({"PrivatePort": port, "Type": proto})
    return out
