"""IP address management: subnets, gateways, ip-ranges and allocations.

A network's IPAM state is a plain dict stored in its record (the manager writes
records atomically under DATA_ROOT/network/), so a restarted pyboxd has every
allocation back and nothing here holds state of its own:

    {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1", "IPRange": "...",
     "allocated": {"172.18.0.2": "<container id>"}, "last": "172.18.0.2"}

Subnets come from docker's default pools (172.17-31.0.0/16, then
192.168.0.0/16 cut in /20s) and never overlap another pybox network or a route
or address of the host: a pool that clashes with the host's LAN would cut the
machine off its own network.  Allocation continues after the last address
handed out (as docker does) instead of reusing the lowest free one, so a
recycled address is not met by stale ARP or conntrack entries of its previous
owner.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Iterator
from typing import NotRequired, TypedDict

from pybox.errors import BadRequest, Conflict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpamConfig(TypedDict):
    """A network's IPAM config, docker's IPAM.Config entry (Subnet, Gateway,
    IPRange)."""

    Subnet: str
    Gateway: str
    IPRange: NotRequired[str]
    # name -> address reserved in the subnet (--aux-address): never handed out
    AuxiliaryAddresses: NotRequired[dict[str, str]]


class IpamState(IpamConfig):
    """The config plus pybox's allocations (the network record's
    pybox.ipam): address -> owner (a container id), and the last address
    handed out."""

    allocated: NotRequired[dict[str, str]]
    last: NotRequired[str]


DEFAULT_POOLS = ([ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] +
                 [ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)])


def _network(text: str, what: str = "CIDR address") -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRequest(f"invalid {what}: {text}") from None


def _address(text: str) -> Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(f"invalid IP address: {text}") from None


def overlaps_any(subnet: Network, others: Collection[Network]) -> bool:
    return any(subnet.version == o.version and subnet.overlaps(o) for o in others)


# pyboxd's default-address-pools (daemon.json, dockerd's key): (base, size) pairs
# whose /size subnets replace DEFAULT_POOLS; set once at start (set_default_pools)
_configured_pools: list[tuple[Network, int]] = []


def set_default_pools(pools: Iterable[tuple[str, int]]) -> None:
    """Networks without a subnet get one cut from these (base CIDR, prefix
    size) pools instead of docker's defaults; empty: docker's defaults."""
    _configured_pools[:] = [(ipaddress.ip_network(base), size) for base, size in pools]


def _pools() -> Iterator[Network]:
    if not _configured_pools:
        yield from DEFAULT_POOLS
    for base, size in _configured_pools:
        if base.version == 4:  # pybox networks are IPv4
            yield from base.subnets(new_prefix=size)


def pick_subnet(taken: Collection[Network], host: Collection[Network]) -> Network:
    """The first default pool that overlaps neither ``taken`` (other pybox
    networks) nor ``host`` (the host's routes and addresses)."""
    for pool in _pools():
        if not overlaps_any(pool, taken) and not overlaps_any(pool, host):
            return pool
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among "
                   "the defaults to assign to the network")


