"""Published ports: the host ports pyboxd holds and the mappings it publishes.

The package speaks its own typed values: a ``PortRequest`` (what to publish: a
protocol, the container's port, a host address and a host port -- 0 for an
ephemeral one, or a range whose first free port is taken) and a
``PortMapping`` (what was published: the host port chosen, the container's
address).  Docker's vocabulary ("80/tcp" keys, PortBindings' HostIp/HostPort,
NetworkSettings.Ports) is the engine's, converted in pybox.engine.networking.

A published host port is *reserved* by a socket pyboxd binds on it (listening,
for TCP) and holds while the container runs, as docker does with
userland-proxy off.  That is what makes "address already in use" (a host
process has it) and "port is already allocated" (another container has it)
real errors instead of silently shadowed services, and what the kernel's own
port allocator uses to pick ephemeral host ports.  Traffic never reaches these
sockets: DNAT (firewall.py) rewrites it first.  ``reserve`` is all-or-nothing.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pybox.errors import BadRequest, Conflict

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortRequest:
    """A port to publish.  ``host_port`` 0: an ephemeral port; with
    ``host_port_last`` above it: the first free port of that range."""

    protocol: str
    container_port: int
    host_ip: str = "0.0.0.0"
    host_port: int = 0
    host_port_last: int = 0

    @property
    def last(self) -> int:
        return max(self.host_port, self.host_port_last)


@dataclass(frozen=True)
class PortMapping:
    """A published port: ``host_ip``:``host_port`` DNATed to
    ``container_ip``:``container_port``."""

    protocol: str
    container_port: int
    host_ip: str
    host_port: int
    container_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        """The sandbox file's shape (RUN_ROOT/network/sandboxes/CID.json, read
        back by a restarted pyboxd, so its keys stay as they were)."""
        return {"host_ip": self.host_ip, "host_port": self.host_port, "proto": self.protocol,
                "port": self.container_port, "ip": self.container_ip}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PortMapping:
        return cls(protocol=data["proto"], container_port=int(data["port"]),
                   host_ip=data["host_ip"], host_port=int(data["host_port"]),
                   container_ip=data.get("ip") or "")


# (host ip, protocol, host port): what a reservation is keyed by
HostPort = tuple[str, str, int]


class Reservations:
    """Host ports held by pyboxd, each by a socket and for an owner (a
    container id)."""

    def __init__(self) -> None:
        self.held: dict[HostPort, tuple[socket.socket, str]] = {}

    def _bind(self, host_ip: str, protocol: str, port: int) -> socket.socket:
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        if protocol == "sctp":
            kind = socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind,
                          socket.IPPROTO_SCTP if protocol == "sctp" else 0)
        try:
            s.set_inheritable(False)
            if protocol == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host_ip, port))
            if protocol in ("tcp", "sctp"):
                s.listen(1)
        except BaseException:
            s.close()
            raise
        return s

    def _taken_by_us(self, host_ip: str, protocol: str, port: int) -> str | None:
        for (ip, pr, p), (_, owner) in self.held.items():
            if pr == protocol and p == port and (ip == host_ip or "0.0.0.0" in (ip, host_ip)):
                return owner
        return None

    def reserve(self, owner: str, wanted: Iterable[PortRequest]) -> list[PortMapping]:
        """Bind every wanted port -> its mappings (without the container's
        address, which the caller adds).  On any failure, what this call bound
        is released and docker's error raised."""
        made: list[PortMapping] = []
        try:
            for request in wanted:
                made.append(self._reserve_one(owner, request))
        except BaseException:
            self.release(made)
            raise
        return made

    def _hold(self, owner: str, request: PortRequest, s: socket.socket, port: int) -> PortMapping:
        self.held[(request.host_ip, request.protocol, port)] = (s, owner)
        return PortMapping(protocol=request.protocol, container_port=request.container_port,
                           host_ip=request.host_ip, host_port=port)

    def _reserve_one(self, owner: str, request: PortRequest) -> PortMapping:
        host_ip, protocol, port = request.host_ip, request.protocol, request.container_port
        first, last = request.host_port, request.last
        if first == 0:
            s = self._bind(host_ip, protocol, 0)
            return self._hold(owner, request, s, s.getsockname()[1])
        error: Exception | None = None
        for candidate in range(first, last + 1):
            if self._taken_by_us(host_ip, protocol, candidate):
                error = Conflict(f"Bind for {host_ip}:{candidate} failed: port is already "
                                 "allocated")
                continue
            try:
                s = self._bind(host_ip, protocol, candidate)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    error = Conflict(f"failed to bind host port for {host_ip}:{candidate}:"
                                     f"{port}/{protocol}: address already in use")
                    continue
                if e.errno == errno.EADDRNOTAVAIL:
                    raise BadRequest(f"failed to bind host port for {host_ip}:{candidate}:"
                                     f"{port}/{protocol}: cannot assign requested address") \
                        from None
                raise
            return self._hold(owner, request, s, candidate)
        if first != last:
            raise Conflict(f"Bind for {host_ip}:{first}-{last} failed: all ports are already "
                           "allocated") from None
        assert error is not None  # the range held one port, which failed
        raise error

    @staticmethod
    def _key(m: PortMapping) -> HostPort:
        return (m.host_ip, m.protocol, m.host_port)

    def adopt(self, owner: str, mappings: Iterable[PortMapping]) -> None:
        """Re-bind the ports of a running container after a pyboxd restart.
        A port lost meanwhile is skipped (its DNAT still works)."""
        for m in mappings:
            key = self._key(m)
            if key in self.held:
                continue
            try:
                self.held[key] = (self._bind(*key), owner)
            except OSError:
                pass

    def release(self, mappings: Iterable[PortMapping]) -> None:
        for m in mappings:
            entry = self.held.pop(self._key(m), None)
            if entry is not None:
                entry[0].close()

    def release_owner(self, owner: str) -> None:
        for key in [k for k, (_, o) in self.held.items() if o == owner]:
            self.held.pop(key)[0].close()

    def close(self) -> None:
        for s, _ in self.held.values():
            s.close()
        self.held.clear()


def with_container_ip(mappings: Iterable[PortMapping], container_ip: str) -> list[PortMapping]:
    """``mappings`` toward ``container_ip``."""
    return [dataclasses.replace(m, container_ip=container_ip) for m in mappings]
