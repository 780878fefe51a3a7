"""Limits change what processes can do, not only what files say."""

import errno
import os
import time

import pytest

from pybox.cgroups.layout import detect
from pybox.cgroups.v2 import V2Manager
from support.wait import wait_for

from .conftest import has_cgroups, on_hybrid, unique, uses_v1

pytestmark = [pytest.mark.root, has_cgroups]
MiB = 1 << 20

COUNTER = r"""
import os
fd = os.open(os.environ["COUNTER_FILE"], os.O_WRONLY | os.O_CREAT, 0o600)
n = 0
while True:
    n += 1
    os.pwrite(fd, b"%020d" % n, 0)
"""


def read_counter(path):
    try:
        with open(path, "rb") as f:
            data = f.read().strip()
    except FileNotFoundError:  # the child has not started counting yet
        return 0
    return int(data) if data else 0


def start_counter(helper, tmp_path, monkeypatch):
    path = tmp_path / "counter"
    monkeypatch.setenv("COUNTER_FILE", str(path))
    return helper(COUNTER), str(path)


def test_freeze_stops_a_counting_process_and_thaw_resumes_it(make_manager, helper, tmp_path,
                                                              monkeypatch):
    mgr = make_manager()
    child, counter = start_counter(helper, tmp_path, monkeypatch)
    mgr.add(child.pid)
    child.go()
    assert wait_for(lambda: read_counter(counter) > 100)
    mgr.freeze()
    assert mgr.is_frozen()
    frozen_at = read_counter(counter)
    time.sleep(0.5)
    assert read_counter(counter) == frozen_at
    mgr.thaw()
    assert not mgr.is_frozen()
    assert wait_for(lambda: read_counter(counter) > frozen_at)


@on_hybrid
def test_cgroup2_freezer_on_a_hybrid_host(helper, tmp_path, monkeypatch):
    """The unified half of a hybrid host has cgroup.freeze even with no controllers."""
    layout = detect()
    mgr = V2Manager.for_layout(layout, f"/{unique('frz2')}/ctr", "x", partial=True)
    if not os.path.exists(os.path.join(layout.unified.mountpoint, "cgroup.procs")):
        pytest.skip("cgroup2 mount unusable")
    mgr.create()
    try:
        if not mgr._can_freeze():
            pytest.skip("kernel without cgroup.freeze")
        child, counter = start_counter(helper, tmp_path, monkeypatch)
        mgr.add(child.pid)
        child.go()
        assert wait_for(lambda: read_counter(counter) > 100)
        mgr.freeze()
        frozen_at = read_counter(counter)
        time.sleep(0.5)
        assert read_counter(counter) == frozen_at
        mgr.thaw()
        assert wait_for(lambda: read_counter(counter) > frozen_at)
    finally:
        mgr.destroy()
    assert not os.path.exists(mgr.dir)


def test_pids_max_makes_fork_fail(make_manager, helper):
    mgr = make_manager({"pids": {"limit": 1}})
    child = helper(r"""
try:
    pid = os.fork()
except BlockingIOError as e:
    print("EAGAIN", e.errno)
else:
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("forked")
""")
    mgr.add(child.pid)
    child.go()
    code, out, err = child.finish()
    assert code == 0, err
    assert out.strip() == f"EAGAIN {errno.EAGAIN}"


def test_memory_limit_oom_kills_an_allocating_process(make_manager, helper):
    mgr = make_manager()
    limit = 48 * MiB
    memory = {"limit": limit}
    # No swap to escape into: memory+swap equal to the limit (v2: swap.max 0).
    if uses_v1(mgr, "memory"):
        if os.path.exists(os.path.join(mgr.paths["memory"], "memory.memsw.limit_in_bytes")):
            memory["swap"] = limit
    elif os.path.exists(os.path.join(mgr.paths[""], "memory.swap.max")):
        memory["swap"] = limit
    mgr.apply({"memory": memory})
    assert mgr.oom_kill_count() == 0
    child = helper(r"""
chunks = []
for i in range(400):
    chunks.append(b"\x01" * (1 << 20))
print("survived")
""")
    mgr.add(child.pid)
    child.go()
    code, out, err = child.finish(timeout=120)
    assert code == -9, (code, out, err)
    assert "survived" not in out
    assert wait_for(lambda: mgr.oom_kill_count() > 0, timeout=5)


def test_devices_rule_makes_opening_a_denied_device_fail(make_manager, helper):
    mgr = make_manager({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    ]})
    child = helper(r"""
for dev in ("/dev/null", "/dev/zero"):
    try:
        os.close(os.open(dev, os.O_RDWR))
        print(dev, "ok")
    except OSError as e:
        print(dev, e.errno)
""")
    mgr.add(child.pid)
    child.go()
    code, out, err = child.finish()
    assert code == 0, err
    assert out.splitlines() == [f"/dev/null {errno.EPERM}", "/dev/zero ok"]


def test_devices_update_allows_again(make_manager, helper):
    deny_null = [{"allow": True, "access": "rwm"},
                 {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    mgr = make_manager({"devices": deny_null})
    mgr.update({"devices": [{"allow": True, "access": "rwm"}]})
    child = helper(r"""
os.close(os.open("/dev/null", os.O_RDWR)); print("ok")
""")
    mgr.add(child.pid)
    child.go()
    assert child.finish()[1].strip() == "ok"


def test_cpu_quota_holds_a_busy_loop_near_its_share(make_manager, helper):
    mgr = make_manager({"cpu": {"quota": 20000, "period": 100000}})
    child = helper(r"""
import time
end = time.monotonic() + 3.0
while time.monotonic() < end:
    pass
t = os.times()
print(t.user + t.system)
""")
    mgr.add(child.pid)
    start = time.monotonic()
    child.go()
    code, out, err = child.finish()
    wall = time.monotonic() - start
    assert code == 0, err
    share = float(out) / wall
    # 20% of one cpu; generous bounds (scheduler granularity, slow emulators)
    assert 0.03 < share < 0.45, share


def test_live_memory_update_up_and_down(make_manager, helper):
    mgr = make_manager({"memory": {"limit": 64 * MiB}})
    file_v1, file_v2 = "memory.limit_in_bytes", "memory.max"
    from .conftest import knob
    mgr.update({"memory": {"limit": 128 * MiB}})
    assert int(knob(mgr, "memory", file_v1, file_v2)) == 128 * MiB
    mgr.update({"memory": {"limit": 32 * MiB}})
    assert int(knob(mgr, "memory", file_v1, file_v2)) == 32 * MiB


def test_lowering_memory_below_what_processes_use_is_refused(make_manager, helper):
    from pybox.errors import CgroupError

    from .conftest import knob

    mgr = make_manager()
    limit = 256 * MiB
    memory = {"limit": limit}
    if uses_v1(mgr, "memory") and os.path.exists(
            os.path.join(mgr.paths["memory"], "memory.memsw.limit_in_bytes")):
        memory["swap"] = limit
    mgr.apply({"memory": memory})
    child = helper(r"""
hold = [b"\x01" * (1 << 20) for _ in range(96)]
print("holding", flush=True)
sys.stdin.readline()
""")
    mgr.add(child.pid)
    child.go()
    assert child.proc.stdout.readline().strip() == "holding"
    with pytest.raises(CgroupError) as info:
        mgr.update({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    assert str(info.value).startswith("linux.resources.memory")
    assert "below" in str(info.value)
    assert child.proc.poll() is None  # not OOM-killed
    assert int(knob(mgr, "memory", "memory.limit_in_bytes", "memory.max")) >= 16 * MiB
    child.go()
    assert child.finish()[0] == 0
