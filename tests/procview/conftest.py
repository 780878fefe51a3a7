"""Fixtures for the /proc view: the private pyboxd of tests/support (its own
socket, data root and exec root, a busybox image, leak checks at the end:
no process mentioning its exec root -- the procview server included -- no
mount, no cgroup left), and the pybox CLI pointed at it."""

import os
import subprocess

import pytest

from support.fixtures import running
from support.names import NameBook
from support.paths import PYTHON, SRC, pybox_argv  # noqa: F401 (PYTHON: for the tests)
from support.pyboxd import Pyboxd

# the host's Python, shown read-only inside a busybox container (Debian 12:
# /lib and /lib64 are links into /usr)
HOST_PYTHON_BINDS = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro",
                     "-v", "/usr/lib64:/lib64:ro"]


class PyboxCLI:
    def __init__(self, daemon):
        self.daemon = daemon
        self.argv = pybox_argv() + ["-H", daemon.host]
        self.env = dict(os.environ, PYTHONPATH=SRC)

    def __call__(self, *args, check=True, timeout=60):
        proc = subprocess.run(self.argv + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"pybox {' '.join(args)} -> {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}\n"
                                 f"pyboxd log:\n{self.daemon.log_tail(2000)}")
        return proc

    def out(self, *args, **kw):
        return self(*args, **kw).stdout


@pytest.fixture(scope="session")
def pvd():
    """A private pyboxd (the /proc view on, its default)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from pybox.procview.control import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"the /proc view cannot run here: {reason}")
    with running(Pyboxd()) as d:
        yield d


@pytest.fixture(scope="session")
def pybox(pvd):
    return PyboxCLI(pvd)


@pytest.fixture
def names(pvd):
    """names() -> a unique container name; each is removed at the end."""
    book = NameBook(pvd, prefix="pv")
    yield book
    book.cleanup()
