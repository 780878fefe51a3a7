"""A process's cgroups and the values the view needs, read from the kernel.

    hier = Hierarchies.detect()          # where the host mounts each controller
    cg = hier.lookup(pid)                # /proc/PID/cgroup -> directories
    memory(cg), cpus(cg, online), cpu_usage(cg), io(cg), procs(cg), threads(cg)

lxcfs's rule: a FUSE request carries the pid of the process that reads, and the
server (in the host's pid and cgroup namespaces) reads /proc/PID/cgroup to find
its cgroup in every hierarchy.  Each controller is read where the host has it:
v1 when a v1 hierarchy has it, else the cgroup2 mount if it offers it (hybrid
hosts), else v2 alone.  ``proc`` and the layout's mount points can be re-rooted
for tests (a fake /proc and cgroupfs under a temporary directory).

Reads go through ``read_text`` (os.open/os.read, no buffered text I/O): the
view is on the path of every read of /proc/meminfo in a container.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pybox.cgroups.layout import detect
from pybox.procview.model import Cpus, CpuUsage, Memory, Tasks
from pybox.procview.render import parse_cpu_list

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    from pybox.cgroups.layout import Layout
    from pybox.procview.model import CgroupDir, IoStats

# v1 reports "unlimited" as PAGE_COUNTER_MAX pages (9223372036854771712 with 4k
# pages); anything this large is no limit.
UNLIMITED = 1 << 62


def read_text(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 131072)
        if data:
            # seq files hand out whole records per read, less than asked for
            chunks = [data]
            while True:
                more = os.read(fd, 131072)
                if not more:
                    break
                chunks.append(more)
            if len(chunks) > 1:
                data = b"".join(chunks)
    finally:
        os.close(fd)
    return data.decode("latin-1")


def _read_or_none(path: str) -> str | None:
    try:
        return read_text(path)
    except OSError:
        return None


def _int_or_none(path: str) -> int | None:
    text = _read_or_none(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return UNLIMITED
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def flat_keyed(text: str | None) -> dict[str, int]:
    """"key value" lines -> {key: int}."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            pass
    return out


@dataclass(slots=True, eq=False, repr=False)
class Cgroup:
    """One process's cgroup, per controller: (directory, version) or None.
    ``key`` names the cgroup for caches (its path in the first hierarchy)."""

    memory: CgroupDir | None = None
    cpu: CgroupDir | None = None
    cpuacct: CgroupDir | None = None
    cpuset: CgroupDir | None = None
    io: CgroupDir | None = None
    tasks: CgroupDir | None = None
    key: str = ""
    mounts: dict[str, str] = field(default_factory=dict)  # directory -> its mount point

    def __repr__(self) -> str:
        return (f"Cgroup(key={self.key!r}, memory={self.memory}, cpu={self.cpu}, "
                f"cpuset={self.cpuset}, io={self.io})")


class Hierarchies:
    """Where the host mounts the controllers the view reads."""

    # view name -> (v1 controller, v2 controller)
    WANTED = (("memory", "memory", "memory"), ("cpu", "cpu", "cpu"),
              ("cpuacct", "cpuacct", "cpu"), ("cpuset", "cpuset", "cpuset"),
              ("io", "blkio", "io"))

    def __init__(self, layout: Layout, proc: str = "/proc") -> None:
        self.proc = proc.rstrip("/")
        self.v1: dict[str, tuple[str, str]] = {}  # controller -> (mountpoint, root)
        for name, h in layout.v1.items():
            self.v1[name] = (h.mountpoint.rstrip("/") or "/", h.root)
        u = layout.unified
        self.unified = (u.mountpoint.rstrip("/"), u.root) if u is not None else None
        self.unified_controllers = set(u.controllers) if u is not None else set()
        self.mode = layout.mode

    @classmethod
    def detect(cls, proc: str = "/proc", mountinfo: str | None = None,
               proc_cgroup: str | None = None, prefix: str = "") -> Hierarchies:
        return cls(detect(mountinfo, proc_cgroup, prefix=prefix), proc=proc)

    @staticmethod
    def _directory(mount: tuple[str, str], path: str) -> str | None:
        mountpoint, root = mount
        if root not in ("", "/"):
            if path == root:
                path = "/"
            elif path.startswith(root.rstrip("/") + "/"):
                path = path[len(root.rstrip("/")):]
            else:
                return None
        return mountpoint if path in ("", "/") else mountpoint + path

    def parse(self, text: str) -> Cgroup:
        """/proc/PID/cgroup text -> Cgroup."""
        paths: dict[str, str] = {}
        unified_path: str | None = None
        for line in text.splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            if parts[1] == "":
                unified_path = parts[2]
                continue
            for name in parts[1].split(","):
                paths[name] = parts[2]
        cg = Cgroup()
        unified_dir = None
        if self.unified is not None and unified_path is not None:
            unified_dir = self._directory(self.unified, unified_path)
            if unified_dir is not None:
                cg.mounts[unified_dir] = self.unified[0]
        for attr, v1_name, v2_name in self.WANTED:
            value: CgroupDir | None = None
            if v1_name in self.v1 and v1_name in paths:
                mount = self.v1[v1_name]
                d = self._directory(mount, paths[v1_name])
                if d is not None:
                    value = (d, 1)
                    cg.mounts[d] = mount[0]
            elif unified_dir is not None and (v2_name in self.unified_controllers
                                              or (attr == "cpuacct" and self.mode == "v2")):
                # cpu.stat's usage fields exist in every v2 cgroup
                value = (unified_dir, 2)
            setattr(cg, attr, value)
        if unified_dir is not None and self.mode == "v2":
            cg.tasks = (unified_dir, 2)
            cg.key = unified_path or ""  # (not None: unified_dir is set)
        else:
            for name in ("cpu", "memory", "pids", "cpuacct", "name=systemd"):
                if name in self.v1 and name in paths:
                    d = self._directory(self.v1[name], paths[name])
                    if d is not None:
                        cg.tasks = (d, 1)
                        cg.key = paths[name]
                        break
            else:
                if unified_dir is not None:
                    cg.tasks = (unified_dir, 2)
                    cg.key = unified_path or ""
        return cg

    def lookup(self, pid: int) -> Cgroup | None:
        """The Cgroup of process ``pid``, or None if it is gone."""
        try:
            return self.parse(read_text(f"{self.proc}/{pid}/cgroup"))
        except OSError:
            return None


