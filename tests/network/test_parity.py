"""Networking as dockerd does it (issue 16), through a private pyboxd driven by
the docker 28 CLI and the raw API: the ``networks`` section of container
stats, network inspect's null/{} fields, legacy links (hosts entries and
environment on the default bridge, container-scoped DNS aliases on
user-defined networks), IPv6 dual-stack networks."""

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess

import pytest
from netutil import IMAGE, PeerServer

from pybox.network import netns

pytestmark = [pytest.mark.network, pytest.mark.root]

COUNTERS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
            "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def api_json(pyboxd, method, path, body=None):
    return pyboxd.api(method, path, body)  # (status, the parsed JSON)


def stats(pyboxd, name):
    status, doc = api_json(pyboxd, "GET", f"/containers/{name}/stats?stream=0&one-shot=1")
    assert status == 200, doc
    return doc


# -- stats ---------------------------------------------------------------------------------
def test_stats_networks_count_the_container_traffic(pyboxd, names):
    name = names("st")
    pyboxd.ok("run", "-d", "--name", name, IMAGE, "sleep", "300")
    gateway = pyboxd.inspect(name)["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
    before = stats(pyboxd, name)["networks"]
    assert set(before) == {"eth0"}  # lo is not reported, as dockerd
    assert set(before["eth0"]) == set(COUNTERS)
    # 5 pings of 1000 bytes out and back: at least 5000 bytes each way
    pyboxd.ok("exec", name, "ping", "-c", "5", "-i", "0.2", "-s", "1000", "-W", "2", gateway)
    after = stats(pyboxd, name)["networks"]["eth0"]
    assert after["tx_packets"] - before["eth0"]["tx_packets"] >= 5
    assert after["tx_bytes"] - before["eth0"]["tx_bytes"] >= 5000
    assert after["rx_bytes"] - before["eth0"]["rx_bytes"] >= 5000
    # docker stats' NET I/O column reads them
    line = pyboxd.ok("stats", "--no-stream", "--format", "{{.NetIO}}", name).strip()
    assert not line.startswith("0B / 0B"), line


def test_stats_networks_per_interface_and_shared_namespace(pyboxd, names):
    net, name, joined = names("stn"), names("st"), names("st")
    pyboxd.ok("network", "create", net)
    pyboxd.ok("run", "-d", "--name", name, IMAGE, "sleep", "300")
    pyboxd.ok("network", "connect", net, name)
    assert set(stats(pyboxd, name)["networks"]) == {"eth0", "eth1"}
    # --network container:X reports X's interfaces (dockerd's getNetworkSandboxID)
    pyboxd.ok("run", "-d", "--name", joined, "--network", f"container:{name}", IMAGE,
              "sleep", "300")
    assert set(stats(pyboxd, joined)["networks"]) == {"eth0", "eth1"}


@pytest.mark.parametrize("mode", ["none", "host"])
def test_stats_have_no_networks_without_a_sandbox(pyboxd, names, mode):
    name = names("st")
    pyboxd.ok("run", "-d", "--name", name, "--network", mode, IMAGE, "sleep", "300")
    assert "networks" not in stats(pyboxd, name)


# -- network inspect -----------------------------------------------------------------------
def test_network_inspect_null_and_empty_fields_as_dockerd(pyboxd, names):
    bridge = json.loads(pyboxd.ok("network", "inspect", "bridge"))[0]
    assert bridge["IPAM"]["Options"] is None
    assert bridge["Labels"] == {} and bridge["ConfigFrom"] == {"Network": ""}
    assert "Peers" not in bridge
    for predefined in ("host", "none"):
        rec = json.loads(pyboxd.ok("network", "inspect", predefined))[0]
        assert rec["IPAM"] == {"Driver": "default", "Options": None, "Config": []}
        assert rec["Options"] == {} and rec["Labels"] == {}
    # the raw API without IPAM (docker-py's create_network): null, as sent
    raw = names("nw")
    status, body = api_json(pyboxd, "POST", "/networks/create", {"Name": raw})
    assert status == 201, body
    rec = api_json(pyboxd, "GET", f"/networks/{raw}")[1]
    assert rec["IPAM"]["Options"] is None
    assert rec["Options"] == {} and rec["Labels"] == {} and rec["Containers"] == {}
    assert list(rec)[-3:] == ["Containers", "Options", "Labels"]  # dockerd's order
    listed = [n for n in api_json(pyboxd, "GET", "/networks")[1] if n["Name"] == raw]
    assert listed[0]["IPAM"]["Options"] is None
    # IPAM options given are kept; the docker CLI always sends the map ({})
    opts = names("nw")
    status, body = api_json(pyboxd, "POST", "/networks/create", {
        "Name": opts, "IPAM": {"Driver": "default", "Options": {"a": "b"}, "Config": []}})
    assert status == 201, body
    assert api_json(pyboxd, "GET", f"/networks/{opts}")[1]["IPAM"]["Options"] == {"a": "b"}
    cli = names("nw")
    pyboxd.ok("network", "create", cli)
    assert json.loads(pyboxd.ok("network", "inspect", cli))[0]["IPAM"]["Options"] == {}


# -- legacy links --------------------------------------------------------------------------
def ip_on(pyboxd, name, network):
    return pyboxd.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]


