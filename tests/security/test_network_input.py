"""Network input that must not reach the host (issue 13's red-team review, F1,
F5, F6).

* A network's ``com.docker.network.bridge.name`` naming a host interface that
  is not a bridge (a veth pair the test makes, standing in for eth0) is
  refused at create with docker's "existing interface X is not a bridge", and
  the interface survives; before, the create succeeded, the first `run` put
  the gateway address and route_localnet on it, failed with a 500, and its
  clean-up deleted the host's interface.  Names the kernel refuses ("../x",
  "..", 16 bytes, whitespace) and pybox's own name patterns are refused too.
* A bridge the user made is used as docker uses one and never deleted: the
  gateway address while in use, given back (route_localnet too) when the
  network goes idle, the link untouched by the network's removal.  A bridge
  replaced by another kind of link after the network's creation fails the
  start cleanly (a 409 with docker's words, nothing left, no traceback).
* A multicast or all-zero MAC address is refused at create (before: a 500
  "cannot create veth pair" at start).
* Hostname, Domainname, Dns, DnsSearch, DnsOptions and ExtraHosts with a
  newline are refused at create: their text goes into the container's
  /etc/hostname, /etc/hosts and /etc/resolv.conf.

Every host link a test makes has a unique ``pbs...`` name and is deleted at
the end (``host_links``); the private pyboxd is tests/engine's.
"""

import os
import random
import signal
import subprocess
import uuid

import pytest

from support.paths import IMAGE
from support.wait import settle

pytestmark = [pytest.mark.root, pytest.mark.engine]

BRIDGE = "com.docker.network.bridge.name"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name):
    return os.path.exists(f"/sys/class/net/{name}")


def ifindex(name):
    with open(f"/sys/class/net/{name}/ifindex") as f:
        return int(f.read())


def ipv4_addresses(name):
    out = ip("-4", "-o", "addr", "show", "dev", name).stdout
    return sorted(line.split()[3] for line in out.splitlines())


def route_localnet(name):
    with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet") as f:
        return f.read().strip()


def subnet():
    """A /24 no other test of this file picks (10.232-239.x.0)."""
    return f"10.{random.randint(232, 239)}.{random.randint(0, 255)}.0/24"


@pytest.fixture
def host_links():
    """new(suffix) -> a unique link name for the test to create; every one of
    them that exists at the end is deleted (a veth's peer goes with it)."""
    made = []
    tag = uuid.uuid4().hex[:8]

    def new(suffix="a"):
        name = f"pbs{tag}{suffix}"
        made.append(name)
        return name

    yield new
    for name in made:
        if link_exists(name):
            ip("link", "del", name, check=False)


@pytest.fixture
def networks(pyboxd):
    """A list of network names to `docker network rm` at the end."""
    made = []
    yield made
    for name in made:
        pyboxd.docker("network", "rm", name)


def network_names(pyboxd):
    return set(pyboxd.ok("network", "ls", "--format", "{{.Name}}").split())


def create_network(pyboxd, name, options, sub=None):
    body = {"Name": name, "Driver": "bridge", "Options": options}
    if sub:
        body["IPAM"] = {"Config": [{"Subnet": sub}]}
    return pyboxd.api("POST", "/networks/create", body)


def pybox_veths(pyboxd):
    """Host veths named as this pyboxd's (its prefix and "v")."""
    from pybox.network import Names

    names = Names(pyboxd.exec_root)
    return {n for n in os.listdir("/sys/class/net") if names.is_veth(n)}


def log_size(pyboxd):
    return os.path.getsize(pyboxd.log_path)


def log_since(pyboxd, offset):
    with open(pyboxd.log_path, errors="replace") as f:
        f.seek(offset)
        return f.read()


