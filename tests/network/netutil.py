"""Helpers of the networking tests (imported by conftest.py and the tests):
the private pyboxd, "other hosts" in namespaces, small clients and servers."""

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import threading

from pybox.network import Names
from support.host import remove_tree  # noqa: F401 (the conftest's)
from support.paths import DOCKER, IMAGE, PYTHON, REPO, SRC  # noqa: F401 (the tests')
from support.pyboxd import Pyboxd as SharedPyboxd
from support.wait import settle


def free_test_subnet():
    """A /24 of 198.18.0.0/15 that no route of the host covers (parallel test
    workers each make their own "other hosts")."""
    import random

    used = run(["ip", "-4", "route"]).stdout
    taken = set()
    for line in used.split("\n"):
        word = line.split(" ", 1)[0]
        try:
            taken.add(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    pool = list(ipaddress.ip_network("198.18.0.0/15").subnets(new_prefix=24))
    random.shuffle(pool)
    for net in pool:
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise RuntimeError("no free test subnet")


def free_port(udp=False):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def run(argv, check=True, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv}: {proc.returncode}: {proc.stderr}")
    return proc


# -- other hosts ------------------------------------------------------------------
class TestHost:
    """A network namespace linked to the host by a veth pair: host side
    ``host_ip``/24 on ``pyboxt<hex>``, namespace side ``ip``/24 with a default
    route via the host.  Sockets are opened in it through pybox.network.netns."""

    def __init__(self, base, subnet=None):
        from pybox.network import netns

        net = ipaddress.ip_network(subnet or free_test_subnet())
        self.host_ip = str(net.network_address + 1)
        self.ip = str(net.network_address + 2)
        self.path = os.path.join(base, "host-" + secrets.token_hex(3))
        self.link = "pyboxt" + secrets.token_hex(4)
        netns.create(self.path)[0].close()
        try:
            run(["ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0",
                 "netns", self.path])
            run(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.link])
            run(["ip", "link", "set", self.link, "up"])
            for cmd in (["ip", "link", "set", "lo", "up"],
                        ["ip", "addr", "add", f"{self.ip}/24", "dev", "eth0"],
                        ["ip", "link", "set", "eth0", "up"],
                        ["ip", "route", "add", "default", "via", self.host_ip]):
                run(["nsenter", f"--net={self.path}"] + cmd)
        except BaseException:
            self.remove()
            raise

    def call(self, fn):
        from pybox.network import netns

        return netns.run_in(self.path, fn)

    def remove(self):
        from pybox.network import netns

        subprocess.run(["ip", "link", "del", self.link], capture_output=True)
        netns.remove(self.path)


def tcp_get(ip, port, payload=b"", timeout=3.0):
    """Connect, send ``payload``, read to EOF -> bytes."""
    with socket.create_connection((ip, port), timeout=timeout) as s:
        if payload:
            s.sendall(payload)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def http_get(ip, port, path="/hostname", timeout=3.0):
    """GET path (default /hostname: the test containers serve /etc) -> body."""
    data = tcp_get(ip, port, f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode(), timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode(errors="replace")


def udp_ask(ip, port, payload, timeout=3.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (ip, port))
        return s.recvfrom(65535)[0]


class PeerServer:
    """A TCP (or UDP) server on a thread whose socket lives in a namespace
    (``opener`` opens it there); answers every client with its address as seen
    by the server, so a test can tell whether NAT changed it."""

    def __init__(self, sock, udp=False):
        self.sock = sock
        self.udp = udp
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                if self.udp:
                    data, peer = self.sock.recvfrom(65535)
                    self.sock.sendto(f"{peer[0]} {data.decode()}".encode(), peer)
                else:
                    conn, peer = self.sock.accept()
                    with conn:
                        conn.sendall(peer[0].encode())
            except OSError:
                continue

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


def listen(port, udp=False):
    """For ``netns.run_in``/``TestHost.call``: a bound socket on 0.0.0.0:port."""
    def open_it():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if not udp:
            s.listen(16)
        return s
    return open_it


class Upstream:
    """A tiny DNS server in a TestHost: answers ``svc.upstream.test`` with the
    TestHost's own address (an address on this machine: nothing a test
    resolves may lead off it) and NXDOMAIN for every other name."""

    def __init__(self, host):
        import dns.message
        import dns.rcode
        import dns.rrset

        self.host = host
        self.queries = []
        self.sock = host.call(listen(53, udp=True))
        self.stopped = False

        def serve():
            self.sock.settimeout(0.2)
            while not self.stopped:
                try:
                    data, peer = self.sock.recvfrom(4096)
                except OSError:
                    continue
                q = dns.message.from_wire(data)
                name = q.question[0].name.to_text()
                self.queries.append(name)
                r = dns.message.make_response(q)
                if name == "svc.upstream.test." and q.question[0].rdtype == 1:
                    r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A",
                                                        host.ip))
                elif name != "svc.upstream.test.":
                    r.set_rcode(dns.rcode.NXDOMAIN)
                self.sock.sendto(r.to_wire(), peer)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