def test_link_on_the_default_bridge_hosts_env_and_inspect(pyboxd, names):
    child, parent = names("lc"), names("lp")
    cid = pyboxd.ok("run", "-d", "--name", child, "-e", "FOO=bar", "--expose", "80",
                    "--expose", "81", "--expose", "53/udp", IMAGE, "sleep", "300").strip()
    child_ip = ip_on(pyboxd, child, "bridge")
    pyboxd.ok("run", "-d", "--name", parent, "--add-host", "extra:192.0.2.7",
              "--link", f"{child}:al", IMAGE, "sleep", "300")
    hosts = pyboxd.ok("exec", parent, "cat", "/etc/hosts").splitlines()
    parent_ip = ip_on(pyboxd, parent, "bridge")
    # dockerd's order: --add-host, the link (alias, hostname, name), its own address
    tail = hosts[-3:]
    assert tail[0] == "192.0.2.7\textra"
    assert tail[1] == f"{child_ip}\tal {cid[:12]} {child}"
    assert tail[2].startswith(f"{parent_ip}\t")
    env = dict(line.split("=", 1) for line in
               pyboxd.ok("exec", parent, "env").splitlines() if "=" in line)
    assert env["AL_NAME"] == f"/{parent}/al"
    assert env["AL_PORT"] == f"tcp://{child_ip}:80"
    assert env["AL_PORT_80_TCP"] == f"tcp://{child_ip}:80"
    assert env["AL_PORT_80_TCP_ADDR"] == child_ip and env["AL_PORT_80_TCP_PORT"] == "80"
    assert env["AL_PORT_80_TCP_PROTO"] == "tcp"
    assert env["AL_PORT_53_UDP"] == f"udp://{child_ip}:53"
    # 80 and 81: a run of ports
    assert env["AL_PORT_80_TCP_START"] == f"tcp://{child_ip}:80"
    assert env["AL_PORT_80_TCP_END"] == f"tcp://{child_ip}:81"
    assert env["AL_ENV_FOO"] == "bar" and "AL_ENV_PATH" not in env
    # the name answers: the alias reaches the child
    pyboxd.ok("exec", parent, "ping", "-c", "1", "-W", "2", "al")
    assert pyboxd.inspect(parent)["HostConfig"]["Links"] == [f"/{child}:/{parent}/al"]
    # the container's own variables win over a link's
    own = names("lp")
    out = pyboxd.ok("run", "--rm", "--name", own, "--link", f"{child}:al", "-e",
                    "AL_NAME=mine", IMAGE, "sh", "-c", "echo $AL_NAME")
    assert out.strip() == "mine"


