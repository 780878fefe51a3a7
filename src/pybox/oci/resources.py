"""The one set of value rules for a runtime-spec ``linux.resources`` object.

Why one place: the runtime checks config.json (and ``update``'s resources) with
it before it touches the kernel, and the cgroup managers check with it again
before they write anything (an impossible value found half-way through an apply
would leave some limits written and some not).  Both used to keep their own
copy of the rules and the copies had drifted.

Every value that is wrong on its own (wrong type, negative where the kernel wants
a count, outside the kernel's range, a malformed cpu list, swap below memory)
is refused with a ConfigError whose message starts with the field's JSON path.
What only the kernel can judge (a device that does not exist, a limit below
current usage, a controller that is not delegated) is the cgroup managers' to
catch at write time.  Standard library only: this is on the runtime's create
path.
"""

from __future__ import annotations

from pybox.errors import ConfigError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
U32_MAX = 0xFFFFFFFF


def _int(value: object, field: str, *, low: int | None = None, high: int | None = None,
         allow_unlimited: bool = False) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if allow_unlimited and value == -1:
        return value
    if low is not None and value < low:
        if allow_unlimited:
            raise ConfigError(field, f"{value} is impossible: must be -1 (unlimited) or >= {low}")
        raise ConfigError(field, f"{value} is impossible: must be >= {low}")
    if high is not None and value > high:
        raise ConfigError(field, f"{value} is impossible: must be <= {high}")
    return value


