"""Fixtures for the client tests: one private dockerd per test session (see
tests/support/dockerd.py), the pybox CLI and the real docker CLI pointed at it, and a logging
proxy (../shared/docs/docker-api/proxy.py) in front of it when a test compares
what the two clients send."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from support.dockerd import PrivateDockerd
from support.install import ensure_installed
from support.paths import DOCKER, REPO, SRC, pybox_argv  # noqa: F401 (the tests import DOCKER, pybox_argv)

PROXY = os.path.join(os.path.dirname(REPO), "shared", "docs", "docker-api", "proxy.py")


class CLI:
    """One client (ours or docker's) against one socket."""

    def __init__(self, argv, env):
        self.argv = argv
        self.env = env

    def __call__(self, *args, input=None, check=False, timeout=120):
        proc = subprocess.run(self.argv + list(args), input=input, env=self.env,
                              capture_output=True, timeout=timeout)
        proc.out = proc.stdout.decode(errors="replace")
        proc.err = proc.stderr.decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"{args}: exit {proc.returncode}: {proc.err}")
        return proc


@pytest.fixture(scope="session")
def dockerd():
    if os.geteuid() != 0:
        pytest.skip("needs root to run dockerd")
    ensure_installed({"dockerd": "docker.io", "containerd": "containerd"})
    if not shutil.which("docker"):
        pytest.skip("no docker CLI on PATH")
    daemon = PrivateDockerd()
    try:
        daemon.start()
        daemon.import_busybox()
        yield daemon
    finally:
        daemon.stop()


def _env(base):
    return dict(os.environ, PYTHONPATH=SRC, DOCKER_CONFIG=os.path.join(base, "cli"),
                LANG="C.UTF-8")


@pytest.fixture(scope="session")
def pybox(dockerd):
    return CLI(pybox_argv() + ["-H", dockerd.host], _env(dockerd.base))


@pytest.fixture(scope="session")
def docker(dockerd):
    return CLI([DOCKER, "-H", dockerd.host], _env(dockerd.base))


class Proxy:
    """proxy.py between a client and the private dockerd; ``requests()`` returns
    what it logged since the last ``clear()``."""

    def __init__(self, dockerd):
        self.base = dockerd.base
        self.socket = os.path.join(dockerd.base, f"proxy-{uuid.uuid4().hex[:6]}.sock")
        self.jsonl = self.socket + ".jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, PROXY, "--listen", f"unix:{self.socket}",
             "--upstream", f"unix:{dockerd.socket}", "--log", self.socket + ".log",
             "--jsonl", self.jsonl], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("the logging proxy did not start")
            time.sleep(0.05)
        self.host = f"unix://{self.socket}"

    def clear(self):
        open(self.jsonl, "w").close()

    def events(self):
        time.sleep(0.2)
        with open(self.jsonl) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def proxy(dockerd):
    if not os.path.exists(PROXY):
        pytest.skip(f"no logging proxy at {PROXY}")
    p = Proxy(dockerd)
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def name():
    return f"pbx-{uuid.uuid4().hex[:8]}"