def test_link_follows_the_child_to_its_new_address(pyboxd, names):
    child, parent = names("lc"), names("lp")
    pyboxd.ok("run", "-d", "--name", child, IMAGE, "sleep", "300")
    pyboxd.ok("run", "-d", "--name", parent, "--link", child, IMAGE, "sleep", "300")
    before = ip_on(pyboxd, child, "bridge")
    pyboxd.ok("restart", "-t", "0", child)
    after = ip_on(pyboxd, child, "bridge")
    assert after != before  # addresses go round the range before coming back
    hosts = pyboxd.ok("exec", parent, "cat", "/etc/hosts")
    assert f"{after}\t{child} " in hosts and before not in hosts


def test_link_errors_as_dockerd(pyboxd, names):
    missing = names("lp")
    proc = pyboxd.docker("run", "--rm", "--name", missing, "--link", "nosuchlink:x", IMAGE,
                         "true", check=False)
    assert proc.returncode != 0
    assert "could not get container for nosuchlink: No such container: nosuchlink" in proc.stderr
    assert missing not in pyboxd.ok("ps", "-a", "--format", "{{.Names}}").split()
    host = names("lc")
    pyboxd.ok("run", "-d", "--name", host, "--network", "host", IMAGE, "sleep", "300")
    proc = pyboxd.docker("create", "--link", f"{host}:x", IMAGE, "true", check=False)
    assert proc.returncode != 0
    assert "host type networking can't be used with links" in proc.stderr
    stopped, parent = names("lc"), names("lp")
    pyboxd.ok("create", "--name", stopped, IMAGE, "sleep", "300")
    proc = pyboxd.docker("run", "-d", "--name", parent, "--link", f"{stopped}:x", IMAGE,
                         "sleep", "300", check=False)
    assert proc.returncode != 0
    assert f"Cannot link to a non running container: /{stopped} AS /{parent}/x" in proc.stderr
    status, body = api_json(pyboxd, "POST", "/containers/create",
                            {"Image": IMAGE, "HostConfig": {"Links": ["a:b:c"]}})
    assert status == 400 and body["message"] == "bad format for links: a:b:c"


def nslookup(pyboxd, name, query):
    # absolute: with the test resolv.conf's search domain busybox would ask
    # only for QUERY.upstream.test
    proc = pyboxd.docker("exec", name, "nslookup", query + ".", check=False)
    return proc.stdout + proc.stderr


def test_link_on_a_user_network_is_an_alias_of_that_container_only(pyboxd, names):
    net, child, parent, other = names("ln"), names("lc"), names("lp"), names("lo")
    pyboxd.ok("network", "create", net)
    pyboxd.ok("run", "-d", "--name", child, "--network", net, IMAGE, "sleep", "300")
    child_ip = ip_on(pyboxd, child, net)
    pyboxd.ok("run", "-d", "--name", parent, "--network", net, "--link", f"{child}:al",
              IMAGE, "sleep", "300")
    pyboxd.ok("run", "-d", "--name", other, "--network", net, IMAGE, "sleep", "300")
    assert f"Address: {child_ip}" in nslookup(pyboxd, parent, "al")
    assert "NXDOMAIN" in nslookup(pyboxd, other, "al")
    rec = pyboxd.inspect(parent)
    assert rec["HostConfig"]["Links"] is None  # dockerd registers no link index entry here
    assert rec["NetworkSettings"]["Networks"][net]["Links"] == [f"{child}:al"]


def test_links_given_at_connect_as_compose_does(pyboxd, names):
    """docker-compose 1.29 creates the container, then disconnects and
    connects it again with EndpointConfig.Links before starting it."""
    net, child, parent = names("ln"), names("lc"), names("lp")
    pyboxd.ok("network", "create", net)
    pyboxd.ok("run", "-d", "--name", child, "--network", net, IMAGE, "sleep", "300")
    pyboxd.ok("create", "--name", parent, "--network", net, IMAGE, "sleep", "300")
    pyboxd.ok("network", "disconnect", net, parent)
    status, body = api_json(pyboxd, "POST", f"/networks/{net}/connect", {
        "Container": parent, "EndpointConfig": {"Links": [f"{child}:database"]}})
    assert status == 200, body
    pyboxd.ok("start", parent)
    assert f"Address: {ip_on(pyboxd, child, net)}" in nslookup(pyboxd, parent, "database")


