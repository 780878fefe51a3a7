"""pybox.network's pure parts: names, IPAM, port specs, /etc files, the
nftables JSON it would send (no root, no kernel)."""

import ipaddress

import pytest

from pybox.engine import networking
from pybox.errors import BadRequest, Conflict
from pybox.network import Names, etc, ipam
from pybox.network.firewall import Firewall
from pybox.network.ports import PortMapping, PortRequest

pytestmark = pytest.mark.unit


# -- names ------------------------------------------------------------------------------
def test_machine_daemon_names():
    n = Names("/run/pybox")
    assert (n.default_bridge, n.table) == ("pybox0", "pybox")
    assert n.bridge("0123456789abcdef") == "pybox-012345678"
    assert n.veth("abcdef0123456789") == "pyboxvabcdef012"
    for name in ("pybox0", "pybox-012345678", "pyboxvabcdef012"):
        assert n.is_ours(name) and len(name) <= 15


def test_private_daemons_never_match_each_others_names():
    machine, a, b = Names("/run/pybox"), Names("/run/pbn-1"), Names("/run/pbn-2")
    assert a.tag and a.tag != b.tag
    objects = {d: [d.default_bridge, d.bridge("f" * 64), d.veth("e" * 16)]
               for d in (machine, a, b)}
    for owner, names in objects.items():
        for other in objects:
            for name in names:
                assert len(name) <= 15
                assert other.is_ours(name) == (other is owner), (name, other.prefix)
    for foreign in ("docker0", "veth1234", "pyboxt0011", "br-0123456789ab", "eth0"):
        assert not any(d.is_ours(foreign) for d in objects)


# -- IPAM ---------------------------------------------------------------------------------
def test_pick_subnet_skips_host_routes_and_other_networks():
    host = [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("172.16.0.0/12")]
    assert ipam.pick_subnet([], host) == ipaddress.ip_network("192.168.0.0/20")
    taken = [ipaddress.ip_network("172.17.0.0/16")]
    assert ipam.pick_subnet(taken, []) == ipaddress.ip_network("172.18.0.0/16")


def test_make_config_errors_are_dockers():
    with pytest.raises(BadRequest, match="it should be 10.1.0.0/16"):
        ipam.make_config("10.1.2.3/16")
    with pytest.raises(BadRequest, match="no matching subnet for gateway"):
        ipam.make_config("10.1.0.0/16", "10.2.0.1")
    with pytest.raises(BadRequest, match="no matching subnet for range"):
        ipam.make_config("10.1.0.0/16", ip_range="10.2.0.0/24")
    with pytest.raises(Conflict, match="Pool overlaps"):
        ipam.make_config("10.1.0.0/24", taken=[ipaddress.ip_network("10.1.0.0/16")])
    cfg = ipam.make_config("10.1.0.0/16", ip_range="10.1.4.0/24")
    assert cfg == {"Subnet": "10.1.0.0/16", "Gateway": "10.1.0.1", "IPRange": "10.1.4.0/24"}


def test_allocation_continues_after_the_last_and_skips_gateway():
    state = dict(ipam.make_config("10.9.0.0/29"), allocated={})
    alloc = ipam.Allocator(state, "n")
    got = [alloc.allocate(f"c{i}") for i in range(5)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        alloc.allocate("full")
    alloc.release("10.9.0.3", "c1")
    alloc.release("10.9.0.4", "someone-else")  # not its owner: kept
    assert alloc.allocate("again") == "10.9.0.3"
    alloc.release_owner("c0")
    assert "10.9.0.2" not in state["allocated"]


def test_requested_address_rules():
    state = dict(ipam.make_config("10.9.0.0/24", ip_range="10.9.0.128/25"), allocated={})
    alloc = ipam.Allocator(state, "n")
    assert alloc.allocate("a") == "10.9.0.128"
    assert alloc.allocate("b", "10.9.0.7") == "10.9.0.7"  # in the subnet, outside the range
    with pytest.raises(Conflict, match="Address already in use"):
        alloc.allocate("c", "10.9.0.7")
    with pytest.raises(Conflict):
        alloc.allocate("c", "10.9.0.1")  # the gateway
    with pytest.raises(BadRequest, match="does not belong"):
        alloc.allocate("c", "10.10.0.7")


# -- ports -------------------------------------------------------------------------------------
def test_requested_ports_bindings_ranges_and_publish_all():
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                           "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5300-5310"}],
                           "90/tcp": [{"HostPort": ""}]},
          "PublishAllPorts": True}
    config = {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}
    assert networking.requested_ports(config, hc) == [
        PortRequest("udp", 53, "127.0.0.1", 5300, 5310),
        PortRequest("tcp", 80, "0.0.0.0", 8080, 8080),
        PortRequest("tcp", 90, "0.0.0.0", 0, 0),
        PortRequest("tcp", 443, "0.0.0.0", 0, 0),
    ]


