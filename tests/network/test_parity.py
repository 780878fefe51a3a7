"""Networking as dockerd does it (issue 16), through a private pyboxd driven by
the docker 28 CLI and the raw API: the ``networks`` section of container
stats, network inspect's null/{} fields, legacy links (hosts entries and
environment on the default bridge, container-scoped DNS aliases on
user-defined networks), IPv6 dual-stack networks."""

import json

import pytest
from netutil import IMAGE

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
