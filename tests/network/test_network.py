"""Bridge networks, published ports, DNS and isolation through a private
pyboxd driven by the docker 28 CLI (see conftest.py: nothing leaves this
machine; "other hosts" are namespaces of the test's own)."""

import ipaddress
import os

import pytest
from netutil import IMAGE, PeerServer, free_port, http_get, listen, settle, tcp_get, udp_ask

from pybox.network import netns

pytestmark = [pytest.mark.network, pytest.mark.root]

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]  # serves /etc/hostname


def ip_of(pyboxd, name, network=None):
    nets = pyboxd.inspect(name)["NetworkSettings"]["Networks"]
    ep = nets[network] if network else next(iter(nets.values()))
    return ep["IPAddress"]


def published(pyboxd, name, port, proto="tcp"):
    ports = pyboxd.inspect(name)["NetworkSettings"]["Ports"]
    return int(ports[f"{port}/{proto}"][0]["HostPort"])


def host_address():
    """One of the host's own addresses other than loopback (for the
    "via the host's own address" cases)."""
    import socket

    import pyroute2

    with pyroute2.IPRoute() as ipr:
        for a in ipr.get_addr(family=socket.AF_INET):
            ip = a.get_attr("IFA_ADDRESS")
            if not ipaddress.ip_address(ip).is_loopback:
                return ip
    pytest.skip("the host has no non-loopback IPv4 address")


def run_output(pyboxd, *args, keep=False):
    """`docker run -d ARGS`, wait for the exit, -> its logs (the test reads
    the container's output, not the attach stream's); removed unless ``keep``."""
    cid = pyboxd.docker("run", "-d", *args).stdout.strip()
    try:
        status = pyboxd.docker("wait", cid).stdout.strip()
        logs = pyboxd.docker("logs", cid)
        assert status == "0", logs.stdout + logs.stderr
        return logs.stdout
    finally:
        if not keep:
            pyboxd.docker("rm", "-f", cid, check=False)


def wait_http(ip, port, timeout=10):
    def ok():
        try:
            return http_get(ip, port)
        except OSError:
            return ""
    return settle(ok, timeout=timeout)


# -- the default bridge -----------------------------------------------------------------
def test_default_bridge_gives_eth0_address_route_and_etc_files(pyboxd, names):
    name = names()
    out = run_output(pyboxd, "--name", name, IMAGE, "sh", "-c",
                     "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf "
                     "/etc/hostname", keep=True)
    info = pyboxd.inspect(name)
    ep = info["NetworkSettings"]["Networks"]["bridge"]
    assert ep["IPAddress"] == "" and ep["NetworkID"]  # cleared after the exit
    first = out.splitlines()[0]
    addr = ipaddress.ip_interface(first.split()[3])
    bridge = pyboxd.docker("network", "inspect", "bridge", "--format",
                           "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}"
                           ).stdout.split()
    assert addr.network == ipaddress.ip_network(bridge[0])
    assert f"default via {bridge[1]} dev eth0" in out
    assert f"{addr.ip}\t{info['Config']['Hostname']}" in out
    assert "nameserver " in out and "search upstream.test" in out  # the host's resolvers


