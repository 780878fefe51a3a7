"""runtime-spec (cgroup v1 vocabulary) -> cgroup v2 values, as runc and crun convert.

The runtime-spec's linux.resources speaks v1 (shares, quota/period, memory+swap);
on a v2 host each value maps to a v2 file.  The formulas are the ones runc
(github.com/opencontainers/cgroups, utils.go) and crun (src/libcrun/cgroup*.c)
use, so a container gets the same v2 values under pybox as under them; they are
written out with their sources in docs/cgroups.md.  ``math`` is a built-in
module: importing it costs nothing measurable.
"""

from __future__ import annotations

import math

from pybox.errors import CgroupError
from pybox.oci.resources import hugepage_size_name  # noqa: F401  (re-exported: one parser)

UNSET = None


def cpu_shares_to_weight(shares: int | None) -> int:
    """cpu.shares [2, 262144] (default 1024) -> cpu.weight [1, 10000] (default 100).

    A quadratic in log2(shares) chosen to fit the three fixed points
    2 -> 1, 1024 -> 100, 262144 -> 10000 (crun, adopted by runc 1.3):
        weight = ceil(10 ** ((l*l + 125*l) / 612 - 7/34)),  l = log2(shares)
    The older linear map (1 + (shares-2)*9999/262142) gave 1024 -> 39, i.e. a
    default container got less cpu than a process outside any container.
    0 means "unset" and stays 0.
    """
    if not shares:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    l2 = math.log2(shares)
    exponent = (l2 * l2 + 125 * l2) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10 ** exponent))


def blkio_weight_to_io_weight(weight: int | None) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000] (runc's linear map):
    1 + (weight - 10) * 9999 / 990.  Only for io.weight: io.bfq.weight takes the
    blkio range [1, 1000] unchanged.  0 means unset."""
    if not weight:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def cpu_max(quota: int | None, period: int | None) -> str | None:
    """cpu.cfs_quota_us / cpu.cfs_period_us -> the text of cpu.max, or None.

    cpu.max is "$QUOTA $PERIOD" with "max" for no quota; a lone "$QUOTA" keeps the
    current period.  quota -1 is unlimited, 0 is unset (runc)."""
    if not quota and not period:
        return None
    text = "max" if quota is None or quota <= 0 else str(quota)
    if period:
        text += f" {period}"
    return text


def memory_value(value: int | None) -> str | None:
    """memory.limit (or reservation) -> v2 text: -1 is "max", 0/None is unset."""
    if value is None or value == 0:
        return None
    if value == -1:
        return "max"
    return str(value)


def memory_swap_to_v2(swap: int | None, limit: int | None,
                      field: str = "linux.resources.memory.swap") -> str | None:
    """memory.swap is memory+swap (v1 memsw); v2's memory.swap.max is swap alone.

    runc's rules: unlimited memory and unset swap means unlimited swap too; -1
    stays "max"; otherwise swap.max = swap - limit, which needs a limit.  That
    swap is not below the limit is oci.resources' rule, checked before any
    section is written (Manager.apply/update validate first).  Returns the text
    to write or None for "leave alone".
    """
    swap = swap or 0
    limit = limit or 0
    if limit == -1 and swap == 0:
        return "max"
    if swap == -1:
        return "max"
    if swap == 0:
        return None
    if limit in (0, -1):
        raise CgroupError(f"{field}: a swap limit ({swap}) needs a memory limit on cgroup v2 "
                          "(memory.swap.max is swap without memory)", errno=22)
    return str(swap - limit)


def pids_max(limit: int | None) -> str | None:
    """pids.limit -> pids.max text: > 0 is the number, <= 0 is unlimited ("max")."""
    if limit is None:
        return None
    return str(limit) if limit > 0 else "max"


def io_max_line(major: int, minor: int, key: str, rate: int | None) -> str:
    """One io.max line; a rate of 0 removes the limit ("max")."""
    return f"{major}:{minor} {key}={rate if rate else 'max'}"


# blockIO throttle field -> (v1 file, v2 io.max key)
THROTTLE_FIELDS = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)