def _ancestors(directory: str, mountpoint: str) -> list[str]:
    """``directory`` and its parents up to (not including) the mount point."""
    out: list[str] = []
    d = directory
    while d and d != mountpoint and d.startswith(mountpoint + "/"):
        out.append(d)
        d = d.rsplit("/", 1)[0]
    return out


# -- memory ----------------------------------------------------------------------------------
_V1_STAT = (("anon", "total_rss"), ("file", "total_cache"), ("shmem", "total_shmem"),
            ("file_mapped", "total_mapped_file"), ("file_dirty", "total_dirty"),
            ("file_writeback", "total_writeback"), ("swapcached", "total_swapcached"),
            ("active_anon", "total_active_anon"), ("inactive_anon", "total_inactive_anon"),
            ("active_file", "total_active_file"), ("inactive_file", "total_inactive_file"),
            ("unevictable", "total_unevictable"), ("anon_thp", "total_rss_huge"))


def memory(cg: Cgroup | None) -> Memory | None:
    """Memory of ``cg`` (None without a memory controller)."""
    if cg is None or cg.memory is None:
        return None
    d, version = cg.memory
    text = _read_or_none(f"{d}/memory.stat")
    if text is None:
        return None
    raw = flat_keyed(text)
    if version == 1:
        limit = raw.get("hierarchical_memory_limit", UNLIMITED)
        memsw = raw.get("hierarchical_memsw_limit")
        usage = _int_or_none(f"{d}/memory.usage_in_bytes") or 0
        stat = {k: raw[v1] for k, v1 in _V1_STAT if v1 in raw}
        swap_limit = None
        if memsw is not None and memsw < UNLIMITED and limit < UNLIMITED:
            swap_limit = max(0, memsw - limit)
        return Memory(limit=None if limit >= UNLIMITED else limit, usage=usage,
                      swap_limit=swap_limit, swap_usage=raw.get("total_swap", 0), stat=stat)
    mountpoint = cg.mounts.get(d, "")
    limit = swap_limit = UNLIMITED
    for a in _ancestors(d, mountpoint):
        v = _int_or_none(f"{a}/memory.max")
        if v is not None:
            limit = min(limit, v)
        v = _int_or_none(f"{a}/memory.swap.max")
        if v is not None:
            swap_limit = min(swap_limit, v)
    usage = _int_or_none(f"{d}/memory.current") or 0
    swap_usage = _int_or_none(f"{d}/memory.swap.current") or 0
    stat = {k: raw[k] for k in Memory.STAT_KEYS if k in raw}
    return Memory(limit=None if limit >= UNLIMITED else limit, usage=usage,
                  swap_limit=None if swap_limit >= UNLIMITED else swap_limit,
                  swap_usage=swap_usage, stat=stat)


# -- cpus ----------------------------------------------------------------------------------------
def cpus(cg: Cgroup | None, online: list[int]) -> Cpus | None:
    """Cpus of ``cg``: its effective cpuset within ``online`` (host cpu numbers)
    and the lowest cpu quota on its path."""
    if cg is None:
        return None
    allowed = list(online)
    if cg.cpuset is not None:
        d, version = cg.cpuset
        name = "cpuset.effective_cpus" if version == 1 else "cpuset.cpus.effective"
        text = _read_or_none(f"{d}/{name}")
        if text and text.strip():
            online_set = set(online)
            allowed = [c for c in parse_cpu_list(text) if c in online_set] or allowed
    quota: float | None = None
    if cg.cpu is not None:
        d, version = cg.cpu
        for a in _ancestors(d, cg.mounts.get(d, "")):
            if version == 1:
                q = _int_or_none(f"{a}/cpu.cfs_quota_us")
                p = _int_or_none(f"{a}/cpu.cfs_period_us")
            else:
                text = _read_or_none(f"{a}/cpu.max")
                if not text:
                    continue
                fields = text.split()
                if not fields or fields[0] == "max":
                    continue
                q = int(fields[0])
                p = int(fields[1]) if len(fields) > 1 else 100000
            if q is None or p is None or q <= 0 or p <= 0 or q >= UNLIMITED:
                continue
            ratio = q / p
            quota = ratio if quota is None else min(quota, ratio)
    return Cpus(allowed, quota)


