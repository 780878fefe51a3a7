"""docker pull / push / login / run with DOCKER_HOST pointed at pyboxd, against
the local registries.  pyboxd runs with a daemon.json naming the plain registry
as Docker Hub's mirror, and with every proxy pointed at a dead local port, so
nothing it does can leave the machine."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from .conftest import PASSWORD, USER, ImageSpec, free_port, random_layer, skopeo_inspect, unique

pytestmark = [pytest.mark.registry, pytest.mark.root]

DOCKER = "/usr/local/bin/docker"
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "src")
PYTHON = "/opt/pybox/bin/python" if os.path.exists("/opt/pybox/bin/python") else sys.executable


class Daemon:
    def __init__(self, mirror):
        self.base = tempfile.mkdtemp(prefix="pybox-test-regd-")
        self.socket = os.path.join(self.base, "pybox.sock")
        self.exec_root = f"/run/pbrg-{uuid.uuid4().hex[:8]}"
        self.config = os.path.join(self.base, "daemon.json")
        with open(self.config, "w") as f:
            json.dump({"registry-mirrors": [mirror], "max-concurrent-downloads": 2}, f)
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.socket,
                        DOCKER_CONFIG=os.path.join(self.base, "cli"), DOCKER_CLI_HINTS="false")
        self.env.pop("DOCKER_CONTEXT", None)
        self.log = os.path.join(self.base, "pyboxd.log")
        self.process = None

    def start(self):
        dead = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, PYTHONPATH=SRC, HTTPS_PROXY=dead, HTTP_PROXY=dead,
                   NO_PROXY="127.0.0.1")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "pybox.cli.pyboxd", "-H", "unix://" + self.socket,
                 "--data-root", os.path.join(self.base, "data"), "--exec-root", self.exec_root,
                 "--config-file", self.config],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while self.docker("version").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pyboxd did not start:\n" + open(self.log).read()[-3000:])
            time.sleep(0.1)

    def docker(self, *args, timeout=120):
        return subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args, **kw):
        proc = self.docker(*args, **kw)
        assert proc.returncode == 0, f"docker {args}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def stop(self):
        if self.process and self.process.poll() is None:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(self.base)), key=len,
                            reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        import shutil

        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(registry):
    if not os.path.exists(DOCKER):
        pytest.skip(f"needs the docker CLI at {DOCKER}")
    d = Daemon(f"http://{registry.host}")
    try:
        d.start()
        yield d
    finally:
        d.stop()


def test_docker_pull_shows_dockers_progress_and_the_image_is_there(daemon, published,
                                                                   busybox_layer):
    info = published([ImageSpec([busybox_layer, random_layer(unique(), 500_000)])])
    out = daemon.ok("pull", info["ref"])
    for digest in info["layers"][0]:
        assert f"{digest[7:19]}: Pull complete" in out
    assert f"Digest: {info['digests'][0]}" in out
    assert f"Status: Downloaded newer image for {info['ref']}" in out
    assert out.strip().endswith(info["ref"])
    again = daemon.ok("pull", info["ref"])
    assert f"Status: Image is up to date for {info['ref']}" in again
    listed = daemon.ok("images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
    assert f"{info['ref'].rsplit(':', 1)[0]} {info['digests'][0]}" in listed


def test_docker_run_pulls_a_missing_image(daemon, published, busybox_layer):
    # a layer of its own: the busybox layer, pulled by other tests, would be
    # "Already exists" rather than "Pull complete"
    info = published([ImageSpec([busybox_layer, random_layer(unique(), 1000)])])
    proc = daemon.docker("run", "--rm", info["ref"], "echo", "hello-from-the-registry")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello-from-the-registry"
    assert f"Unable to find image '{info['ref']}' locally" in proc.stderr
    assert "Pull complete" in proc.stderr


def test_docker_pull_errors(daemon, published, registry, busybox_layer):
    info = published([ImageSpec([busybox_layer]),
                      ImageSpec([random_layer(unique(), 100)], arch="s390x")])
    missing = info["ref"].replace(":latest", ":nope")
    proc = daemon.docker("pull", missing)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"Error response from daemon: manifest for {missing} not "
                                   "found: manifest unknown: manifest unknown")
    proc = daemon.docker("pull", "--platform", "linux/mips64", info["ref"])
    assert proc.returncode == 1
    assert "no matching manifest for linux/mips64 in the manifest list entries" in proc.stderr
    proc = daemon.docker("run", "--rm", missing, "true")
    assert proc.returncode == 125
    assert "manifest unknown" in proc.stderr


def test_docker_pull_through_the_mirror(daemon, published, busybox_layer):
    name = unique("mirrored")
    info = published([ImageSpec([busybox_layer])], repo=f"library/{name}")
    out = daemon.ok("pull", name)
    assert f"Digest: {info['digests'][0]}" in out
    assert f"Status: Downloaded newer image for {name}:latest" in out
    assert daemon.ok("images", "--format", "{{.Repository}}:{{.Tag}}", name).strip() == \
        f"{name}:latest"


def test_docker_push_then_skopeo_sees_it(daemon, published, registry, busybox_layer):
    info = published([ImageSpec([busybox_layer])])
    daemon.ok("pull", info["ref"])
    target = f"{registry.host}/fromdocker/{unique()}:v1"
    daemon.ok("tag", info["ref"], target)
    out = daemon.ok("push", target)
    assert f"The push refers to repository [{target.rsplit(':', 1)[0]}]" in out
    assert f"v1: digest: {info['digests'][0]} size:" in out
    assert skopeo_inspect(target)["Digest"] == info["digests"][0]
    proc = daemon.docker("push", f"{registry.host}/nothing/{unique()}:x")
    assert proc.returncode == 1
    assert "An image does not exist locally with the tag" in proc.stderr


def test_docker_login_pull_push_logout(daemon, auth_registry, busybox_layer, published):
    info = published([ImageSpec([busybox_layer])], server=auth_registry,
                     creds=f"{USER}:{PASSWORD}")
    proc = daemon.docker("pull", info["ref"])
    assert proc.returncode == 1
    assert "pull access denied" in proc.stderr or "unauthorized" in proc.stderr
    proc = daemon.docker("login", "-u", USER, "--password-stdin", auth_registry.host,
                         timeout=60) if False else subprocess.run(
        [DOCKER, "login", "-u", USER, "--password-stdin", auth_registry.host],
        input=PASSWORD, env=daemon.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Login Succeeded" in proc.stdout
    daemon.ok("pull", info["ref"])
    target = f"{auth_registry.host}/private/{unique()}:p"
    daemon.ok("tag", info["ref"], target)
    daemon.ok("push", target)
    assert skopeo_inspect(target, creds=f"{USER}:{PASSWORD}")["Digest"] == info["digests"][0]
    daemon.ok("logout", auth_registry.host)
    wrong = subprocess.run([DOCKER, "login", "-u", USER, "--password-stdin",
                            auth_registry.host], input="wrong", env=daemon.env,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1
    assert "401 Unauthorized" in wrong.stderr


def test_docker_py_pull(daemon, published, busybox_layer):
    docker = pytest.importorskip("docker")
    info = published([ImageSpec([busybox_layer])])
    client = docker.DockerClient(base_url=daemon.env["DOCKER_HOST"], timeout=60)
    try:
        repo, tag = info["ref"].rsplit(":", 1)
        image = client.images.pull(repo, tag=tag)
        assert image.id == info["configs"][0]
        events = list(client.api.pull(repo, tag=tag, stream=True, decode=True))
        assert events[-1]["status"] == f"Status: Image is up to date for {info['ref']}"
    finally:
        client.close()
