"""The same networking through docker-py (7.2, the SDK most tools use) and
through pybox's own CLI, against the private pyboxd."""

import subprocess
import sys

import pytest
from netutil import IMAGE, SRC, free_port, http_get, settle

pytestmark = [pytest.mark.network, pytest.mark.root]


@pytest.fixture
def client(pyboxd):
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=pyboxd.host, version="1.44")
    yield c
    c.close()


def test_docker_py_networks_ports_and_live_connect(pyboxd, client, names):
    net_name, web_name, box_name = names(), names(), names()
    net = client.networks.create(net_name, driver="bridge", labels={"via": "docker-py"},
                                 ipam={"Config": [{"Subnet": "10.216.0.0/24"}]})
    assert client.networks.get(net_name).attrs["IPAM"]["Config"][0]["Subnet"] == \
        "10.216.0.0/24"
    port = free_port()
    web = client.containers.run(IMAGE, ["httpd", "-f", "-p", "80", "-h", "/etc"],
                                name=web_name, detach=True, network=net_name,
                                ports={"80/tcp": port})
    web.reload()
    settings = web.attrs["NetworkSettings"]
    assert settings["Networks"][net_name]["IPAddress"].startswith("10.216.0.")
    assert settings["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)}]
    assert web.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    hostname = web.attrs["Config"]["Hostname"]
    assert settle(lambda: hostname in _get(port))
    box = client.containers.run(IMAGE, ["sleep", "300"], name=box_name, detach=True)
    net.connect(box, aliases=["boxy"])
    code, out = box.exec_run(["wget", "-qO-", f"http://{web_name}/hostname"])
    assert (code, out.decode().strip()) == (0, hostname)
    net.reload()
    assert {c.name for c in net.containers} == {web_name, box_name}
    net.disconnect(box)
    code, _ = box.exec_run(["wget", "-T", "2", "-qO-", f"http://{web_name}/hostname"])
    assert code != 0
    assert [n.name for n in client.networks.list(filters={"label": "via=docker-py"})] == \
        [net_name]


def test_pybox_cli_network_commands_and_port(pyboxd, names):
    argv = [sys.executable, "-m", "pybox.cli.pybox", "-H", pyboxd.host]
    env = dict(pyboxd.env, PYTHONPATH=SRC)

    def pybox(*args):
        proc = subprocess.run(argv + list(args), env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    net, web = names(), names()
    pybox("network", "create", "--subnet", "10.217.0.0/24", net)
    assert net in pybox("network", "ls", "--format", "{{.Name}}").split()
    pybox("run", "-d", "--name", web, "--network", net, "-p", "127.0.0.1::80", IMAGE,
          "httpd", "-f", "-p", "80", "-h", "/etc")
    line = pybox("port", web).strip()
    assert line.startswith("80/tcp -> 127.0.0.1:")
    port = int(line.rsplit(":", 1)[1])
    assert settle(lambda: pyboxd.inspect(web)["Config"]["Hostname"] in _get(port))
    assert "10.217.0." in pybox("inspect", "--format",
                                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", web)


def _get(port):
    try:
        return http_get("127.0.0.1", port)
    except OSError:
        return ""