# -- the daemon ----------------------------------------------------------------------------
class Pyboxd(SharedPyboxd):
    """tests/support's private pyboxd, made in the fixture's directory, whose
    host resolv.conf is ``resolv_conf``, seen as the network tests use it:
    ``docker()`` checks by default, ``stop()``/``start()`` stop and start the
    daemon around its running containers (``finish()`` is the end, with the
    shared leak checks), and what it owns in the kernel can be listed."""

    def __init__(self, base, resolv_conf):
        super().__init__(parent=base, env={"PYBOX_HOST_RESOLV_CONF": resolv_conf},
                         exec_prefix="pbn")
        self.resolv_conf = resolv_conf
        self.names = Names(self.exec_root)

    @property
    def env(self):
        """The docker CLI's environment (DOCKER_HOST...)."""
        return self.cli_env

    def docker(self, *args, check=True, timeout=120, **kw):
        return super().docker(*args, check=check, timeout=timeout, **kw)

    def stop(self):
        """SIGTERM: its containers keep running (a test starts it again)."""
        self.terminate()
        self.process = None

    def finish(self):
        """Remove every container, stop for good -> what the shared checks and
        ``more_leftovers`` found."""
        return SharedPyboxd.stop(self)

    def more_leftovers(self):
        left = self.leftovers()
        return [f"pyboxd left networking behind: {left}"] if left else []

    # -- what it owns in the kernel ---------------------------------------------------
    def links(self):
        out = run(["ip", "-o", "link", "show"]).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
        return [n for n in names if self.names.is_ours(n)]

    def nft_table(self):
        proc = run(["nft", "list", "table", "inet", self.names.table], check=False)
        return proc.stdout if proc.returncode == 0 else None

    def netns_entries(self):
        d = os.path.join(self.exec_root, "netns")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def subnets(self):
        out = []
        d = os.path.join(self.data_root, "network", "networks")
        for name in os.listdir(d) if os.path.isdir(d) else ():
            with open(os.path.join(d, name)) as f:
                rec = json.load(f)
            for cfg in rec["IPAM"]["Config"] or ():
                out.append(cfg["Subnet"])
        return out

    def routes_and_addresses(self, subnets):
        """Addresses and routes in our subnets on any link but another pyboxd's
        bridges (a later daemon may reuse a subnet this one no longer routes)."""
        nets = [ipaddress.ip_network(s) for s in subnets]
        text = run(["ip", "-4", "-o", "addr"]).stdout + run(["ip", "-4", "route"]).stdout
        hits = []
        for line in text.splitlines():
            words = line.split()
            dev = words[1] if words[0].endswith(":") else \
                (words[words.index("dev") + 1] if "dev" in words else "")
            if dev.startswith("pybox") and not self.names.is_ours(dev):
                continue
            for word in line.split():
                try:
                    a = ipaddress.ip_interface(word)
                except ValueError:
                    continue
                if any(a.ip in n for n in nets):
                    hits.append(line)
                    break
        return hits

    def conntrack(self, subnets):
        """Entries to or from our subnets, but for IGMP: those are the host's
        own membership reports, sent by whichever bridge holds the gateway
        address, and 172.17/16 and the default pools are shared: another
        pyboxd (or dockerd) of a parallel test takes the subnet the moment this
        one lets it go, and its reports (a bridge going down sends some) cannot
        be told from ours.  CI saw exactly that."""
        nets = [ipaddress.ip_network(s) for s in subnets]
        proc = run(["conntrack", "-L"], check=False)
        hits = []
        for line in proc.stdout.splitlines():
            if line.split()[:2] == ["unknown", "2"]:
                continue
            for word in line.split():
                if word.startswith(("src=", "dst=")):
                    try:
                        a = ipaddress.ip_address(word.split("=", 1)[1])
                    except ValueError:
                        continue
                    if any(a in n for n in nets):
                        hits.append(line)
                        break
        return hits

    def leftovers(self):
        """Everything of this pyboxd's still in the kernel (settles first: a
        namespace, and its veths, go asynchronously)."""
        subnets = self.subnets()

        def found():
            return {k: v for k, v in (("links", self.links()), ("nft", self.nft_table()),
                                      ("netns", self.netns_entries()),
                                      ("addresses/routes", self.routes_and_addresses(subnets)),
                                      ("conntrack", self.conntrack(subnets))) if v}
        settle(lambda: not found(), timeout=15)
        return found()
