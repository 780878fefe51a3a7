"""The /proc view's renderers: host text + cgroup values -> the container's file.
Pure functions: no root, no FUSE."""

import pytest

from pybox.procview import render
from pybox.procview.model import Cpus, CpuUsage, Memory, Tasks

pytestmark = pytest.mark.unit

MiB = 1 << 20
HOST_MEMINFO = """\
MemTotal:       24684084 kB
MemFree:        23225436 kB
MemAvailable:   23897172 kB
Buffers:           38380 kB
Cached:           692792 kB
SwapCached:            0 kB
Active:           500000 kB
Inactive:         400000 kB
Active(anon):     100000 kB
Inactive(anon):   200000 kB
Active(file):     400000 kB
Inactive(file):   200000 kB
Unevictable:       16820 kB
Mlocked:           16820 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Dirty:               232 kB
Writeback:             0 kB
AnonPages:        276548 kB
Mapped:            42908 kB
Shmem:              8956 kB
KReclaimable:      60000 kB
Slab:             120000 kB
SReclaimable:      60000 kB
SUnreclaim:        60000 kB
KernelStack:        4000 kB
PageTables:         5000 kB
CommitLimit:    14439188 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap1G:    25165824 kB
"""

HOST_CPUINFO = "".join(
    f"processor\t: {n}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    f"core id\t\t: {n}\nflags\t\t: fpu vme\n\n" for n in range(4))

HOST_STAT = """\
cpu  4000 10 2000 90000 50 0 30 0 0 0
cpu0 1000 5 500 22500 10 0 10 0 0 0
cpu1 1000 5 500 22500 20 0 10 0 0 0
cpu2 1000 0 500 22500 10 0 5 0 0 0
cpu3 1000 0 500 22500 10 0 5 0 0 0
intr 13456854 0 0
ctxt 99999
btime 1700000000
processes 5000
procs_running 3
procs_blocked 0
softirq 100 0 0
"""


def values(text):
    return render.parse_meminfo(text)


def test_cpu_lists_parse_and_format():
    assert render.parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert render.parse_cpu_list("") == []
    assert render.format_cpu_list([5, 0, 1, 2, 8, 7]) == "0-2,5,7-8"
    assert render.format_cpu_list([3]) == "3"


@pytest.mark.parametrize("quota, allowed, visible", [
    (None, [0, 1, 2, 3], [0, 1, 2, 3]),
    (0.5, [0, 1, 2, 3], [0]),
    (1.0, [0, 1, 2, 3], [0]),
    (1.5, [2, 3], [2, 3]),
    (3.0, [1, 3], [1, 3]),
    (2.0, [0], [0]),
])
def test_visible_cpus_are_the_cpuset_cut_to_the_quota_rounded_up(quota, allowed, visible):
    assert Cpus(allowed, quota).visible == visible


def test_meminfo_of_a_64m_container():
    stat = {"file": 8 * MiB, "active_file": 2 * MiB, "inactive_file": 4 * MiB,
            "anon": 10 * MiB, "active_anon": 6 * MiB, "inactive_anon": 4 * MiB,
            "shmem": 1 * MiB, "file_mapped": 3 * MiB, "slab_reclaimable": 1 * MiB,
            "slab_unreclaimable": 1 * MiB}
    mem = Memory(limit=64 * MiB, usage=20 * MiB, swap_limit=64 * MiB, swap_usage=1 * MiB,
                 stat=stat)
    out = render.meminfo(HOST_MEMINFO, mem)
    v = values(out)
    assert v["MemTotal"] == 65536
    assert v["MemFree"] == 65536 - 20480
    # free plus the reclaimable cache and slab, within the limit
    assert v["MemAvailable"] == 65536 - 20480 + 2048 + 4096 + 1024
    assert v["Buffers"] == 0
    assert v["Cached"] == 8192
    assert v["Active(file)"] == 2048 and v["Inactive(file)"] == 4096
    assert v["Active"] == 6144 + 2048 and v["Inactive"] == 4096 + 4096
    assert v["AnonPages"] == 10240 and v["Mapped"] == 3072 and v["Shmem"] == 1024
    assert v["Slab"] == 2048 and v["SReclaimable"] == 1024 and v["SUnreclaim"] == 1024
    assert v["SwapTotal"] == 65536 and v["SwapFree"] == 65536 - 1024
    assert v["KernelStack"] == 0  # no per-cgroup counter given: not the host's
    # lines the view does not own stay the host's, in the host's order
    assert v["VmallocTotal"] == 34359738367 and v["HugePages_Total"] == 0
    assert [line.split(":")[0] for line in out.splitlines()] == \
        [line.split(":")[0] for line in HOST_MEMINFO.splitlines()]
    assert "MemTotal:          65536 kB" in out


def test_meminfo_without_a_limit_or_above_the_host_is_the_hosts():
    assert render.meminfo(HOST_MEMINFO, None) == HOST_MEMINFO
    assert render.meminfo(HOST_MEMINFO, Memory(limit=None, usage=5 * MiB)) == HOST_MEMINFO
    huge = Memory(limit=64 << 30, usage=5 * MiB)
    assert render.meminfo(HOST_MEMINFO, huge) == HOST_MEMINFO


def test_meminfo_never_promises_more_than_the_host_has():
    host = HOST_MEMINFO.replace("MemFree:        23225436 kB", "MemFree:           10000 kB") \
        .replace("MemAvailable:   23897172 kB", "MemAvailable:      12000 kB")
    v = values(render.meminfo(host, Memory(limit=64 * MiB, usage=1 * MiB,
                                           stat={"inactive_file": 50 * MiB})))
    assert v["MemFree"] == 10000
    assert v["MemAvailable"] == 12000


def test_meminfo_swap_unlimited_uses_the_hosts_swap_minus_usage():
    v = values(render.meminfo(HOST_MEMINFO, Memory(limit=64 * MiB, usage=0, swap_limit=None,
                                                   swap_usage=2 * MiB)))
    assert v["SwapTotal"] == 2097148 and v["SwapFree"] == 2097148 - 2048
    no_swap = HOST_MEMINFO.replace("SwapTotal:       2097148", "SwapTotal:             0") \
        .replace("SwapFree:        2097148", "SwapFree:              0")
    v = values(render.meminfo(no_swap, Memory(limit=64 * MiB, swap_limit=64 * MiB)))
    assert v["SwapTotal"] == 0 and v["SwapFree"] == 0


def test_swaps_shows_one_virtual_line_or_only_the_header():
    mem = Memory(limit=64 * MiB, usage=0, swap_limit=32 * MiB, swap_usage=4 * MiB)
    out = render.swaps("host swaps\n", HOST_MEMINFO, mem)
    lines = out.splitlines()
    assert lines[0].startswith("Filename") and lines[1].split() == ["none", "virtual", "32768",
                                                                    "4096", "0"]
    assert render.swaps("host swaps\n", HOST_MEMINFO, None) == "host swaps\n"
    no_swap = Memory(limit=64 * MiB, swap_limit=0)
    assert render.swaps("x\n", HOST_MEMINFO, no_swap).splitlines() == [render.SWAPS_HEADER]


def test_cpuinfo_keeps_the_visible_cpus_renumbered():
    out = render.cpuinfo(HOST_CPUINFO, Cpus([2, 3], 1.0))
    blocks = [b for b in out.split("\n\n") if b.strip()]
    assert len(blocks) == 1
    assert blocks[0].startswith("processor\t: 0\n")
    assert "core id\t\t: 2" in blocks[0]  # the host cpu it is
    two = render.cpuinfo(HOST_CPUINFO, Cpus([1, 3]))
    assert [line for line in two.splitlines() if line.startswith("processor")] == \
        ["processor\t: 0", "processor\t: 1"]
    assert render.cpuinfo(HOST_CPUINFO, Cpus([0, 1, 2, 3])) == HOST_CPUINFO
    assert render.cpuinfo(HOST_CPUINFO, None) == HOST_CPUINFO


def test_cpu_online_lists_the_visible_host_cpus():
    assert render.cpu_online("0-3\n", Cpus([1, 2, 3], 2.0)) == "1-2\n"
    assert render.cpu_online("0-3\n", Cpus([0])) == "0\n"
    assert render.cpu_online("0-3\n", None) == "0-3\n"


def test_stat_per_visible_cpu_from_the_cgroups_accounting():
    ns = 1_000_000_000
    usage = CpuUsage(percpu={0: (3 * ns, 1 * ns), 1: (0, 0), 2: (5 * ns, 2 * ns),
                             3: (0, 0)})
    out = render.stat(HOST_STAT, Cpus([2, 3]), usage, hz=100)
    lines = out.splitlines()
    cpu0 = [int(x) for x in lines[1].split()[1:]]
    cpu1 = [int(x) for x in lines[2].split()[1:]]
    assert lines[1].startswith("cpu0 ") and lines[2].startswith("cpu1 ")
    assert not any(line.startswith("cpu2") for line in lines)
    assert cpu0[0] == 500 and cpu0[2] == 200  # host cpu 2: 5 s user, 2 s system
    assert cpu0[3] == 1000 + 0 + 500 + 22500 + 10 + 0 + 5 + 0 - 700  # the rest is idle
    assert cpu1[0] == 0 and cpu1[3] == 1000 + 500 + 22500 + 10 + 5
    total = [int(x) for x in lines[0].split()[1:]]
    assert lines[0].startswith("cpu  ")
    assert total == [a + b for a, b in zip(cpu0, cpu1, strict=True)]
    assert "ctxt 99999" in lines and "btime 1700000000" in lines and len(total) == 10


def test_stat_folds_the_time_of_cpus_the_quota_hides():
    ns = 1_000_000_000
    usage = CpuUsage(percpu={0: (1 * ns, 0), 1: (2 * ns, 0), 2: (3 * ns, 0), 3: (4 * ns, 0)})
    out = render.stat(HOST_STAT, Cpus([0, 1, 2, 3], 1.5), usage)
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["cpu", "cpu0", "cpu1"]
    assert int(lines[1].split()[1]) == 100 + 300  # cpus 0 and 2
    assert int(lines[2].split()[1]) == 200 + 400  # cpus 1 and 3


def test_stat_spreads_v2_totals_over_the_visible_cpus():
    ns = 1_000_000_000
    out = render.stat(HOST_STAT, Cpus([0, 1]), CpuUsage(user=4 * ns, system=2 * ns))
    lines = out.splitlines()
    assert lines[1].split()[1:4:2] == ["200", "100"]
    assert lines[2].split()[1:4:2] == ["200", "100"]


def test_stat_never_shows_more_time_than_elapsed():
    usage = CpuUsage(percpu={0: (10**15, 10**15)})
    line = render.stat(HOST_STAT, Cpus([0]), usage).splitlines()[1]
    fields = [int(x) for x in line.split()[1:]]
    assert fields[3] == 0 and sum(fields) == 1000 + 5 + 500 + 22500 + 10 + 0 + 10


def test_uptime_counts_from_the_containers_start():
    assert render.uptime("1000.50 1800.00\n", 990.5, busy_ns=2_000_000_000, ncpus=2) == \
        "10.00 18.00\n"
    assert render.uptime("1000.50 1800.00\n", None) == "1000.50 1800.00\n"
    assert render.uptime("5.00 1.00\n", 10.0) == "0.00 0.00\n"


def test_loadavg_format():
    assert render.loadavg([0.5, 0.25, 0.125], Tasks(total=7, running=1, last_pid=42)) == \
        "0.50 0.25 0.12 1/7 42\n"


def test_diskstats_lists_only_the_devices_the_container_used():
    host = (" 254       0 vda 33 0 1080 0 7 1 100 3 0 10 20 0 0 0 0 0 0\n"
            "   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    io = {(254, 0): {"rios": 5, "rbytes": 8192, "wios": 2, "wbytes": 4096, "dios": 1,
                     "dbytes": 512}, (7, 0): {"rios": 0}}
    out = render.diskstats(host, io)
    assert out.splitlines() == [" 254       0 vda 5 0 16 0 2 0 8 0 0 0 0 1 0 1 0 0 0"]
    assert render.diskstats(host, None) == host
    assert render.diskstats(host, {}) == ""
