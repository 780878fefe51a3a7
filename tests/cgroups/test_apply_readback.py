"""Every linux.resources field written to a real cgroup and read back from the
file the kernel exposes (v1 names here, v2 names in the VM)."""

import os

import pytest

from .conftest import block_device, has_cgroups, knob, on_v1_files, on_v2, unified_controllers, uses_v1

pytestmark = [pytest.mark.root, has_cgroups]
MiB = 1 << 20


def test_memory_limit_and_reservation(make_manager):
    mgr = make_manager({"memory": {"limit": 64 * MiB, "reservation": 32 * MiB}})
    assert int(knob(mgr, "memory", "memory.limit_in_bytes", "memory.max")) == 64 * MiB
    assert int(knob(mgr, "memory", "memory.soft_limit_in_bytes", "memory.low")) == 32 * MiB


def test_memory_swap(make_manager):
    mgr = make_manager(create=True)
    if uses_v1(mgr, "memory"):
        if not os.path.exists(os.path.join(mgr.paths["memory"], "memory.memsw.limit_in_bytes")):
            pytest.skip("swap accounting disabled")
    elif not os.path.exists(os.path.join(mgr.paths[""], "memory.swap.max")):
        pytest.skip("no memory.swap.max")
    mgr.apply({"memory": {"limit": 64 * MiB, "swap": 96 * MiB}})
    if uses_v1(mgr, "memory"):
        assert int(knob(mgr, "memory", "memory.memsw.limit_in_bytes", "")) == 96 * MiB
    else:
        assert int(knob(mgr, "memory", "", "memory.swap.max")) == 32 * MiB  # swap - limit


@on_v1_files
def test_v1_only_memory_knobs(make_manager):
    mgr = make_manager({"memory": {"swappiness": 7, "disableOOMKiller": True,
                                   "kernelTCP": 16 * MiB, "useHierarchy": True}})
    assert knob(mgr, "memory", "memory.swappiness", "") == "7"
    assert "oom_kill_disable 1" in knob(mgr, "memory", "memory.oom_control", "")
    assert int(knob(mgr, "memory", "memory.kmem.tcp.limit_in_bytes", "")) == 16 * MiB


def test_cpu_shares_quota_period(make_manager):
    mgr = make_manager({"cpu": {"shares": 512, "quota": 20000, "period": 100000}})
    if uses_v1(mgr, "cpu"):
        assert knob(mgr, "cpu", "cpu.shares", "") == "512"
        assert knob(mgr, "cpu", "cpu.cfs_quota_us", "") == "20000"
        assert knob(mgr, "cpu", "cpu.cfs_period_us", "") == "100000"
    else:
        assert knob(mgr, "cpu", "", "cpu.weight") == "59"
        assert knob(mgr, "cpu", "", "cpu.max") == "20000 100000"


def test_cpu_burst_and_idle(make_manager):
    mgr = make_manager()
    burst_file = os.path.join(mgr.paths.get("cpu") or mgr.paths[""],
                              "cpu.cfs_burst_us" if uses_v1(mgr, "cpu") else "cpu.max.burst")
    if not os.path.exists(burst_file):
        pytest.skip("kernel without cpu burst")
    mgr.apply({"cpu": {"quota": 50000, "period": 100000, "burst": 10000, "idle": 1}})
    assert knob(mgr, "cpu", "cpu.cfs_burst_us", "cpu.max.burst") == "10000"
    assert knob(mgr, "cpu", "cpu.idle", "cpu.idle") == "1"


@on_v1_files
def test_cpu_realtime(make_manager):
    mgr = make_manager()
    if not os.path.exists(os.path.join(mgr.paths["cpu"], "cpu.rt_runtime_us")):
        pytest.skip("kernel without CONFIG_RT_GROUP_SCHED")
    mgr.apply({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}})
    assert knob(mgr, "cpu", "cpu.rt_period_us", "") == "1000000"
    assert knob(mgr, "cpu", "cpu.rt_runtime_us", "") == "10000"


def test_cpuset(make_manager):
    mgr = make_manager({"cpu": {"cpus": "0", "mems": "0"}})
    assert knob(mgr, "cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    assert knob(mgr, "cpuset", "cpuset.mems", "cpuset.mems") == "0"


def test_pids(make_manager):
    mgr = make_manager({"pids": {"limit": 10}})
    assert knob(mgr, "pids", "pids.max", "pids.max") == "10"
    mgr.update({"pids": {"limit": -1}})
    assert knob(mgr, "pids", "pids.max", "pids.max") == "max"


def test_blkio_weight(make_manager):
    mgr = make_manager()
    d = mgr.paths.get("blkio") or mgr.paths[""]
    names = (["blkio.weight", "blkio.bfq.weight"] if uses_v1(mgr, "blkio")
             else ["io.bfq.weight", "io.weight"])
    present = [n for n in names if os.path.exists(os.path.join(d, n))]
    if not present:
        pytest.skip("no proportional io weight in this kernel")
    mgr.apply({"blockIO": {"weight": 500}})
    with open(os.path.join(d, present[0])) as f:
        text = f.read()
    expected = "4950" if present[0] == "io.weight" else "500"
    assert expected in text.split()


def test_blkio_throttle(make_manager):
    dev = block_device()
    if dev is None:
        pytest.skip("no block device")
    major, minor = dev
    mgr = make_manager({"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 2 * MiB}],
        "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": MiB}],
        "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 200}]}})
    if uses_v1(mgr, "blkio"):
        assert knob(mgr, "blkio", "blkio.throttle.write_bps_device", "") == f"{major}:{minor} {MiB}"
        assert knob(mgr, "blkio", "blkio.throttle.read_iops_device", "") == f"{major}:{minor} 300"
    else:
        line = knob(mgr, "blkio", "", "io.max")
        assert f"{major}:{minor} rbps={2 * MiB} wbps={MiB} riops=300 wiops=200" in line


def test_hugetlb(make_manager):
    mgr = make_manager()
    if "hugetlb" not in mgr.paths and "hugetlb" not in unified_controllers(mgr):
        pytest.skip("hugetlb controller unavailable")
    mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    assert int(knob(mgr, "hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max")) == 4 * MiB


def test_network_classid_and_priorities(make_manager):
    mgr = make_manager()
    if "net_cls" not in mgr.paths or "net_prio" not in mgr.paths:
        pytest.skip("net_cls/net_prio not mounted as v1 here")
    mgr.apply({"network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 3}]}})
    assert knob(mgr, "net_cls", "net_cls.classid", "") == str(0x100001)
    assert "lo 3" in knob(mgr, "net_prio", "net_prio.ifpriomap", "")


@on_v1_files
def test_devices_list_keeps_the_listed_order(make_manager):
    # runtime-tools validation/linux_cgroups_devices compares devices.list with
    # the config's rules in order.
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
             {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
             {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"}]
    mgr = make_manager({"devices": rules})
    assert knob(mgr, "devices", "devices.list", "").splitlines() == [
        "c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]


@on_v2
def test_unified_raw_keys(make_manager):
    mgr = make_manager({"memory": {"limit": 64 * MiB}, "unified": {"memory.high": str(48 * MiB)}})
    assert knob(mgr, "memory", "", "memory.high") == str(48 * MiB)