COMPOSE_LINKS = """\
version: "3.8"
services:
  db:
    image: busybox:latest
    command: sleep 300
    stop_grace_period: 1s
  app:
    image: busybox:latest
    command: sleep 300
    links: ["db:database"]
    stop_grace_period: 1s
"""


def test_compose_links(pyboxd, tmp_path):
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.skip("needs Debian's docker-compose")
    project = f"pbxl{os.getpid()}"
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_LINKS)

    def compose(*args):
        return subprocess.run([exe, "-p", project, *args], cwd=tmp_path, env=pyboxd.env,
                              capture_output=True, text=True, timeout=180)
    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr
        db_ip = ip_on(pyboxd, f"{project}_db_1", f"{project}_default")
        assert f"Address: {db_ip}" in nslookup(pyboxd, f"{project}_app_1", "database")
        assert "NXDOMAIN" in nslookup(pyboxd, f"{project}_db_1", "database")
    finally:
        compose("down", "--remove-orphans")


# -- IPv6 ----------------------------------------------------------------------------------
def ula_subnet():
    """A random unique-local /64 (never fd00::/64, which hosts often use)."""
    groups = [0xfd00 + secrets.randbelow(0x100)] + [0x1000 + secrets.randbelow(0xf000)
                                                    for _ in range(2)]
    text = ":".join(f"{g:x}" for g in groups) + "::/64"
    return str(ipaddress.ip_network(text))  # as inspect shows it


def test_ipv6_dual_stack_network(pyboxd, names):
    net, a, b, late = names("n6"), names("v6"), names("v6"), names("v6")
    subnet = ula_subnet()
    prefix = subnet.split("::")[0]
    pyboxd.ok("network", "create", "--ipv6", "--subnet", subnet, net)
    rec = json.loads(pyboxd.ok("network", "inspect", net))[0]
    assert rec["EnableIPv6"] is True
    configs = rec["IPAM"]["Config"]
    assert {"Subnet": subnet, "Gateway": f"{prefix}::1"} in configs
    assert any(":" not in c["Subnet"] for c in configs)  # and an IPv4 subnet
    pyboxd.ok("run", "-d", "--name", a, "--network", net, IMAGE, "sleep", "300")
    pyboxd.ok("run", "-d", "--name", b, "--network", net, "--ip6", f"{prefix}::99", IMAGE,
              "sleep", "300")
    ep_a = pyboxd.inspect(a)["NetworkSettings"]["Networks"][net]
    assert ep_a["GlobalIPv6Address"].startswith(f"{prefix}::")
    assert ep_a["GlobalIPv6PrefixLen"] == 64 and ep_a["IPv6Gateway"] == f"{prefix}::1"
    assert ep_a["IPAddress"]  # dual stack: IPv4 too
    ep_b = pyboxd.inspect(b)["NetworkSettings"]["Networks"][net]
    assert ep_b["GlobalIPv6Address"] == f"{prefix}::99"
    assert ep_b["IPAMConfig"] == {"IPv6Address": f"{prefix}::99"}
    # the address is usable at once (no duplicate address detection), the
    # default route goes via the bridge's IPv6 gateway
    pyboxd.ok("exec", a, "ping", "-6", "-c", "1", "-W", "2", f"{prefix}::99")
    pyboxd.ok("exec", b, "ping", "-6", "-c", "1", "-W", "2", f"{prefix}::1")
    assert f"default via {prefix}::1" in pyboxd.ok("exec", a, "ip", "-6", "route")
    assert f"{prefix}::99\t" in pyboxd.ok("exec", b, "cat", "/etc/hosts")
    # the embedded DNS answers AAAA (and PTR) for a dual-stack container
    assert f"Address: {prefix}::99" in nslookup(pyboxd, a, b)
    ptr = pyboxd.docker("exec", a, "nslookup", f"{prefix}::99", check=False).stdout
    assert f"name = {b}.{net}" in ptr
    members = json.loads(pyboxd.ok("network", "inspect", net))[0]["Containers"]
    assert {m["IPv6Address"] for m in members.values()} == {
        f"{ep_a['GlobalIPv6Address']}/64", f"{prefix}::99/64"}
    # connect --ip6 to a running container
    pyboxd.ok("run", "-d", "--name", late, IMAGE, "sleep", "300")
    pyboxd.ok("network", "connect", "--ip6", f"{prefix}::77", net, late)
    assert f"{prefix}::77/64" in pyboxd.ok("exec", late, "ip", "-6", "addr", "show", "eth1")
    pyboxd.ok("exec", late, "ping", "-6", "-c", "1", "-W", "2", f"{prefix}::99")
    pyboxd.ok("network", "disconnect", net, late)
    # the address is free again
    pyboxd.ok("network", "connect", "--ip6", f"{prefix}::77", net, late)


