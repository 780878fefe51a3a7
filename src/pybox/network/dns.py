"""The embedded DNS server of user-defined networks.

One server thread in pyboxd listens, for every active user-defined network, on
UDP and TCP port 53 of the network's gateway address (the bridge's address),
which is the nameserver of its containers' resolv.conf.  It answers, from the
manager's live view (so renames, connects and disconnects show at once):

- A queries for a container's name, its --network-alias names, its
  --hostname and its short id, with the container's address on a network it
  shares with the asking container (whichever network's server was asked:
  a container's resolv.conf names one server, it may be on several networks);
  containers on no shared network are not visible (isolation);
- PTR queries for those addresses;
- anything else is forwarded, as raw bytes, to the upstream resolvers (the
  host's, see etc.host_resolvers, or the container's --dns servers) and the
  reply relayed unchanged.

Queries from outside the network's subnet are ignored, so one network's names
cannot be read from another.  Messages are parsed and built with dnspython.
Forwarding runs on a small thread pool so a slow upstream never holds up the
answers for local names.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

Reply = Callable[[bytes], None]
# (network key, name, client address) -> the addresses to answer
Lookup = Callable[[str, str, str], list[str]]
# (network key, address, client address) -> the name, or None
Reverse = Callable[[str, str, str], str | None]
# (network key, client address) -> the servers to forward to
Upstreams = Callable[[str, str], list[str]]

TTL = 600
UPSTREAM_TIMEOUT = 3.0


@dataclass(slots=True)
class Listener:
    """The sockets serving one network (``key``) on its gateway address."""

    key: str
    address: str
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    udp: socket.socket
    tcp: socket.socket


class DNSServer:
    """``lookup(key, name, client_ip) -> [ip] | None`` (IPv4 for A, IPv6 for
    AAAA queries) answers names for a
    client of network ``key``; ``reverse(key, ip, client_ip) -> name | None``;
    ``upstreams(key, client_ip) -> [ip]``."""

    def __init__(self, lookup: Lookup, reverse: Reverse, upstreams: Upstreams,
                 port: int = 53) -> None:
        self.lookup = lookup
        self.reverse = reverse
        self.upstreams = upstreams
        self.port = port
        self.listeners: dict[str, Listener] = {}
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pybox-dns")
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- listeners ------------------------------------------------------------------
    def add(self, key: str, address: str, subnet: str) -> None:
        """Serve network ``key`` on ``address``:53 (UDP and TCP)."""
        with self._lock:
            if key in self.listeners:
                return
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                for s in (udp, tcp):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((address, self.port))
                tcp.listen(64)
                udp.setblocking(False)
                tcp.setblocking(False)
            except BaseException:
                udp.close()
                tcp.close()
                raise
            lst = Listener(key, address, ipaddress.ip_network(subnet), udp, tcp)
            self.listeners[key] = lst
            self._sel.register(udp, selectors.EVENT_READ, ("udp", lst))
            self._sel.register(tcp, selectors.EVENT_READ, ("tcp", lst))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="pybox-dns",
                                                daemon=True)
                self._thread.start()
        self._wake()

    def remove(self, key: str) -> None:
        with self._lock:
            lst = self.listeners.pop(key, None)
            if lst is None:
                return
            for s in (lst.udp, lst.tcp):
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
        self._wake()

    def close(self) -> None:
        for key in list(self.listeners):
            self.remove(key)
        self._stopped = True
        self._wake()
        if self._thread is not None:
            self._thread.join(2)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the loop -----------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stopped:
            for key, _ in self._sel.select(1.0):
                if key.data is None:
                    try:
                        self._wake_r.recv(512)
                    except OSError:
                        pass
                    continue
                kind, lst = key.data
                try:
                    if kind == "udp":
                        data, peer = lst.udp.recvfrom(4096)
                        if self._allowed(lst, peer[0]):
                            self._handle(lst, data, peer, _udp_reply(lst.udp, peer))
                    else:
                        conn, peer = lst.tcp.accept()
                        if self._allowed(lst, peer[0]):
                            self._pool.submit(self._tcp_client, lst, conn, peer)
                        else:
                            conn.close()
                except OSError:
                    continue

    @staticmethod
    def _allowed(lst: Listener, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in lst.subnet
        except ValueError:
            return False

    def _tcp_client(self, lst: Listener, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(10)
        try:
            while True:
                head = _recv_exact(conn, 2)
                if not head:
                    return
                data = _recv_exact(conn, struct.unpack("!H", head)[0])
                if not data:
                    return
                done = threading.Event()
                box: dict[str, bytes] = {}

                def reply(r: bytes, box: dict[str, bytes] = box,
                          done: threading.Event = done) -> None:
                    box["r"] = r
                    done.set()
                self._handle(lst, data, peer, reply, tcp=True)
                done.wait(UPSTREAM_TIMEOUT * 3)
                if "r" not in box:
                    return
                conn.sendall(struct.pack("!H", len(box["r"])) + box["r"])
        except OSError:
            pass
        finally:
            conn.close()

    # -- answering ------------------------------------------------------------------------
    def _handle(self, lst: Listener, data: bytes, peer: tuple[str, int], reply: Reply,
                tcp: bool = False) -> None:
        # dnspython takes ~50 ms to import (dns.message, measured with -X importtime),
        # ~5% of pyboxd's start: loaded on the first query, not at every start
        import dns.exception  # noqa: PLC0415 -- dnspython: on the first query (above)
        import dns.flags  # noqa: PLC0415 -- dnspython: on the first query
        import dns.message  # noqa: PLC0415 -- dnspython: on the first query
        import dns.rdataclass  # noqa: PLC0415 -- dnspython: on the first query
        import dns.rdatatype  # noqa: PLC0415 -- dnspython: on the first query
        import dns.rrset  # noqa: PLC0415 -- dnspython: on the first query

        try:
            query = dns.message.from_wire(data)
        except (dns.exception.DNSException, ValueError):
            return
        if len(query.question) != 1:
            return self._forward(lst, data, peer, reply, tcp)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        answer = None
        if q.rdclass == dns.rdataclass.IN:
            if q.rdtype == dns.rdatatype.PTR:
                ip = _ptr_to_ip(name)
                target = self.reverse(lst.key, ip, peer[0]) if ip else None
                if target:
                    answer = dns.message.make_response(query)
                    answer.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "PTR",
                                                             target + "."))
            else:
                ips = self.lookup(lst.key, name, peer[0])
                if ips:
                    answer = dns.message.make_response(query)
                    v4 = [ip for ip in ips if ":" not in ip]
                    v6 = [ip for ip in ips if ":" in ip]  # dual-stack networks' containers
                    if v4 and q.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
                        answer.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "A",
                                                                 *v4))
                    if v6 and q.rdtype in (dns.rdatatype.AAAA, dns.rdatatype.ANY):
                        answer.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "AAAA",
                                                                 *v6))
        if answer is None:
            return self._forward(lst, data, peer, reply, tcp)
        answer.flags |= dns.flags.RA
        reply(answer.to_wire())

    def _forward(self, lst: Listener, data: bytes, peer: tuple[str, int], reply: Reply,
                 tcp: bool) -> None:
        servers = self.upstreams(lst.key, peer[0])
        self._pool.submit(self._forward_now, data, servers, reply, tcp)

    def _forward_now(self, data: bytes, servers: list[str], reply: Reply, tcp: bool) -> None:
        for server in servers:
            try:
                if tcp:
                    with socket.create_connection((server, 53), UPSTREAM_TIMEOUT) as s:
                        s.sendall(struct.pack("!H", len(data)) + data)
                        head = _recv_exact(s, 2)
                        if not head:
                            continue
                        out = _recv_exact(s, struct.unpack("!H", head)[0])
                else:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.settimeout(UPSTREAM_TIMEOUT)
                        s.connect((server, 53))
                        s.send(data)
                        out = s.recv(65535)
                if out and out[:2] == data[:2]:
                    reply(out)
                    return
            except OSError:
                continue
        servfail = _servfail(data)
        if servfail:
            reply(servfail)


def _udp_reply(sock: socket.socket, peer: tuple[str, int]) -> Reply:
    """The reply callback for a UDP query from ``peer``."""
    def send(r: bytes) -> None:
        sock.sendto(r, peer)
    return send


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def _ptr_to_ip(name: str) -> str | None:
    suffix = ".in-addr.arpa"
    if name.endswith(".ip6.arpa"):  # 32 nibbles, last first
        nibbles = name[:-len(".ip6.arpa")].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef"
                                         for n in nibbles):
            return None
        return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    if not name.endswith(suffix):
        return None
    parts = name[:-len(suffix)].split(".")
    if len(parts) != 4:
        return None
    return ".".join(reversed(parts))


def _servfail(data: bytes) -> bytes | None:
    import dns.message  # noqa: PLC0415 -- dnspython: on the first query (DNSServer._handle)
    import dns.rcode  # noqa: PLC0415 -- dnspython: on the first query

    try:
        query = dns.message.from_wire(data)
    except Exception:  # noqa: BLE001
        return None
    r = dns.message.make_response(query)
    r.set_rcode(dns.rcode.SERVFAIL)
    return r.to_wire()
