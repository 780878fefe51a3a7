"""Fixtures for the /proc view: the private pyboxd of tests/engine (its own
socket, data root and exec root, a busybox image, leak checks at the end:
no process mentioning its exec root -- the procview server included -- no
mount, no cgroup left), and the pybox CLI pointed at it."""

import os
import shutil
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
SRC = os.path.join(os.path.dirname(TESTS), "src")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

PYTHON = "/opt/pybox/bin/python" if os.path.exists("/opt/pybox/bin/python") else sys.executable

# the host's Python, shown read-only inside a busybox container (Debian 12:
# /lib and /lib64 are links into /usr)
HOST_PYTHON_BINDS = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro",
                     "-v", "/usr/lib64:/lib64:ro"]


def pybox_argv():
    """The installed fast launcher when it runs this checkout, else python -m."""
    launcher = shutil.which("pybox")
    if launcher:
        with open(launcher) as f:
            if SRC in f.read():
                return [launcher]
    return [PYTHON, "-m", "pybox.cli.pybox"]


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
    # the shared private-pyboxd fixture (imported here: the kernel-side tests of
    # this directory, which run in the v2 VM too, do not need it)
    from engine.conftest import Pyboxd

    d = Pyboxd()
    try:
        d.start()
        d.import_busybox()
    except BaseException:
        d.stop()
        raise
    yield d
    problems = d.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def pybox(pvd):
    return PyboxCLI(pvd)


@pytest.fixture
def names(pvd):
    """names() -> a unique container name; each is removed at the end."""
    made = []

    def new(prefix="pv"):
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield new
    if made:
        existing = set(pvd.docker("ps", "-a", "--format", "{{.Names}}").stdout.split())
        mine = [n for n in made if n in existing]
        if mine:
            pvd.docker("rm", "-f", *mine, timeout=120)