def test_ipv6_errors_as_dockerd(pyboxd, names):
    net, v4net = names("n6"), names("n4")
    proc = pyboxd.docker("network", "create", "--ipv6", net, check=False)
    assert proc.returncode != 0 and "non-overlapping IPv6 address pool" in proc.stderr
    subnet = ula_subnet()
    prefix = subnet.split("::")[0]
    pyboxd.ok("network", "create", "--ipv6", "--subnet", subnet, net)
    proc = pyboxd.docker("network", "create", "--ipv6", "--subnet", subnet, names("n6"),
                         check=False)
    assert proc.returncode != 0 and "Pool overlaps" in proc.stderr
    pyboxd.ok("network", "create", v4net)
    for args, message in (
            (["--ip6", f"{prefix}::5"], "user specified IP address is supported only"),
            (["--network", v4net, "--ip6", f"{prefix}::5"],
             "user specified IP address is supported only"),
            (["--network", net, "--ip6", "nonsense"], "invalid IPv6 address: nonsense"),
            (["--network", net, "--ip6", "fd99:1::5"],
             "Invalid address fd99:1::5: It does not belong to any of this network's subnets")):
        name = names("v6")
        proc = pyboxd.docker("run", "--rm", "--name", name, *args, IMAGE, "true", check=False)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)


@pytest.fixture
def v6_host(netbase):
    """An "other host" reached over IPv6: a namespace of the test's own
    linked to the host by a veth pair in a random unique-local /64, serving
    on TCP port 7777 the address each client comes from."""
    prefix = ula_subnet().split("::")[0]
    path = os.path.join(netbase, "host6-" + secrets.token_hex(3))
    link = "pyboxt" + secrets.token_hex(4)
    netns.create(path)[0].close()
    server = None
    try:
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0",
                        "netns", path], check=True)
        subprocess.run(["ip", "addr", "add", f"{prefix}::1/64", "dev", link, "nodad"],
                       check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{prefix}::2/64", "dev", "eth0", "nodad"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "-6", "route", "add", "default", "via", f"{prefix}::1"]):
            subprocess.run(["nsenter", f"--net={path}", *cmd], check=True)

        def open_server():
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", 7777))
            s.listen(4)
            return s
        server = PeerServer(netns.run_in(path, open_server))
        yield {"ip": f"{prefix}::2", "host_side": f"{prefix}::1"}
    finally:
        if server is not None:
            server.close()
        subprocess.run(["ip", "link", "del", link], capture_output=True)
        netns.remove(path)


def test_ipv6_outbound_traffic_is_masqueraded(pyboxd, names, v6_host):
    net, name = names("n6"), names("v6")
    pyboxd.ok("network", "create", "--ipv6", "--subnet", ula_subnet(), net)
    pyboxd.ok("run", "-d", "--name", name, "--network", net, IMAGE, "sleep", "300")
    seen = pyboxd.ok("exec", name, "nc", "-w", "3", v6_host["ip"], "7777").strip()
    # the other host sees the host's address, not the container's
    assert seen == v6_host["host_side"]


def test_ipam_aux_addresses_are_kept_and_never_handed_out(pyboxd, names):
    net, name, taken = names("nx"), names("ax"), names("ax")
    subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}.0/29"
    base = subnet.rsplit(".", 1)[0]
    pyboxd.ok("network", "create", "--subnet", subnet, "--aux-address", f"router={base}.2",
              net)
    config = json.loads(pyboxd.ok("network", "inspect", net))[0]["IPAM"]["Config"]
    assert config == [{"Subnet": subnet, "Gateway": f"{base}.1",
                       "AuxiliaryAddresses": {"router": f"{base}.2"}}]
    pyboxd.ok("run", "-d", "--name", name, "--network", net, IMAGE, "sleep", "300")
    assert ip_on(pyboxd, name, net) == f"{base}.3"  # .2 is reserved
    proc = pyboxd.docker("run", "--rm", "--name", taken, "--network", net, "--ip", f"{base}.2",
                         IMAGE, "true", check=False)
    assert proc.returncode != 0 and "Address already in use" in proc.stderr
    status, body = api_json(pyboxd, "POST", "/networks/create", {
        "Name": names("nx"), "IPAM": {"Config": [{"Subnet": f"{base}.8/29",
                                                  "AuxiliaryAddresses": {"a": "192.0.2.1"}}]}})
    assert status == 400 and body["message"] == "no matching subnet for aux-address 192.0.2.1"