def make_config(subnet: str | None = None, gateway: str | None = None,
                ip_range: str | None = None, *, taken: Collection[Network] = (),
                host: Collection[Network] = (), version: int = 4,
                aux_addresses: dict[str, str] | None = None) -> IpamConfig:
    """A network's IPAM config (of IP ``version`` 4 or 6) from `network
    create` flags, with docker's errors.  ``taken`` are the other pybox
    networks' subnets; ``host`` the host's routes (a user-given subnet may
    overlap those, as in docker: the user decides).  IPv6 has no default
    pools here: an IPv6 network names its subnet (dockerd 20.10's error
    otherwise)."""
    if (gateway or ip_range) and not subnet:
        raise BadRequest("a gateway or an ip-range needs a subnet (--subnet)")
    if not subnet and version == 6:
        raise Conflict("could not find an available, non-overlapping IPv6 address pool among "
                       "the defaults to assign to the network")
    if subnet:
        net = _network(subnet)
        if net.version != version:
            raise BadRequest(f"invalid subnet {subnet}: not an IPv{version} subnet")
        if "/" in subnet and ipaddress.ip_interface(subnet).ip != net.network_address:
            raise BadRequest(f"invalid subnet {subnet} : it should be {net}")
        if overlaps_any(net, taken):
            raise Conflict("Pool overlaps with other one on this address space")
    else:
        net = pick_subnet(taken, host)
    if net.num_addresses < 4:
        raise BadRequest(f"subnet {net} is too small for a network")
    if gateway:
        gw = _address(gateway)
        if gw not in net:
            raise BadRequest(f"no matching subnet for gateway {gateway}")
    else:
        gw = net.network_address + 1
    config: IpamConfig = {"Subnet": str(net), "Gateway": str(gw)}
    if ip_range:
        rng = _network(ip_range, "ip-range")
        # a range of the other version matches no subnet (subnet_of would raise)
        if not (isinstance(rng, ipaddress.IPv4Network) and isinstance(net, ipaddress.IPv4Network)
                and rng.subnet_of(net) or isinstance(rng, ipaddress.IPv6Network)
                and isinstance(net, ipaddress.IPv6Network) and rng.subnet_of(net)):
            raise BadRequest(f"no matching subnet for range {ip_range}")
        config["IPRange"] = str(rng)
    if aux_addresses:
        for value in aux_addresses.values():
            try:
                inside = ipaddress.ip_address(value) in net
            except ValueError:
                inside = False
            if not inside:
                raise BadRequest(f"no matching subnet for aux-address {value}")
        config["AuxiliaryAddresses"] = dict(aux_addresses)
    return config


class Allocator:
    """Allocations of one network, over its IPAM dict (see the module doc)."""

    def __init__(self, state: IpamState, network_name: str = "") -> None:
        self.state = state
        self.name = network_name
        self.subnet = ipaddress.ip_network(state["Subnet"])
        self.gateway = ipaddress.ip_address(state["Gateway"])
        self.range = ipaddress.ip_network(state["IPRange"]) if state.get("IPRange") \
            else self.subnet
        state.setdefault("allocated", {})
        self.reserved = {ipaddress.ip_address(a)
                         for a in (state.get("AuxiliaryAddresses") or {}).values()}

    @property
    def allocated(self) -> dict[str, str]:
        return self.state["allocated"]

    def _usable(self, ip: Address) -> bool:
        return ip != self.gateway and ip != self.subnet.network_address and \
            ip != self.subnet.broadcast_address and ip not in self.reserved

    def allocate(self, owner: str, requested: str | None = None) -> str:
        """Reserve an address for ``owner`` -> "a.b.c.d".  A ``requested``
        address must lie in the subnet (docker: anywhere in it, not only in the
        ip-range) and be free."""
        if requested:
            ip = _address(requested)
            if ip not in self.subnet:
                raise BadRequest(f"Invalid address {requested}: It does not belong to any of "
                                 "this network's subnets")
            if not self._usable(ip) or str(ip) in self.allocated:
                raise Conflict(f"Address already in use: {requested}")
            self.allocated[str(ip)] = owner
            return str(ip)
        first = int(self.range.network_address)
        last = int(self.range.broadcast_address)
        size = last - first + 1
        start = self.state.get("last")
        offset = (int(ipaddress.ip_address(start)) - first + 1) % size \
            if start and ipaddress.ip_address(start) in self.range else 0
        for i in range(size):
            ip = ipaddress.ip_address(first + (offset + i) % size)
            if self._usable(ip) and str(ip) not in self.allocated:
                self.allocated[str(ip)] = owner
                self.state["last"] = str(ip)
                return str(ip)
        raise Conflict(f"no available IPv{self.subnet.version} addresses on this network's "
                       f"address pools: {self.name}")

    def release(self, ip: str | None, owner: str | None = None) -> None:
        if ip and (owner is None or self.allocated.get(ip) == owner):
            self.allocated.pop(ip, None)

    def release_owner(self, owner: str) -> None:
        for ip in [ip for ip, o in self.allocated.items() if o == owner]:
            del self.allocated[ip]

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen
