"""pybox-runtime update [-r resources.json|-] [--memory 64m --cpu-quota ...] ID

A linux.resources object from a file (or stdin with "-"), or runc's flags;
the cgroup changes live."""

from __future__ import annotations

import sys

from pybox.errors import UsageError
from pybox.formats import fastjson
from pybox.formats.sizes import ram_in_bytes
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def parse_bytes(flag: str, text: str) -> int:
    """runc's sizes: go-units RAMInBytes (64m, 1g, 512k, 1048576); -1 for unlimited."""
    t = text.strip()
    if t == "-1":
        return -1
    try:
        return ram_in_bytes(t)
    except ValueError:
        raise UsageError(f"invalid value {text!r} for --{flag}") from None


def parse_int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"invalid value {text!r} for --{flag}: must be an integer") from None


# flag -> (section, key, parser)
FLAGS: dict[str, tuple[str, str, Callable[[str, str], int | str]]] = {
    "blkio_weight": ("blockIO", "weight", parse_int),
    "cpu_period": ("cpu", "period", parse_int),
    "cpu_quota": ("cpu", "quota", parse_int),
    "cpu_share": ("cpu", "shares", parse_int),
    "cpu_rt_period": ("cpu", "realtimePeriod", parse_int),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", parse_int),
    "cpuset_cpus": ("cpu", "cpus", lambda f, t: t),
    "cpuset_mems": ("cpu", "mems", lambda f, t: t),
    "cpu_idle": ("cpu", "idle", parse_int),
    "kernel_memory": ("memory", "kernel", parse_bytes),
    "kernel_memory_tcp": ("memory", "kernelTCP", parse_bytes),
    "memory": ("memory", "limit", parse_bytes),
    "memory_reservation": ("memory", "reservation", parse_bytes),
    "memory_swap": ("memory", "swap", parse_bytes),
    "pids_limit": ("pids", "limit", parse_int),
}


# Fields that runc's update treats as "leave as it is" when 0 (or ""): its
# cgroup drivers write a file only for a non-zero value.  containerd-shim sends
# every one of them (docker update --memory 32m: cpu quota/period/shares 0,
# blockIO weight 0, ...), so they must not reach the cgroup as values.
UNSET_WHEN_ZERO = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"),
    "blockIO": ("weight", "leafWeight"),
    "pids": ("limit",),
}


def drop_unset(resources: dict[str, Any]) -> dict[str, Any]:
    """resources without the zero/empty fields runc's update ignores, and
    without the sections that leaves empty."""
    out = dict(resources)
    for section, keys in UNSET_WHEN_ZERO.items():
        if not isinstance(out.get(section), dict):
            continue
        kept = {k: v for k, v in out[section].items()
                if not (k in keys and v in (0, "") and not isinstance(v, bool))}
        if kept:
            out[section] = kept
        else:
            del out[section]
    return out


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    if opts.get("resources"):
        path = opts["resources"]
        try:
            data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
            resources: dict[str, Any] = fastjson.loads(data)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from None
        except ValueError as e:
            raise UsageError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(resources, dict):
            raise UsageError(f"{path} must hold a linux.resources object")
    else:
        resources = {}
        given: Mapping[str, object] = opts  # looked up by the tables' names
        for dest, (section, key, parser) in FLAGS.items():
            text = given.get(dest)
            if isinstance(text, str):  # (every resource flag is a "str" one)
                flag = dest.replace("_", "-")
                resources.setdefault(section, {})[key] = parser(flag, text)
        for flag in ("l3_cache_schema", "mem_bw_schema"):
            if given.get(flag):
                raise UsageError(f"--{flag.replace('_', '-')}: Intel RDT is not supported")
        if not resources:
            raise UsageError("nothing to update: give -r FILE or a resource flag")
    Container.load(ctx.root, args[0]).update(drop_unset(resources))
    return 0
