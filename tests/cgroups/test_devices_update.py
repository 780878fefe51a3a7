"""Device rules changed on a live cgroup (Manager.update with a device list):
cgroup v1 reaches the new list through devices.allow/deny writes; cgroup v2
swaps the eBPF program in one BPF_F_REPLACE attach, so exactly one program is
attached before and after.  (pybox-runtime's update leaves devices alone, as
runc's; this is the cgroups layer, which other callers use.)"""

import errno
import os
import struct

import pytest

from pybox.cgroups import ebpf
from pybox.linux import syscalls

from .conftest import MODE, has_cgroups, on_v2, uses_v1

pytestmark = [pytest.mark.root, has_cgroups]

DENY_ALL = {"allow": False, "access": "rwm"}


def allow(major, minor):
    return {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}


OPEN_SH = r"""
for dev in ("/dev/null", "/dev/zero", "/dev/full"):
    try:
        os.close(os.open(dev, os.O_RDWR))
        print(dev, "ok")
    except OSError as e:
        print(dev, e.errno)
"""


def program_ids(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return ebpf.query(fd)
    finally:
        os.close(fd)


def test_update_reaches_the_new_rules(make_manager, helper):
    mgr = make_manager({"devices": [DENY_ALL, allow(1, 3)]})  # /dev/null
    mgr.update({"devices": [DENY_ALL, allow(1, 3), allow(1, 5)]})  # + /dev/zero
    child = helper(OPEN_SH)
    mgr.add(child.pid)
    child.go()
    code, out, err = child.finish()
    assert code == 0, err
    assert out.splitlines() == ["/dev/null ok", "/dev/zero ok", f"/dev/full {errno.EPERM}"]
    if uses_v1(mgr, "devices"):
        with open(mgr.paths["devices"] + "/devices.list") as f:
            assert f.read().splitlines() == ["c 1:3 rwm", "c 1:5 rwm"]


class Recording:
    """The real syscalls, noting each bpf(2) command and its attach flags."""

    def __init__(self, real):
        self.real = real
        self.calls = []

    def bpf(self, cmd, attr, size):
        flags = struct.unpack_from("<I", attr, 12)[0] if cmd in (
            ebpf.BPF_PROG_ATTACH, ebpf.BPF_PROG_DETACH) else None
        self.calls.append((cmd, flags))
        return self.real.bpf(cmd, attr, size)


@on_v2
def test_v2_update_swaps_the_one_program(make_manager, monkeypatch):
    mgr = make_manager({"devices": [DENY_ALL, allow(1, 3)]})
    directory = mgr.paths[""]
    before = program_ids(directory)
    assert len(before) == 1
    recording = Recording(syscalls.real())
    monkeypatch.setattr(ebpf, "_syscalls", lambda: recording)
    mgr.update({"devices": [DENY_ALL, allow(1, 3), allow(1, 5)]})
    after = program_ids(directory)
    assert len(after) == 1 and after != before, (before, after)
    # one attach that replaces, no detach: never two programs, never none
    attaches = [c for c in recording.calls if c[0] in (ebpf.BPF_PROG_ATTACH,
                                                       ebpf.BPF_PROG_DETACH)]
    assert attaches == [(ebpf.BPF_PROG_ATTACH, ebpf.BPF_F_ALLOW_MULTI | ebpf.BPF_F_REPLACE)]


@pytest.mark.skipif(MODE == "v2", reason="v1 devices controller")
def test_v1_update_writes_only_the_difference(make_manager):
    mgr = make_manager({"devices": [DENY_ALL, allow(1, 3), allow(1, 5)]})
    if not uses_v1(mgr, "devices"):
        pytest.skip("the devices controller is not mounted as v1 here")
    mgr.update({"devices": [DENY_ALL, allow(1, 3), allow(1, 7)]})
    with open(mgr.paths["devices"] + "/devices.list") as f:
        assert f.read().splitlines() == ["c 1:3 rwm", "c 1:7 rwm"]
