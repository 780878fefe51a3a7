"""The values the renderers take: what a cgroup says, in one shape for v1 and v2.

Typed records with slots (dataclasses where the record is plain data; the two
that derive values at construction keep their own ``__init__``).  All sizes are
bytes, all times nanoseconds; ``None`` means "unlimited" for limits and "the
kernel does not say" for counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    from collections.abc import Iterable

    # a controller's directory in one process's cgroup and its cgroup version (1, 2)
    CgroupDir = tuple[str, int]
    # (major, minor) -> {"rios", "wios", "dios", "rbytes", "wbytes", "dbytes"}
    IoStats = dict[tuple[int, int], dict[str, int]]


@dataclass(slots=True, eq=False, repr=False)
class Memory:
    """A cgroup's memory: the effective limits (the lowest along the path to the
    root) and usage, and the memory.stat counters the meminfo lines come from."""

    limit: int | None = None
    usage: int = 0
    swap_limit: int | None = None
    swap_usage: int = 0
    stat: dict[str, int] = field(default_factory=dict)

    # memory.stat counters, by the names used here (render.meminfo): v2 names;
    # cgroupview maps v1's total_* names onto them.  (Not a field: no annotation.)
    STAT_KEYS = ("anon", "file", "shmem", "file_mapped", "file_dirty", "file_writeback",
                 "swapcached", "active_anon", "inactive_anon", "active_file",
                 "inactive_file", "unevictable", "slab_reclaimable", "slab_unreclaimable",
                 "kernel_stack", "pagetables", "anon_thp", "shmem_thp", "file_thp",
                 "zswap", "zswapped")

    def __repr__(self) -> str:
        return (f"Memory(limit={self.limit}, usage={self.usage}, swap_limit={self.swap_limit}, "
                f"swap_usage={self.swap_usage})")


class Cpus:
    """The cpus a cgroup may use: ``allowed`` (its effective cpuset, host
    numbers, sorted), ``quota`` (cpu quota / period as a float, None = none) and
    ``visible``: what the view shows -- the cpuset, cut to ceil(quota) cpus when
    a quota is set (lxcfs's --enable-cfs rule)."""

    __slots__ = ("allowed", "quota", "visible")

    def __init__(self, allowed: Iterable[int], quota: float | None = None) -> None:
        self.allowed = list(allowed)
        self.quota = quota
        n = len(self.allowed)
        if quota is not None and quota > 0:
            whole = int(quota)
            n = min(n, max(1, whole if whole == quota else whole + 1))
        self.visible = self.allowed[:n]

    def __repr__(self) -> str:
        return f"Cpus(allowed={self.allowed}, quota={self.quota}, visible={self.visible})"


class CpuUsage:
    """Where a cgroup spent cpu time.  ``percpu``: host cpu -> (user, system) in
    ns, when the kernel gives a split per cpu (v1 cpuacct); else ``user`` and
    ``system`` totals only (v2 cpu.stat), spread evenly by the renderer."""

    __slots__ = ("percpu", "user", "system")

    def __init__(self, percpu: dict[int, tuple[int, int]] | None = None, user: int = 0,
                 system: int = 0) -> None:
        self.percpu = percpu
        if percpu:
            user = sum(u for u, _ in percpu.values())
            system = sum(s for _, s in percpu.values())
        self.user = user
        self.system = system

    @property
    def total(self) -> int:
        return self.user + self.system


@dataclass(slots=True, eq=False)
class Tasks:
    """A cgroup's threads at one moment: how many, how many runnable (R) and in
    uninterruptible sleep (D), and the last pid as the container numbers it."""

    total: int = 0
    running: int = 0
    blocked: int = 0
    last_pid: int = 0
