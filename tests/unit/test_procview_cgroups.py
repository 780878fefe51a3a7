"""The /proc view on a fake /proc and cgroupfs: pid -> its cgroups -> values ->
the files (View.render), for a v1 (one controller per mount, as this host) and a
v2 host; plus the pure parts of sysinfo interception and of re-serving."""

import os
import struct

import pytest

from pybox.procview import cgroupview as cgv
from pybox.procview import inject, sysinfo
from pybox.procview.cgroupview import Hierarchies
from pybox.procview.view import View

pytestmark = pytest.mark.unit

MiB = 1 << 20
CID = "/pybox/c0ffee"
V1_MOUNTINFO = """\
25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_CGROUP = f"""\
8:pids:{CID}
7:blkio:{CID}
4:memory:{CID}
3:cpuset:{CID}
2:cpuacct:{CID}
1:cpu:{CID}
0::{CID}
"""
V2_MOUNTINFO = """\
25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""
V2_CGROUP = f"0::{CID}\n"
HOST_MEMINFO = """\
MemTotal:        4000000 kB
MemFree:         3000000 kB
MemAvailable:    3500000 kB
Buffers:            1000 kB
Cached:           100000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Shmem:              5000 kB
"""
HOST_STAT = """\
cpu  400 0 200 9000 0 0 0 0 0 0
cpu0 100 0 50 2250 0 0 0 0 0 0
cpu1 100 0 50 2250 0 0 0 0 0 0
cpu2 100 0 50 2250 0 0 0 0 0 0
cpu3 100 0 50 2250 0 0 0 0 0 0
ctxt 1
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def proc_stat_line(pid, state, start_ticks):
    fields = [state, "1"] + ["0"] * 17 + [str(start_ticks)] + ["0"] * 10
    return f"{pid} (sh) {' '.join(fields)}\n"


class FakeHost:
    """A fake /proc (host files, two container processes) and cgroupfs."""

    def __init__(self, tmp, version):
        self.root = str(tmp)
        self.proc = os.path.join(self.root, "proc")
        self.sys = os.path.join(self.root, "sys")
        write(f"{self.proc}/meminfo", HOST_MEMINFO)
        write(f"{self.proc}/stat", HOST_STAT)
        write(f"{self.proc}/uptime", "1000.00 3000.00\n")
        write(f"{self.proc}/cpuinfo", "".join(f"processor\t: {n}\nx\t: y\n\n" for n in range(4)))
        write(f"{self.proc}/loadavg", "9.00 9.00 9.00 1/500 777\n")
        write(f"{self.proc}/diskstats", " 254       0 vda 1 0 2 0 3 0 4 0 0 0 0 0 0 0 0 0 0\n")
        write(f"{self.proc}/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
        write(f"{self.sys}/devices/system/cpu/online", "0-3\n")
        proc_cgroup = V1_CGROUP if version == 1 else V2_CGROUP
        # pid 100: the container's init (started at 900 s = 90000 ticks), pid 101 runs
        for pid, state, start in ((100, "S", 90000), (101, "R", 95000)):
            write(f"{self.proc}/{pid}/cgroup", proc_cgroup)
            write(f"{self.proc}/{pid}/stat", proc_stat_line(pid, state, start))
            write(f"{self.proc}/{pid}/status", f"Name:\tsh\nNSpid:\t{pid}\t{pid - 99}\n")
        cg = self.root + "/sys/fs/cgroup"
        if version == 1:
            self.hier = Hierarchies.detect(proc=self.proc, mountinfo=V1_MOUNTINFO,
                                           proc_cgroup=V1_CGROUP, prefix=self.root)
            d = {c: f"{cg}/{c}{CID}" for c in ("memory", "cpu", "cpuacct", "cpuset",
                                                "blkio", "pids")}
            write(f"{d['memory']}/memory.stat",
                  f"cache 1\nhierarchical_memory_limit {64 * MiB}\n"
                  f"hierarchical_memsw_limit {128 * MiB}\ntotal_cache {4 * MiB}\n"
                  f"total_rss {10 * MiB}\ntotal_active_file {1 * MiB}\n"
                  f"total_inactive_file {3 * MiB}\ntotal_swap {2 * MiB}\n")
            write(f"{d['memory']}/memory.usage_in_bytes", f"{16 * MiB}\n")
            write(f"{d['cpu']}/cpu.cfs_quota_us", "150000\n")
            write(f"{d['cpu']}/cpu.cfs_period_us", "100000\n")
            write(f"{d['cpu']}/tasks", "100\n101\n")
            write(f"{d['cpu']}/cgroup.procs", "100\n101\n")
            write(f"{d['cpuacct']}/cpuacct.usage_all",
                  "cpu user system\n0 0 0\n1 2000000000 1000000000\n2 0 0\n"
                  "3 4000000000 0\n")
            write(f"{d['cpuset']}/cpuset.effective_cpus", "1-3\n")
            write(f"{d['blkio']}/blkio.throttle.io_serviced_recursive",
                  "254:0 Read 7\n254:0 Write 3\n254:0 Total 10\nTotal 10\n")
            write(f"{d['blkio']}/blkio.throttle.io_service_bytes_recursive",
                  "254:0 Read 4096\n254:0 Write 1024\n")
        else:
            write(f"{cg}/cgroup.controllers", "cpuset cpu io memory pids\n")
            self.hier = Hierarchies.detect(proc=self.proc, mountinfo=V2_MOUNTINFO,
                                           proc_cgroup=V2_CGROUP, prefix=self.root)
            d = f"{cg}{CID}"
            write(f"{cg}/pybox/memory.max", f"{48 * MiB}\n")  # the parent's is lower
            write(f"{cg}/pybox/memory.swap.max", "max\n")
            write(f"{cg}/pybox/cpu.max", "max 100000\n")
            write(f"{d}/memory.max", f"{64 * MiB}\n")
            write(f"{d}/memory.swap.max", f"{8 * MiB}\n")
            write(f"{d}/memory.current", f"{16 * MiB}\n")
            write(f"{d}/memory.swap.current", f"{1 * MiB}\n")
            write(f"{d}/memory.stat", f"anon {10 * MiB}\nfile {4 * MiB}\n"
                                      f"active_file {1 * MiB}\ninactive_file {3 * MiB}\n"
                                      f"slab_reclaimable {1 * MiB}\n")
            write(f"{d}/cpu.max", "50000 100000\n")
            write(f"{d}/cpu.stat", "usage_usec 3000000\nuser_usec 2000000\n"
                                   "system_usec 1000000\n")
            write(f"{d}/cpuset.cpus.effective", "2-3\n")
            write(f"{d}/io.stat", "254:0 rbytes=4096 wbytes=1024 rios=7 wios=3 dbytes=0 dios=0\n")
            write(f"{d}/cgroup.procs", "100\n101\n")
            write(f"{d}/cgroup.threads", "100\n101\n")
        self.view = View(self.hier, proc=self.proc, sys_root=self.sys, hz=100)

    def render(self, name, pid=101):
        return self.view.render(name, pid).decode()


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def host(request, tmp_path):
    return FakeHost(tmp_path, request.param)


def test_lookup_finds_each_controllers_directory(host):
    cg = host.hier.lookup(101)
    assert cg.memory[0].endswith(CID) and cg.cpu[0].endswith(CID)
    assert cg.key == CID
    assert host.hier.lookup(4242) is None  # gone


def test_memory_limits_and_usage(host):
    mem = cgv.memory(host.hier.lookup(101))
    if host.hier.mode == "v2":
        assert mem.limit == 48 * MiB  # the lowest on the path
        assert mem.swap_limit == 8 * MiB and mem.swap_usage == 1 * MiB
    else:
        assert mem.limit == 64 * MiB
        assert mem.swap_limit == 64 * MiB  # memsw - memory
        assert mem.swap_usage == 2 * MiB
        assert mem.stat["anon"] == 10 * MiB and mem.stat["file"] == 4 * MiB
    assert mem.usage == 16 * MiB
    assert mem.stat["inactive_file"] == 3 * MiB


def test_meminfo_file(host):
    text = host.render("meminfo")
    limit_kb = (48 if host.hier.mode == "v2" else 64) * 1024
    assert f"MemTotal:       {limit_kb:>8} kB" in text
    assert f"MemFree:        {limit_kb - 16384:>8} kB" in text
    assert "Buffers:               0 kB" in text


def test_cpus_cpuinfo_stat_and_online(host):
    if host.hier.mode == "v2":
        # cpuset 2-3, quota 0.5 -> one cpu: host cpu 2
        assert host.render("cpu-online") == "2\n"
        assert host.render("cpuinfo").count("processor") == 1
        stat = host.render("stat").splitlines()
        assert [line.split()[0] for line in stat[:2]] == ["cpu", "cpu0"]
        assert stat[1].split()[1:4] == ["200", "0", "100"]  # 2 s user, 1 s system
    else:
        # cpuset 1-3, quota 1.5 -> two cpus: host cpus 1 and 2
        assert host.render("cpu-online") == "1-2\n"
        assert host.render("cpuinfo").count("processor") == 2
        stat = host.render("stat").splitlines()
        # cpu 3's time folds into the first visible cpu (index 2 % 2 == 0)
        assert stat[1].split()[1] == str(200 + 400) and stat[1].split()[3] == "100"
        assert stat[2].split()[1] == "0"
    assert "ctxt 1" in host.render("stat")


def test_uptime_from_the_oldest_process(host):
    up, idle = host.render("uptime").split()
    assert up == "100.00"  # host 1000 s, init started at 900 s
    if host.hier.mode == "v2":  # one visible cpu, 3 s of cpu time
        assert float(idle) == pytest.approx(100 - 3.0)
    else:  # two visible cpus, 7 s of cpu time
        assert float(idle) == pytest.approx(200 - 7.0)


def test_loadavg_counts_the_containers_tasks(host):
    first = host.render("loadavg").split()
    assert first[3] == "1/2"  # pid 101 runs, 100 sleeps
    assert first[4] == "2"  # the newest task (101) is pid 2 in the container
    assert first[:3] == ["1.00", "1.00", "1.00"]  # starts from what runs now
    write(f"{host.proc}/101/stat", proc_stat_line(101, "S", 95000))
    for _ in range(12):  # one minute of 5-second samples with nothing running
        host.view.sample()
    loads = [float(x) for x in host.render("loadavg").split()[:3]]
    assert loads[0] < 0.4 and loads[0] < loads[1] < loads[2] < 1.0


def test_diskstats_from_the_io_counters(host):
    assert host.render("diskstats").split()[3:11] == ["7", "0", "8", "0", "3", "0", "2", "0"]


def test_a_process_without_cgroup_info_sees_the_host(host):
    assert host.render("meminfo", pid=4242) == HOST_MEMINFO
    assert host.render("uptime", pid=4242) == "1000.00 3000.00\n"


def test_a_broken_cgroup_file_falls_back_to_the_host(host, monkeypatch):
    def boom(cg, online):
        raise ValueError("unreadable cpuset")

    monkeypatch.setattr(cgv, "cpus", boom)
    logged = []
    host.view.log = logged.append
    assert host.render("cpuinfo") == open(f"{host.proc}/cpuinfo").read()
    assert "unreadable cpuset" in logged[0]


def test_sysinfo_answer(host):
    info = sysinfo.unpack(host.view.sysinfo(101))
    limit = (48 if host.hier.mode == "v2" else 64) * MiB
    assert info["totalram"] == limit and info["freeram"] == limit - 16 * MiB
    assert info["uptime"] == 100 and info["procs"] == 2 and info["mem_unit"] == 1
    assert info["loads"][0] == pytest.approx(1.0)
    assert host.view.sysinfo(4242) is None


# -- sysinfo interception: the profile and the structs ---------------------------------
DOCKER_LIKE = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
               "syscalls": [{"names": ["read", "sysinfo", "write"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["sysinfo"], "action": "SCMP_ACT_ALLOW"}]}


def test_profile_sends_sysinfo_to_the_listener():
    out = sysinfo.add_to_profile(DOCKER_LIKE, "/run/x/monitor.sock", "cid")
    assert out["syscalls"][0]["names"] == ["read", "write"]
    assert out["syscalls"][-1] == {"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}
    assert sum("sysinfo" in r["names"] for r in out["syscalls"]) == 1
    assert out["listenerPath"] == "/run/x/monitor.sock" and out["listenerMetadata"] == "cid"
    assert DOCKER_LIKE["syscalls"][0]["names"] == ["read", "sysinfo", "write"]  # a copy


def test_profile_left_alone_when_it_decides_about_sysinfo_itself():
    assert sysinfo.add_to_profile(None, "/s") is None  # unconfined: no filter at all
    denied = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO"}]}
    assert sysinfo.add_to_profile(denied, "/s") is denied
    not_allowed = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
                                                                    "action": "SCMP_ACT_ALLOW"}]}
    assert sysinfo.add_to_profile(not_allowed, "/s") is not_allowed
    agent = dict(DOCKER_LIKE, listenerPath="/their/agent.sock")
    assert sysinfo.add_to_profile(agent, "/s") is agent
    allow_all = sysinfo.add_to_profile({"defaultAction": "SCMP_ACT_ALLOW"}, "/s")
    assert allow_all["syscalls"] == [{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}]


def test_struct_sysinfo_layout():
    data = sysinfo.pack(100.7, [1.5, 0.25, 0], 64 * MiB, 60 * MiB, 1, 0, 0, 0, 3)
    assert len(data) == 112  # sizeof(struct sysinfo) on 64-bit Linux
    assert struct.unpack_from("=q", data, 0)[0] == 100
    assert struct.unpack_from("=Q", data, 8)[0] == 98304  # 1.5 << 16
    assert struct.unpack_from("=Q", data, 32)[0] == 64 * MiB  # totalram
    assert struct.unpack_from("=H", data, 80)[0] == 3  # procs
    assert struct.unpack_from("=I", data, 104)[0] == 1  # mem_unit
    back = sysinfo.unpack(data)
    assert back["freeram"] == 60 * MiB and back["loads"][1] == 0.25


def test_seccomp_notif_parsing():
    buf = struct.pack("=QIIiIQ6Q", 77, 1234, 0, 99, 0xC000003E, 0, 0x7ffd0000, 0, 0, 0, 0, 0)
    assert len(buf) == sysinfo.NOTIF_SIZE
    assert sysinfo.parse_notif(buf) == (77, 1234, 99, 0xC000003E, (0x7ffd0000, 0, 0, 0, 0, 0))


# -- re-serving: which mounts are a dead predecessor's --------------------------------
SOURCE = "pybox-procview@/run/pybox/procview"


def test_stale_mounts_are_this_servers_files_on_another_device():
    mountinfo = (
        "219 203 0:120 /abc/meminfo /proc/meminfo ro - fuse.pybox-procview "
        f"{SOURCE} ro\n"
        "220 203 0:121 /abc/cpuinfo /proc/cpuinfo ro - fuse.pybox-procview "
        f"{SOURCE} ro\n"
        "221 206 0:120 /cpu-online /sys/devices/system/cpu/online ro - fuse.pybox-procview "
        f"{SOURCE} ro\n"
        "222 203 0:120 /abc/meminfo /proc/meminfo ro - fuse.pybox-procview "
        "pybox-procview@/run/other/procview ro\n"
        "223 203 0:120 /abc/notours /proc/x ro - fuse.pybox-procview "
        f"{SOURCE} ro\n"
        "224 203 0:79 / /proc rw - proc proc rw\n")
    assert inject.stale_mounts(mountinfo, SOURCE, "0:121") == [
        ("/proc/meminfo", "/abc/meminfo", "0:120"),
        ("/sys/devices/system/cpu/online", "/cpu-online", "0:120")]
    assert len(inject.stale_mounts(mountinfo, SOURCE, None)) == 3


def test_sysinfo_is_written_only_into_writable_memory():
    maps = ("00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\n"
            "7ffd0000-7ffd1000 rw-p 00000000 00:00 0 [stack]\n"
            "7ffd1000-7ffd2000 rw-p 00000000 00:00 0\n")
    assert sysinfo.writable(1, 0x7ffd0010, 112, maps)
    assert sysinfo.writable(1, 0x7ffd0fd0, 112, maps)  # across two adjacent mappings
    assert not sysinfo.writable(1, 0x00400010, 112, maps)  # code: the kernel says EFAULT
    assert not sysinfo.writable(1, 0x7ffd1fd0, 112, maps)  # runs off the end
    assert not sysinfo.writable(1, 0x10, 112, maps)
