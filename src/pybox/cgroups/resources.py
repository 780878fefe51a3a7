"""Check a linux.resources dict before anything is written.

Why a separate pass: an impossible value found half-way through apply() would
leave some limits written and some not.  Every value that is wrong on its own
(wrong type, negative where the kernel wants a count, outside the kernel's range,
a malformed cpu list, swap below memory) is refused here, before a directory or
file is touched, with a CgroupError whose message starts with the field's JSON
path.  What only the kernel can judge (a device that does not exist, a limit
below current usage, a controller that is not delegated) is caught at write time
and the drivers roll back what they created.
"""

from pybox.cgroups.convert import hugepage_size_name
from pybox.errors import CgroupError

P = "linux.resources"
U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1


def _fail(field, problem):
    return CgroupError(f"{field}: {problem}", errno=22)


def _int(value, field, *, low=None, high=None, allow_unlimited: bool=False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be an integer, got {value!r}")
    if allow_unlimited and value == -1:
        return value
    if low is not None and value < low:
        if allow_unlimited:
            raise _fail(field, f"{value} is impossible: must be -1 (unlimited) or >= {low}")
        raise _fail(field, f"{value} is impossible: must be >= {low}")
    if high is not None and value > high:
        raise _fail(field, f"{value} is impossible: must be <= {high}")
    return value


def _bool(value, field):
    if value is not None and not isinstance(value, bool):
        raise _fail(field, f"must be true or false, got {value!r}")


def _str(value, field):
    if value is not None and not isinstance(value, str):
        raise _fail(field, f"must be a string, got {value!r}")


def _list(value, field):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(field, f"must be a list, got {type(value).__name__}")
    return value


def _dict(value, field):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(field, f"must be an object, got {type(value).__name__}")
    return value


def check_cpu_list(text, field):
    """cpuset syntax: "0-3,5,7-8" (empty means inherit)."""
    _str(text, field)
    if not text:
        return
    for item in text.strip().split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise _fail(field, f"{text!r} is not a cpu/node list like '0-3,5'")
        if dash and int(high) < int(low):
            raise _fail(field, f"{text!r}: range {item} goes backwards")


def validate(resources):
    """Raise CgroupError for the first invalid field; return None when all is well."""
    if resources is None:
        return
    r = _dict(resources, P)

    mem = _dict(r.get("memory"), f"{P}.memory")
    limit = _int(mem.get("limit"), f"{P}.memory.limit", low=0, allow_unlimited=True)
    _int(mem.get("reservation"), f"{P}.memory.reservation", low=0, allow_unlimited=True)
    swap = _int(mem.get("swap"), f"{P}.memory.swap", low=0, allow_unlimited=True)
    _int(mem.get("kernel"), f"{P}.memory.kernel", low=0, allow_unlimited=True)
    _int(mem.get("kernelTCP"), f"{P}.memory.kernelTCP", low=0, allow_unlimited=True)
    _int(mem.get("swappiness"), f"{P}.memory.swappiness", low=0, high=100)
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        _bool(mem.get(key), f"{P}.memory.{key}")
    if swap and swap > 0 and limit and limit > 0 and swap < limit:
        raise _fail(f"{P}.memory.swap",
                    f"memory+swap {swap} is below the memory limit {limit}")

    cpu = _dict(r.get("cpu"), f"{P}.cpu")
    shares = _int(cpu.get("shares"), f"{P}.cpu.shares", low=0, high=U64_MAX)
    if shares and not 2 <= shares <= 262144:
        raise _fail(f"{P}.cpu.shares", f"{shares} is outside the kernel's range 2..262144")
    quota = _int(cpu.get("quota"), f"{P}.cpu.quota", low=0, allow_unlimited=True)
    if quota and quota > 0 and quota < 1000:
        raise _fail(f"{P}.cpu.quota", f"{quota} is below the kernel's minimum of 1000 us")
    period = _int(cpu.get("period"), f"{P}.cpu.period", low=0)
    if period and not 1000 <= period <= 1000000:
        raise _fail(f"{P}.cpu.period", f"{period} is outside the kernel's range 1000..1000000 us")
    burst = _int(cpu.get("burst"), f"{P}.cpu.burst", low=0)
    if burst and quota and quota > 0 and burst > quota:
        raise _fail(f"{P}.cpu.burst", f"{burst} exceeds the quota {quota}")
    _int(cpu.get("realtimeRuntime"), f"{P}.cpu.realtimeRuntime", low=0, allow_unlimited=True)
    _int(cpu.get("realtimePeriod"), f"{P}.cpu.realtimePeriod", low=0)
    check_cpu_list(cpu.get("cpus"), f"{P}.cpu.cpus")
    check_cpu_list(cpu.get("mems"), f"{P}.cpu.mems")
    _int(cpu.get("idle"), f"{P}.cpu.idle", low=0, high=1)

    blk = _dict(r.get("blockIO"), f"{P}.blockIO")
    for key in ("weight", "leafWeight"):
        w = _int(blk.get(key), f"{P}.blockIO.{key}", low=0, high=1000)
        if w and w < 10:
            raise _fail(f"{P}.blockIO.{key}", f"{w} is outside the range 10..1000")
    for i, dev in enumerate(_list(blk.get("weightDevice"), f"{P}.blockIO.weightDevice")):
        field = f"{P}.blockIO.weightDevice[{i}]"
        _device_numbers(dev, field)
        for key in ("weight", "leafWeight"):
            w = _int(dev.get(key), f"{field}.{key}", low=0, high=1000)
            if w and w < 10:
                raise _fail(f"{field}.{key}", f"{w} is outside the range 10..1000")
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for i, dev in enumerate(_list(blk.get(key), f"{P}.blockIO.{key}")):
            field = f"{P}.blockIO.{key}[{i}]"
            _device_numbers(dev, field)
            if dev.get("rate") is None:
                raise _fail(f"{field}.rate", "is required")
            _int(dev.get("rate"), f"{field}.rate", low=0, high=U64_MAX)

    pids = _dict(r.get("pids"), f"{P}.pids")
    _int(pids.get("limit"), f"{P}.pids.limit", high=I64_MAX)
    if pids.get("limit") is not None and pids["limit"] < -1:
        raise _fail(f"{P}.pids.limit", f"{pids['limit']} is impossible: must be -1, 0 or positive")

    for i, hp in enumerate(_list(r.get("hugepageLimits"), f"{P}.hugepageLimits")):
        field = f"{P}.hugepageLimits[{i}]"
        _dict(hp, field)
        size = hp.get("pageSize")
        _str(size, f"{field}.pageSize")
        if not size or hugepage_size_name(size) is None:
            raise _fail(f"{field}.pageSize", f"{size!r} is not a page size like '2MB'")
        if hp.get("limit") is None:
            raise _fail(f"{field}.limit", "is required")
        _int(hp.get("limit"), f"{field}.limit", low=0, high=U64_MAX)

    net = _dict(r.get("network"), f"{P}.network")
    _int(net.get("classID"), f"{P}.network.classID", low=0, high=0xFFFFFFFF)
    for i, prio in enumerate(_list(net.get("priorities"), f"{P}.network.priorities")):
        field = f"{P}.network.priorities[{i}]"
        _dict(prio, field)
        name = prio.get("name")
        if not isinstance(name, str) or not name or " " in name or "\n" in name:
            raise _fail(f"{field}.name", f"{name!r} is not an interface name")
        _int(prio.get("priority"), f"{field}.priority", low=0, high=0xFFFFFFFF)

    for i, dev in enumerate(_list(r.get("devices"), f"{P}.devices")):
        check_device_rule(dev, f"{P}.devices[{i}]")

    for device, limits in _dict(r.get("rdma"), f"{P}.rdma").items():
        field = f"{P}.rdma[{device!r}]"
        if not isinstance(device, str) or not device or " " in device or "\n" in device:
            raise _fail(field, "must be an RDMA device name")
        _dict(limits, field)
        for key in ("hcaHandles", "hcaObjects"):
            _int(limits.get(key), f"{field}.{key}", low=0, high=0xFFFFFFFF)

    unified = _dict(r.get("unified"), f"{P}.unified")
    for key, value in unified.items():
        field = f"{P}.unified[{key!r}]"
        if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
            raise _fail(field, "a unified key must be a file name such as 'memory.high'")
        if not isinstance(value, str):
            raise _fail(field, f"must be a string, got {value!r}")


def _device_numbers(dev, field):
    _dict(dev, field)
    for key in ("major", "minor"):
        if dev.get(key) is None:
            raise _fail(f"{field}.{key}", "is required")
        _int(dev.get(key), f"{field}.{key}", low=0, high=0xFFFFFFFF)


def check_device_rule(dev, field):
    _dict(dev, field)
    if not isinstance(dev.get("allow"), bool):
        raise _fail(f"{field}.allow", "is required and must be true or false")
    kind = dev.get("type", "a")
    if kind not in (None, "", "a", "b", "c"):
        raise _fail(f"{field}.type", f"{kind!r} must be 'a', 'b' or 'c'")
    for key in ("major", "minor"):
        value = dev.get(key)
        if value is not None and value != -1:
            _int(value, f"{field}.{key}", low=0, high=0xFFFFFFFF)
    access = dev.get("access")
    _str(access, f"{field}.access")
    if access and (set(access) - set("rwm")):
        raise _fail(f"{field}.access", f"{access!r} may only contain r, w and m")


def rdma_lines(rdma):
    """linux.resources.rdma -> rdma.max lines (same syntax on v1 and v2):
    "mlx5_1 hca_handle=3 hca_object=max"; an omitted limit stays "max"."""
    lines = []
    for device, limits in (rdma or {}).items():
        handles = limits.get("hcaHandles")
        objects = limits.get("hcaObjects")
        lines.append(f"{device} hca_handle={'max' if handles is None else handles} "
                     f"hca_object={'max' if objects is None else objects}")
    return lines


def get(resources, section):
    """``resources[section]`` as a dict (missing or null -> {})."""
    if not resources:
        return {}
    value = resources.get(section)
    return value if isinstance(value, dict) else {}
