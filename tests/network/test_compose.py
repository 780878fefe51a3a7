"""Compose as a real client: Debian's docker-compose 1.29 (docker-py 5) with
DOCKER_HOST pointed at the private pyboxd brings up two services that reach
each other by service name, with a named volume and a published port; `down
-v` leaves no container, network, volume or kernel object behind."""

import os
import shutil
import subprocess

import pytest
from netutil import free_port, http_get, settle

pytestmark = [pytest.mark.network, pytest.mark.root]

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    image: busybox:latest
    command: sh -c 'hostname > /srv/index.html; echo kept > /srv/kept; exec httpd -f -p 80 -h /srv'
    volumes:
      - data:/srv
    ports:
      - "{port}:80"
    stop_grace_period: 1s
  client:
    image: busybox:latest
    command: sleep 300
    depends_on: [web]
    stop_grace_period: 1s
volumes:
  data: {{}}
"""


@pytest.fixture
def compose(pyboxd, tmp_path):
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.skip("needs Debian's docker-compose (apt-get install docker-compose)")
    project = f"pbxc{os.getpid()}"

    def run(*args, check=True):
        proc = subprocess.run([exe, "-p", project, *args], cwd=tmp_path, env=pyboxd.env,
                              capture_output=True, text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {proc.returncode}: "
                                 f"{proc.stderr}\n{pyboxd.log_tail(1500)}")
        return proc
    run.project = project
    run.dir = tmp_path
    yield run
    run("down", "-v", "--remove-orphans", check=False)


def test_compose_up_service_names_volume_port_and_down(pyboxd, compose):
    port = free_port()
    (compose.dir / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    compose("up", "-d")
    project = compose.project
    # the client reaches the web service by its service name
    out = pyboxd.docker("exec", f"{project}_client_1", "wget", "-qO-", "http://web/").stdout
    web_hostname = pyboxd.inspect(f"{project}_web_1")["Config"]["Hostname"]
    assert out.strip() == web_hostname
    out = compose("exec", "-T", "client", "wget", "-qO-", "http://web/kept").stdout
    assert out.strip() == "kept"
    # the published port, from the host
    assert settle(lambda: web_hostname in _get(port)), pyboxd.log_tail()
    # the named volume holds what web wrote
    volumes = pyboxd.docker("volume", "ls", "-q").stdout.split()
    assert f"{project}_data" in volumes
    networks = pyboxd.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{project}_default" in networks
    compose("down", "-v")
    assert pyboxd.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"
                         ).stdout.strip() == ""
    assert f"{project}_default" not in pyboxd.docker("network", "ls").stdout
    assert f"{project}_data" not in pyboxd.docker("volume", "ls", "-q").stdout.split()
    assert pyboxd.leftovers() == {}


def _get(port):
    try:
        return http_get("127.0.0.1", port, "/")
    except OSError:
        return ""