def test_rm_link_removes_only_the_link(pyboxd, names):
    child, parent = names("lc"), names("lp")
    pyboxd.ok("run", "-d", "--name", child, IMAGE, "sleep", "300")
    pyboxd.ok("run", "-d", "--name", parent, "--link", f"{child}:al", IMAGE, "sleep", "300")
    assert "\tal " in pyboxd.ok("exec", parent, "cat", "/etc/hosts")
    pyboxd.ok("rm", "--link", f"{parent}/al")
    assert pyboxd.inspect(parent)["HostConfig"]["Links"] is None
    assert "\tal " not in pyboxd.ok("exec", parent, "cat", "/etc/hosts")
    running = pyboxd.ok("ps", "--format", "{{.Names}}").split()
    assert child in running and parent in running
    proc = pyboxd.docker("rm", "--link", child, check=False)
    assert proc.returncode != 0
    assert "cannot remove the default link name of the container" in proc.stderr


def test_ipv6_on_a_users_bridge_is_given_back(pyboxd, names):
    bridge = "pyboxt" + secrets.token_hex(4)
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        sysctl = f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"
        with open(sysctl, "w") as f:
            f.write("1")
        net, name = names("n6"), names("v6")
        subnet = ula_subnet()
        prefix = subnet.split("::")[0]
        pyboxd.ok("network", "create", "--ipv6", "--subnet", subnet, "-o",
                  f"com.docker.network.bridge.name={bridge}", net)
        pyboxd.ok("run", "-d", "--name", name, "--network", net, IMAGE, "sleep", "300")
        pyboxd.ok("exec", name, "ping", "-6", "-c", "1", "-W", "2", f"{prefix}::1")
        pyboxd.ok("rm", "-f", name)
        # the network is idle: the user's bridge stays, as it was
        shown = subprocess.run(["ip", "-6", "addr", "show", "dev", bridge], check=True,
                               capture_output=True, text=True).stdout
        assert prefix not in shown
        with open(sysctl) as f:
            assert f.read().strip() == "1"
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def test_a_removed_linked_container_keeps_its_link_as_dockerd(pyboxd, names):
    child, parent = names("lc"), names("lp")
    pyboxd.ok("run", "-d", "--name", child, IMAGE, "sleep", "300")
    pyboxd.ok("create", "--name", parent, "--link", f"{child}:al", IMAGE, "sleep", "300")
    pyboxd.ok("rm", "-f", child)
    # dockerd's link index keeps the link: shown, and the start refused ...
    assert pyboxd.inspect(parent)["HostConfig"]["Links"] == [f"/{child}:/{parent}/al"]
    proc = pyboxd.docker("start", parent, check=False)
    assert proc.returncode != 0
    assert f"Cannot link to a non running container: /{child} AS /{parent}/al" in proc.stderr
    # ... until docker rm --link removes it
    pyboxd.ok("rm", "--link", f"{parent}/al")
    pyboxd.ok("start", parent)
    assert "\tal " not in pyboxd.ok("exec", parent, "cat", "/etc/hosts")
