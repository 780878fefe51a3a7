"""Networking as dockerd does it (issue 16), through a private pyboxd driven by
the docker 28 CLI and the raw API: the ``networks`` section of container
stats, network inspect's null/{} fields, legacy links (hosts entries and
environment on the default bridge, container-scoped DNS aliases on
user-defined networks), IPv6 dual-stack networks."""

import json
import os
import shutil
import subprocess

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
