"""pybox.network.cni driving Debian's CNI plugins for real: a private netns per
test, a private conf dir (bridge + host-local + portmap on a private bridge,
a /24 nothing on the host uses, a private IPAM dir), a private result cache,
and small fake plugins (a private bin dir searched before /usr/lib/cni) for
the failures and for what a plugin is given.

What a user of the CRI sees: the pod's address inside its namespace (read
with ``ip -n``), a port mapping reaching a listener in the pod from the host,
and after teardown no veth, no lease, no portmap rule, no cache entry --
also after the namespace is gone, after a restart with the conf dir changed,
and when an ADD failed half way.  At the end the bridge and, if this module
made them, portmap's shared nat chains are removed (atomically, and only if
nothing else uses them by then).
"""

import ipaddress
import json
import os
import shutil
import socket
import stat
import subprocess
import textwrap
import threading
import time
import uuid

import pytest

from cri.conftest import free_subnet, nat_rules
from pybox.errors import BadRequest, CNIPluginError, NetworkError
from pybox.network import netns as netns_mod
from pybox.network.cni import CNI, CNIDNS, UNINITIALIZED, CNIPortMapping

CNI_BIN_DIR = "/usr/lib/cni"
if shutil.which("iptables") is None or not os.path.exists(f"{CNI_BIN_DIR}/bridge"):
    pytest.skip("needs Debian's containernetworking-plugins and iptables", allow_module_level=True)