@pytest.mark.parametrize("key,binding,message", [
    ("80/tcp", {"HostPort": "70000"}, "invalid hostPort: 70000"),
    ("80/tcp", {"HostPort": "9-8"}, "invalid hostPort"),
    ("0/tcp", {"HostPort": "80"}, "invalid containerPort"),
    ("80/icmp", {"HostPort": "80"}, "invalid proto"),
    ("80/tcp", {"HostIp": "1.2.3", "HostPort": "80"}, "invalid IP address"),
])
def test_bad_port_specs(key, binding, message):
    with pytest.raises(BadRequest, match=message):
        networking.parse_port_key(key)
        networking.host_port_range(binding.get("HostPort"))
        networking.host_ip(binding.get("HostIp"))


def test_docker_ports_and_ps_ports_shapes():
    mappings = [PortMapping("tcp", 80, "0.0.0.0", 8080, "172.17.0.2")]
    config = {"ExposedPorts": {"80/tcp": {}, "81/tcp": {}}}
    hc = {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}
    assert networking.docker_ports(mappings, config, hc) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "81/tcp": None}
    assert networking.ps_ports(mappings, config) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"}]


def test_port_mappings_keep_the_sandbox_files_shape():
    """A restarted pyboxd reads the sandbox files an older one wrote."""
    saved = {"host_ip": "0.0.0.0", "host_port": 8080, "proto": "tcp", "port": 80,
             "ip": "172.17.0.2"}
    mapping = PortMapping.from_json(saved)
    assert mapping == PortMapping("tcp", 80, "0.0.0.0", 8080, "172.17.0.2")
    assert mapping.to_json() == saved


# -- /etc files ---------------------------------------------------------------------------------
def test_host_resolvers_follow_systemd_resolved_past_its_stub(tmp_path):
    stub = tmp_path / "resolv.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch corp\n")
    conf = etc.host_resolvers(str(stub), str(upstream))
    assert conf["nameservers"] == ["192.0.2.53"]
    assert conf["search"] == ["lan"] and conf["options"] == ["edns0", "trust-ad"]
    plain = tmp_path / "plain.conf"
    plain.write_text("nameserver 192.0.2.1\n")
    assert etc.host_resolvers(str(plain), str(upstream))["nameservers"] == ["192.0.2.1"]


def test_resolv_conf_for_bridge_and_user_networks():
    host = {"nameservers": ["192.0.2.53"], "search": ["lan"], "options": []}
    text = etc.resolv_conf(host, dns=["192.0.2.9"], dns_options=["ndots:2"])
    assert "nameserver 192.0.2.9" in text and "192.0.2.53" not in text
    assert "search lan" in text and "options ndots:2" in text
    text = etc.resolv_conf(host, embedded="172.18.0.1")
    assert "nameserver 172.18.0.1" in text and "options ndots:0" in text
    assert "nameserver 8.8.8.8" in etc.resolv_conf({"nameservers": [], "search": [],
                                                     "options": []})


def test_hosts_file():
    text = etc.hosts("web", domainname="example.test", addresses=["172.17.0.2"],
                     extra_hosts=["db:10.0.0.5", "gw:host-gateway", "v6:2001:db8::1"],
                     gateway="172.17.0.1")
    assert "127.0.0.1\tlocalhost" in text
    assert "172.17.0.2\tweb.example.test web" in text
    assert "10.0.0.5\tdb" in text and "172.17.0.1\tgw" in text and "2001:db8::1\tv6" in text
    with pytest.raises(BadRequest):
        etc.validate_extra_hosts(["nohost"])
    with pytest.raises(BadRequest):
        etc.validate_extra_hosts(["x:not-an-ip"])


# -- nftables commands ------------------------------------------------------------------------------
class RecordingNft:
    def __init__(self):
        self.sent = []

    def json_cmd(self, cmd):
        self.sent.append(cmd["nftables"])
        return 0, {"nftables": []}, ""


def test_firewall_touches_only_its_own_table():
    fw = Firewall("pyboxabc")
    fw._nft = RecordingNft()
    fw.add_network("pyboxabc0", "172.18.0.0/16", internal=False)
    fw.add_ports([PortMapping("tcp", 80, "0.0.0.0", 8080, "172.18.0.2"),
                  PortMapping("udp", 53, "127.0.0.1", 53, "172.18.0.2")])
    fw.remove_network("pyboxabc0")
    for batch in fw._nft.sent:
        for command in batch:
            (verb, body), = command.items()
            (kind, obj), = body.items()
            if kind == "table":
                assert obj["name"] == "pyboxabc"
            else:
                assert obj["table"] == "pyboxabc" and obj["family"] == "inet"
            assert verb in ("add", "flush", "create", "delete", "list")
    ports_batch = fw._nft.sent[1]
    assert [c["create"]["element"]["name"] for c in ports_batch] == ["ports_any", "ports_addr"]
    assert ports_batch[1]["create"]["element"]["elem"] == [
        [{"concat": ["127.0.0.1", "udp", 53]}, {"concat": ["172.18.0.2", 53]}]]
