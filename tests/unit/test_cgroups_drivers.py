"""The v1, v2 and hybrid drivers against a fake cgroupfs (pybox.cgroups.fakefs)."""

import os

import pytest

from pybox import cgroups
from pybox.cgroups.fakefs import fake_host
from pybox.errors import CgroupError

pytestmark = pytest.mark.unit


def read(path):
    with open(path) as f:
        return f.read().strip()


def make(tmp_path, mode, cgroups_path="/pybox-test/c1", **kw):
    fs, layout = fake_host(tmp_path, mode, **{k: v for k, v in kw.items() if k != "rootless"})
    mgr = cgroups.new_manager(cgroups_path, "c1", layout=layout, fs=fs,
                              rootless=kw.get("rootless", False))
    return fs, layout, mgr


# -- construction and paths ---------------------------------------------------------

def test_build_manager_picks_the_driver_by_layout(tmp_path):
    for mode, cls in (("v1", "V1Manager"), ("v2", "V2Manager"), ("hybrid", "HybridManager")):
        _, _, mgr = make(tmp_path / mode, mode)
        assert type(mgr).__name__ == cls


def test_v1_relative_path_follows_the_callers_cgroup_per_hierarchy(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1", cgroups_path="", own="/process_api/x")
    assert mgr.paths["memory"] == f"{tmp_path}/sys/fs/cgroup/memory/process_api/x/c1"
    assert mgr.paths["cpu"] == f"{tmp_path}/sys/fs/cgroup/cpu/process_api/x/c1"


@pytest.mark.parametrize("cgroups_path,own,expected", [
    ("", "/system.slice/pyboxd.service", "/system.slice/c1"),
    ("foo/bar/c1", "/system.slice/pyboxd.service", "/system.slice/foo/bar/c1"),
    ("foo/c1", "/", "/foo/c1"),
    ("foo/c1", "/top", "/foo/c1"),
    ("/abs/c1", "/system.slice/pyboxd.service", "/abs/c1"),
])
def test_v2_relative_path_is_below_the_parent_of_the_callers_cgroup(tmp_path, cgroups_path, own,
                                                                   expected):
    """runc's fs2: the caller's own cgroup holds the caller, so a child of it could
    not get controllers (no internal processes); its parent is used instead."""
    fs, layout, mgr = make(tmp_path, "v2", cgroups_path=cgroups_path, own=own)
    assert mgr.paths[""] == f"{tmp_path}/sys/fs/cgroup{expected}"


def test_hybrid_cgroup2_half_keeps_v1s_rule_below_the_callers_cgroup(tmp_path):
    fs, layout, mgr = make(tmp_path, "hybrid", cgroups_path="foo/c1", own="/process_api/x")
    assert mgr.paths["memory"] == f"{tmp_path}/sys/fs/cgroup/memory/process_api/x/foo/c1"
    assert mgr.v2.paths[""].endswith("/process_api/x/foo/c1")


def test_v1_comounted_cpu_cpuacct_share_a_directory(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1", comount_cpu=True)
    assert mgr.paths["cpu"] == mgr.paths["cpuacct"]
    assert mgr.paths["cpu"].endswith("/cpu,cpuacct/pybox-test/c1")
    mgr.create()
    assert len([d for d in mgr.created if d.endswith("/c1")]) == len(set(mgr.paths.values()))


def test_escaping_path_fails_before_anything_exists(tmp_path):
    fs, layout = fake_host(tmp_path, "v1")
    with pytest.raises(CgroupError, match="escapes"):
        cgroups.new_manager("/../../etc", "c1", layout=layout, fs=fs)
    assert fs.writes == []


# -- create ----------------------------------------------------------------------------

def test_v1_create_copies_cpuset_from_parent_at_every_level(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    cpuset = mgr.paths["cpuset"]
    assert read(f"{cpuset}/cpuset.cpus") == "0-3"
    assert read(f"{os.path.dirname(cpuset)}/cpuset.mems") == "0"
    # both levels were made by us and are recorded
    assert f"{tmp_path}/sys/fs/cgroup/cpuset/pybox-test" in mgr.created
    mgr.create()  # idempotent
    assert len(mgr.created) == len(set(mgr.created))


def test_v2_create_enables_controllers_down_the_path(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    root = f"{tmp_path}/sys/fs/cgroup"
    assert set(read(f"{root}/cgroup.subtree_control").split()) >= {"memory", "cpu", "pids", "io"}
    assert set(read(f"{root}/pybox-test/cgroup.subtree_control").split()) >= {"memory", "cpu"}
    assert read(f"{mgr.dir}/cgroup.subtree_control") == ""  # the leaf holds processes
    assert "memory" in mgr.controllers()


def test_create_failure_removes_what_it_made(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    fs.fail = {"/sys/fs/cgroup/pids/pybox-test": 28}
    with pytest.raises(CgroupError, match="pids/pybox-test"):
        mgr.create()
    assert not os.path.exists(f"{tmp_path}/sys/fs/cgroup/memory/pybox-test")
    assert mgr.created == []


# -- apply: v1 ---------------------------------------------------------------------------

FULL = {
    "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432, "swappiness": 10,
               "kernelTCP": 1048576, "disableOOMKiller": True, "useHierarchy": True},
    "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "cpus": "0-1",
            "mems": "0", "realtimePeriod": 1000000, "realtimeRuntime": 1000, "idle": 0},
    "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
    "pids": {"limit": 42},
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
}


def test_v1_apply_writes_every_field(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    mgr.apply(FULL)
    p = mgr.paths
    assert read(f"{p['memory']}/memory.limit_in_bytes") == "67108864"
    assert read(f"{p['memory']}/memory.memsw.limit_in_bytes") == "134217728"
    assert read(f"{p['memory']}/memory.soft_limit_in_bytes") == "33554432"
    assert read(f"{p['memory']}/memory.swappiness") == "10"
    assert read(f"{p['memory']}/memory.kmem.tcp.limit_in_bytes") == "1048576"
    assert read(f"{p['memory']}/memory.oom_control") == "1"
    assert read(f"{p['cpu']}/cpu.shares") == "512"
    assert read(f"{p['cpu']}/cpu.cfs_quota_us") == "20000"
    assert read(f"{p['cpu']}/cpu.cfs_period_us") == "100000"
    assert read(f"{p['cpu']}/cpu.cfs_burst_us") == "1000"
    assert read(f"{p['cpu']}/cpu.rt_runtime_us") == "1000"
    assert read(f"{p['cpuset']}/cpuset.cpus") == "0-1"
    assert read(f"{p['blkio']}/blkio.bfq.weight") == "500"
    assert read(f"{p['blkio']}/blkio.bfq.weight_device") == "8:0 200"
    assert read(f"{p['blkio']}/blkio.throttle.read_bps_device") == "8:0 1048576"
    assert read(f"{p['blkio']}/blkio.throttle.write_iops_device") == "8:0 100"
    assert read(f"{p['pids']}/pids.max") == "42"
    assert read(f"{p['devices']}/devices.deny") == "a"
    assert read(f"{p['devices']}/devices.allow") == "c 1:3 rwm"


def test_v1_memory_and_swap_order_follows_the_direction(tmp_path):
    # memsw must never be below the limit: lowering writes the limit first,
    # raising writes memory+swap first.
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    mgr.apply({"memory": {"limit": 200 << 20, "swap": 400 << 20}})
    fs.writes.clear()
    mgr.update({"memory": {"limit": 100 << 20, "swap": 150 << 20}})
    names = [os.path.basename(w[0]) for w in fs.writes]
    assert names == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    fs.writes.clear()
    mgr.update({"memory": {"limit": 300 << 20, "swap": 600 << 20}})
    names = [os.path.basename(w[0]) for w in fs.writes]
    assert names == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_unlimited_memory_also_unlimits_swap(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    mgr.apply({"memory": {"limit": -1}})
    assert read(f"{mgr.paths['memory']}/memory.memsw.limit_in_bytes") == "-1"


def test_v1_limit_below_usage_is_a_clear_error(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    mgr.add(os.getpid())
    fs.fail = {"memory.limit_in_bytes": 16}
    with pytest.raises(CgroupError, match=r"memory.limit: 4096 is below the current usage"):
        mgr.update({"memory": {"limit": 4096}})


def test_check_before_update_compares_with_usage(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    with pytest.raises(CgroupError, match="checkBeforeUpdate"):
        mgr.update({"memory": {"limit": 4096, "checkBeforeUpdate": True}})


def test_v1_missing_controller_names_the_field(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    with pytest.raises(CgroupError, match=r"network.classID: the net_cls controller is not mounted"):
        mgr.apply({"network": {"classID": 1}})


def test_v1_unified_is_refused(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    with pytest.raises(CgroupError, match=r"unified: .*need cgroup v2"):
        mgr.apply({"unified": {"memory.high": "1000000"}})


def test_failed_apply_rolls_back_created_dirs(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    fs.fail = {"blkio.throttle.write_bps_device": 19}  # ENODEV: no such disk
    with pytest.raises(CgroupError) as info:
        mgr.apply({"pids": {"limit": 5},
                   "blockIO": {"throttleWriteBpsDevice": [{"major": 9, "minor": 9, "rate": 1}]}})
    message = str(info.value)
    assert message.startswith("linux.resources.blockIO.throttleWriteBpsDevice[0]")
    assert "9:9" in message and "errno 19" in message
    assert mgr.created == []
    assert not os.path.exists(f"{tmp_path}/sys/fs/cgroup/pids/pybox-test")


def test_invalid_value_fails_before_any_write(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    fs.writes.clear()
    with pytest.raises(CgroupError, match="cpu.shares"):
        mgr.apply({"pids": {"limit": 5}, "cpu": {"shares": 1}})
    assert fs.writes == []


def test_v1_shares_clamped_by_kernel_is_reported(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    real_write = fs.write

    def clamping_write(path, data):
        real_write(path, "262144" if path.endswith("cpu.shares") else data)
    fs.write = clamping_write
    with pytest.raises(CgroupError, match="kernel set 262144"):
        mgr.apply({"cpu": {"shares": 200000}})


def test_kernel_memory_is_ignored_with_a_warning(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    mgr.apply({"memory": {"kernel": 1 << 20}})
    assert any("memory.kernel" in w for w in mgr.warnings)


# -- apply: v2 -----------------------------------------------------------------------------

def test_v2_apply_converts_v1_values(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    mgr.apply({
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 500, "cpus": "0",
                "mems": "0", "idle": 1},
        "blockIO": {"weight": 500, "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}]},
        "pids": {"limit": 0},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "unified": {"memory.high": "50000000"},
    })
    d = mgr.dir
    assert read(f"{d}/memory.max") == "67108864"
    assert read(f"{d}/memory.swap.max") == "67108864"   # swap - limit
    assert read(f"{d}/memory.low") == "33554432"
    assert read(f"{d}/memory.high") == "50000000"
    assert read(f"{d}/cpu.weight") == "100"
    assert read(f"{d}/cpu.max") == "20000 100000"
    assert read(f"{d}/cpu.max.burst") == "500"
    assert read(f"{d}/cpu.idle") == "1"
    assert read(f"{d}/cpuset.cpus") == "0"
    assert read(f"{d}/io.bfq.weight") == "500"            # bfq takes the blkio range
    assert read(f"{d}/io.max").splitlines() == ["8:0 wbps=1048576", "8:0 riops=max"]
    assert read(f"{d}/pids.max") == "max"
    assert read(f"{d}/hugetlb.2MB.max") == "2097152"


def test_v2_io_weight_is_converted_without_bfq(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    os.unlink(f"{mgr.dir}/io.bfq.weight")
    mgr.apply({"blockIO": {"weight": 500}})
    assert read(f"{mgr.dir}/io.weight") == "4950"


@pytest.mark.parametrize("resources,field", [
    ({"network": {"classID": 1}}, "linux.resources.network"),
    ({"cpu": {"realtimeRuntime": 100}}, "linux.resources.cpu.realtimeRuntime"),
    ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
    ({"memory": {"useHierarchy": False}}, "linux.resources.memory.useHierarchy"),
    ({"blockIO": {"leafWeight": 100}}, "linux.resources.blockIO.leafWeight"),
    ({"memory": {"swap": 100}}, "linux.resources.memory.swap"),
    ({"unified": {"rdma.max": "x"}}, "linux.resources.unified"),
])
def test_v2_fields_without_equivalent_are_errors(tmp_path, resources, field):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    with pytest.raises(CgroupError) as info:
        mgr.apply(resources)
    assert str(info.value).startswith(field), str(info.value)


def test_v2_controller_not_delegated_names_field_and_reason(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2", v2_controllers=("cpu", "pids"))
    mgr.create()
    with pytest.raises(CgroupError) as info:
        mgr.apply({"memory": {"limit": 1 << 20}})
    assert str(info.value).startswith("linux.resources.memory.limit: the memory controller is not available")


def test_v2_enable_failure_reason_is_reported(tmp_path):
    # relative: below the parent of the caller's cgroup (runc's fs2), here /top
    fs, layout, mgr = make(tmp_path, "v2", cgroups_path="busy/c1", own="/top/caller")
    fs.fail = {"/busy/cgroup.subtree_control": 16}
    mgr.create()
    fs.fail = {}
    with pytest.raises(CgroupError, match="enabling it in cgroup.subtree_control failed.*errno 16"):
        mgr.apply({"pids": {"limit": 3}})


def test_v2_update_below_anonymous_usage_is_refused(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    with pytest.raises(CgroupError, match="anonymous memory"):
        mgr.update({"memory": {"limit": 1000}})
    mgr.update({"memory": {"limit": 1 << 20}})
    assert read(f"{mgr.dir}/memory.max") == str(1 << 20)


def test_rootless_turns_missing_controllers_into_warnings(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2", v2_controllers=("pids",), rootless=True)
    mgr.create()
    mgr.apply({"memory": {"limit": 1 << 20}, "pids": {"limit": 7}})
    assert read(f"{mgr.dir}/pids.max") == "7"
    assert any("memory" in w for w in mgr.warnings)


# -- hybrid ----------------------------------------------------------------------------------

def test_hybrid_routes_hugetlb_to_cgroup2(tmp_path):
    fs, layout, mgr = make(tmp_path, "hybrid", unified_controllers=("hugetlb",))
    mgr.create()
    mgr.apply({"memory": {"limit": 1 << 20}, "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    assert read(f"{mgr.paths['memory']}/memory.limit_in_bytes") == str(1 << 20)
    assert read(f"{mgr.paths['']}/hugetlb.2MB.max") == "0"
    assert mgr.paths[""].endswith("/sys/fs/cgroup/unified/pybox-test/c1")


def test_hybrid_unified_key_for_a_v1_controller_is_refused(tmp_path):
    fs, layout, mgr = make(tmp_path, "hybrid", unified_controllers=("hugetlb",))
    mgr.create()
    with pytest.raises(CgroupError, match=r"unified\['memory.high'\].*not on this host's cgroup2"):
        mgr.apply({"unified": {"memory.high": "1"}})
    assert mgr.created == []  # rolled back


def test_hybrid_add_joins_both_sides(tmp_path):
    fs, layout, mgr = make(tmp_path, "hybrid")
    mgr.create()
    mgr.add(4242)
    assert read(f"{mgr.paths['memory']}/cgroup.procs") == "4242"
    assert read(f"{mgr.paths['']}/cgroup.procs") == "4242"


# -- state, destroy ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_state_round_trip_and_destroy_removes_only_ours(tmp_path, mode):
    fs, layout, mgr = make(tmp_path, mode)
    os.makedirs(f"{tmp_path}/sys/fs/cgroup/pybox-test", exist_ok=True)  # v2: pre-existing parent
    mgr.create()
    state = mgr.to_state()
    assert state["driver"] == mode
    import json
    again = cgroups.load_manager(json.loads(json.dumps(state)), fs=fs)
    assert again.paths == mgr.paths
    assert again.to_state() == state
    again.destroy()
    for d in set(mgr.paths.values()):
        assert not os.path.exists(d)
    if mode == "v2":
        assert os.path.isdir(f"{tmp_path}/sys/fs/cgroup/pybox-test")  # not ours
    again.destroy()  # idempotent


def test_destroy_leaves_a_preexisting_leaf_alone(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    first = cgroups.new_manager("/pybox-test/c1", "c1", layout=layout, fs=fs)
    first.create()
    mgr.create()  # the leaf exists: nothing recorded
    assert mgr.created == []
    mgr.destroy()
    assert os.path.isdir(first.dir)
    first.destroy()
    assert not os.path.exists(first.dir)


def test_destroy_removes_subcgroups_the_container_made(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    fs.mkdir(f"{mgr.dir}/inner")
    fs.mkdir(f"{mgr.dir}/inner/deeper")
    mgr.destroy()
    assert not os.path.exists(mgr.dir)


def test_load_manager_rejects_garbage():
    with pytest.raises(CgroupError):
        cgroups.load_manager({"nope": 1})
    with pytest.raises(CgroupError):
        cgroups.load_manager({"driver": "v9"})


# -- freezer, stats, oom ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_freeze_and_thaw(tmp_path, mode):
    fs, layout, mgr = make(tmp_path, mode)
    mgr.create()
    assert not mgr.is_frozen()
    mgr.freeze()
    assert mgr.is_frozen()
    mgr.thaw()
    assert not mgr.is_frozen()


def test_v1_stats_shape(tmp_path):
    fs, layout, mgr = make(tmp_path, "v1")
    mgr.create()
    s = mgr.stats()
    assert s["cpu"]["usage"]["total"] == 5000
    assert s["cpu"]["usage"]["percpu"] == [3000, 2000]
    assert s["cpu"]["usage"]["percpu_user"] == [2000, 1500]
    assert s["cpu"]["usage"]["percpu_kernel"] == [1000, 500]
    assert s["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 3, "throttledTime": 4000}
    assert s["memory"]["usage"]["usage"] == 8192
    assert s["memory"]["usage"]["max"] == 16384
    assert s["memory"]["raw"]["total_inactive_file"] == 1024
    assert s["memory"]["usage_minus_inactive_file"] == 8192 - 1024
    assert s["pids"] == {"current": 1, "limit": 0}
    assert {"major": 8, "minor": 0, "op": "Read", "value": 100} in s["blkio"]["ioServiceBytesRecursive"]
    assert mgr.oom_kill_count() == 0


def test_v2_stats_shape_and_oom(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    s = mgr.stats()
    assert s["cpu"]["usage"]["total"] == 5000
    assert s["cpu"]["usage"]["user"] == 3000
    assert s["cpu"]["throttling"]["throttledTime"] == 4000
    assert s["memory"]["usage"] == {"usage": 8192, "max": 16384, "limit": (1 << 64) - 1,
                                    "failcnt": 2}
    assert s["memory"]["usage_minus_inactive_file"] == 8192 - 1024
    assert s["memory"]["cache"] == 4096
    assert {"major": 8, "minor": 0, "op": "Write", "value": 2} in s["blkio"]["ioServicedRecursive"]
    assert mgr.oom_kill_count() == 1


def test_v2_kill_all_uses_cgroup_kill(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    mgr.create()
    mgr.kill_all(9)
    assert fs.writes[-1] == (f"{mgr.dir}/cgroup.kill", "1")


@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_rootless_without_permission_degrades_to_warnings(tmp_path, mode):
    fs, layout, mgr = make(tmp_path, mode, rootless=True)
    fs.fail = {"mkdir": 13}
    mgr.create()
    mgr.apply({"memory": {"limit": 1 << 20}, "pids": {"limit": 5}})
    mgr.add(1234)
    assert mgr.warnings
    assert mgr.to_state()["created"] == []
    mgr.destroy()


def test_not_rootless_permission_error_is_raised(tmp_path):
    fs, layout, mgr = make(tmp_path, "v2")
    fs.fail = {"mkdir": 13}
    with pytest.raises(CgroupError, match="errno 13"):
        mgr.create()


def test_rdma_limits_on_v2_and_missing_controller_on_v1(tmp_path):
    fs, layout, mgr = make(tmp_path / "v2", "v2", v2_controllers=("rdma", "pids"))
    mgr.create()
    mgr.apply({"rdma": {"mlx5_1": {"hcaHandles": 3}, "mlx4_0": {"hcaHandles": 1, "hcaObjects": 9}}})
    assert read(f"{mgr.dir}/rdma.max").splitlines() == [
        "mlx5_1 hca_handle=3 hca_object=max", "mlx4_0 hca_handle=1 hca_object=9"]
    fs, layout, mgr = make(tmp_path / "v1", "v1")
    mgr.create()
    with pytest.raises(CgroupError, match=r"^linux.resources.rdma: the rdma controller is not mounted"):
        mgr.apply({"rdma": {"mlx5_1": {"hcaHandles": 3}}})


def test_rdma_validation():
    from pybox.cgroups.resources import validate
    with pytest.raises(CgroupError, match=r"rdma\['mlx5_1'\].hcaHandles"):
        validate({"rdma": {"mlx5_1": {"hcaHandles": -1}}})


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_a_created_parent_shared_with_a_sibling_stays_without_error(tmp_path, mode):
    fs, layout, first = make(tmp_path, mode, cgroups_path="/pybox-test/a")
    first.create()   # makes /pybox-test too
    second = cgroups.new_manager("/pybox-test/b", "b", layout=layout, fs=fs)
    second.create()
    first.destroy()  # /pybox-test still holds b: left alone, no error
    for d in set(second.paths.values()):
        assert os.path.isdir(d)
    for d in set(first.paths.values()):
        assert not os.path.exists(d)
    second.destroy()
    first.destroy()  # now the parent can go
    assert not os.path.exists(f"{tmp_path}/sys/fs/cgroup/pybox-test")
    assert not os.path.exists(f"{tmp_path}/sys/fs/cgroup/memory/pybox-test")
