"""pybox.network.cni's pure parts: conf files (libcni's rules), plugin results
(untrusted JSON: validated field by field), result version conversion, the
pod's addresses, CNI_ARGS and runtimeConfig candidates."""

import json
import os

import pytest

from pybox.errors import BadRequest
from pybox.network.cni import (
    CNIBandwidth,
    CNIPortMapping,
    _capability_args,
    _cni_args,
    convert_result,
    load_conf_dir,
    parse_conf,
    parse_conf_list,
    result_ips,
    validate_result,
)

pytestmark = pytest.mark.unit


def dumps(obj):
    return json.dumps(obj).encode()


# -- conf files ------------------------------------------------------------------------------


def test_conf_list():
    nets = parse_conf_list(dumps({"cniVersion": "0.4.0", "name": "pods", "disableCheck": "true",
                                  "plugins": [{"type": "bridge"}, {"type": "portmap",
                                                                   "capabilities": {"portMappings": True}}]}))
    assert (nets.name, nets.cni_version, nets.disable_check) == ("pods", "0.4.0", True)
    assert [p["type"] for p in nets.plugins] == ["bridge", "portmap"]


@pytest.mark.parametrize("conf, problem", [
    ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}, "no name"),
    ({"cniVersion": "1.0.0", "name": "../x", "plugins": [{"type": "bridge"}]}, "invalid network name"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, "no plugins in list"),
    ({"cniVersion": "1.0.0", "name": "n"}, "no 'plugins' list"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"ipam": {}}]}, "missing 'type'"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}, "invalid plugin name"),
    ({"cniVersion": "one", "name": "n", "plugins": [{"type": "bridge"}]}, "invalid cniVersion"),
    ({"cniVersion": "1.0.0", "name": "n", "disableCheck": "maybe", "plugins": [{"type": "b"}]},
     "disableCheck"),
    ([], "not an object"),
])
def test_conf_list_errors(conf, problem):
    with pytest.raises(ValueError, match=problem):
        parse_conf_list(dumps(conf))


def test_conf_list_not_json():
    with pytest.raises(ValueError, match="error parsing configuration list"):
        parse_conf_list(b'{"name": ')
    with pytest.raises(ValueError):
        parse_conf_list(b"[" * 100000)  # deep nesting is an error, not a crash


def test_single_conf_is_wrapped():
    nets = parse_conf(dumps({"cniVersion": "0.3.1", "name": "n", "type": "bridge", "bridge": "b0"}))
    assert nets.name == "n" and nets.cni_version == "0.3.1"
    assert json.loads(nets.raw) == {"cniVersion": "0.3.1", "name": "n",
                                    "plugins": [{"cniVersion": "0.3.1", "name": "n", "type": "bridge",
                                                 "bridge": "b0"}]}
    with pytest.raises(ValueError, match="network list in a .conf"):
        parse_conf(dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]}))


def test_missing_version_is_0_1_0():
    assert parse_conf(dumps({"name": "n", "type": "bridge"})).cni_version == "0.1.0"


def test_conf_dir_order_and_skips(tmp_path):
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("bridge", "loopback"):
        (bins / name).write_text("")
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "00-bad.conflist").write_text("{")
    (conf / "01-missing.conf").write_text(json.dumps({"cniVersion": "1.0.0", "name": "m",
                                                      "type": "macvlan"}))
    (conf / "02-dir.conf").mkdir()
    os.mkfifo(conf / "03-fifo.conf")  # never opened
    (conf / "05-ignored.txt").write_text("{}")
    (conf / "10-b.json").write_text(json.dumps({"cniVersion": "1.0.0", "name": "b",
                                                "type": "bridge"}))
    (conf / "20-a.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "a",
                                                    "plugins": [{"type": "bridge"}]}))
    nets, problems = load_conf_dir(str(conf), [str(bins)])
    assert nets.name == "b" and nets.source.endswith("10-b.json")
    assert len(problems) == 2
    assert "00-bad.conflist" in problems[0]
    assert "01-missing.conf" in problems[1] and "'macvlan' not found" in problems[1]
    (bins / "loopback").unlink()  # every pod needs lo: no network without it
    assert load_conf_dir(str(conf), [str(bins)])[0] is None


def test_conf_dir_missing_or_empty(tmp_path):
    assert load_conf_dir(str(tmp_path / "nope"), ["/usr/lib/cni"]) == (
        None, [f"no network config found in {tmp_path / 'nope'}"])
    assert load_conf_dir(str(tmp_path), ["/usr/lib/cni"])[0] is None


# -- results ---------------------------------------------------------------------------------

