"""Container networking: bridge networks, NAT, published ports and DNS.

One module per concern, each knowing nothing about containers beyond an id and
an address (the engine's glue is pybox.engine.networking):

    ipam.py      subnets, gateways, ip-ranges, allocations (DATA_ROOT/network/)
    netns.py     a persistent network namespace per container (RUN_ROOT/netns/ID)
    links.py     bridges, veth pairs, addresses, routes, MTU (pyroute2)
    firewall.py  nftables in pybox's own table: forwarding, isolation, NAT, DNAT
    ports.py     published ports as typed PortRequest/PortMapping, host port
                 reservation (docker's -p/-P syntax is pybox.engine.networking's)
    dns.py       the embedded DNS server of user-defined networks
    etc.py       /etc/hosts, /etc/hostname, /etc/resolv.conf per container
    manager.py   NetworkManager, the facade the engine calls

Every kernel object made here carries a name that says it is pybox's and
which pyboxd made it (``Names``), so ``NetworkManager.cleanup`` finds its own
leftovers after a crash and never touches anyone else's objects.  The one
exception, a bridge named by the client (``com.docker.network.bridge.name``),
is pybox's only if pybox created it, which its network record says; a user's
bridge is used, never deleted (manager.py).
"""

import hashlib
import os
import re

IFNAMSIZ = 15  # usable bytes of a Linux interface name (16 with the NUL)

# any pyboxd's bridge or veth name (the main one's and every tagged instance's)
_RESERVED = re.compile(r"^pybox[0-9a-f]{0,3}(0|-[0-9a-f]+|v[0-9a-f]+)$")


def ifname_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Linux interface name, or None.  The kernel's
    dev_valid_name(): at most 15 bytes, not "." or "..", no "/", ":" or
    whitespace; control characters are refused too (the name ends up in
    sysctl paths, nftables rules and logs)."""
    if not name:
        return "is empty"
    if len(name.encode("utf-8", "surrogatepass")) > IFNAMSIZ:
        return f"is longer than {IFNAMSIZ} bytes"
    if name in (".", ".."):
        return "is not a valid interface name"
    if any(c in "/:" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        return "holds a character an interface name cannot have ('/', ':', " \
               "whitespace or a control character)"
    return None


def is_reserved_name(name: str) -> bool:
    """Whether ``name`` has the shape of a pyboxd's own bridges and veths: a
    client may not give a network such a name, since pybox removes links of
    its pattern that no network of its explains."""
    return bool(_RESERVED.match(name))


class Names:
    """The names one pyboxd gives its kernel objects.

    The pyboxd serving /run/pybox is the machine's: its default bridge is
    ``pybox0`` and its nftables table ``inet pybox``.  Any other instance (a
    test's private pyboxd, a benchmark's) gets a 3-hex tag from its run root,
    so two daemons on one host never share or delete each other's bridges,
    veths or tables: ``pybox1a2b0``-style bridge, table ``inet pybox1a2``.
    Tags are hex digits, so one instance's patterns never match another's
    (``pyboxv...``, ``pybox-...`` and ``pybox0`` have a non-hex letter or end
    right after the prefix).
    """

    def __init__(self, run_root: str = "/run/pybox") -> None:
        run_root = os.path.normpath(run_root)
        if run_root in ("/run/pybox", "/var/run/pybox"):
            self.tag = ""
        else:
            self.tag = hashlib.sha1(run_root.encode()).hexdigest()[:3]
        self.prefix = "pybox" + self.tag
        self.table = self.prefix
        self.default_bridge = self.prefix + "0"
        free = IFNAMSIZ - len(self.prefix) - 1
        self._bridge_re = re.compile(
            rf"^{self.prefix}(0|-[0-9a-f]{{{free}}})$")
        self._veth_re = re.compile(rf"^{self.prefix}v[0-9a-f]{{{free}}}$")
        self._free = free

    def bridge(self, network_id: str) -> str:
        return f"{self.prefix}-{network_id[:self._free]}"

    def veth(self, token: str) -> str:
        """The host end of a container's veth pair; ``token`` is random hex."""
        return f"{self.prefix}v{token[:self._free]}"

    def is_bridge(self, ifname: str) -> bool:
        return bool(self._bridge_re.match(ifname))

    def is_veth(self, ifname: str) -> bool:
        return bool(self._veth_re.match(ifname))

    def is_ours(self, ifname: str) -> bool:
        return self.is_bridge(ifname) or self.is_veth(ifname)