def cpu_usage(cg: Cgroup | None) -> CpuUsage | None:
    """CpuUsage of ``cg``: per cpu on v1 (cpuacct), totals on v2 (cpu.stat)."""
    if cg is None or cg.cpuacct is None:
        return None
    d, version = cg.cpuacct
    if version == 1:
        text = _read_or_none(f"{d}/cpuacct.usage_all")
        if text:
            percpu: dict[int, tuple[int, int]] = {}
            for line in text.splitlines()[1:]:
                fields = line.split()
                if len(fields) == 3:
                    percpu[int(fields[0])] = (int(fields[1]), int(fields[2]))
            return CpuUsage(percpu=percpu)
        text = _read_or_none(f"{d}/cpuacct.usage_percpu")
        if text is None:
            return None
        # no user/system split per cpu: count it all as user time
        return CpuUsage(percpu={i: (int(v), 0) for i, v in enumerate(text.split())})
    raw = flat_keyed(_read_or_none(f"{d}/cpu.stat"))
    if "usage_usec" not in raw:
        return None
    user = raw.get("user_usec", 0) * 1000
    system = raw.get("system_usec", 0) * 1000
    return CpuUsage(user=user, system=system)


# -- I/O ------------------------------------------------------------------------------------------
def io(cg: Cgroup | None) -> IoStats | None:
    """(major, minor) -> {"rios", "wios", "dios", "rbytes", "wbytes", "dbytes"}."""
    if cg is None or cg.io is None:
        return None
    d, version = cg.io
    out: IoStats = {}
    if version == 2:
        text = _read_or_none(f"{d}/io.stat")
        if text is None:
            return None
        for line in text.splitlines():
            fields = line.split()
            if not fields or ":" not in fields[0]:
                continue
            major, _, minor = fields[0].partition(":")
            entry = out.setdefault((int(major), int(minor)), {})
            for item in fields[1:]:
                key, _, value = item.partition("=")
                try:
                    entry[key] = int(value)
                except ValueError:
                    pass
        return out
    found = False
    for name, suffix in (("blkio.throttle.io_serviced_recursive", "ios"),
                         ("blkio.throttle.io_service_bytes_recursive", "bytes")):
        text = _read_or_none(f"{d}/{name}")
        if text is None:
            continue
        found = True
        for line in text.splitlines():
            fields = line.split()
            if len(fields) != 3 or ":" not in fields[0]:
                continue
            op = {"Read": "r", "Write": "w", "Discard": "d"}.get(fields[1])
            if op is None:
                continue
            major, _, minor = fields[0].partition(":")
            out.setdefault((int(major), int(minor)), {})[op + suffix] = int(fields[2])
    return out if found else None


# -- processes ----------------------------------------------------------------------------
def _ids(cg: Cgroup | None, v1_file: str, v2_file: str) -> list[int]:
    if cg is None or cg.tasks is None:
        return []
    d, version = cg.tasks
    text = _read_or_none(f"{d}/{v1_file if version == 1 else v2_file}")
    return [int(x) for x in text.split()] if text else []


def procs(cg: Cgroup | None) -> list[int]:
    """Pids of the processes directly in ``cg``."""
    return _ids(cg, "cgroup.procs", "cgroup.procs")


def threads(cg: Cgroup | None) -> list[int]:
    """Thread ids of the tasks directly in ``cg``."""
    return _ids(cg, "tasks", "cgroup.threads")


def stat_fields(proc: str, pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (index 0 = state), or None."""
    try:
        data = read_text(f"{proc}/{pid}/stat")
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def start_ticks(proc: str, pid: int) -> int | None:
    fields = stat_fields(proc, pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def tasks(cg: Cgroup | None, proc: str = "/proc") -> Tasks:
    """Tasks of ``cg`` now: counts by state and the newest task's pid as its own
    pid namespace numbers it (the last NSpid field)."""
    total = running = blocked = 0
    newest: int | None = None
    newest_start = -1
    for tid in threads(cg):
        fields = stat_fields(proc, tid)
        if not fields:
            continue
        total += 1
        state = fields[0]
        if state == "R":
            running += 1
        elif state == "D":
            blocked += 1
        start = int(fields[19]) if len(fields) > 19 else 0
        if start >= newest_start:
            newest, newest_start = tid, start
    last_pid = 0
    if newest is not None:
        text = _read_or_none(f"{proc}/{newest}/status")
        for line in (text or "").splitlines():
            if line.startswith("NSpid:"):
                last_pid = int(line.split()[-1])
                break
        else:
            last_pid = newest
    return Tasks(total=total, running=running, blocked=blocked, last_pid=last_pid)
