"""Bridges, veth pairs, addresses, routes and MTU, through pyroute2 (netlink).

pyroute2 0.9 keeps a socket and an asyncio event loop per *thread* for each
IPRoute object, so an IPRoute used from pyboxd's many request threads would
open a socket per thread, each in that thread's network namespace.  Every
netlink call here therefore runs on one worker thread (``Links.call``): one
host socket, one event loop, calls serialised.  A container's namespace is
reached through a socket opened *in* it (pybox.network.netns) and handed to
IPRoute(use_socket=...), which then cannot talk to any other namespace.

No ``ip`` subprocess: a container's interface costs a handful of netlink
messages (see ``attach_veth``).

No ``link_lookup``/``get_links(index)`` on a container's hot path either:
pyroute2 sends a link GET with NLM_F_ACK and stops reading at the reply, so
the kernel's ACK lands in the socket's queue of unclaimed messages and stays
there -- one 36-byte message per call, and worse, each one pinned in the
middle of freed receive buffers: pyboxd's heap grew by some KiB per container
for good.  Host ifindexes come from if_nametoindex(3) (an ioctl in the worker
thread's namespace: the host's), and whatever pyroute2 leaves unclaimed is
dropped after every call (``_discard_unclaimed``).  A link's kind is looked up
(one GET) only where a name may belong to someone else: a network's creation,
a bridge pybox did not just make, a disconnect.

Ownership: pybox deletes only links it made -- its veths, the bridges it
created -- and checks before deleting that the name still is that link (same
ifindex, or the expected kind): a user's bridge, or a host interface that took
a name pybox once used, is never deleted (see manager.py).
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from pybox.errors import LinkError

T = TypeVar("T")
# pyroute2's objects (an IPRoute, its netlink messages): untyped library
IPRoute = Any
NlMsg = Any

IFA_F_NODAD = 0x02  # an address usable at once: no duplicate address detection


@dataclass(frozen=True)
class V6Address:
    """A container end's IPv6 address on a dual-stack network, and that
    network's IPv6 gateway (its default route when it is the first network)."""

    address: str
    prefixlen: int
    gateway: str


ENODEV = 19
EEXIST = 17
ENOENT = 2
ESRCH = 3
EADDRNOTAVAIL = 99


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass


def write_sysctl(path: str, value: str) -> None:
    """Write a sysctl; a missing or refused one is ignored (best effort)."""
    _sysctl(path, value)


