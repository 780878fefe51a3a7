"""The view: a file name and the pid that opens it -> the file's bytes.

Joins the host's files (read from ``proc`` and ``sys``), the reader's cgroup
(cgroupview) and the renderers.  No FUSE here: the server calls ``render``, and
tests call it on a fake /proc and cgroupfs.  Two small caches keep reads cheap
without ever serving a stale value:

- the oldest process of a cgroup (the container's start, for uptime) is kept
  as (pid, start time) and re-checked with one read of /proc/PID/stat;
- load averages are state: the server samples every cgroup that was read at
  least once (``sample``, every 5 s, the kernel's exponential decay), and
  forgets a cgroup an hour after its last read or when its directory is gone.
"""

from __future__ import annotations

import math
import os
import sys
import time

from pybox.procview import cgroupview as cgv
from pybox.procview import render
from pybox.procview.cgroupview import read_text
from pybox.procview.sysinfo import pack

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    from collections.abc import Callable

    from pybox.procview.cgroupview import Cgroup, Hierarchies
    from pybox.procview.model import Cpus

SAMPLE_SECONDS = 5.0
FORGET_SECONDS = 3600.0
# the kernel's EXP_1, EXP_5, EXP_15 for a 5 s sample
DECAY = tuple(math.exp(-SAMPLE_SECONDS / (60.0 * m)) for m in (1, 5, 15))


class Load:
    """A cgroup's load averages (1, 5, 15 minutes) and when it was last read."""

    __slots__ = ("cg", "loads", "last_read")

    def __init__(self, cg: Cgroup, n: int, now: float) -> None:
        self.cg = cg
        self.loads = [float(n)] * 3
        self.last_read = now