# -- F1: a host interface named as a network's bridge ---------------------------------
def test_non_bridge_interface_refused_and_left_alone(pyboxd, host_links, networks, names):
    """The red-team's repro, with a veth pair standing in for eth0."""
    veth, peer = host_links("a"), host_links("b")
    ip("link", "add", veth, "type", "veth", "peer", "name", peer)
    ip("addr", "add", "192.0.2.9/24", "dev", veth)
    before = (ifindex(veth), ifindex(peer), ipv4_addresses(veth), route_localnet(veth))
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    networks.append(net)

    status, reply = create_network(pyboxd, net, {BRIDGE: veth}, subnet())
    assert status == 400, reply
    assert reply["message"] == f"existing interface {veth} is not a bridge"
    assert net not in network_names(pyboxd)
    # the CLI, as the report ran it
    proc = pyboxd.docker("network", "create", "-o", f"{BRIDGE}={veth}", "--subnet", subnet(),
                         net)
    assert proc.returncode != 0
    assert f"existing interface {veth} is not a bridge" in proc.stderr
    proc = pyboxd.docker("run", "--rm", "--network", net, IMAGE, "true")
    assert proc.returncode != 0 and "not found" in proc.stderr, proc.stderr
    assert (ifindex(veth), ifindex(peer), ipv4_addresses(veth), route_localnet(veth)) == before


def test_bridge_replaced_by_another_link_fails_the_start_cleanly(pyboxd, host_links,
                                                                 networks, names):
    """A user's bridge deleted and its name given to a veth after the network
    was made: the start is refused with docker's words and a 409, the veth
    pair stays as it was, and nothing of the container's networking is left."""
    name = host_links("a")
    ip("link", "add", name, "type", "bridge")
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    networks.append(net)
    pyboxd.ok("network", "create", "-o", f"{BRIDGE}={name}", "--subnet", subnet(), net)
    ip("link", "del", name)
    peer = host_links("b")
    ip("link", "add", name, "type", "veth", "peer", "name", peer)
    before = (ifindex(name), ifindex(peer), ipv4_addresses(name), route_localnet(name))
    veths = pybox_veths(pyboxd)
    offset = log_size(pyboxd)

    ctr = names()
    proc = pyboxd.docker("run", "--name", ctr, "--network", net, IMAGE, "true")
    assert proc.returncode == 125
    assert f"failed to set up container networking: network {net}: existing interface " \
           f"{name} is not a bridge" in proc.stderr
    status, reply = pyboxd.api("POST", f"/containers/{ctr}/start")
    assert status == 409, reply
    assert f"existing interface {name} is not a bridge" in reply["message"]
    state = pyboxd.inspect(ctr)["State"]
    assert not state["Running"] and "is not a bridge" in state["Error"]

    assert (ifindex(name), ifindex(peer), ipv4_addresses(name), route_localnet(name)) == before
    assert pybox_veths(pyboxd) == veths
    netns = os.path.join(pyboxd.exec_root, "netns")
    assert not os.path.isdir(netns) or not any(
        n.startswith(pyboxd.inspect(ctr)["Id"]) for n in os.listdir(netns))
    assert "Traceback" not in log_since(pyboxd, offset)


def test_users_bridge_is_used_and_never_deleted(pyboxd, host_links, networks, names):
    """docker's user-provided bridge: the gateway address while a container
    uses the network; afterwards the bridge as the user made it (same link,
    same addresses, route_localnet back to 0), through the container's exit
    and the network's removal."""
    br = host_links("a")
    ip("link", "add", br, "type", "bridge")
    ip("addr", "add", "192.0.2.7/24", "dev", br)
    with open(f"/proc/sys/net/ipv4/conf/{br}/route_localnet", "w") as f:
        f.write("0")
    index = ifindex(br)
    sub = subnet()
    gateway = sub.replace(".0/24", ".1/24")
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    networks.append(net)
    pyboxd.ok("network", "create", "-o", f"{BRIDGE}={br}", "--subnet", sub, net)
    assert ipv4_addresses(br) == ["192.0.2.7/24"]  # nothing until the network is used

    ctr = names()
    pyboxd.ok("run", "-d", "--name", ctr, "--network", net, IMAGE, "sleep", "300")
    assert ipv4_addresses(br) == sorted(["192.0.2.7/24", gateway])
    out = pyboxd.ok("exec", ctr, "ping", "-c", "1", "-W", "5", gateway.split("/")[0])
    assert "1 packets received" in out
    pyboxd.ok("rm", "-f", ctr)
    assert ifindex(br) == index
    assert ipv4_addresses(br) == ["192.0.2.7/24"]
    assert route_localnet(br) == "0"

    out = pyboxd.ok("run", "--rm", "--network", net, IMAGE, "ip", "-4", "-o", "addr", "show",
                    "eth0")
    assert sub.rsplit(".", 1)[0] + "." in out
    pyboxd.ok("network", "rm", net)
    networks.remove(net)
    assert ifindex(br) == index
    assert ipv4_addresses(br) == ["192.0.2.7/24"]
    assert route_localnet(br) == "0"