def run(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def link_exists(name, netns=None):
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return run(*argv, check=False).returncode == 0


def ports_of_bridge(bridge):
    out = run("ip", "-j", "link", "show", "master", bridge, check=False).stdout or "[]"
    return [link["ifname"] for link in json.loads(out)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fixtures ------------------------------------------------------------------------------------


class Net:
    """One private CNI setup: conf dir, fake-plugin bin dir, IPAM dir, cache dir, bridge."""

    def __init__(self, base):
        tag = uuid.uuid4().hex[:8]
        self.base = base
        self.tag = tag
        self.bridge = f"c2cni{tag}"  # <= 15 characters
        self.name = f"c2cni-{tag}"
        self.subnet = free_subnet()
        self.conf_dir = os.path.join(base, "net.d")
        self.bin_dir = os.path.join(base, "bin")
        self.ipam_dir = os.path.join(base, "ipam")
        self.cache_dir = os.path.join(base, "cache")
        for d in (self.conf_dir, self.bin_dir):
            os.makedirs(d)
        self.cni = CNI(self.conf_dir, (self.bin_dir, CNI_BIN_DIR), self.cache_dir)

    def bridge_plugin(self):
        return {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam_dir}}

    def write_list(self, plugins, *, file="10-pod.conflist", version="1.0.0", name=None):
        conf = {"cniVersion": version, "name": name or self.name, "plugins": plugins}
        with open(os.path.join(self.conf_dir, file), "w") as f:
            json.dump(conf, f)

    def write_standard(self, **kw):
        self.write_list([self.bridge_plugin(),
                         {"type": "portmap", "capabilities": {"portMappings": True}}], **kw)

    def fake_plugin(self, name, body):
        """A plugin in Python (the system's python3): ``body`` sees ``cmd``,
        ``conf`` (its parsed stdin) and ``env``."""
        path = os.path.join(self.bin_dir, name)
        with open(path, "w") as f:
            f.write("#!/usr/bin/python3\nimport json, os, sys, time\n"
                    "env = dict(os.environ); cmd = env.get('CNI_COMMAND')\n"
                    "conf = json.load(sys.stdin)\n" + textwrap.dedent(body))
        os.chmod(path, stat.S_IRWXU)
        return path

    def leases(self):
        d = os.path.join(self.ipam_dir, self.name)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            try:
                ipaddress.ip_address(n)
            except ValueError:
                continue
            out.append(n)
        return out

    def cache_entries(self):
        try:
            return sorted(os.listdir(os.path.join(self.cache_dir, "results")))
        except FileNotFoundError:
            return []

    def pod_rules(self, pod_id):
        return [line for line in nat_rules().splitlines() if f'id: \\"{pod_id}\\"' in line]

    def assert_clean(self, pod_id, netns=None):
        """What a torn-down (or never set up) pod leaves: nothing."""
        assert self.leases() == []
        assert self.cache_entries() == []
        # a veth whose netns was deleted goes when the kernel's cleanup_net runs
        for _ in range(100):
            if not ports_of_bridge(self.bridge):
                break
            time.sleep(0.05)
        assert ports_of_bridge(self.bridge) == []
        assert self.pod_rules(pod_id) == []
        if netns and os.path.exists(f"/run/netns/{netns}"):
            assert not link_exists("eth0", netns)


@pytest.fixture
def net(tmp_path, nat_owner):
    n = Net(str(tmp_path))
    yield n
    if link_exists(n.bridge):
        run("ip", "link", "del", n.bridge, check=False)


@pytest.fixture
def netns():
    """A private named netns (/run/netns/NAME), deleted at the end if still there."""
    name = f"c2cni-{uuid.uuid4().hex[:10]}"
    run("ip", "netns", "add", name)
    yield name
    if os.path.exists(f"/run/netns/{name}"):
        run("ip", "netns", "del", name, check=False)


def pod(**kw):
    pod_id = uuid.uuid4().hex
    base = {"pod_name": f"web-{pod_id[:6]}", "pod_namespace": "default", "pod_uid": str(uuid.uuid4())}
    base.update(kw)
    return pod_id, base


def addresses(netns, ifname="eth0"):
    out = run("ip", "-n", netns, "-j", "-4", "addr", "show", "dev", ifname).stdout
    return [a["local"] for link in json.loads(out) for a in link.get("addr_info", ())]


# -- tests ---------------------------------------------------------------------------------------


def test_status_without_config(tmp_path):
    assert CNI(str(tmp_path / "missing"), (CNI_BIN_DIR,), str(tmp_path / "c")).status() == UNINITIALIZED
    empty = tmp_path / "empty"
    empty.mkdir()
    cni = CNI(str(empty), (CNI_BIN_DIR,), str(tmp_path / "c"))
    assert cni.status() == UNINITIALIZED
    (empty / "README").write_text("not a conf file")
    assert cni.status() == UNINITIALIZED


def test_setup_and_teardown(net, netns):
    net.write_standard()
    assert net.cni.status() is None
    pod_id, who = pod()
    res = net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    assert res.interface == "eth0"
    assert len(res.ips) == 1 and ipaddress.ip_address(res.ips[0]) in ipaddress.ip_network(net.subnet)
    assert addresses(netns) == list(res.ips)
    # the loopback plugin brought lo up, as containerd's cni-loopback network does
    assert "UP" in run("ip", "-n", netns, "link", "show", "lo").stdout.split("<")[1].split(">")[0]
    # the default route through the bridge, which is the gateway
    gateway = str(next(ipaddress.ip_network(net.subnet).hosts()))
    assert f"default via {gateway}" in run("ip", "-n", netns, "route").stdout
    assert len(ports_of_bridge(net.bridge)) == 1
    assert net.leases() == list(res.ips)
    assert net.cache_entries() == sorted([f"cni-loopback-{pod_id}-lo", f"{net.name}-{pod_id}-eth0"])

    net.cni.teardown(pod_id, f"/run/netns/{netns}", **who)
    net.assert_clean(pod_id, netns)
    net.cni.teardown(pod_id, f"/run/netns/{netns}", **who)  # twice is fine
    net.cni.teardown(pod_id, None, **who)
    net.assert_clean(pod_id, netns)


def test_port_mapping_reaches_the_pod(net, netns):
    net.write_standard()
    pod_id, who = pod()
    host_port = free_port()
    path = f"/run/netns/{netns}"
    res = net.cni.setup(pod_id, path, port_mappings=[CNIPortMapping(host_port, 8080, "tcp"),
                                                     CNIPortMapping(0, 9090, "tcp")], **who)
    try:
        def listen():
            s = socket.socket()
            s.bind(("0.0.0.0", 8080))
            s.listen(4)
            return s

        server = netns_mod.run_in(path, listen)
        served = []

        def serve():
            for _ in range(2):
                conn, peer = server.accept()
                with conn:
                    conn.sendall(b"pod " + res.ips[0].encode())
                served.append(peer)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        gateway = str(next(ipaddress.ip_network(net.subnet).hosts()))
        for host in ("127.0.0.1", gateway):
            with socket.create_connection((host, host_port), timeout=10) as c:
                c.settimeout(10)
                assert c.recv(100) == b"pod " + res.ips[0].encode()
        t.join(10)
        server.close()
        assert len(served) == 2
        assert len(net.pod_rules(pod_id)) == 1  # the mapping without a host port is none
    finally:
        net.cni.teardown(pod_id, path, **who)
    net.assert_clean(pod_id, netns)


def test_teardown_after_the_netns_is_gone(net, netns):
    net.write_standard()
    pod_id, who = pod()
    path = f"/run/netns/{netns}"
    net.cni.setup(pod_id, path, port_mappings=[CNIPortMapping(free_port(), 80, "tcp")], **who)
    assert net.leases() and net.pod_rules(pod_id)
    run("ip", "netns", "del", netns)
    net.cni.teardown(pod_id, path, **who)
    net.assert_clean(pod_id)
    net.cni.teardown(pod_id, path, **who)


def test_teardown_after_restart_with_the_conf_dir_changed(net, netns):
    """A new CNI object (pyboxd restarted) and the operator's conf gone: the
    cached config is what gets DELeted."""
    net.write_standard()
    pod_id, who = pod()
    path = f"/run/netns/{netns}"
    net.cni.setup(pod_id, path, port_mappings=[CNIPortMapping(free_port(), 80, "udp")], **who)
    os.unlink(os.path.join(net.conf_dir, "10-pod.conflist"))
    again = CNI(net.conf_dir, (net.bin_dir, CNI_BIN_DIR), net.cache_dir)
    assert again.status() == UNINITIALIZED
    assert again.cached_pods() == {pod_id}
    again.teardown(pod_id, path, **who)
    net.assert_clean(pod_id, netns)
    assert again.cached_pods() == set()


@pytest.mark.parametrize("version, file", [("0.3.1", "10-pod.conf"), ("0.4.0", "10-pod.json"),
                                           ("1.0.0", "10-pod.conf")])
def test_single_plugin_conf_versions(net, netns, version, file):
    """A .conf/.json holding one plugin is wrapped into a list; the results of
    0.3.1/0.4.0 (ips with "version") and 1.0.0 are all understood."""
    conf = dict(net.bridge_plugin(), cniVersion=version, name=net.name)
    with open(os.path.join(net.conf_dir, file), "w") as f:
        json.dump(conf, f)
    pod_id, who = pod()
    res = net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    assert res.raw["cniVersion"] == version
    assert addresses(netns) == list(res.ips)
    net.cni.check(pod_id, f"/run/netns/{netns}")  # CHECK: 0.4.0 and later run it; 0.3.1 skips
    net.cni.teardown(pod_id, f"/run/netns/{netns}", **who)
    net.assert_clean(pod_id, netns)


def test_first_valid_conf_wins(net, netns):
    """Lexical order; broken files and lists naming missing plugins are skipped."""
    with open(os.path.join(net.conf_dir, "00-broken.conflist"), "w") as f:
        f.write('{"cniVersion": "1.0.0", "name": "x", "plugins": [')
    net.write_list([{"type": "no-such-plugin"}], file="05-missing.conflist", name="missing")
    net.write_standard(file="10-pod.conflist")
    net.write_list([{"type": "loopback"}], file="20-later.conflist", name="later")
    assert net.cni.network().name == net.name
    assert net.cni.status() is None
    pod_id, who = pod()
    net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    assert addresses(netns)
    net.cni.teardown(pod_id, f"/run/netns/{netns}", **who)
    net.assert_clean(pod_id, netns)


def test_broken_conf_gives_a_clear_error(net, netns):
    with open(os.path.join(net.conf_dir, "10-pod.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": net.name, "plugins": []}, f)
    assert net.cni.status() == UNINITIALIZED
    assert "no plugins in list" in net.cni.status_detail()
    pod_id, who = pod()
    with pytest.raises(NetworkError) as e:
        net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    assert str(e.value).startswith(UNINITIALIZED) and "10-pod.conflist" in str(e.value)
    net.assert_clean(pod_id, netns)


def test_failing_plugin_undoes_the_add(net, netns):
    """The second plugin fails: its error (code, msg, details) reaches the
    caller, and the bridge plugin's veth and lease are gone (DEL of the chain)."""
    net.fake_plugin("c2fail", """
        if cmd == "ADD":
            print(json.dumps({"cniVersion": conf["cniVersion"], "code": 7,
                              "msg": "no room at the inn", "details": "try another night"}))
            sys.exit(1)
        """)
    net.write_list([net.bridge_plugin(), {"type": "c2fail"}])
    pod_id, who = pod()
    with pytest.raises(CNIPluginError) as e:
        net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    err = e.value
    assert (err.code, err.msg, err.details, err.command) == (7, "no room at the inn", "try another night",
                                                            "ADD")
    assert str(err) == (f'plugin type="c2fail" name="{net.name}" failed (add): no room at the inn; '
                        "try another night")
    assert err.http_status == 409
    net.assert_clean(pod_id, netns)


def test_plugin_output_is_validated(net, netns):
    """A plugin whose result is not a CNI result fails the ADD (and is undone)."""
    net.fake_plugin("c2liar", """
        if cmd == "ADD":
            print(json.dumps({"cniVersion": conf["cniVersion"], "ips": [{"address": "not-an-ip"}]}))
        """)
    net.write_list([net.bridge_plugin(), {"type": "c2liar"}])
    pod_id, who = pod()
    with pytest.raises(CNIPluginError, match=r"invalid result: ips\[0\].address 'not-an-ip'"):
        net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    net.assert_clean(pod_id, netns)


def test_plugin_timeout(net, netns):
    net.fake_plugin("c2slow", """
        if cmd == "ADD":
            time.sleep(60)
        """)
    net.write_list([net.bridge_plugin(), {"type": "c2slow"}])
    cni = CNI(net.conf_dir, (net.bin_dir, CNI_BIN_DIR), net.cache_dir, plugin_timeout=1)
    pod_id, who = pod()
    with pytest.raises(CNIPluginError, match="timed out after 1s"):
        cni.setup(pod_id, f"/run/netns/{netns}", **who)
    net.assert_clean(pod_id, netns)


def test_what_plugins_are_given(net, netns):
    """libcni's stdin and environment: name and cniVersion injected, the
    previous result as prevResult (ADD) and the cached result (DEL), only the
    declared capabilities in runtimeConfig, containerd's CNI_ARGS, CNI_PATH."""
    record = os.path.join(net.base, "record.jsonl")
    net.fake_plugin("c2echo", f"""
        with open({record!r}, "a") as f:
            f.write(json.dumps({{"cmd": cmd, "conf": conf, "env": env}}) + "\\n")
        if cmd == "ADD":
            print(json.dumps(conf["prevResult"]))
        """)
    net.write_list([net.bridge_plugin(),
                    {"type": "c2echo", "capabilities": {"portMappings": True, "dns": False}}])
    pod_id, who = pod(pod_name="web-0", pod_namespace="shop")
    path = f"/run/netns/{netns}"
    mapping = CNIPortMapping(8081, 80, "TCP", "127.0.0.1")
    res = net.cni.setup(pod_id, path, port_mappings=[mapping], dns=CNIDNS(servers=("10.0.0.10",)), **who)
    net.cni.teardown(pod_id, path, **who)
    calls = [json.loads(line) for line in open(record)]
    assert [c["cmd"] for c in calls] == ["ADD", "DEL"]
    add, delete = calls
    assert add["conf"]["name"] == net.name and add["conf"]["cniVersion"] == "1.0.0"
    assert add["conf"]["prevResult"] == res.raw
    assert add["conf"]["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]}
    assert delete["conf"]["prevResult"] == res.raw
    assert delete["conf"]["runtimeConfig"] == add["conf"]["runtimeConfig"]
    env = add["env"]
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == pod_id
    assert env["CNI_NETNS"] == path and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_PATH"] == f"{net.bin_dir}:{CNI_BIN_DIR}"
    assert env["CNI_ARGS"].split(";") == [
        "IgnoreUnknown=1", "K8S_POD_NAMESPACE=shop", "K8S_POD_NAME=web-0",
        f"K8S_POD_INFRA_CONTAINER_ID={pod_id}", f"K8S_POD_UID={who['pod_uid']}"]
    assert delete["env"]["CNI_ARGS"] == env["CNI_ARGS"]
    net.assert_clean(pod_id, netns)


def test_bad_arguments_are_refused_before_anything_runs(net, netns):
    net.write_standard()
    path = f"/run/netns/{netns}"
    pod_id, who = pod()
    with pytest.raises(BadRequest):
        net.cni.setup("../../etc", path, **who)
    with pytest.raises(BadRequest):
        net.cni.setup(pod_id, path, **dict(who, pod_name="a;K8S_POD_NAMESPACE=kube-system"))
    with pytest.raises(BadRequest):
        net.cni.setup(pod_id, path, ifname="eth0/x", **who)
    with pytest.raises(BadRequest):
        net.cni.setup(pod_id, path, port_mappings=[CNIPortMapping(80, 80, "icmp")], **who)
    with pytest.raises(NetworkError, match="not a network namespace"):
        net.cni.setup(pod_id, os.path.join(net.base, "net.d"), **who)
    net.assert_clean(pod_id, netns)


def test_teardown_after_a_crash_in_the_middle_of_add(net, netns):
    """The cache entry is written before the first plugin runs: a pyboxd that
    died before the chain finished (the entry has no result yet) still tears
    down what the plugins did."""
    net.write_standard()
    pod_id, who = pod()
    path = f"/run/netns/{netns}"
    net.cni.setup(pod_id, path, port_mappings=[CNIPortMapping(free_port(), 80, "tcp")], **who)
    entry = os.path.join(net.cache_dir, "results", f"{net.name}-{pod_id}-eth0")
    with open(entry) as f:
        cached = json.load(f)
    del cached["result"]  # as written before the ADD
    with open(entry, "w") as f:
        json.dump(cached, f)
    CNI(net.conf_dir, (net.bin_dir, CNI_BIN_DIR), net.cache_dir).teardown(pod_id, path, **who)
    net.assert_clean(pod_id, netns)


def test_failed_del_keeps_the_cache_for_a_retry(net, netns):
    flag = os.path.join(net.base, "fail-del-once")
    net.fake_plugin("c2flaky", f"""
        if cmd == "DEL" and os.path.exists({flag!r}):
            os.unlink({flag!r})
            print(json.dumps({{"code": 11, "msg": "busy", "details": ""}}))
            sys.exit(1)
        if cmd == "ADD":
            print(json.dumps(conf["prevResult"]))
        """)
    net.write_list([net.bridge_plugin(), {"type": "c2flaky"}])
    pod_id, who = pod()
    path = f"/run/netns/{netns}"
    net.cni.setup(pod_id, path, **who)
    open(flag, "w").close()
    with pytest.raises(CNIPluginError) as e:
        net.cni.teardown(pod_id, path, **who)
    assert e.value.code == 11 and e.value.command == "DEL"
    assert f"{net.name}-{pod_id}-eth0" in net.cache_entries()
    net.cni.teardown(pod_id, path, **who)
    net.assert_clean(pod_id, netns)


def test_pods_in_parallel(net):
    """Several pods set up and torn down at once get distinct addresses and
    leave nothing."""
    net.write_standard()
    names = [f"c2cni-{uuid.uuid4().hex[:10]}" for _ in range(4)]
    for n in names:
        run("ip", "netns", "add", n)
    try:
        pods = [pod() for _ in names]
        results = [None] * len(names)
        errors = []

        def one(i):
            try:
                pod_id, who = pods[i]
                results[i] = net.cni.setup(pod_id, f"/run/netns/{names[i]}", **who)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(names))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len({r.ips[0] for r in results}) == len(names)
        for i, n in enumerate(names):
            assert addresses(n) == list(results[i].ips)
        threads = [threading.Thread(target=net.cni.teardown, args=(pods[i][0], f"/run/netns/{n}"),
                                    kwargs=pods[i][1]) for i, n in enumerate(names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for pod_id, _ in pods:
            net.assert_clean(pod_id)
    finally:
        for n in names:
            run("ip", "netns", "del", n, check=False)


def test_a_network_giving_no_address_is_an_error(net, netns):
    """containerd's "failed to find network info for sandbox": the chain and
    the loopback are DELeted."""
    record = os.path.join(net.base, "record")
    net.fake_plugin("c2noip", f"""
        with open({record!r}, "a") as f:
            f.write(cmd + "\\n")
        if cmd == "ADD":
            print(json.dumps({{"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}}))
        """)
    net.write_list([{"type": "c2noip"}])
    pod_id, who = pod()
    with pytest.raises(NetworkError, match="failed to find network info for sandbox"):
        net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    assert open(record).read().split() == ["ADD", "DEL"]
    net.assert_clean(pod_id, netns)


def test_failing_loopback_undoes_the_pod_network(net, netns):
    """lo and eth0 are set up at once: a loopback failure DELetes eth0's chain too."""
    net.fake_plugin("loopback", """
        if cmd == "ADD":
            print(json.dumps({"code": 5, "msg": "lo is lost"}))
            sys.exit(1)
        """)
    net.write_standard()
    pod_id, who = pod()
    with pytest.raises(CNIPluginError, match='type="loopback" name="cni-loopback" failed .add.: lo is lost'):
        net.cni.setup(pod_id, f"/run/netns/{netns}", **who)
    net.assert_clean(pod_id, netns)
