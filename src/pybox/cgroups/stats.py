"""Resource usage in the shape ``runc events --stats`` prints (its "data" object).

    {"cpu": {"usage": {"total", "percpu", "percpu_kernel", "percpu_user",
                       "kernel", "user"},
             "throttling": {"periods", "throttledPeriods", "throttledTime"}},
     "memory": {"cache", "usage": {"usage", "max", "limit", "failcnt"},
                "swap": {...}, "kernel": {...}, "kernelTCP": {...}, "raw": {...},
                "usage_minus_inactive_file"},
     "pids": {"current", "limit"},
     "blkio": {"ioServiceBytesRecursive": [{"major", "minor", "op", "value"}],
               "ioServicedRecursive": [...]},
     "hugetlb": {"2MB": {"usage", "max", "failcnt"}}}

All times are nanoseconds, all sizes bytes (as runc).  Every key is present (zero
when the kernel has no file for it); the runtime may drop zero values when it
mimics runc's omitempty.  ``usage_minus_inactive_file`` is what ``docker stats``
shows as memory usage: usage minus the inactive page cache the kernel can drop
at once (v1: total_inactive_file, v2: inactive_file).  A limit of "unlimited" is
reported as 2**64-1 on v2 (runc's convention) and as the kernel's number on v1.
Only on the ``events``/``stats`` path, so it may import what it likes.
"""

from __future__ import annotations

import os
from typing import Any

from pybox.cgroups.fs import REAL, CgroupFs, join, parse_flat_keyed
from pybox.oci.resources import hugepage_size_name

# runc's events --stats "data" object (a JSON shape of runc's, kept as a dict)
Stats = dict[str, Any]

U64_MAX = (1 << 64) - 1


def _read(fs: CgroupFs, directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    try:
        return fs.read(join(directory, name))
    except OSError:
        return None


def _int(fs: CgroupFs, directory: str | None, name: str, unlimited: int = U64_MAX) -> int:
    text = _read(fs, directory, name)
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return unlimited
    try:
        return int(text.split()[0]) if text else 0
    except ValueError:
        return 0


def _ints(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split()]


def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def empty_stats() -> Stats:
    entry = {"usage": 0, "max": 0, "limit": 0, "failcnt": 0}
    return {
        "cpu": {"usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [],
                          "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "memory": {"cache": 0, "usage": dict(entry), "swap": dict(entry),
                   "kernel": dict(entry), "kernelTCP": dict(entry), "raw": {},
                   "usage_minus_inactive_file": 0},
        "pids": {"current": 0, "limit": 0},
        "blkio": {"ioServiceBytesRecursive": [], "ioServicedRecursive": []},
        "hugetlb": {},
    }


def _hugepage_sizes() -> list[str]:
    """Kernel huge page sizes as the file infix ("2MB", "1GB")."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    out = []
    for n in names:
        if n.startswith("hugepages-") and n.endswith("kB"):
            name = hugepage_size_name(n[len("hugepages-"):-2] + "KB")
            if name:
                out.append(name)
    return sorted(out)


# -- v1 ------------------------------------------------------------------------

def v1_stats(paths: dict[str, str], fs: CgroupFs = REAL) -> Stats:
    out = empty_stats()
    acct = paths.get("cpuacct")
    cpu = paths.get("cpu")
    if acct:
        usage = out["cpu"]["usage"]
        usage["total"] = _int(fs, acct, "cpuacct.usage")
        usage["percpu"] = _ints(_read(fs, acct, "cpuacct.usage_percpu"))
        all_text = _read(fs, acct, "cpuacct.usage_all")
        if all_text:
            for line in all_text.splitlines()[1:]:
                fields = line.split()
                if len(fields) == 3:
                    usage["percpu_user"].append(int(fields[1]))
                    usage["percpu_kernel"].append(int(fields[2]))
        stat = parse_flat_keyed(_read(fs, acct, "cpuacct.stat") or "")
        ns_per_tick = 1_000_000_000 // _clock_ticks()
        usage["user"] = stat.get("user", 0) * ns_per_tick
        usage["kernel"] = stat.get("system", 0) * ns_per_tick
    if cpu:
        stat = parse_flat_keyed(_read(fs, cpu, "cpu.stat") or "")
        out["cpu"]["throttling"] = {"periods": stat.get("nr_periods", 0),
                                    "throttledPeriods": stat.get("nr_throttled", 0),
                                    "throttledTime": stat.get("throttled_time", 0)}

    mem = paths.get("memory")
    if mem:
        m = out["memory"]
        raw = parse_flat_keyed(_read(fs, mem, "memory.stat") or "")
        m["raw"] = raw
        m["cache"] = raw.get("total_cache", raw.get("cache", 0))
        for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"),
                            ("kernel", "memory.kmem"), ("kernelTCP", "memory.kmem.tcp")):
            m[key] = {"usage": _int(fs, mem, f"{prefix}.usage_in_bytes"),
                      "max": _int(fs, mem, f"{prefix}.max_usage_in_bytes"),
                      "limit": _int(fs, mem, f"{prefix}.limit_in_bytes"),
                      "failcnt": _int(fs, mem, f"{prefix}.failcnt")}
        inactive = raw.get("total_inactive_file", raw.get("inactive_file", 0))
        m["usage_minus_inactive_file"] = max(m["usage"]["usage"] - inactive, 0)
        m["use_hierarchy"] = _int(fs, mem, "memory.use_hierarchy") == 1

    pids = paths.get("pids")
    if pids:
        out["pids"] = {"current": _int(fs, pids, "pids.current"),
                       "limit": _int(fs, pids, "pids.max", unlimited=0)}

    blkio = paths.get("blkio")
    if blkio:
        for key, candidates in (
                ("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive",
                                             "blkio.bfq.io_service_bytes_recursive",
                                             "blkio.throttle.io_service_bytes_recursive")),
                ("ioServicedRecursive", ("blkio.io_serviced_recursive",
                                         "blkio.bfq.io_serviced_recursive",
                                         "blkio.throttle.io_serviced_recursive"))):
            for name in candidates:
                text = _read(fs, blkio, name)
                if text is not None and _blkio_entries(text):
                    out["blkio"][key] = _blkio_entries(text)
                    break

    huge = paths.get("hugetlb")
    if huge:
        for size in _hugepage_sizes():
            if _read(fs, huge, f"hugetlb.{size}.usage_in_bytes") is None:
                continue
            out["hugetlb"][size] = {
                "usage": _int(fs, huge, f"hugetlb.{size}.usage_in_bytes"),
                "max": _int(fs, huge, f"hugetlb.{size}.max_usage_in_bytes"),
                "failcnt": _int(fs, huge, f"hugetlb.{size}.failcnt")}
    return out


def _blkio_entries(text: str) -> list[dict[str, Any]]:
    """"8:0 Read 4096" lines -> runc's BlkioEntry dicts ("Total" lines skipped)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        out.append({"major": int(major), "minor": int(minor), "op": fields[1],
                    "value": int(fields[2])})
    return out