def test_bridge_pybox_made_under_a_chosen_name_goes_with_its_last_user(pyboxd, host_links,
                                                                     networks, names):
    br = host_links("a")
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    networks.append(net)
    pyboxd.ok("network", "create", "-o", f"{BRIDGE}={br}", "--subnet", subnet(), net)
    assert not link_exists(br)
    ctr = names()
    pyboxd.ok("run", "-d", "--name", ctr, "--network", net, IMAGE, "sleep", "300")
    assert link_exists(br)
    pyboxd.ok("rm", "-f", ctr)
    assert not link_exists(br)


def test_bridge_ownership_survives_a_restart(pyboxd, host_links, networks, names):
    """pyboxd stops while containers use a user's bridge and a bridge pybox
    made under a chosen name; the containers die while it is down.  The
    restarted pyboxd knows from the network records which is which: the one
    it made goes, the user's gets back its state and stays."""
    user_br, own_br = host_links("a"), host_links("b")
    ip("link", "add", user_br, "type", "bridge")
    ip("addr", "add", "192.0.2.5/24", "dev", user_br)
    with open(f"/proc/sys/net/ipv4/conf/{user_br}/route_localnet", "w") as f:
        f.write("0")
    index = ifindex(user_br)
    pids = []
    for br in (user_br, own_br):
        net = f"rtn-{uuid.uuid4().hex[:8]}"
        networks.append(net)
        pyboxd.ok("network", "create", "-o", f"{BRIDGE}={br}", "--subnet", subnet(), net)
        ctr = names()
        pyboxd.ok("run", "-d", "--name", ctr, "--network", net, IMAGE, "sleep", "300")
        pids.append(pyboxd.inspect(ctr)["State"]["Pid"])
    assert link_exists(own_br) and len(ipv4_addresses(user_br)) == 2
    assert route_localnet(user_br) == "1"

    pyboxd.restart(between=lambda: [os.kill(pid, signal.SIGKILL) for pid in pids])
    assert settle(lambda: not link_exists(own_br))
    assert settle(lambda: ipv4_addresses(user_br) == ["192.0.2.5/24"])
    assert ifindex(user_br) == index
    assert route_localnet(user_br) == "0"


@pytest.mark.parametrize("name, message", [
    ("../../x", "invalid argument"),
    ("..", "invalid argument"),
    (".", "invalid argument"),
    ("a/b", "invalid argument"),
    ("a b", "invalid argument"),
    ("br\nx", "invalid argument"),
    ("br:0", "invalid argument"),
    ("abcdefghijklmnop", "numerical result out of range"),  # 16 bytes
    ("pybox0", "invalid argument"),  # pybox's own patterns: its sweeps delete those
    ("lo", "existing interface lo is not a bridge"),
])
def test_bad_bridge_names_refused(pyboxd, name, message):
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    status, reply = create_network(pyboxd, net, {BRIDGE: name})
    assert status == 400, reply
    assert reply["message"].startswith(message), reply["message"]
    assert net not in network_names(pyboxd)


@pytest.mark.parametrize("mtu, message", [
    ("abc", 'failed to parse com.docker.network.driver.mtu value: abc (strconv.Atoi: parsing '
            '"abc": invalid syntax)'),
    ("-1", "invalid MTU number: -1"),
    ("70000", "invalid MTU number: 70000"),
])
def test_bad_mtu_refused(pyboxd, mtu, message):
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    status, reply = create_network(pyboxd, net, {"com.docker.network.driver.mtu": mtu})
    assert (status, reply["message"]) == (400, message)
    assert net not in network_names(pyboxd)


# -- F5: MAC addresses --------------------------------------------------------------------
BAD_MACS = ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42:ac:11:00",
            "zz:zz:zz:zz:zz:zz"]


def containers(pyboxd):
    return set(pyboxd.ok("ps", "-aq", "--no-trunc").split())


