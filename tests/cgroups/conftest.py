"""Fixtures for the real-cgroup tests: unique pybox-test- names, managers that
are always destroyed, and helper processes that join a cgroup before acting.

These tests run on whatever layout the host has (v1 and hybrid here, pure v2 in
the qemu VM of tests/v2vm), so nothing below assumes a mount point: expected
file names come from the manager's own paths and version."""

import os
import subprocess
import sys
import uuid

import pytest

from pybox import cgroups

try:
    LAYOUT = cgroups.detect_layout()
except Exception:  # no cgroups at all: every test here skips
    LAYOUT = None

MODE = LAYOUT.mode if LAYOUT else None
on_v1_files = pytest.mark.skipif(MODE not in ("v1", "hybrid"), reason="cgroup v1 files only")
on_v2 = pytest.mark.skipif(MODE != "v2", reason="needs a pure cgroup v2 host")
on_hybrid = pytest.mark.skipif(MODE != "hybrid", reason="needs a hybrid host (v1 + cgroup2)")
has_cgroups = pytest.mark.skipif(LAYOUT is None, reason="no cgroup filesystem mounted")


def unique(tag):
    return f"pybox-test-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_manager():
    """new_manager(...) whose cgroups are destroyed after the test, and checked gone."""
    made = []

    def make(resources=None, *, path=None, tag="cg", create=True, **kw):
        cgroups_path = path if path is not None else f"/{unique(tag)}/ctr"
        mgr = cgroups.new_manager(cgroups_path, unique(tag), **kw)
        made.append(mgr)
        if create:
            mgr.create()
            if resources is not None:
                mgr.apply(resources)
        return mgr

    yield make
    for mgr in made:
        created = list(mgr.to_state()["created"])
        mgr.destroy()
        left = [d for d in created if os.path.exists(d)]
        assert not left, f"destroy left {left}"


CHILD = r"""
import os, sys
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
""".lstrip()


class Helper:
    """A Python child that waits on stdin, so a test can move it into a cgroup
    before it does the thing under test."""

    def __init__(self, body):
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", CHILD + body],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def helper():
    started = []

    def start(body):
        h = Helper(body)
        started.append(h)
        return h

    yield start
    for h in started:
        h.kill()


def knob(mgr, v1_controller, v1_file, v2_file):
    """Read a cgroup file where this manager keeps it: the v1 controller's
    directory if that controller is mounted as v1, else the cgroup2 directory."""
    if v1_controller in mgr.paths and mgr.paths.get(v1_controller) and v1_controller != "":
        path = os.path.join(mgr.paths[v1_controller], v1_file)
    else:
        path = os.path.join(mgr.paths[""], v2_file)
    with open(path) as f:
        return f.read().strip()


def uses_v1(mgr, controller):
    return controller in mgr.paths


def unified_controllers(mgr):
    d = mgr.paths.get("")
    if d is None:
        return ()
    try:
        with open(os.path.join(d, "cgroup.controllers")) as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def block_device():
    """(major, minor) of a real whole-disk block device, or None."""
    best = None
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        return None
    for name in names:
        if name.startswith(("loop", "ram", "zram")):
            continue
        try:
            with open(f"/sys/block/{name}/dev") as f:
                major, minor = f.read().strip().split(":")
            with open(f"/sys/block/{name}/size") as f:
                if int(f.read()) == 0:
                    continue
        except OSError:
            continue
        best = (int(major), int(minor))
        break
    return best


def absent_block_device():
    present = set(os.listdir("/sys/dev/block")) if os.path.isdir("/sys/dev/block") else set()
    for major in (240, 241, 242, 7):
        for minor in (250, 251, 199):
            if f"{major}:{minor}" not in present:
                return major, minor
    return 240, 250
