"""A fake cgroupfs in a plain directory, for unit tests (never imported by the runtime).

The drivers do all file access through a ``CgroupFs``; this one keeps the tree
under a tmp dir and imitates the kernel just enough to test driver logic
without root: a new directory gets the files its controllers would have,
cgroup.subtree_control understands "+memory", cgroup.procs appends, the freezer
files report the state asked for, and every write is recorded (``writes``) so a
test can check order.  ``fail`` injects errors: {file name or path suffix:
errno}.

    fs, layout = fake_host(tmp_path, "v1")        # or "v2", "hybrid"
    mgr = cgroups.new_manager("/pybox-test", "id", layout=layout, fs=fs)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from pybox.cgroups.devices import WILDCARD, DeviceState, parse_devices_list
from pybox.cgroups.fs import CgroupFs
from pybox.cgroups.layout import Layout, detect

BIG = "9223372036854771712"

V1_FILES = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.cfs_burst_us": "0", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0",
            "cpu.idle": "0", "cpu.stat": "nr_periods 10\nnr_throttled 3\nthrottled_time 4000\n"},
    "cpuacct": {"cpuacct.usage": "5000", "cpuacct.usage_percpu": "3000 2000 ",
                "cpuacct.usage_all": "cpu user system\n0 2000 1000\n1 1500 500\n",
                "cpuacct.stat": "user 2\nsystem 1\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {"memory.limit_in_bytes": BIG, "memory.memsw.limit_in_bytes": BIG,
               "memory.soft_limit_in_bytes": BIG, "memory.usage_in_bytes": "8192",
               "memory.max_usage_in_bytes": "16384", "memory.failcnt": "0",
               "memory.memsw.usage_in_bytes": "8192", "memory.memsw.max_usage_in_bytes": "0",
               "memory.memsw.failcnt": "0", "memory.swappiness": "60",
               "memory.kmem.tcp.limit_in_bytes": BIG,
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.use_hierarchy": "1",
               "memory.stat": "cache 4096\nrss 4096\ntotal_cache 4096\ntotal_inactive_file 1024\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 200\nTotal 300\n",
              "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n"},
    "pids": {"pids.max": "max", "pids.current": "1"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": BIG, "hugetlb.2MB.usage_in_bytes": "0",
                "hugetlb.2MB.max_usage_in_bytes": "0", "hugetlb.2MB.failcnt": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": "lo 0\n"},
    "rdma": {"rdma.max": ""},
}
V1_COMMON = {"cgroup.procs": "", "tasks": "", "notify_on_release": "0"}

V2_CORE = {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.freeze": "0",
           "cgroup.kill": "", "cgroup.type": "domain",
           "cgroup.events": "populated 0\nfrozen 0\n"}
V2_FILES = {
    "memory": {"memory.max": "max", "memory.low": "0", "memory.high": "max",
               "memory.swap.max": "max", "memory.current": "8192", "memory.peak": "16384",
               "memory.swap.current": "0",
               "memory.stat": "anon 4096\nfile 4096\ninactive_file 1024\n",
               "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"},
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
            "cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 10\n"
                        "nr_throttled 3\nthrottled_usec 4\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "io": {"io.max": "", "io.bfq.weight": "default 100", "io.weight": "default 100",
           "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"},
    "pids": {"pids.max": "max", "pids.current": "1"},
    "hugetlb": {"hugetlb.2MB.max": "max", "hugetlb.2MB.current": "0",
                "hugetlb.2MB.events": "max 0\n"},
    "rdma": {"rdma.max": ""},
}
# v2's cpu.stat exists even without the cpu controller
V2_ALWAYS = {"cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\n"}


class FakeCgroupFs(CgroupFs):
    """``mounts``: mountpoint -> controllers (v1) or None (cgroup2)."""

    def __init__(self, mounts: Mapping[str, tuple[str, ...] | None]) -> None:
        self.mounts = dict(mounts)
        self.writes: list[tuple[str, str]] = []
        self.fail: dict[str, int] = {}
        self.removed: list[str] = []
        self.mountinfo = ""  # the /proc text fake_host's layout was detected from
        self.proc_cgroup = ""

    def _mount_of(self, path: str) -> str | None:
        best = None
        for m in self.mounts:
            if (path == m or path.startswith(m.rstrip("/") + "/")) and (
                    best is None or len(m) > len(best)):
                best = m
        return best

    def populate(self, path: str) -> None:
        mount = self._mount_of(path)
        controllers = self.mounts.get(mount) if mount is not None else None
        files: dict[str, str] = {}
        if controllers is None:
            files.update(V2_CORE)
            files.update(V2_ALWAYS)
            parent = os.path.dirname(path)
            offered = _read_file(os.path.join(parent, "cgroup.subtree_control")).split()
            if path == mount:
                offered = _read_file(os.path.join(path, "cgroup.controllers")).split()
            files["cgroup.controllers"] = " ".join(offered)
            for c in offered:
                files.update(V2_FILES.get(c, {}))
        else:
            files.update(V1_COMMON)
            for c in controllers:
                files.update(V1_FILES.get(c, {}))
        for name, content in files.items():
            full = os.path.join(path, name)
            if not os.path.exists(full):
                with open(full, "w") as f:
                    f.write(content)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._maybe_fail(path, "mkdir")
        os.mkdir(path, mode)
        self.populate(path)

    def rmdir(self, path: str) -> None:
        self._maybe_fail(path, "rmdir")
        if not os.path.isdir(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        if any(os.path.isdir(os.path.join(path, n)) for n in os.listdir(path)):
            raise OSError(16, "Device or resource busy", path)
        procs = _read_file(os.path.join(path, "cgroup.procs")).split()
        if procs:
            raise OSError(16, "Device or resource busy", path)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
        self.removed.append(path)

    def _maybe_fail(self, path: str, op: str | None = None) -> None:
        for key, err in self.fail.items():
            if path.endswith(key) or key == op:
                raise OSError(err, os.strerror(err), path)

    def write(self, path: str, data: str | bytes) -> None:
        if isinstance(data, bytes):
            data = data.decode()
        self._maybe_fail(path)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        self.writes.append((path, data))
        name = os.path.basename(path)
        directory = os.path.dirname(path)
        if name == "cgroup.subtree_control":
            current = _read_file(path).split()
            offered = _read_file(os.path.join(directory, "cgroup.controllers")).split()
            for item in data.split():
                c = item[1:]
                if item[0] == "+" and c not in current:
                    if c not in offered:
                        raise OSError(2, "No such file or directory", path)
                    current.append(c)
                elif item[0] == "-" and c in current:
                    current.remove(c)
            data = " ".join(current)
        elif name == "cgroup.procs":
            data = _read_file(path) + data + "\n"
        elif name == "cgroup.freeze":
            with open(os.path.join(directory, "cgroup.events"), "w") as f:
                f.write(f"populated 0\nfrozen {data.strip()}\n")
        elif name == "cgroup.kill":
            data = ""
            with open(os.path.join(directory, "cgroup.procs"), "w"):
                pass
        elif name in ("devices.allow", "devices.deny"):
            _devices_list_after(directory, name == "devices.allow", data)
            data = _read_file(path) + data + "\n"
        elif name in ("io.max", "blkio.bfq.weight_device",
                      "rdma.max",
                      "net_prio.ifpriomap") or "throttle" in name:
            data = _read_file(path) + data + "\n"
        with open(path, "w") as f:
            f.write(data)


def _devices_list_after(directory: str, allow: bool, line: str) -> None:
    """devices.list after one write to devices.allow (``allow``) or devices.deny,
    as the v1 kernel keeps it: "a" switches the default and drops every
    exception; a rule against the default adds access to its exception, one
    with the default takes access away from the exact entry.  A list whose
    default is allow shows only "a *:* rwm"."""
    path = os.path.join(directory, "devices.list")
    state = parse_devices_list(_read_file(path))
    fields = line.split()
    if fields[0] == "a":
        state = DeviceState(allow)
    else:
        kind, numbers, access = fields
        major, _, minor = numbers.partition(":")
        key = (kind, WILDCARD if major == "*" else int(major),
               WILDCARD if minor == "*" else int(minor))
        old = state.exceptions.get(key, "")
        if allow != state.default_allow:
            state.exceptions[key] = "".join(c for c in "rwm" if c in old + access)
        else:
            left = "".join(c for c in old if c not in access)
            if left:
                state.exceptions[key] = left
            else:
                state.exceptions.pop(key, None)
    if state.default_allow:
        text = "a *:* rwm\n"
    else:
        text = "".join(f"{k} {'*' if ma == WILDCARD else ma}:{'*' if mi == WILDCARD else mi} "
                       f"{acc}\n" for (k, ma, mi), acc in state.exceptions.items())
    with open(path, "w") as f:
        f.write(text)


def _read_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write_file(path: str, content: str) -> None:
    with open(path, "w") as f:
        f.write(content)


V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def fake_host(root: str | os.PathLike[str], mode: str, *, own: str = "/",
              v2_controllers: Iterable[str] = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids"),
              v1_controllers: Iterable[str] = V1_CONTROLLERS, comount_cpu: bool = False,
              unified_controllers: Iterable[str] = ()) -> tuple[FakeCgroupFs, Layout]:
    """Build a fake host under ``root``; returns (FakeCgroupFs, Layout).

    ``own`` is the caller's cgroup (in every hierarchy) as /proc/self/cgroup shows it.
    """
    root = str(root)
    lines = ["31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755"]
    cgroup_lines = []
    mounts: dict[str, tuple[str, ...] | None] = {}
    n = 32
    if mode in ("v1", "hybrid"):
        groups: list[str] = []
        names = list(v1_controllers)
        if comount_cpu and "cpu" in names and "cpuacct" in names:
            names.remove("cpuacct")
            names[names.index("cpu")] = "cpu,cpuacct"
        groups.extend(names)
        for i, g in enumerate(groups + ["name=systemd"]):
            mp = "/sys/fs/cgroup/" + (g if not g.startswith("name=") else "systemd")
            lines.append(f"{n} 31 0:{n} / {mp} rw,relatime - cgroup cgroup rw,{g}")
            cgroup_lines.append(f"{len(groups) + 1 - i}:{g}:{own}")
            mounts[root + mp] = tuple(g.split(","))
            n += 1
    if mode in ("v2", "hybrid"):
        mp = "/sys/fs/cgroup" if mode == "v2" else "/sys/fs/cgroup/unified"
        lines.append(f"{n} 31 0:{n} / {mp} rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw")
        cgroup_lines.append(f"0::{own}")
        mounts[root + mp] = None
    mountinfo = "\n".join(lines) + "\n"
    proc_cgroup = "\n".join(cgroup_lines) + "\n"
    fs = FakeCgroupFs(mounts)
    for mp, controllers in sorted(mounts.items()):
        os.makedirs(mp, exist_ok=True)
        if controllers is None:
            offered = v2_controllers if mode == "v2" else unified_controllers
            write_file(os.path.join(mp, "cgroup.controllers"), " ".join(offered))
        fs.populate(mp)
        if controllers is not None and "cpuset" in controllers:
            write_file(os.path.join(mp, "cpuset.cpus"), "0-3")
            write_file(os.path.join(mp, "cpuset.mems"), "0")
    # the caller's own cgroup exists in every hierarchy
    if own.strip("/"):
        for mp, on_mount in mounts.items():
            current = mp
            for part in own.strip("/").split("/"):
                current = os.path.join(current, part)
                if not os.path.isdir(current):
                    if on_mount is None:  # delegated down to the caller
                        parent = os.path.dirname(current)
                        write_file(os.path.join(parent, "cgroup.subtree_control"),
                                   _read_file(os.path.join(parent, "cgroup.controllers")))
                    os.mkdir(current)
                    fs.populate(current)
                    if on_mount is not None and "cpuset" in on_mount:
                        write_file(os.path.join(current, "cpuset.cpus"), "0-3")
                        write_file(os.path.join(current, "cpuset.mems"), "0")
    layout = detect(mountinfo, proc_cgroup, prefix=root)
    fs.mountinfo = mountinfo
    fs.proc_cgroup = proc_cgroup
    return fs, layout