@pytest.mark.parametrize("mac", BAD_MACS)
def test_bad_mac_refused_at_create(pyboxd, networks, names, mac):
    net = f"rtn-{uuid.uuid4().hex[:8]}"
    networks.append(net)
    pyboxd.ok("network", "create", net)
    before = containers(pyboxd)
    for body in ({"Image": IMAGE, "MacAddress": mac},
                 {"Image": IMAGE, "HostConfig": {"NetworkMode": net},
                  "NetworkingConfig": {"EndpointsConfig": {net: {"MacAddress": mac}}}}):
        status, reply = pyboxd.api("POST", f"/containers/create?name={names()}", body)
        assert status == 400, reply
        assert reply["message"].startswith(f"invalid MAC address {mac}"), reply
    assert containers(pyboxd) == before
    # and on a connect
    ctr = names()
    pyboxd.ok("create", "--name", ctr, IMAGE, "true")
    status, reply = pyboxd.api("POST", f"/networks/{net}/connect",
                               {"Container": ctr, "EndpointConfig": {"MacAddress": mac}})
    assert status == 400 and reply["message"].startswith(f"invalid MAC address {mac}"), reply
    # the CLI refuses the malformed ones itself ("is not a valid mac address")
    proc = pyboxd.docker("run", "--rm", "--mac-address", mac, IMAGE, "true")
    assert proc.returncode == 125 and "mac address" in proc.stderr.lower(), proc.stderr


def test_unicast_mac_still_works(pyboxd):
    out = pyboxd.ok("run", "--rm", "--mac-address", "02:00:5e:10:00:01", IMAGE, "cat",
                    "/sys/class/net/eth0/address")
    assert out.strip() == "02:00:5e:10:00:01"


# -- F6: newlines into /etc files ------------------------------------------------------------
INJECT = "nameserver 6.6.6.6"


@pytest.mark.parametrize("config, host, message", [
    ({"Hostname": f"a\n{INJECT}"}, {}, "invalid Hostname"),
    ({"Domainname": f"a\n{INJECT}"}, {}, "invalid Domainname"),
    ({}, {"DnsSearch": [f"a\n{INJECT}"]}, f"a\n{INJECT} is not a valid domain"),
    ({}, {"DnsSearch": ["example.com\n"]}, "invalid DnsSearch"),
    ({}, {"DnsOptions": [f"ndots:1\n{INJECT}"]}, "invalid DnsOptions"),
    ({}, {"Dns": [f"1.1.1.1\n{INJECT}"]}, "IP address is not correctly formatted"),
    ({}, {"Dns": [f"fe80::1%eth0\n{INJECT}"]}, "IP address is not correctly formatted"),
    ({}, {"ExtraHosts": ["a\n6.6.6.6 evil:1.2.3.4"]}, "invalid ExtraHosts"),
    ({}, {"ExtraHosts": ["a:1.2.3.4\n6.6.6.6 evil"]}, "invalid IP address in add-host"),
    ({}, {"ExtraHosts": ["a:fe80::1%x\n6.6.6.6 evil"]}, "invalid IP address in add-host"),
], ids=["Hostname", "Domainname", "DnsSearch", "DnsSearch-trailing", "DnsOptions", "Dns",
        "Dns-zone", "ExtraHosts-name", "ExtraHosts-ip", "ExtraHosts-zone"])
def test_newlines_for_etc_files_refused(pyboxd, names, config, host, message):
    before = containers(pyboxd)
    body = dict(config, Image=IMAGE, HostConfig=host)
    status, reply = pyboxd.api("POST", f"/containers/create?name={names()}", body)
    assert status == 400, reply
    assert reply["message"].startswith(message), reply
    assert containers(pyboxd) == before


def test_ordinary_etc_values_still_written(pyboxd):
    out = pyboxd.ok("run", "--rm", "--hostname", "box", "--domainname", "example.test",
                    "--dns", "198.51.100.53", "--dns-search", "example.test", "--dns-option",
                    "ndots:2", "--add-host", "db.local:192.0.2.10", IMAGE, "cat",
                    "/etc/resolv.conf", "/etc/hosts", "/etc/hostname")
    assert "nameserver 198.51.100.53" in out
    assert "search example.test" in out
    assert "options ndots:2" in out
    assert "192.0.2.10\tdb.local" in out
    assert "6.6.6.6" not in out