def _bool(value: object, field: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, got {value!r}")


def _str(value: object, field: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {value!r}")


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(field, f"must be a list, got {type(value).__name__}")
    return value


def _dict(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(field, f"must be an object, got {type(value).__name__}")
    return value


def hugepage_size_name(page_size: str) -> str | None:
    """"2MB", "1GB", "64KB" (runtime-spec) are already the kernel's file infix
    (hugetlb.2MB.max); "2048kB" (sysfs style) becomes "2MB"; None when the text
    is no page size."""
    text = page_size.strip()
    units = {"KB": 1, "MB": 1024, "GB": 1024 * 1024}
    upper = text.upper()
    for unit, factor in units.items():
        if upper.endswith(unit) and upper[:-2].isdigit():
            kib = int(upper[:-2]) * factor
            break
    else:
        return None
    if kib % (1024 * 1024) == 0:
        return f"{kib // (1024 * 1024)}GB"
    if kib % 1024 == 0:
        return f"{kib // 1024}MB"
    return f"{kib}KB"


def check_cpu_list(text: object, field: str) -> None:
    """cpuset syntax: "0-3,5,7-8" (empty means inherit)."""
    _str(text, field)
    if not text:
        return
    assert isinstance(text, str)
    for item in text.strip().split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ConfigError(field, f"{text!r} is not a cpu/node list like '0-3,5'")
        if dash and int(high) < int(low):
            raise ConfigError(field, f"{text!r}: range {item} goes backwards")


def check_device_rule(dev: object, field: str) -> None:
    """One linux.resources.devices entry (the device cgroup's allow/deny rule)."""
    rule = _dict(dev, field)
    if not isinstance(rule.get("allow"), bool):
        raise ConfigError(f"{field}.allow", "is required and must be true or false")
    kind = rule.get("type", "a")
    if kind not in ("a", "b", "c"):
        raise ConfigError(f"{field}.type", f"{kind!r} must be 'a', 'b' or 'c'")
    for key in ("major", "minor"):
        value = rule.get(key)
        if value is not None and value != -1:
            _int(value, f"{field}.{key}", low=0, high=U32_MAX)
    access = rule.get("access", "rwm")
    _str(access, f"{field}.access")
    if not access or (set(access) - set("rwm")):
        raise ConfigError(f"{field}.access", f"{access!r} must be a non-empty subset of 'rwm'")


def _device_numbers(dev: object, field: str) -> dict[str, Any]:
    entry = _dict(dev, field)
    for key in ("major", "minor"):
        if entry.get(key) is None:
            raise ConfigError(f"{field}.{key}", "is required")
        _int(entry.get(key), f"{field}.{key}", low=0, high=U32_MAX)
    return entry


def check_resources(resources: object, path: str = "linux.resources") -> None:
    """Raise ConfigError for the first invalid field of ``resources`` (a
    linux.resources object; None is fine); ``path`` prefixes the field names."""
    if resources is None:
        return
    r = _dict(resources, path)
    _check_memory(_dict(r.get("memory"), f"{path}.memory"), f"{path}.memory")
    _check_cpu(_dict(r.get("cpu"), f"{path}.cpu"), f"{path}.cpu")
    _check_block_io(_dict(r.get("blockIO"), f"{path}.blockIO"), f"{path}.blockIO")

    pids = _dict(r.get("pids"), f"{path}.pids")
    limit = _int(pids.get("limit"), f"{path}.pids.limit", high=I64_MAX)
    if limit is not None and limit < -1:
        raise ConfigError(f"{path}.pids.limit", f"{limit} is impossible: must be -1, 0 or positive")

    for i, hp in enumerate(_list(r.get("hugepageLimits"), f"{path}.hugepageLimits")):
        field = f"{path}.hugepageLimits[{i}]"
        entry = _dict(hp, field)
        size = entry.get("pageSize")
        _str(size, f"{field}.pageSize")
        if not size or hugepage_size_name(size) is None:
            raise ConfigError(f"{field}.pageSize", f"{size!r} is not a page size like '2MB'")
        if entry.get("limit") is None:
            raise ConfigError(f"{field}.limit", "is required")
        _int(entry.get("limit"), f"{field}.limit", low=0, high=U64_MAX)

    net = _dict(r.get("network"), f"{path}.network")
    _int(net.get("classID"), f"{path}.network.classID", low=0, high=U32_MAX)
    for i, prio in enumerate(_list(net.get("priorities"), f"{path}.network.priorities")):
        field = f"{path}.network.priorities[{i}]"
        entry = _dict(prio, field)
        name = entry.get("name")
        if not isinstance(name, str) or not name or " " in name or "\n" in name:
            raise ConfigError(f"{field}.name", f"{name!r} is not an interface name")
        _int(entry.get("priority"), f"{field}.priority", low=0, high=U32_MAX)

    for i, dev in enumerate(_list(r.get("devices"), f"{path}.devices")):
        check_device_rule(dev, f"{path}.devices[{i}]")

    for device, limits in _dict(r.get("rdma"), f"{path}.rdma").items():
        field = f"{path}.rdma[{device!r}]"
        if not isinstance(device, str) or not device or " " in device or "\n" in device:
            raise ConfigError(field, "must be an RDMA device name")
        entry = _dict(limits, field)
        for key in ("hcaHandles", "hcaObjects"):
            _int(entry.get(key), f"{field}.{key}", low=0, high=U32_MAX)

    for key, value in _dict(r.get("unified"), f"{path}.unified").items():
        field = f"{path}.unified[{key!r}]"
        if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
            raise ConfigError(field, "a unified key must be a file name such as 'memory.high'")
        if not isinstance(value, str):
            raise ConfigError(field, f"must be a string, got {value!r}")


def _check_memory(mem: dict[str, Any], path: str) -> None:
    limit = _int(mem.get("limit"), f"{path}.limit", low=0, allow_unlimited=True)
    _int(mem.get("reservation"), f"{path}.reservation", low=0, allow_unlimited=True)
    swap = _int(mem.get("swap"), f"{path}.swap", low=0, allow_unlimited=True)
    _int(mem.get("kernel"), f"{path}.kernel", low=0, allow_unlimited=True)
    _int(mem.get("kernelTCP"), f"{path}.kernelTCP", low=0, allow_unlimited=True)
    _int(mem.get("swappiness"), f"{path}.swappiness", low=0, high=100)
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        _bool(mem.get(key), f"{path}.{key}")
    if swap and swap > 0 and limit and limit > 0 and swap < limit:
        raise ConfigError(f"{path}.swap", f"memory+swap {swap} is below the memory limit {limit}")


def _check_cpu(cpu: dict[str, Any], path: str) -> None:
    shares = _int(cpu.get("shares"), f"{path}.shares", low=0, high=U64_MAX)
    if shares and not 2 <= shares <= 262144:
        raise ConfigError(f"{path}.shares", f"{shares} is outside the kernel's range 2..262144")
    quota = _int(cpu.get("quota"), f"{path}.quota", low=0, allow_unlimited=True)
    if quota is not None and 0 <= quota < 1000:
        raise ConfigError(f"{path}.quota", f"{quota} is below the kernel's minimum of 1000 us")
    period = _int(cpu.get("period"), f"{path}.period", low=0)
    if period and not 1000 <= period <= 1000000:
        raise ConfigError(f"{path}.period", f"{period} is outside the kernel's range 1000..1000000 us")
    burst = _int(cpu.get("burst"), f"{path}.burst", low=0)
    if burst and quota and quota > 0 and burst > quota:
        raise ConfigError(f"{path}.burst", f"{burst} exceeds the quota {quota}")
    _int(cpu.get("realtimeRuntime"), f"{path}.realtimeRuntime", low=0, allow_unlimited=True)
    _int(cpu.get("realtimePeriod"), f"{path}.realtimePeriod", low=0)
    check_cpu_list(cpu.get("cpus"), f"{path}.cpus")
    check_cpu_list(cpu.get("mems"), f"{path}.mems")
    _int(cpu.get("idle"), f"{path}.idle", low=0, high=1)


def _check_block_io(blk: dict[str, Any], path: str) -> None:
    for key in ("weight", "leafWeight"):
        w = _int(blk.get(key), f"{path}.{key}", low=0, high=1000)
        if w and w < 10:
            raise ConfigError(f"{path}.{key}", f"{w} is outside the range 10..1000")
    for i, dev in enumerate(_list(blk.get("weightDevice"), f"{path}.weightDevice")):
        field = f"{path}.weightDevice[{i}]"
        entry = _device_numbers(dev, field)
        for key in ("weight", "leafWeight"):
            w = _int(entry.get(key), f"{field}.{key}", low=0, high=1000)
            if w and w < 10:
                raise ConfigError(f"{field}.{key}", f"{w} is outside the range 10..1000")
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for i, dev in enumerate(_list(blk.get(key), f"{path}.{key}")):
            field = f"{path}.{key}[{i}]"
            entry = _device_numbers(dev, field)
            if entry.get("rate") is None:
                raise ConfigError(f"{field}.rate", "is required")
            _int(entry.get("rate"), f"{field}.rate", low=0, high=U64_MAX)
