"""Renderers: the host's kernel file + a cgroup's values -> the container's file.

Pure functions over text and pybox.procview.model values: no file access, so
every rule here is unit-tested without root (tests/unit/test_procview_render.py).
A renderer given ``None`` values returns the host's text unchanged: a process
outside any limit (or on the host) sees the host.

The rules, and where they follow lxcfs (proc_fuse.c):

meminfo   MemTotal = the memory limit (the lowest on the cgroup's path; the
          host's file unchanged when there is none, or it is above the host's
          RAM); MemFree = limit - usage, never more than the host's MemFree;
          MemAvailable = MemFree + the reclaimable page cache and slab, never
          more than the limit (lxcfs adds all of the cache, shmem included);
          Cached, Active/Inactive(anon/file), Dirty, Mapped, Shmem, Slab... from
          memory.stat (0 where the kernel keeps no per-cgroup counter); Swap
          from the swap limit and usage, within the host's swap.
cpuinfo   the blocks of the visible cpus only, renumbered from 0 (as lxcfs).
stat      one line per visible cpu, renumbered: user and system from the
          cgroup's accounting, idle = the host cpu's elapsed ticks minus them; a
          quota that hides cpus folds their time into the visible ones; the
          other lines (intr, ctxt, btime...) are the host's (as lxcfs).
uptime    seconds since the cgroup's oldest process started; idle = uptime x
          visible cpus - the cgroup's cpu time.
loadavg   the cgroup's own load averages (sampled by the server every 5 s,
          the kernel's formula), runnable/total of its threads, its last pid.
diskstats the host's lines of the devices the cgroup did I/O on, with its own
          counts of requests and sectors (times are not accounted per cgroup: 0).
swaps     one "none virtual" line with the cgroup's swap (as lxcfs).
cpu-online  /sys/devices/system/cpu/online: the visible cpus' host numbers.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pybox.procview.model import Cpus, CpuUsage, IoStats, Memory, Tasks


# -- cpu lists --------------------------------------------------------------------------
def parse_cpu_list(text: str) -> list[int]:
    """"0-3,5,7-8" -> [0, 1, 2, 3, 5, 7, 8] (sorted, unique)."""
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(lo))
    return sorted(out)


def format_cpu_list(cpu_numbers: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    out: list[str] = []
    cpus = sorted(set(cpu_numbers))
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


# -- meminfo ------------------------------------------------------------------------------
def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {key: number} (kB for the "kB" lines)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if fields:
            try:
                out[key] = int(fields[0])
            except ValueError:
                pass
    return out


def _swap_kb(host: dict[str, int], mem: Memory) -> tuple[int, int]:
    """(SwapTotal, SwapFree) in kB for ``mem`` within the host's swap."""
    host_total = host.get("SwapTotal", 0)
    host_free = host.get("SwapFree", 0)
    used = mem.swap_usage // 1024
    if mem.swap_limit is None:
        return host_total, max(0, min(host_total - used, host_free))
    total = min(mem.swap_limit // 1024, host_total)
    return total, max(0, total - used)


def limited(host: dict[str, int], mem: Memory | None) -> bool:
    """Is ``mem``'s limit below the host's RAM (so the view differs)?"""
    total = host.get("MemTotal", 0)
    return (mem is not None and mem.limit is not None and total > 0
            and mem.limit < total * 1024)


def meminfo_values(host: dict[str, int], mem: Memory | None) -> dict[str, int]:
    """The virtualised meminfo lines (kB) for ``mem``; {} when it is not limited."""
    if mem is None or mem.limit is None or not limited(host, mem):
        return {}
    limit = mem.limit // 1024
    s = mem.stat

    def kb(key: str) -> int:
        return (s.get(key) or 0) // 1024

    usage = min(mem.usage // 1024, limit)
    free = max(0, limit - usage)
    if "MemFree" in host:
        free = min(free, host["MemFree"])
    reclaimable = kb("active_file") + kb("inactive_file") + kb("slab_reclaimable")
    available = min(free + reclaimable, limit)
    if "MemAvailable" in host:
        available = min(available, max(host["MemAvailable"], free))
    swap_total, swap_free = _swap_kb(host, mem)
    sr, su = kb("slab_reclaimable"), kb("slab_unreclaimable")
    return {
        "MemTotal": limit, "MemFree": free, "MemAvailable": available, "Buffers": 0,
        "Cached": kb("file"), "SwapCached": kb("swapcached"),
        "Active": kb("active_anon") + kb("active_file"),
        "Inactive": kb("inactive_anon") + kb("inactive_file"),
        "Active(anon)": kb("active_anon"), "Inactive(anon)": kb("inactive_anon"),
        "Active(file)": kb("active_file"), "Inactive(file)": kb("inactive_file"),
        "Unevictable": kb("unevictable"),
        "Mlocked": min(host.get("Mlocked", 0), kb("unevictable")),
        "SwapTotal": swap_total, "SwapFree": swap_free,
        "Zswap": kb("zswap"), "Zswapped": kb("zswapped"),
        "Dirty": kb("file_dirty"), "Writeback": kb("file_writeback"),
        "AnonPages": kb("anon"), "Mapped": kb("file_mapped"), "Shmem": kb("shmem"),
        "KReclaimable": sr, "Slab": sr + su, "SReclaimable": sr, "SUnreclaim": su,
        "KernelStack": kb("kernel_stack"), "PageTables": kb("pagetables"),
        "AnonHugePages": kb("anon_thp"), "ShmemHugePages": kb("shmem_thp"),
        "FileHugePages": kb("file_thp"),
    }


def meminfo(host_text: str, mem: Memory | None) -> str:
    """/proc/meminfo for a cgroup with Memory ``mem`` (None: the host's)."""
    if mem is None:
        return host_text
    values = meminfo_values(parse_meminfo(host_text), mem)
    if not values:
        return host_text
    out = []
    for line in host_text.splitlines():
        key, sep, _ = line.partition(":")
        if sep and key in values:
            out.append(f"{key + ':':<16}{values[key]:>8} kB")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


# -- swaps --------------------------------------------------------------------------------
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"


def swaps(host_text: str, host_meminfo_text: str, mem: Memory | None) -> str:
    """/proc/swaps: one line for the cgroup's swap (lxcfs's "none virtual")."""
    host = parse_meminfo(host_meminfo_text)
    if mem is None or not limited(host, mem):
        return host_text
    total, free = _swap_kb(host, mem)
    lines = [SWAPS_HEADER]
    if total > 0:
        lines.append(f"{'none':<40}virtual\t\t{total}\t\t{total - free}\t\t0")
    return "\n".join(lines) + "\n"


# -- cpuinfo, cpu online ----------------------------------------------------------------------
def _processor_number(block: str) -> int | None:
    for line in block.split("\n", 3)[:3]:
        key, sep, value = line.partition(":")
        if sep and key.strip() == "processor":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def cpuinfo(host_text: str, cpus: Cpus | None) -> str:
    """/proc/cpuinfo with the blocks of the visible cpus, renumbered from 0."""
    if cpus is None:
        return host_text
    visible = {c: i for i, c in enumerate(cpus.visible)}
    blocks = host_text.split("\n\n")
    numbers = [_processor_number(b) for b in blocks]
    present = [n for n in numbers if n is not None]
    if present == list(cpus.visible) and all(i == c for c, i in visible.items()):
        return host_text
    out = []
    for block, n in zip(blocks, numbers, strict=True):
        if n is None:
            if block.strip():
                out.append(block)
            continue
        if n not in visible:
            continue
        lines = block.split("\n")
        for i, line in enumerate(lines):
            key, sep, _ = line.partition(":")
            if sep and key.strip() == "processor":
                lines[i] = f"{key}: {visible[n]}"
                break
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n\n"


def cpu_online(host_text: str, cpus: Cpus | None) -> str:
    """/sys/devices/system/cpu/online: the visible cpus (host numbers)."""
    if cpus is None or not cpus.visible:
        return host_text
    return format_cpu_list(cpus.visible) + "\n"


# -- stat ---------------------------------------------------------------------------------
NS = 1_000_000_000


def stat(host_text: str, cpus: Cpus | None, usage: CpuUsage | None, hz: int = 100) -> str:
    """/proc/stat: per visible cpu (renumbered), the cgroup's user and system
    ticks and the rest of the cpu's elapsed ticks as idle; the "cpu" line sums
    them; the other lines are the host's."""
    if cpus is None or usage is None:
        return host_text
    host: dict[int, list[int]] = {}
    rest: list[str] = []
    width = 10
    for line in host_text.splitlines():
        if line.startswith("cpu"):
            name, _, values = line.partition(" ")
            if name == "cpu":
                width = len(values.split())
                continue
            try:
                host[int(name[3:])] = [int(v) for v in values.split()]
            except ValueError:
                rest.append(line)
        else:
            rest.append(line)
    visible = [c for c in cpus.visible if c in host]
    if not visible:
        return host_text
    n = len(visible)
    user = [0] * n
    system = [0] * n
    if usage.percpu is not None:
        # Time on a cpu the view hides (the quota cut the cpuset) is folded into
        # the visible cpu with the same index modulo n.
        order = [c for c in cpus.allowed if c in usage.percpu] or sorted(usage.percpu)
        for i, c in enumerate(order):
            u, s = usage.percpu[c]
            user[i % n] += u
            system[i % n] += s
    else:
        for k in range(n):
            user[k] = usage.user // n
            system[k] = usage.system // n
    lines = []
    total = [0] * width
    for k, c in enumerate(visible):
        elapsed = sum(host[c][:8])  # user..steal; guest time is inside user already
        u = user[k] * hz // NS
        s = system[k] * hz // NS
        if u + s > elapsed:
            u = min(u, elapsed)
            s = elapsed - u
        fields = [0] * width
        fields[0] = u
        fields[2] = s
        fields[3] = elapsed - u - s
        for i in range(width):
            total[i] += fields[i]
        lines.append(f"cpu{k} " + " ".join(map(str, fields)))
    return "\n".join(["cpu  " + " ".join(map(str, total))] + lines + rest) + "\n"


# -- uptime, loadavg ----------------------------------------------------------------------
def uptime(host_text: str, started: float | None, busy_ns: int = 0, ncpus: int = 1) -> str:
    """/proc/uptime: ``started`` = the cgroup's oldest process's start, in
    seconds since boot (None: the host's file)."""
    if started is None:
        return host_text
    try:
        host_up = float(host_text.split()[0])
    except (IndexError, ValueError):
        return host_text
    up = max(0.0, host_up - started)
    idle = max(0.0, up * max(ncpus, 1) - busy_ns / NS)
    return f"{up:.2f} {idle:.2f}\n"


def loadavg(loads: Sequence[float] | None, tasks: Tasks | None) -> str | None:
    """/proc/loadavg from the cgroup's averages (1, 5, 15 minutes) and Tasks."""
    if loads is None or tasks is None:
        return None
    a, b, c = loads
    return f"{a:.2f} {b:.2f} {c:.2f} {tasks.running}/{tasks.total} {tasks.last_pid}\n"


# -- diskstats ------------------------------------------------------------------------------
def diskstats(host_text: str, io: IoStats | None) -> str:
    """/proc/diskstats for a cgroup whose I/O counters are ``io``: (major,
    minor) -> {"rios", "wios", "rbytes", "wbytes", "dios", "dbytes"}."""
    if io is None:
        return host_text
    out = []
    for line in host_text.splitlines():
        fields = line.split()
        if len(fields) < 7:
            continue
        try:
            key = (int(fields[0]), int(fields[1]))
        except ValueError:
            continue
        st = io.get(key)
        if not st:
            continue
        values = [0] * (len(fields) - 3)
        values[0] = st.get("rios", 0)
        values[2] = st.get("rbytes", 0) // 512
        if len(values) > 6:
            values[4] = st.get("wios", 0)
            values[6] = st.get("wbytes", 0) // 512
        if len(values) > 13:
            values[11] = st.get("dios", 0)
            values[13] = st.get("dbytes", 0) // 512
        if not any(values):
            continue
        out.append(f"{fields[0]:>4} {fields[1]:>7} {fields[2]} " + " ".join(map(str, values)))
    return "".join(line + "\n" for line in out)