def read_sysctl(path: str) -> str | None:
    """A sysctl's value (stripped), or None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def route_localnet_path(name: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{name}/route_localnet"


def disable_ipv6_path(name: str) -> str:
    return f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"


# docker's stats names for /proc/net/dev's columns (receive, then transmit)
_NETDEV_FIELDS = {0: "rx_bytes", 1: "rx_packets", 2: "rx_errors", 3: "rx_dropped",
                  8: "tx_bytes", 9: "tx_packets", 10: "tx_errors", 11: "tx_dropped"}


def interface_counters(pid: int, names: Collection[str]) -> dict[str, dict[str, int]]:
    """The counters of interfaces ``names`` in the network namespace of
    process ``pid``, read from its /proc/PID/net/dev (the namespace's own
    view; no netlink round trip, no thread entering the namespace) -> docker
    stats' ``networks`` entries {ifname: {"rx_bytes": ..., "tx_dropped": ...}}.
    Interfaces not in ``names`` (lo, one made inside the container) are left
    out, as dockerd reports only its endpoints' interfaces.  {} when the
    process is gone."""
    try:
        with open(f"/proc/{int(pid)}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return {}
    out: dict[str, dict[str, int]] = {}
    for line in lines:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or name not in names:
            continue
        values = rest.split()
        try:
            out[name] = {key: int(values[i]) for i, key in _NETDEV_FIELDS.items()}
        except (IndexError, ValueError):
            continue
    return out


def _nl_errno(exc: BaseException) -> int | None:
    return getattr(exc, "code", None)


def _kind(link: NlMsg) -> str:
    """IFLA_INFO_KIND of a link message: "bridge", "veth"...; "" for a device
    that has none (a NIC, lo)."""
    return link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""


def _ifindex(name: str) -> int | None:
    """The host link ``name``'s index, or None: an ioctl, not a netlink GET
    (whose ACK pyroute2 would leave queued for good, see the module's doc)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _discard_unclaimed(ipr: IPRoute) -> None:
    """Drop the messages pyroute2 queued for nobody on ``ipr`` (queue 0:
    replies to requests that were already answered -- the host socket joins
    no multicast group, so nothing else arrives there).  Unread, they are
    kept for the socket's life.  Only the calling thread's queue: pyroute2's
    queues are per thread, and the worker is the one thread using the
    socket.  Best effort across pyroute2 versions (the attributes may move)."""
    queue = getattr(getattr(getattr(ipr, "asyncore", None), "local", None), "msg_queue", None)
    root = getattr(queue, "queues", {}).get(0) if queue is not None else None
    if root is None:
        return
    try:
        while not root.empty():
            root.get_nowait()
            root.task_done()
    except Exception:  # noqa: BLE001 - an asyncio.Queue of another shape: leave it
        pass


class Links:
    """The netlink worker.  Public methods may be called from any thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any],
                                       threading.Event] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._host: IPRoute | None = None
        self._lock = threading.Lock()

    # -- the worker -------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="pybox-netlink",
                                                daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, box, done = item
            try:
                box["value"] = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                box["error"] = e
            if self._host is not None:
                _discard_unclaimed(self._host)
            done.set()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread and return its result."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        self._ensure_worker()
        box: dict[str, Any] = {}
        done = threading.Event()
        self._queue.put((fn, args, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def call_or_fail(self, fn: Callable[[], T], what: str) -> T:
        """``call(fn)``, a netlink error from it raised as LinkError("<what>:
        <error>"); a LinkError of its own passes as it is."""
        try:
            return self.call(fn)
        except LinkError:
            raise
        except Exception as e:  # noqa: BLE001 - NetlinkError
            raise LinkError(f"{what}: {e}") from None

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            def shut() -> None:
                if self._host is not None:
                    self._host.close()
                    self._host = None
            self.call(shut)
            self._queue.put(None)
            self._thread.join(5)

    @property
    def host(self) -> IPRoute:
        """The host namespace's IPRoute (worker thread only)."""
        if self._host is None:
            # pyroute2 takes ~0.2 s to import: pyboxd warms it on a thread
            # (NetworkManager.warm), the first container's start does not wait
            from pyroute2 import IPRoute  # noqa: PLC0415

            self._host = IPRoute()
        return self._host

    # -- host side --------------------------------------------------------------
    def host_networks(self, exclude: Collection[str] = ()) -> list[ipaddress.IPv4Network]:
        """IPv4 networks the host already reaches (routes of the main table other
        than the default route, and its addresses' subnets), except those on the
        links named in ``exclude`` (pybox's own bridges)."""
        def work() -> list[ipaddress.IPv4Network]:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in self.host.get_links()}
            out: set[ipaddress.IPv4Network] = set()
            for r in self.host.get_routes(family=2, table=254):
                if r["dst_len"] == 0:
                    continue
                if names.get(r.get_attr("RTA_OIF")) in exclude:
                    continue
                out.add(ipaddress.IPv4Network(f"{r.get_attr('RTA_DST')}/{r['dst_len']}",
                                              strict=False))
            for a in self.host.get_addr(family=2):
                if names.get(a["index"]) in exclude or names.get(a["index"]) == "lo":
                    continue
                out.add(ipaddress.IPv4Network(
                    f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False))
            return sorted(out)
        return self.call(work)

    def default_mtu(self) -> int:
        """The MTU of the host's default route's link, at most 1500: a container
        must not send frames bigger than the host can forward (1400 on some
        clouds and VMs, where docker's fixed 1500 breaks large transfers)."""
        def work() -> int:
            for r in self.host.get_routes(family=2, table=254):
                if r["dst_len"] == 0 and r.get_attr("RTA_OIF"):
                    link = self.host.get_links(r.get_attr("RTA_OIF"))[0]
                    return min(1500, link.get_attr("IFLA_MTU") or 1500)
            return 1500
        return self.call(work)

    def link_kinds(self) -> dict[str, str]:
        """Every host link's name -> its kind ("bridge", "veth"...; "" for a
        device without one: a NIC, lo): what a leftover sweep checks before
        deleting a link whose name only looks like one of pybox's."""
        def work() -> dict[str, str]:
            return {link.get_attr("IFLA_IFNAME"): _kind(link) for link in self.host.get_links()}
        return self.call(work)

    def _link_kind(self, name: str) -> tuple[int, str] | None:
        """(ifindex, kind) of the host link ``name``, or None (worker thread)."""
        index = _ifindex(name)
        if index is None:
            return None
        try:
            found = self.host.get_links(index)
        except Exception as e:  # noqa: BLE001 - NetlinkError
            if _nl_errno(e) in (ENODEV, ENOENT):
                return None
            raise LinkError(f"cannot look up link {name}: {e}") from None
        if not found or found[0].get_attr("IFLA_IFNAME") != name:
            return None  # renamed or replaced between the two calls
        return index, _kind(found[0])

    def link_kind(self, name: str) -> str | None:
        """The kind of host link ``name`` ("bridge", "veth", "" for a plain
        device), or None if there is none."""
        found = self.call(self._link_kind, name)
        return None if found is None else found[1]

    def addresses(self, name: str) -> set[tuple[str, int]]:
        """The IPv4 (address, prefixlen) pairs of host link ``name``."""
        def work() -> set[tuple[str, int]]:
            index = _ifindex(name)
            if index is None:
                return set()
            return {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                    for a in self.host.get_addr(family=2, index=index)}
        return self.call(work)

    def ensure_bridge(self, name: str, gateway: str, prefixlen: int, mtu: int, *,
                      create: bool) -> tuple[int, bool, bool]:
        """Bridge ``name`` with ``gateway/prefixlen``, up -> (ifindex,
        created, address added).

        ``create``: pybox may make the bridge if it is missing (a bridge it
        then owns).  An existing link is used only if it is a bridge (docker:
        "existing interface X is not a bridge"); of a bridge pybox did not
        make, only what docker changes on a user's bridge is changed: the
        gateway address added if missing, the link set up.  Nothing else of
        it (MTU, sysctls, other addresses) is touched here."""
        def work() -> tuple[int, bool, bool]:
            ipr = self.host
            created = False
            index = None
            if create and _ifindex(name) is None:
                try:
                    ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                    created = True
                except Exception as e:  # noqa: BLE001 - NetlinkError
                    if _nl_errno(e) != EEXIST:
                        raise LinkError(f"cannot create bridge {name}: {e}") from None
                if created:
                    # IPv4-only networks: no link-local address, no MLD chatter
                    _sysctl(disable_ipv6_path(name), "1")
                    index = _ifindex(name)
                    if index is None:
                        raise LinkError(f"bridge {name} vanished right after its creation")
            if index is None:  # an existing link: used only if it is a bridge
                found = self._link_kind(name)
                if found is None:
                    raise LinkError(f"bridge {name} does not exist")
                index, kind = found
                if kind != "bridge":
                    raise LinkError(f"existing interface {name} is not a bridge")
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                    for a in ipr.get_addr(family=2, index=index)}
            added = False
            if (gateway, prefixlen) not in have:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
                added = True
            ipr.link("set", index=index, state="up")
            return index, created, added
        return self.call_or_fail(work, f"cannot set up bridge {name}")

    def add_address6(self, name: str, address: str, prefixlen: int) -> bool:
        """An IPv6 network's gateway on bridge ``name``: IPv6 switched on for
        the bridge (pybox's bridges are made without it), the address added
        without duplicate address detection (usable at once, as docker adds
        it) -> whether it was added (False: it was there)."""
        def work() -> bool:
            index = _ifindex(name)
            if index is None:
                raise LinkError(f"bridge {name} does not exist")
            _sysctl(disable_ipv6_path(name), "0")
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                    for a in self.host.get_addr(family=socket.AF_INET6, index=index)}
            if (address, prefixlen) in have:
                return False
            self.host.addr("add", index=index, address=address, prefixlen=prefixlen,
                           family=socket.AF_INET6, flags=IFA_F_NODAD)
            return True
        return self.call_or_fail(work, f"cannot add {address}/{prefixlen} to bridge {name}")

    def remove_address(self, name: str, address: str, prefixlen: int) -> None:
        """Remove ``address/prefixlen`` from host link ``name``; absent is fine."""
        def work() -> None:
            index = _ifindex(name)
            if index is None:
                return
            try:
                self.host.addr("del", index=index, address=address, prefixlen=prefixlen)
            except Exception as e:  # noqa: BLE001 - NetlinkError
                if _nl_errno(e) not in (EADDRNOTAVAIL, ENODEV, ENOENT):
                    raise LinkError(f"cannot remove {address}/{prefixlen} from {name}: "
                                    f"{e}") from None
        self.call(work)

    def delete_link(self, name: str, *, kind: str | None = None,
                    index: int | None = None) -> bool:
        """Delete the host link ``name``; absent is fine.  A name pybox uses
        may since have been taken by something else, which is left alone:
        with ``index``, only if ``name`` is still that link (ifindexes are not
        handed out again soon: the kernel counts up), else with ``kind``, only
        a link of that kind.  -> whether a link was deleted."""
        def work() -> bool:
            if index is not None:
                if _ifindex(name) != index:
                    return False
                target = index
            else:
                found = self._link_kind(name)
                if found is None or (kind is not None and found[1] != kind):
                    return False
                target = found[0]
            try:
                self.host.link("del", index=target)
            except Exception as e:  # noqa: BLE001 - NetlinkError
                if _nl_errno(e) not in (ENODEV, ENOENT) and "No such" not in str(e):
                    raise LinkError(f"cannot delete link {name}: {e}") from None
                return False
            return True
        return self.call(work)

    # -- a container's end -------------------------------------------------------
    def attach_veth(self, ns_sock: socket.socket, netns_path: str, host_name: str, ifname: str,
                    bridge_index: int, mtu: int, address: str, prefixlen: int, mac: str,
                    gateway: str | None, expect_fresh: bool = False,
                    v6: V6Address | None = None) -> None:
        """A veth pair whose host end ``host_name`` is a port of the bridge and
        whose other end is created directly in the container's namespace as
        ``ifname`` (eth0...): no moment where it sits in the host namespace
        under a temporary name.  Then, through ``ns_sock`` (a netlink socket in
        that namespace): lo up, the address, the MAC, the MTU, up, and the
        default route via ``gateway`` (None: no default route, for --internal
        networks and secondary interfaces).

        ``expect_fresh``: first check that the namespace behind ``ns_sock``
        holds only lo.  Configuring through a socket that is in fact in the
        host namespace would re-address the host's own eth0; this makes that
        impossible for a new namespace.

        ``v6``: the IPv6 address of a dual-stack network's endpoint too (and
        its default route when ``gateway`` is given), added without duplicate
        address detection."""
        def work() -> None:
            from pyroute2 import IPRoute  # noqa: PLC0415 -- see host

            ns = IPRoute(use_socket=ns_sock.dup())
            try:
                if expect_fresh:
                    names = [link.get_attr("IFLA_IFNAME") for link in ns.get_links()]
                    if names != ["lo"]:
                        raise LinkError(f"a new network namespace should hold only lo, not "
                                        f"{names}")
                self._attach_veth(ns, netns_path, host_name, ifname, bridge_index, mtu,
                                  address, prefixlen, mac, gateway, v6)
            finally:
                ns.close()
        self.call_or_fail(work, f"cannot configure {ifname} in {netns_path}")

    def _attach_veth(self, ns: IPRoute, netns_path: str, host_name: str, ifname: str,
                     bridge_index: int, mtu: int, address: str, prefixlen: int, mac: str,
                     gateway: str | None, v6: V6Address | None) -> None:
        nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.host.link("add", ifname=host_name, kind="veth", mtu=mtu,
                           master=bridge_index, state="up",
                           peer={"ifname": ifname, "net_ns_fd": nsfd, "mtu": mtu,
                                 "address": mac})
        except Exception as e:  # noqa: BLE001
            raise LinkError(f"cannot create veth pair {host_name}/{ifname}: {e}") \
                from None
        finally:
            os.close(nsfd)
        # hairpin: with br_netfilter, a container reaching its own published
        # port is DNATed at the bridge and must go back out of its port
        port = _ifindex(host_name)
        if port is not None:
            self.host.brport("set", index=port, mode=1)
        try:
            found = ns.link_lookup(ifname=ifname)
            if not found:
                raise LinkError(f"{ifname} did not appear in {netns_path}")
            index = found[0]
            ns.link("set", index=1, state="up")  # lo is always ifindex 1
            ns.addr("add", index=index, address=address, prefixlen=prefixlen)
            if v6 is not None:
                ns.addr("add", index=index, address=v6.address, prefixlen=v6.prefixlen,
                        family=socket.AF_INET6, flags=IFA_F_NODAD)
            ns.link("set", index=index, state="up")
            if gateway:
                ns.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
                if v6 is not None:
                    ns.route("add", dst="::/0", gateway=v6.gateway, oif=index,
                             family=socket.AF_INET6)
        except BaseException:
            try:
                self.host.link("del", ifname=host_name)
            except Exception:  # noqa: BLE001 - rollback best effort
                pass
            raise