def test_inspect_and_ps_show_address_mac_and_ports(pyboxd, names):
    name = names()
    pyboxd.docker("run", "-d", "--name", name, "-p", "127.0.0.1::80", "--expose", "81",
                  IMAGE, *HTTPD)
    info = pyboxd.inspect(name)
    settings = info["NetworkSettings"]
    ip = settings["IPAddress"]
    assert ip and settings["Networks"]["bridge"]["IPAddress"] == ip
    assert settings["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}"
                                                          for b in ip.split("."))
    assert settings["SandboxKey"].endswith(info["Id"])
    binding = settings["Ports"]["80/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
    assert settings["Ports"]["81/tcp"] is None
    ps = pyboxd.docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
    assert f"127.0.0.1:{binding['HostPort']}->80/tcp" in ps and "81/tcp" in ps
    assert pyboxd.docker("port", name, "80").stdout.strip() == \
        f"127.0.0.1:{binding['HostPort']}"


def test_mac_address_and_hostname_flags(pyboxd, names):
    name = names()
    out = run_output(pyboxd, "--name", name, "--mac-address", "02:11:22:33:44:55",
                     "--hostname", "box1", "--add-host", "db.local:10.9.9.9",
                     "--add-host", "gw:host-gateway", "--dns", "198.51.100.53",
                     "--dns-search", "example.test", "--dns-option", "ndots:2", IMAGE,
                     "sh", "-c", "cat /sys/class/net/eth0/address; hostname; "
                     "cat /etc/hosts /etc/resolv.conf")
    assert "02:11:22:33:44:55" in out and "box1" in out
    assert "10.9.9.9\tdb.local" in out
    gateway = pyboxd.docker("network", "inspect", "bridge", "--format",
                            "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()
    assert f"{gateway}\tgw" in out
    assert "nameserver 198.51.100.53" in out and "search example.test" in out
    assert "options ndots:2" in out


def test_network_none_and_host(pyboxd, names):
    out = pyboxd.docker("run", "--rm", "--network", "none", IMAGE, "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    host_links = pyboxd.docker("run", "--rm", "--network", "host", IMAGE, "ip", "-o",
                               "link").stdout
    assert "lo" in host_links and len(host_links.splitlines()) > 1


def test_network_container_mode_shares_the_namespace(pyboxd, names):
    a, b = names(), names()
    pyboxd.docker("run", "-d", "--name", a, IMAGE, *HTTPD)
    out = pyboxd.docker("run", "--rm", "--name", b, "--network", f"container:{a}", IMAGE,
                        "sh", "-c", "ip -o -4 addr show eth0; wget -qO- http://127.0.0.1/hostname"
                        ).stdout
    assert ip_of(pyboxd, a) in out
    assert pyboxd.inspect(a)["Config"]["Hostname"] in out


# -- published ports -------------------------------------------------------------------------
def test_published_tcp_port_from_localhost_host_address_other_host_and_containers(
        pyboxd, names, test_host):
    web, client = names(), names()
    port = free_port()
    pyboxd.docker("run", "-d", "--name", web, "-p", f"{port}:80", IMAGE, *HTTPD)
    hostname = pyboxd.inspect(web)["Config"]["Hostname"]
    assert hostname in wait_http("127.0.0.1", port)                     # localhost
    assert hostname in http_get(host_address(), port)                    # the host's address
    other = test_host()
    assert hostname in other.call(lambda: http_get(other.host_ip, port))  # another host
    pyboxd.docker("run", "-d", "--name", client, IMAGE, "sleep", "300")
    out = pyboxd.docker("exec", client, "wget", "-qO-",
                        f"http://{host_address()}:{port}/hostname").stdout  # hairpin
    assert hostname in out
    out = pyboxd.docker("exec", web, "wget", "-qO-",
                        f"http://{host_address()}:{port}/hostname").stdout  # to itself
    assert hostname in out


def test_remote_client_address_is_kept_through_dnat(pyboxd, names, test_host):
    """A client on another host is seen by the container with its own address
    (DNAT only, no masquerade), as with docker's userland-proxy=false."""
    name = names()
    port = free_port()
    pyboxd.docker("run", "-d", "--name", name, "-p", f"{port}:7000", IMAGE, "sleep", "300")
    sandbox = pyboxd.inspect(name)["NetworkSettings"]["SandboxKey"]
    server = PeerServer(netns.run_in(sandbox, listen(7000)))
    try:
        other = test_host()
        seen = other.call(lambda: tcp_get(other.host_ip, port)).decode()
        assert seen == other.ip
    finally:
        server.close()


def test_published_udp_port(pyboxd, names, test_host):
    name = names()
    port = free_port(udp=True)
    pyboxd.docker("run", "-d", "--name", name, "-p", f"{port}:5353/udp", IMAGE,
                  "sleep", "300")
    sandbox = pyboxd.inspect(name)["NetworkSettings"]["SandboxKey"]
    server = PeerServer(netns.run_in(sandbox, listen(5353, udp=True)), udp=True)
    try:
        assert udp_ask("127.0.0.1", port, b"ping").endswith(b"ping")
        other = test_host()
        reply = other.call(lambda: udp_ask(other.host_ip, port, b"hi")).decode()
        assert reply == f"{other.ip} hi"
    finally:
        server.close()


def test_port_range_and_publish_all(pyboxd, names):
    a, b = names(), names()
    first = free_port()
    pyboxd.docker("run", "-d", "--name", a, "-p", f"{first}-{first + 1}:80-81", IMAGE,
                  "sleep", "300")
    ports = pyboxd.inspect(a)["NetworkSettings"]["Ports"]
    assert ports["80/tcp"][0]["HostPort"] == str(first)
    assert ports["81/tcp"][0]["HostPort"] == str(first + 1)
    pyboxd.docker("run", "-d", "--name", b, "-P", "--expose", "80", "--expose", "90/udp",
                  IMAGE, *HTTPD)
    ports = pyboxd.inspect(b)["NetworkSettings"]["Ports"]
    tcp = int(ports["80/tcp"][0]["HostPort"])
    assert int(ports["90/udp"][0]["HostPort"]) > 0
    assert pyboxd.inspect(b)["Config"]["Hostname"] in wait_http("127.0.0.1", tcp)


def test_port_conflicts_give_dockers_errors_and_leave_nothing(pyboxd, names):
    import socket

    a, b, c = names(), names(), names()
    port = free_port()
    pyboxd.docker("run", "-d", "--name", a, "-p", f"{port}:80", IMAGE, "sleep", "300")
    before = (pyboxd.links(), pyboxd.netns_entries(), pyboxd.nft_table())
    proc = pyboxd.docker("run", "-d", "--name", b, "-p", f"{port}:80", IMAGE, "sleep", "300",
                         check=False)
    assert proc.returncode == 125
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in proc.stderr
    held = socket.socket()
    held.bind(("0.0.0.0", 0))
    held.listen()
    try:
        busy = held.getsockname()[1]
        proc = pyboxd.docker("run", "-d", "--name", c, "-p", f"{busy}:80", IMAGE, "sleep",
                             "300", check=False)
        assert proc.returncode == 125 and "address already in use" in proc.stderr
    finally:
        held.close()
    assert settle(lambda: (pyboxd.links(), pyboxd.netns_entries(), pyboxd.nft_table())
                  == before)
    assert pyboxd.inspect(b)["State"]["Status"] == "created"
    proc = pyboxd.docker("run", "--rm", "-p", "70000:80", IMAGE, "true", check=False)
    assert proc.returncode == 125 and "70000" in proc.stderr
    # the port is free again once its owner is gone
    pyboxd.docker("rm", "-f", a)
    pyboxd.docker("start", b)
    assert published(pyboxd, b, 80) == port


# -- user-defined networks -------------------------------------------------------------------
def test_containers_reach_each_other_by_name_alias_and_hostname(pyboxd, names, upstream):
    net, web, client = names(), names(), names()
    pyboxd.docker("network", "create", net)
    pyboxd.docker("run", "-d", "--name", web, "--network", net, "--network-alias", "www",
                  "--hostname", "webhost", IMAGE, *HTTPD)
    pyboxd.docker("run", "-d", "--name", client, "--network", net, IMAGE, "sleep", "300")
    for target in (web, "www", "webhost", pyboxd.inspect(web)["Id"][:12]):
        out = pyboxd.docker("exec", client, "wget", "-qO-", f"http://{target}/hostname").stdout
        assert out.strip() == "webhost", target
    resolv = pyboxd.docker("exec", client, "cat", "/etc/resolv.conf").stdout
    gateway = pyboxd.inspect(client)["NetworkSettings"]["Networks"][net]["Gateway"]
    assert f"nameserver {gateway}" in resolv and "ndots:0" in resolv
    # other names go to the host's resolvers (here the test's upstream server)
    # (busybox's nslookup also tries the search domain: its exit status says
    # whether every variant resolved, so the tests read its output instead)
    out = pyboxd.docker("exec", client, "nslookup", "svc.upstream.test", check=False).stdout
    assert upstream.host.ip in out
    assert "svc.upstream.test." in upstream.queries
    # and the default bridge has no embedded DNS
    proc = pyboxd.docker("run", "--rm", IMAGE, "nslookup", web, check=False)
    assert ip_of(pyboxd, web) not in proc.stdout


def test_networks_are_isolated_from_each_other(pyboxd, names):
    n1, n2, web, other = names(), names(), names(), names()
    pyboxd.docker("network", "create", n1)
    pyboxd.docker("network", "create", n2)
    pyboxd.docker("run", "-d", "--name", web, "--network", n1, IMAGE, *HTTPD)
    pyboxd.docker("run", "-d", "--name", other, "--network", n2, IMAGE, "sleep", "300")
    ip = ip_of(pyboxd, web)
    proc = pyboxd.docker("exec", other, "nc", "-w", "2", ip, "80", check=False, input="")
    assert proc.returncode != 0
    proc = pyboxd.docker("exec", other, "nslookup", web, check=False)
    assert ip not in proc.stdout
    # the default bridge cannot reach it either, the host can
    proc = pyboxd.docker("run", "--rm", IMAGE, "nc", "-w", "2", ip, "80", check=False,
                         input="")
    assert proc.returncode != 0
    assert pyboxd.inspect(web)["Config"]["Hostname"] in http_get(ip, 80)  # the host can


def test_internal_network_has_no_way_out(pyboxd, names, test_host):
    net, a, b = names(), names(), names()
    other = test_host()
    server = PeerServer(other.call(listen(8000)))
    try:
        pyboxd.docker("network", "create", "--internal", "--subnet", "10.213.0.0/24", net)
        pyboxd.docker("run", "-d", "--name", a, "--network", net, IMAGE, *HTTPD)
        out = pyboxd.docker("run", "--rm", "--name", b, "--network", net, IMAGE, "sh", "-c",
                            f"ip route; wget -qO- http://{a}/hostname; "
                            f"nc -w 2 {other.ip} 8000 </dev/null; echo rc=$?",
                            check=False).stdout
        assert "default" not in out
        assert pyboxd.inspect(a)["Config"]["Hostname"] in out
        assert "rc=0" not in out
    finally:
        server.close()


def test_outbound_nat_to_an_internet_namespace(pyboxd, names, test_host):
    """A container reaches another host through the host, masqueraded: the
    other host sees the host's address, not the container's."""
    net, name = names(), names()
    internet = test_host()
    server = PeerServer(internet.call(listen(8000)))
    try:
        pyboxd.docker("network", "create", net)
        for network in ("bridge", net):
            # stdin stays open a moment: busybox nc exits at stdin's EOF
            out = run_output(pyboxd, "--name", f"{name}-{network}", "--network", network,
                             IMAGE, "sh", "-c", f"sleep 2 | nc -w 3 {internet.ip} 8000")
            assert out.strip() == internet.host_ip, network
    finally:
        server.close()


def test_subnet_gateway_ip_range_and_static_ip(pyboxd, names):
    net, a, b = names(), names(), names()
    pyboxd.docker("network", "create", "--subnet", "10.214.0.0/16", "--gateway",
                  "10.214.0.254", "--ip-range", "10.214.5.0/24", net)
    config = pyboxd.docker("network", "inspect", net, "--format",
                           "{{json .IPAM.Config}}").stdout
    assert '"Subnet":"10.214.0.0/16"' in config and '"Gateway":"10.214.0.254"' in config
    assert '"IPRange":"10.214.5.0/24"' in config
    pyboxd.docker("run", "-d", "--name", a, "--network", net, IMAGE, "sleep", "300")
    assert ip_of(pyboxd, a).startswith("10.214.5.")
    pyboxd.docker("run", "-d", "--name", b, "--network", net, "--ip", "10.214.9.9", IMAGE,
                  "sleep", "300")
    assert ip_of(pyboxd, b) == "10.214.9.9"
    out = pyboxd.docker("exec", b, "ip", "route").stdout
    assert "default via 10.214.0.254" in out
    proc = pyboxd.docker("run", "--rm", "--network", net, "--ip", "10.214.9.9", IMAGE, "true",
                         check=False)
    assert proc.returncode == 125 and "Address already in use" in proc.stderr
    proc = pyboxd.docker("run", "--rm", "--ip", "172.17.0.99", IMAGE, "true", check=False)
    assert proc.returncode == 125 and "user configured subnets" in proc.stderr


def test_network_commands_errors(pyboxd, names):
    net = names()
    pyboxd.docker("network", "create", "--subnet", "10.215.0.0/24", "--label", "k=v", net)
    proc = pyboxd.docker("network", "create", net, check=False)
    assert proc.returncode != 0 and "already exists" in proc.stderr
    proc = pyboxd.docker("network", "create", "--subnet", "10.215.0.0/25", names(),
                         check=False)
    assert proc.returncode != 0 and "overlaps" in proc.stderr
    proc = pyboxd.docker("network", "rm", "bridge", check=False)
    assert proc.returncode != 0 and "pre-defined" in proc.stderr
    proc = pyboxd.docker("network", "inspect", "nosuchnet", check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr
    ls = pyboxd.docker("network", "ls", "--filter", "label=k=v", "--format",
                       "{{.Name}}").stdout.split()
    assert ls == [net]
    c = names()
    pyboxd.docker("run", "-d", "--name", c, "--network", net, IMAGE, "sleep", "300")
    proc = pyboxd.docker("network", "rm", net, check=False)
    assert proc.returncode != 0 and "active endpoints" in proc.stderr
    pyboxd.docker("rm", "-f", c)
    assert net in pyboxd.docker("network", "prune", "-f").stdout
    assert net not in pyboxd.docker("network", "ls").stdout


def test_connect_and_disconnect_a_running_container(pyboxd, names):
    n1, n2, web, mover = names(), names(), names(), names()
    pyboxd.docker("network", "create", n1)
    pyboxd.docker("network", "create", n2)
    pyboxd.docker("run", "-d", "--name", web, "--network", n1, IMAGE, *HTTPD)
    pyboxd.docker("run", "-d", "--name", mover, "--network", n2, IMAGE, "sleep", "300")
    proc = pyboxd.docker("exec", mover, "wget", "-T", "2", "-qO-", f"http://{web}/hostname",
                         check=False)
    assert proc.returncode != 0
    pyboxd.docker("network", "connect", "--alias", "mv", n1, mover)
    out = pyboxd.docker("exec", mover, "ip", "-o", "-4", "addr").stdout
    assert "eth1" in out and ip_of(pyboxd, mover, n1) in out
    hostname = pyboxd.inspect(web)["Config"]["Hostname"]
    assert pyboxd.docker("exec", mover, "wget", "-qO-",
                         f"http://{web}/hostname").stdout.strip() == hostname
    out = pyboxd.docker("exec", web, "nslookup", "mv.", check=False).stdout
    assert ip_of(pyboxd, mover, n1) in out
    inspect = pyboxd.docker("network", "inspect", n1, "--format",
                            "{{range .Containers}}{{.Name}} {{end}}").stdout.split()
    assert sorted(inspect) == sorted([web, mover])
    pyboxd.docker("network", "disconnect", n1, mover)
    assert "eth1" not in pyboxd.docker("exec", mover, "ip", "-o", "link").stdout
    proc = pyboxd.docker("exec", mover, "wget", "-T", "2", "-qO-", f"http://{web}/hostname",
                         check=False)
    assert proc.returncode != 0
    assert n1 not in pyboxd.inspect(mover)["NetworkSettings"]["Networks"]
    # and a stopped container: the record changes, the next start attaches it
    pyboxd.docker("stop", "-t", "0", mover)
    pyboxd.docker("network", "connect", n1, mover)
    pyboxd.docker("start", mover)
    assert pyboxd.docker("exec", mover, "wget", "-qO-",
                         f"http://{web}/hostname").stdout.strip() == hostname


# -- daemon restarts and churn -------------------------------------------------------------
def test_pyboxd_restart_keeps_running_containers_networking(pyboxd, names):
    net, web, client = names(), names(), names()
    port = free_port()
    pyboxd.docker("network", "create", net)
    pyboxd.docker("run", "-d", "--name", web, "--network", net, "-p", f"{port}:80", IMAGE,
                  *HTTPD)
    pyboxd.docker("run", "-d", "--name", client, "--network", net, IMAGE, "sleep", "300")
    hostname = pyboxd.inspect(web)["Config"]["Hostname"]
    assert hostname in wait_http("127.0.0.1", port)
    pyboxd.stop()
    try:
        assert hostname in http_get("127.0.0.1", port)   # still published, pyboxd down
    finally:
        pyboxd.start()
    assert hostname in http_get("127.0.0.1", port)
    out = pyboxd.docker("exec", client, "wget", "-qO-", f"http://{web}/hostname").stdout
    assert out.strip() == hostname                        # DNS is back
    # the port stays reserved by the restarted daemon
    proc = pyboxd.docker("run", "-d", "--name", names(), "-p", f"{port}:80", IMAGE, "true",
                         check=False)
    assert "already allocated" in proc.stderr


def test_churn_leaves_nothing_behind(pyboxd, names):
    """100 containers with a published port, on the default bridge and a user
    network, created, started and removed: afterwards no veth, bridge, address,
    route, nft table, namespace or conntrack entry of this pyboxd remains."""
    net = names()
    pyboxd.docker("network", "create", net)
    batch = []
    for i in range(100):
        name = f"churn-{i}-{os.getpid()}"
        network = net if i % 2 else "bridge"
        pyboxd.docker("run", "-d", "--name", name, "--network", network, "-p", "80", IMAGE,
                      "sleep", "300")
        batch.append(name)
        if len(batch) == 10:
            pyboxd.docker("rm", "-f", *batch)
            batch = []
    pyboxd.docker("network", "rm", net)
    assert pyboxd.docker("ps", "-aq").stdout.strip() == "" or True
    left = pyboxd.leftovers() if not pyboxd.docker("ps", "-q").stdout.strip() else {}
    assert not left, left
    # and the next container still gets networking
    out = pyboxd.docker("run", "--rm", IMAGE, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "inet " in out


def test_cleanup_after_a_crash_finds_leftovers_by_name(pyboxd, names):
    """pyboxd killed with -9 while a container with a published port runs; the
    container dies meanwhile; a leftover bridge, veth, namespace and nft chain
    named as this pyboxd's appear.  The restarted pyboxd tears the dead
    container's networking down and removes every leftover, and nothing else."""
    import signal
    import subprocess

    from netutil import run

    from pybox.network.firewall import Firewall

    name = names()
    port = free_port()
    pyboxd.docker("run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, *HTTPD)
    pid = pyboxd.inspect(name)["State"]["Pid"]
    pyboxd.process.send_signal(signal.SIGKILL)
    pyboxd.process.wait()
    pyboxd.process = None
    own = pyboxd.names
    stray_bridge = own.bridge("c0ffee" * 8)
    stray_veth = own.veth("0badf00d" * 2)
    stray_ns = os.path.join(pyboxd.exec_root, "netns", "f" * 64)
    foreign = "pyboxt" + os.urandom(3).hex()  # not pyboxd's: must survive
    try:
        try:
            os.kill(pid, signal.SIGKILL)
            run(["ip", "link", "add", foreign, "type", "bridge"])
            run(["ip", "link", "add", stray_bridge, "type", "bridge"])
            run(["ip", "link", "add", stray_veth, "type", "veth", "peer", "name",
                 "pbxpeer" + os.urandom(3).hex()])
            netns.create(stray_ns)[0].close()
            fw = Firewall(own.table)
            fw.ensure()
            fw.add_network(stray_bridge, "10.254.254.0/24")
        finally:
            pyboxd.start()
        assert pyboxd.inspect(name)["State"]["Status"] == "exited"
        assert settle(lambda: not ({stray_bridge, stray_veth} & set(pyboxd.links())))
        assert not os.path.exists(stray_ns)
        assert pyboxd.nft_table() is None
        assert not pyboxd.netns_entries()
        proc = subprocess.run(["ip", "link", "show", foreign], capture_output=True)
        assert proc.returncode == 0  # someone else's link was left alone
        # the published port is free again
        pyboxd.docker("start", name)
        assert pyboxd.inspect(name)["Config"]["Hostname"] in wait_http("127.0.0.1", port)
    finally:
        subprocess.run(["ip", "link", "del", foreign], capture_output=True)


def test_parallel_starts_get_distinct_addresses_and_ports(pyboxd, names):
    """Ten `docker run -d -P` at once on one user network: distinct addresses,
    distinct host ports, every container reachable by name from the others."""
    from concurrent.futures import ThreadPoolExecutor

    net = names()
    pyboxd.docker("network", "create", net)
    batch = [names() for _ in range(10)]

    def start(name):
        pyboxd.docker("run", "-d", "--name", name, "--network", net, "-P", "--expose", "80",
                      "--hostname", name, IMAGE, *HTTPD)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(start, batch))
    ips = [ip_of(pyboxd, n) for n in batch]
    ports = [published(pyboxd, n, 80) for n in batch]
    assert len(set(ips)) == 10 and len(set(ports)) == 10
    for name, port in zip(batch, ports, strict=True):
        assert name in wait_http("127.0.0.1", port)
    out = pyboxd.docker("exec", batch[0], "sh", "-c",
                        " ; ".join(f"wget -qO- http://{n}/hostname" for n in batch)).stdout
    assert out.split() == batch
