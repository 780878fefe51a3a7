"""The pytest fixtures every pyboxd-driving directory shares.  A conftest.py
makes them its own by importing them by name (pytest collects fixtures from a
conftest's namespace): ``from support.fixtures import pyboxd, names``."""

import contextlib
import os

import pytest

from support.names import NameBook
from support.paths import DOCKER
from support.pyboxd import Pyboxd
from support.unixhttp import TIMEOUT


def needs_root_and_docker_cli() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists(DOCKER):
        pytest.skip(f"needs the docker CLI at {DOCKER}")


@contextlib.contextmanager
def running(daemon: Pyboxd, setup=None):
    """Start ``daemon``, import busybox (and call ``setup(daemon)``), yield it;
    at the end stop it and fail on anything it left behind; stopped too when the
    body raises (a script's `with running(...)` left its pyboxd running)."""
    try:
        daemon.start()
        daemon.import_busybox()
        if setup is not None:
            setup(daemon)
    except BaseException:
        daemon.stop()
        raise
    try:
        yield daemon
    except BaseException:
        daemon.stop()  # the body's error is the one to see, not leftovers it caused
        raise
    problems = daemon.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def pyboxd():
    """One private pyboxd per test session (per xdist worker), leak-checked at the end."""
    needs_root_and_docker_cli()
    with running(Pyboxd()) as d:
        yield d


@pytest.fixture
def names(pyboxd):
    """names() -> a unique container name; each is `docker rm -f`'d at the end."""
    book = NameBook(pyboxd)
    yield book
    book.cleanup()


@pytest.fixture
def images_made(pyboxd):
    """A list to append image references to; each is `docker rmi -f`'d at the end."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        pyboxd.docker("rmi", "-f", ref)


@pytest.fixture
def no_traceback(pyboxd):
    """The daemon's log while the test runs (this worker's pyboxd serves one
    test at a time) must hold no Python traceback."""
    start = os.path.getsize(pyboxd.log_path)
    yield
    with open(pyboxd.log_path, errors="replace") as f:
        f.seek(start)
        logged = f.read()
    assert "Traceback" not in logged, logged[-6000:]


@pytest.fixture(scope="session")
def dockerpy(pyboxd):
    docker = pytest.importorskip("docker", reason="docker-py (./install.sh --dev)")
    client = docker.DockerClient(base_url=pyboxd.host, timeout=TIMEOUT)
    yield client
    client.close()
