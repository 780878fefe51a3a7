"""nftables rules in pybox's own table, and nowhere else.

Everything lives in one table, ``inet pybox`` (``inet pybox<tag>`` for a
private pyboxd, see pybox.network.Names).  pybox never flushes the ruleset,
never lists or edits another table, and deletes only its own table: docker's
iptables-nft tables, firewalld's or the admin's keep working beside it (a
packet must be accepted by every table's base chain for its hook; pybox's
chains drop only traffic to and from pybox's own bridges).

The table, loaded in one transaction when the first network comes up::

    set bridges                     every active pybox bridge (ifname)
    map fwd_from, fwd_to            ifname -> jump the network's forward chains
    map nat_from, nat_to            ifname -> jump the network's NAT chains
    map ports_addr                  host ip . proto . port -> container ip . port
    map ports_any                   proto . port -> container ip . port (0.0.0.0)
    chain forward   (filter/forward)      iifname vmap @fwd_from; oifname vmap @fwd_to
    chain guard     (filter/prerouting, raw priority)
                    packets from a pybox bridge to or from 127.0.0.0/8 are
                    dropped (route_localnet's guard, CVE-2020-8558)
    chain prerouting (nat/prerouting), chain output (nat/output)
                    fib daddr type local jump published
    chain published  dnat through ports_addr, then ports_any
    chain postrouting (nat/postrouting)   oifname vmap @nat_to; iifname vmap @nat_from

and per network (bridge B, subnet S), added and removed with the network:

    chain fwd-from-B   oifname B accept            containers of one network
                       oifname @bridges drop       isolation between networks
                       accept                      outbound (internal: drop)
    chain fwd-to-B     ct state established,related accept
                       ct status dnat accept       published ports
                       drop                        nothing else reaches containers
    chain nat-to-B     ct status dnat ip saddr { S, 127.0.0.0/8 } masquerade
                       (hairpin: a container, or the host via localhost, reaching
                       a published port; replies must come back through the host)
    chain nat-from-B   oifname B return; ip saddr S masquerade    (outbound NAT)
                       ip6 saddr S6 masquerade     (a dual-stack network's IPv6)

Adding a network is a handful of chain/element commands; publishing a port is
one map element (``create``: an existing key fails instead of being replaced).
So no rule is ever looked up by handle and nothing needs rewriting.

Published ports on 127.0.0.1 work by DNAT with ``route_localnet=1`` on pybox's
bridges (kernel-speed, no process per port, the client's address is kept for
remote clients) rather than a userland proxy like docker-proxy; the guard chain
closes what route_localnet opens (containers sending to the host's 127.0.0.1).

nftables 1.0.6's JSON parser cannot declare a map whose *data* is a
concatenation (``: ipv4_addr . inet_service`` comes out as a plain set), so the
static skeleton is loaded as nft syntax; every change after that (chains,
rules, elements) is JSON through libnftables (python3-nftables, in process: no
``nft`` subprocess per container).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from pybox.errors import FirewallError
from pybox.formats import fastjson
from pybox.network.ports import PortMapping

SKELETON = """\
table inet {table} {{
  set bridges {{ type ifname; }}
  map fwd_from {{ type ifname : verdict; }}
  map fwd_to {{ type ifname : verdict; }}
  map nat_from {{ type ifname : verdict; }}
  map nat_to {{ type ifname : verdict; }}
  map ports_addr {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  map ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname vmap @fwd_from
    oifname vmap @fwd_to
  }}
  chain guard {{
    type filter hook prerouting priority raw; policy accept;
    iifname @bridges ip daddr 127.0.0.0/8 drop
    iifname @bridges ip saddr 127.0.0.0/8 drop
  }}
  chain published {{
    dnat ip to ip daddr . meta l4proto . th dport map @ports_addr
    meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports_any
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump published
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local jump published
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname vmap @nat_to
    iifname vmap @nat_from
  }}
}}
"""


Expr = dict[str, Any]  # one nftables JSON expression or statement


class Present(TypedDict):
    """What the table holds: chain names, and (set or map, key) elements."""

    chains: set[str]
    elements: set[tuple[str, str]]


def _match(left: object, right: object, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def _prefix(cidr: str) -> Expr:
    addr, _, length = cidr.partition("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


class Firewall:
    def __init__(self, table: str = "pybox") -> None:
        self.table = table
        self._nft: Any = None  # nftables.Nftables (Debian's binding, untyped)
        self._lock = threading.Lock()

    # -- libnftables ----------------------------------------------------------------
    @property
    def nft(self) -> Any:
        if self._nft is None:
            # libnftables through ctypes, slow to load: pyboxd warms it on a
            # thread (NetworkManager.warm)
            import nftables  # noqa: PLC0415

            nft = nftables.Nftables()
            nft.set_json_output(True)
            self._nft = nft
        return self._nft

    def _json(self, commands: list[dict[str, Any]], what: str) -> Any:
        with self._lock:
            rc, out, err = self.nft.json_cmd({"nftables": commands})
        if rc != 0:
            raise FirewallError(f"nftables: {what}: {err.strip()}")
        return out

    def _obj(self, **fields: Any) -> dict[str, Any]:
        return dict(family="inet", table=self.table, **fields)

    # -- the table ------------------------------------------------------------------
    def exists(self) -> bool:
        with self._lock:
            rc, out, err = self.nft.json_cmd(
                {"nftables": [{"list": {"table": {"family": "inet", "name": self.table}}}]})
        return rc == 0

    def ensure(self) -> bool:
        """Load the skeleton unless the table is there already (a restarted
        pyboxd keeps the running containers' rules)."""
        if self.exists():
            return False
        with self._lock:
            rc, out, err = self.nft.cmd(SKELETON.format(table=self.table))
        if rc != 0:
            raise FirewallError(f"nftables: cannot create table inet {self.table}: "
                                f"{err.strip()}")
        return True

    def remove_table(self) -> None:
        """Delete pybox's table (and only it); absent is fine."""
        if self.exists():
            self._json([{"delete": {"table": {"family": "inet", "name": self.table}}}],
                       f"delete table inet {self.table}")

    def list_table(self) -> list[dict[str, Any]]:
        """The table as nft's JSON objects (tests, inspect, leftovers)."""
        with self._lock:
            rc, out, err = self.nft.json_cmd(
                {"nftables": [{"list": {"table": {"family": "inet", "name": self.table}}}]})
        if rc != 0 or not out:
            return []
        return out.get("nftables", [])  # json_cmd parses nft's JSON output

    # -- networks -------------------------------------------------------------------
    def add_network(self, bridge: str, subnet: str, internal: bool = False,
                    subnet6: str | None = None) -> None:
        """The chains and map elements for bridge ``bridge`` (idempotent:
        existing chains are flushed and refilled, in one transaction).
        ``subnet6``: a dual-stack network's IPv6 subnet, masqueraded on its
        way out as the IPv4 one (docker's ip6tables MASQUERADE); the forward
        chains match interfaces, so they hold for both families."""
        b = bridge
        chains: dict[str, list[list[Expr]]] = {f"fwd-from-{b}": [], f"fwd-to-{b}": [],
                                               f"nat-to-{b}": [], f"nat-from-{b}": []}
        oif = _meta("oifname")
        saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
        chains[f"fwd-from-{b}"] = [
            [_match(oif, b), {"accept": None}],
            [_match(oif, "@bridges"), {"drop": None}],
            [{"drop": None} if internal else {"accept": None}],
        ]
        chains[f"fwd-to-{b}"] = ([[{"drop": None}]] if internal else [
            [_match({"ct": {"key": "state"}}, ["established", "related"], "in"),
             {"accept": None}],
            [_match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}],
            [{"drop": None}],
        ])
        chains[f"nat-to-{b}"] = [
            [_match({"ct": {"key": "status"}}, "dnat", "in"),
             _match(saddr, {"set": [_prefix(subnet), _prefix("127.0.0.0/8")]}),
             {"masquerade": None}],
        ]
        if not internal:
            chains[f"nat-from-{b}"] = [
                [_match(oif, b), {"return": None}],
                [_match(saddr, _prefix(subnet)), {"masquerade": None}],
            ]
            if subnet6:
                saddr6 = {"payload": {"protocol": "ip6", "field": "saddr"}}
                chains[f"nat-from-{b}"].append(
                    [_match(saddr6, _prefix(subnet6)), {"masquerade": None}])
        cmds: list[dict[str, Any]] = []
        for name, rules in chains.items():
            cmds.append({"add": {"chain": self._obj(name=name)}})
            cmds.append({"flush": {"chain": self._obj(name=name)}})
            for expr in rules:
                cmds.append({"add": {"rule": self._obj(chain=name, expr=expr)}})
        cmds.append({"add": {"element": self._obj(name="bridges", elem=[b])}})
        for m, chain in (("fwd_from", f"fwd-from-{b}"), ("fwd_to", f"fwd-to-{b}"),
                         ("nat_to", f"nat-to-{b}"), ("nat_from", f"nat-from-{b}")):
            cmds.append({"add": {"element": self._obj(
                name=m, elem=[[b, {"jump": {"target": chain}}]])}})
        self._json(cmds, f"rules for network bridge {b}")

    def remove_network(self, bridge: str) -> None:
        """Undo ``add_network``: map elements first (nothing jumps to the chains
        any more), then the chains.  Missing pieces are skipped."""
        b = bridge
        present = self._present_objects()
        cmds: list[dict[str, Any]] = []
        for m in ("fwd_from", "fwd_to", "nat_to", "nat_from"):
            if (m, b) in present["elements"]:
                cmds.append({"delete": {"element": self._obj(name=m, elem=[b])}})
        if ("bridges", b) in present["elements"]:
            cmds.append({"delete": {"element": self._obj(name="bridges", elem=[b])}})
        for name in (f"fwd-from-{b}", f"fwd-to-{b}", f"nat-to-{b}", f"nat-from-{b}"):
            if name in present["chains"]:
                cmds.append({"flush": {"chain": self._obj(name=name)}})
                cmds.append({"delete": {"chain": self._obj(name=name)}})
        if cmds:
            self._json(cmds, f"remove rules of bridge {b}")

    def _present_objects(self) -> Present:
        chains: set[str] = set()
        elements: set[tuple[str, str]] = set()
        for obj in self.list_table():
            if "chain" in obj:
                chains.add(obj["chain"]["name"])
            for kind in ("set", "map"):
                if kind in obj:
                    for e in obj[kind].get("elem") or ():
                        key = e[0] if isinstance(e, list) else e
                        if isinstance(key, str):
                            elements.add((obj[kind]["name"], key))
        return {"chains": chains, "elements": elements}

    def networks(self) -> list[str]:
        """Bridges that have rules in the table (for leftover cleanup)."""
        return sorted(k for m, k in self._present_objects()["elements"] if m == "bridges")

    # -- published ports ------------------------------------------------------------
    @staticmethod
    def port_element(p: PortMapping) -> tuple[str, list[dict[str, Any]]]:
        """(map name, [key, value]) of a published port's DNAT element."""
        value = {"concat": [p.container_ip, p.container_port]}
        if p.host_ip in ("", "0.0.0.0"):
            return "ports_any", [{"concat": [p.protocol, p.host_port]}, value]
        return "ports_addr", [{"concat": [p.host_ip, p.protocol, p.host_port]}, value]

    def add_ports(self, mappings: Sequence[PortMapping]) -> None:
        """DNAT for each mapping, all or none (one transaction)."""
        if not mappings:
            return
        cmds = []
        for p in mappings:
            name, elem = self.port_element(p)
            cmds.append({"create": {"element": self._obj(name=name, elem=[elem])}})
        self._json(cmds, "publish ports")

    def remove_unowned_ports(self, owned: Iterable[PortMapping]) -> list[tuple[str, str | None]]:
        """Remove the published-port elements that none of ``owned`` explains
        (a start cut between the DNAT and the sandbox's save).  Returns, per
        element removed or not, (its key as JSON, the error or None)."""
        keep = set()
        for m in owned:
            name, elem = self.port_element(m)
            keep.add((name, fastjson.dumps(elem[0])))
        done: list[tuple[str, str | None]] = []
        for obj in self.list_table():
            nft_map = obj.get("map") or {}
            if nft_map.get("name") not in ("ports_any", "ports_addr"):
                continue
            for elem in nft_map.get("elem") or ():
                key = elem[0] if isinstance(elem, list) else elem
                shown = fastjson.dumps(key)
                if (nft_map["name"], shown) in keep:
                    continue
                try:
                    self._json([{"delete": {"element": self._obj(name=nft_map["name"],
                                                                 elem=[key])}}],
                               "remove a published port nobody owns")
                    done.append((shown, None))
                except FirewallError as err:
                    done.append((shown, str(err)))
        return done

    def remove_ports(self, mappings: Iterable[PortMapping]) -> None:
        for p in mappings:
            name, elem = self.port_element(p)
            try:
                self._json([{"delete": {"element": self._obj(name=name, elem=[elem[0]])}}],
                           "unpublish port")
            except FirewallError:
                pass  # already gone (a table recreated after a crash)