class View:
    """The files of the view, rendered for the reader's cgroup."""

    def __init__(self, hierarchies: Hierarchies, proc: str = "/proc", sys_root: str = "/sys",
                 hz: int | None = None, log: Callable[[str], object] | None = None) -> None:
        self.hier = hierarchies
        self.proc = proc.rstrip("/")
        self.online_path = f"{sys_root.rstrip('/')}/devices/system/cpu/online"
        self.hz = hz or os.sysconf("SC_CLK_TCK")
        self.log = log or (lambda text: sys.stderr.write(text + "\n"))
        # cgroup key -> (pid, start ticks) of its oldest process
        self.starts: dict[str, tuple[int, int]] = {}
        self.loads: dict[str, Load] = {}  # cgroup key -> Load
        self.renderers: dict[str, Callable[[Cgroup | None], str]] = {
            "meminfo": self.meminfo, "cpuinfo": self.cpuinfo, "stat": self.stat,
            "uptime": self.uptime, "loadavg": self.loadavg, "diskstats": self.diskstats,
            "swaps": self.swaps, "cpu-online": self.cpu_online,
        }
        self.hosts = {
            "meminfo": f"{self.proc}/meminfo", "cpuinfo": f"{self.proc}/cpuinfo",
            "stat": f"{self.proc}/stat", "uptime": f"{self.proc}/uptime",
            "loadavg": f"{self.proc}/loadavg", "diskstats": f"{self.proc}/diskstats",
            "swaps": f"{self.proc}/swaps", "cpu-online": self.online_path,
        }

    # -- entry point ---------------------------------------------------------------
    def render(self, name: str, pid: int) -> bytes:
        """The bytes of file ``name`` as process ``pid`` should see it.  Never
        fails for a bad cgroup value: the host's file is the fallback."""
        cg = self.hier.lookup(pid) if pid else None
        try:
            text = self.renderers[name](cg)
        except Exception as e:  # noqa: BLE001 - a reader gets the host's file, not EIO
            self.log(f"procview: {name} for pid {pid}: {e.__class__.__name__}: {e}")
            text = read_text(self.hosts[name])
        return text.encode("latin-1")

    # -- helpers -------------------------------------------------------------------
    def _host(self, name: str) -> str:
        return read_text(self.hosts[name])

    def online(self) -> list[int]:
        return render.parse_cpu_list(read_text(self.online_path))

    def cpus(self, cg: Cgroup | None) -> Cpus | None:
        return cgv.cpus(cg, self.online()) if cg is not None else None

    def started(self, cg: Cgroup | None) -> float | None:
        """Seconds since boot at which ``cg``'s oldest process started."""
        if cg is None or cg.tasks is None:
            return None
        cached = self.starts.get(cg.key)
        if cached is not None and cgv.start_ticks(self.proc, cached[0]) == cached[1]:
            return cached[1] / self.hz
        best: tuple[int, int] | None = None
        for pid in cgv.procs(cg):
            ticks = cgv.start_ticks(self.proc, pid)
            if ticks is not None and (best is None or ticks < best[1]):
                best = (pid, ticks)
        if best is None:
            self.starts.pop(cg.key, None)
            return None
        self.starts[cg.key] = best
        return best[1] / self.hz

    # -- the files ------------------------------------------------------------------
    def meminfo(self, cg: Cgroup | None) -> str:
        return render.meminfo(self._host("meminfo"), cgv.memory(cg))

    def swaps(self, cg: Cgroup | None) -> str:
        return render.swaps(self._host("swaps"), self._host("meminfo"), cgv.memory(cg))

    def cpuinfo(self, cg: Cgroup | None) -> str:
        return render.cpuinfo(self._host("cpuinfo"), self.cpus(cg))

    def cpu_online(self, cg: Cgroup | None) -> str:
        return render.cpu_online(self._host("cpu-online"), self.cpus(cg))

    def stat(self, cg: Cgroup | None) -> str:
        return render.stat(self._host("stat"), self.cpus(cg), cgv.cpu_usage(cg), self.hz)

    def uptime(self, cg: Cgroup | None) -> str:
        host = self._host("uptime")
        started = self.started(cg)
        if started is None:
            return host
        cpus = self.cpus(cg)
        usage = cgv.cpu_usage(cg)
        return render.uptime(host, started, usage.total if usage else 0,
                             len(cpus.visible) if cpus else 1)

    def loadavg(self, cg: Cgroup | None) -> str:
        if cg is None or cg.tasks is None:
            return self._host("loadavg")
        tasks = cgv.tasks(cg, self.proc)
        now = time.monotonic()
        entry = self.loads.get(cg.key)
        if entry is None:
            # Never sampled yet: start from what runs now (the kernel starts
            # from 0, but then a busy container would read idle for a minute).
            entry = self.loads[cg.key] = Load(cg, tasks.running + tasks.blocked, now)
        entry.last_read = now
        return render.loadavg(entry.loads, tasks) or ""  # (never None: both are given)

    def diskstats(self, cg: Cgroup | None) -> str:
        return render.diskstats(self._host("diskstats"), cgv.io(cg))

    def sysinfo(self, pid: int) -> bytes | None:
        """struct sysinfo bytes for ``pid`` (see procview.sysinfo), or None for a
        caller without a cgroup to speak of (the kernel then answers)."""
        cg = self.hier.lookup(pid) if pid else None
        if cg is None or cg.tasks is None:
            return None
        host = render.parse_meminfo(self._host("meminfo"))
        values = render.meminfo_values(host, cgv.memory(cg)) or host
        started = self.started(cg)
        host_up = float(self._host("uptime").split()[0])
        uptime = host_up - started if started is not None else host_up
        tasks = cgv.tasks(cg, self.proc)
        now = time.monotonic()
        entry = self.loads.get(cg.key)
        if entry is None:
            entry = self.loads[cg.key] = Load(cg, tasks.running + tasks.blocked, now)
        entry.last_read = now
        k = 1024
        return pack(max(0.0, uptime), entry.loads, values.get("MemTotal", 0) * k,
                    values.get("MemFree", 0) * k, values.get("Shmem", 0) * k,
                    values.get("Buffers", 0) * k, values.get("SwapTotal", 0) * k,
                    values.get("SwapFree", 0) * k, tasks.total)

    # -- periodic work ----------------------------------------------------------------
    def sample(self, now: float | None = None) -> None:
        """One 5-second step of every tracked cgroup's load averages; forgets
        cgroups that are gone or unread for an hour, and dead start-time entries."""
        now = time.monotonic() if now is None else now
        for key, entry in list(self.loads.items()):
            d = entry.cg.tasks[0] if entry.cg.tasks else None
            if now - entry.last_read > FORGET_SECONDS or d is None or not os.path.isdir(d):
                del self.loads[key]
                continue
            t = cgv.tasks(entry.cg, self.proc)
            n = t.running + t.blocked
            entry.loads = [load * e + n * (1.0 - e)
                           for load, e in zip(entry.loads, DECAY, strict=True)]
        for key, (pid, ticks) in list(self.starts.items()):
            if cgv.start_ticks(self.proc, pid) != ticks:
                del self.starts[key]
