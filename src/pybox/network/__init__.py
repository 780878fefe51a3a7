"""Container networking: bridge networks, NAT, published ports and DNS.

One module per concern, each knowing nothing about containers beyond an id and
an address (the engine's glue is pybox.engine.networking):

    ipam.py      subnets, gateways, ip-ranges, allocations (DATA_ROOT/network/)
    netns.py     a persistent network namespace per container (RUN_ROOT/netns/ID)
    links.py     bridges, veth pairs, addresses, routes, MTU (pyroute2)
    firewall.py  nftables in pybox's own table: forwarding, isolation, NAT, DNAT
    ports.py     -p/-P: parsing, host port reservation, docker's errors
    dns.py       the embedded DNS server of user-defined networks
    etc.py       /etc/hosts, /etc/hostname, /etc/resolv.conf per container
    manager.py   NetworkManager, the facade the engine calls

Every kernel object made here carries a name that says it is pybox's and
which pyboxd made it (``Names``), so ``NetworkManager.cleanup`` finds its own
leftovers after a crash and never touches anyone else's objects.
"""

import hashlib
import re

IFNAMSIZ = 15  # usable characters of a Linux interface name


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

    def __init__(self, run_root="/run/pybox"):
        import os

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

    def bridge(self, network_id):
        return f"{self.prefix}-{network_id[:self._free]}"

    def veth(self, token):
        """The host end of a container's veth pair; ``token`` is random hex."""
        return f"{self.prefix}v{token[:self._free]}"

    def is_bridge(self, ifname):
        return bool(self._bridge_re.match(ifname))

    def is_veth(self, ifname):
        return bool(self._veth_re.match(ifname))

    def is_ours(self, ifname):
        return self.is_bridge(ifname) or self.is_veth(ifname)
