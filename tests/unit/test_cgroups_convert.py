"""v1 -> v2 conversions and up-front validation of linux.resources."""

import pytest

from pybox.cgroups import convert
from pybox.cgroups.resources import validate
from pybox.errors import CgroupError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("shares,weight", [
    (0, 0), (1, 1), (2, 1), (1024, 100), (262144, 10000), (500000, 10000),
    (512, 59), (2048, 174), (100, 17)])
def test_shares_to_weight_fits_runc_and_crun(shares, weight):
    # fixed points 2 -> 1, 1024 -> 100, 262144 -> 10000 of the quadratic-log fit
    assert convert.cpu_shares_to_weight(shares) == weight


def test_shares_to_weight_is_monotonic():
    values = [convert.cpu_shares_to_weight(s) for s in range(2, 262145, 97)]
    assert values == sorted(values)


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("quota,period,text", [
    (None, None, None), (0, 0, None), (20000, 100000, "20000 100000"), (-1, 100000, "max 100000"),
    (50000, None, "50000"), (None, 50000, "max 50000")])
def test_cpu_max(quota, period, text):
    assert convert.cpu_max(quota, period) == text


@pytest.mark.parametrize("swap,limit,text", [
    (None, None, None), (0, -1, "max"), (-1, 100, "max"), (300, 100, "200"), (100, 100, "0"),
    (0, 100, None)])
def test_memory_swap_to_v2(swap, limit, text):
    assert convert.memory_swap_to_v2(swap, limit) == text


@pytest.mark.parametrize("swap,limit,message", [
    (100, None, "needs a memory limit"), (100, -1, "needs a memory limit")])
def test_memory_swap_to_v2_errors(swap, limit, message):
    with pytest.raises(CgroupError, match=message):
        convert.memory_swap_to_v2(swap, limit)


def test_memory_and_pids_values():
    assert convert.memory_value(-1) == "max"
    assert convert.memory_value(0) is None
    assert convert.memory_value(4096) == "4096"
    assert convert.pids_max(None) is None
    assert convert.pids_max(0) == "max"
    assert convert.pids_max(-1) == "max"
    assert convert.pids_max(10) == "10"
    assert convert.io_max_line(8, 0, "wbps", 0) == "8:0 wbps=max"
    assert convert.io_max_line(8, 0, "wbps", 1048576) == "8:0 wbps=1048576"


@pytest.mark.parametrize("given,name", [("2MB", "2MB"), ("1GB", "1GB"), ("64KB", "64KB"),
                                        ("2048KB", "2MB"), ("2mb", "2MB"), ("2M", None),
                                        ("abc", None)])
def test_hugepage_size_names(given, name):
    assert convert.hugepage_size_name(given) == name


# -- validation ------------------------------------------------------------------

def test_valid_full_resources_pass():
    validate({
        "memory": {"limit": 1 << 26, "reservation": 1 << 25, "swap": 1 << 27, "kernel": -1,
                   "kernelTCP": 1 << 20, "swappiness": 0, "disableOOMKiller": False,
                   "useHierarchy": True, "checkBeforeUpdate": True},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000,
                "realtimeRuntime": 0, "realtimePeriod": 0, "cpus": "0-1,3", "mems": "0", "idle": 1},
        "blockIO": {"weight": 500, "leafWeight": 300,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 0}]},
        "pids": {"limit": -1},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
        "unified": {"memory.high": "max"},
    })
    validate(None)
    validate({})


@pytest.mark.parametrize("resources,field", [
    ({"memory": {"limit": -5}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": "64m"}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": True}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": 100, "swap": 50}}, "linux.resources.memory.swap"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"cpu": {"shares": 300000}}, "linux.resources.cpu.shares"),
    ({"cpu": {"quota": 10}}, "linux.resources.cpu.quota"),
    ({"cpu": {"quota": -2}}, "linux.resources.cpu.quota"),
    ({"cpu": {"period": 10}}, "linux.resources.cpu.period"),
    ({"cpu": {"period": 2000000}}, "linux.resources.cpu.period"),
    ({"cpu": {"quota": 2000, "burst": 5000}}, "linux.resources.cpu.burst"),
    ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"mems": "3-1"}}, "linux.resources.cpu.mems"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"weight": 2000}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"throttleWriteBpsDevice": [{"major": 8, "rate": 1}]}},
     "linux.resources.blockIO.throttleWriteBpsDevice[0].minor"),
    ({"blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
     "linux.resources.blockIO.throttleWriteBpsDevice[0].rate"),
    ({"pids": {"limit": -7}}, "linux.resources.pids.limit"),
    ({"hugepageLimits": [{"pageSize": "3XB", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit"),
    ({"network": {"classID": -1}}, "linux.resources.network.classID"),
    ({"network": {"priorities": [{"name": "", "priority": 1}]}},
     "linux.resources.network.priorities[0].name"),
    ({"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow"),
    ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"allow": True, "major": -3}]}, "linux.resources.devices[0].major"),
    ({"unified": {"../x": "1"}}, "linux.resources.unified"),
    ({"unified": {"memory.high": 5}}, "linux.resources.unified"),
    ({"memory": []}, "linux.resources.memory"),
])
def test_invalid_values_name_the_field(resources, field):
    with pytest.raises(CgroupError) as info:
        validate(resources)
    assert str(info.value).startswith(field), str(info.value)
    assert info.value.errno == 22