RESULT_100 = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
                   {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "/run/netns/x"}],
    "ips": [{"interface": 1, "address": "fd00::5/64"}, {"interface": 1, "address": "10.1.2.5/24",
                                                         "gateway": "10.1.2.1"},
            {"interface": 0, "address": "10.1.2.1/24"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.2.254"}],
    "dns": {"nameservers": ["10.96.0.10"], "search": ["svc"]},
}


def test_valid_result_and_ips():
    res = validate_result(json.loads(json.dumps(RESULT_100)), "1.0.0")
    # the container's addresses only (not the bridge's), IPv4 first
    assert result_ips(res, "eth0") == ("10.1.2.5", "fd00::5")
    assert result_ips(res, "eth1") == ()


def test_result_version_defaults_to_the_conf():
    assert validate_result({"ips": []}, "0.4.0")["cniVersion"] == "0.4.0"
    assert validate_result(None, "1.0.0") == {"cniVersion": "1.0.0"}


@pytest.mark.parametrize("change, problem", [
    ({"ips": [{"address": "10.0.0.1"}]}, "prefix length"),
    ({"ips": [{"address": "10.0.0.1/24", "interface": 5}]}, "index into interfaces"),
    ({"ips": [{"address": "10.0.0.1/24", "interface": True}]}, "index into interfaces"),
    ({"ips": [{"address": "10.0.0.1/24", "gateway": "x"}]}, "not an IP address"),
    ({"ips": "10.0.0.1/24"}, "ips is not a list"),
    ({"interfaces": [{"mac": "x"}]}, "name is missing"),
    ({"routes": [{"gw": "10.0.0.1"}]}, "routes\\[0\\].dst"),
    ({"dns": {"nameservers": "10.0.0.1"}}, "dns.nameservers"),
    ({"cniVersion": 1}, "cniVersion"),
    ({"ips": [{"address": "10.0.0.1/24"}] * 5000}, "ips is not a list"),
])
def test_invalid_results(change, problem):
    with pytest.raises(ValueError, match=problem):
        validate_result(dict({"cniVersion": "1.0.0"}, **change), "1.0.0")
    with pytest.raises(ValueError, match="not a JSON object"):
        validate_result(["x"], "1.0.0")


def test_legacy_result():
    res = validate_result({"cniVersion": "0.2.0", "ip4": {"ip": "10.3.0.7/16", "gateway": "10.3.0.1"},
                           "ip6": {"ip": "fd01::7/64"}}, "0.2.0")
    assert result_ips(res, "eth0") == ("10.3.0.7", "fd01::7")
    with pytest.raises(ValueError, match="ip4.ip"):
        validate_result({"cniVersion": "0.2.0", "ip4": {"ip": 7}}, "0.2.0")


def test_convert_between_versions():
    old = convert_result(RESULT_100, "0.4.0")
    assert old["cniVersion"] == "0.4.0"
    assert [ip["version"] for ip in old["ips"]] == ["6", "4", "4"]
    back = convert_result(old, "1.0.0")
    assert back == RESULT_100
    assert "version" not in RESULT_100["ips"][0]  # the input is not changed


# -- arguments -------------------------------------------------------------------------------


def test_cni_args():
    assert _cni_args("abc", "web", "default", "u-1") == (
        ("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web"),
        ("K8S_POD_INFRA_CONTAINER_ID", "abc"), ("K8S_POD_UID", "u-1"))
    for bad in ("a;b", "a=b", "a\nb"):
        with pytest.raises(BadRequest):
            _cni_args("abc", bad, "default", "u-1")


def test_capability_args():
    caps = _capability_args([CNIPortMapping(8080, 80, "TCP"), CNIPortMapping(0, 81, "tcp"),
                             CNIPortMapping(53, 53, "udp", "10.0.0.1")], None,
                            CNIBandwidth(ingress_rate=1000), {"a": "b"}, "/kubepods/pod1")
    assert caps == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                         {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "10.0.0.1"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 0, "egressRate": 0, "egressBurst": 0},
        "io.kubernetes.cri.pod-annotations": {"a": "b"},
        "cgroupPath": "/kubepods/pod1",
    }
    assert _capability_args((), None, None, None, "") == {"portMappings": []}
    for bad in (CNIPortMapping(70000, 80, "tcp"), CNIPortMapping(80, 0, "tcp"),
                CNIPortMapping(80, 80, "icmp"), CNIPortMapping(80, 80, "tcp", "localhost")):
        with pytest.raises(BadRequest):
            _capability_args([bad], None, None, None, "")