# -- v2 ------------------------------------------------------------------------

def v2_stats(directory: str, fs: CgroupFs = REAL) -> Stats:
    out = empty_stats()
    cpu = parse_flat_keyed(_read(fs, directory, "cpu.stat") or "")
    usage = out["cpu"]["usage"]
    usage["total"] = cpu.get("usage_usec", 0) * 1000
    usage["user"] = cpu.get("user_usec", 0) * 1000
    usage["kernel"] = cpu.get("system_usec", 0) * 1000
    out["cpu"]["throttling"] = {"periods": cpu.get("nr_periods", 0),
                                "throttledPeriods": cpu.get("nr_throttled", 0),
                                "throttledTime": cpu.get("throttled_usec", 0) * 1000}

    raw_text = _read(fs, directory, "memory.stat")
    if raw_text is not None:
        m = out["memory"]
        raw = parse_flat_keyed(raw_text)
        m["raw"] = raw
        m["cache"] = raw.get("file", 0)
        events = parse_flat_keyed(_read(fs, directory, "memory.events") or "")
        m["usage"] = {"usage": _int(fs, directory, "memory.current"),
                      "max": _int(fs, directory, "memory.peak"),
                      "limit": _int(fs, directory, "memory.max"),
                      "failcnt": events.get("max", 0)}
        if _read(fs, directory, "memory.swap.current") is not None:
            # runc reports memory+swap here, for v1 compatibility.
            swap_limit = _int(fs, directory, "memory.swap.max")
            mem_limit = m["usage"]["limit"]
            both = U64_MAX if U64_MAX in (swap_limit, mem_limit) else swap_limit + mem_limit
            swap_events = parse_flat_keyed(_read(fs, directory, "memory.swap.events") or "")
            m["swap"] = {"usage": _int(fs, directory, "memory.swap.current") + m["usage"]["usage"],
                         "max": _int(fs, directory, "memory.swap.peak"),
                         "limit": both, "failcnt": swap_events.get("max", 0)}
        m["usage_minus_inactive_file"] = max(m["usage"]["usage"] - raw.get("inactive_file", 0), 0)
        m["use_hierarchy"] = True

    if _read(fs, directory, "pids.current") is not None:
        out["pids"] = {"current": _int(fs, directory, "pids.current"),
                       "limit": _int(fs, directory, "pids.max", unlimited=0)}

    io = _read(fs, directory, "io.stat")
    if io:
        names = {"rbytes": ("ioServiceBytesRecursive", "Read"),
                 "wbytes": ("ioServiceBytesRecursive", "Write"),
                 "dbytes": ("ioServiceBytesRecursive", "Discard"),
                 "rios": ("ioServicedRecursive", "Read"),
                 "wios": ("ioServicedRecursive", "Write"),
                 "dios": ("ioServicedRecursive", "Discard")}
        for line in io.splitlines():
            fields = line.split()
            if not fields or ":" not in fields[0]:
                continue
            major, _, minor = fields[0].partition(":")
            for item in fields[1:]:
                key, _, value = item.partition("=")
                if key in names:
                    target, op = names[key]
                    out["blkio"][target].append({"major": int(major), "minor": int(minor),
                                                 "op": op, "value": int(value)})

    for size in _hugepage_sizes():
        if _read(fs, directory, f"hugetlb.{size}.current") is None:
            continue
        events = parse_flat_keyed(_read(fs, directory, f"hugetlb.{size}.events") or "")
        out["hugetlb"][size] = {"usage": _int(fs, directory, f"hugetlb.{size}.current"),
                                "max": 0, "failcnt": events.get("max", 0)}
    return out
