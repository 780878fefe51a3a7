"""Looking at and changing containers: top, stats, update, prune, system df.

stats follows docker's JSON (cpu_stats/precpu_stats with system_cpu_usage and
online_cpus, memory_stats with the raw cgroup counters, blkio, pids) so the
docker CLI computes the same CPU % and "usage minus inactive file cache" memory
figure it shows for dockerd."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pybox.engine.events import attributes
from pybox.engine.lifecycle import discard_unsupported
from pybox.engine.prune import has_labels, prune_filters
from pybox.engine.spec import resources, validate_restart_policy, validate_update
from pybox.engine.store import Container, is_cri
from pybox.errors import BadRequest, PyboxError
from pybox.formats.times import parse_rfc3339, rfc3339_nano_fixed
from pybox.linux.fstree import path_size

if TYPE_CHECKING:
    from pybox.engine.engine import Engine

Sample = tuple[str, dict[str, Any], int]  # (read, the cgroup's raw stats, system cpu ns)


# -- top ---------------------------------------------------------------------


def top(engine: Engine, c: Container, ps_args: str | None = None) -> dict[str, Any]:
    c.state.check_running(c.id)
    pids = {str(p) for p in engine.runner.processes(c.id)}
    args = (ps_args or "-ef").split()
    try:
        out = subprocess.run(["ps"] + args, capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise BadRequest(f"ps: {e.stderr.strip()}") from None
    lines = out.splitlines()
    titles = lines[0].split()
    if "PID" not in titles:
        raise BadRequest("Couldn't find PID field in ps output")
    col = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > col and fields[col] in pids:
            rows.append(fields)
    return {"Titles": titles, "Processes": rows}


# -- stats -------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def _online_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def sample(engine: Engine, c: Container) -> Sample:
    """One raw sample: (timestamp, the runtime cgroup's stats, system cpu ns)."""
    raw = dict(engine.runner.cgroup_stats(c.id))
    # the interfaces' counters ride in the raw sample (docker_stats' "networks")
    raw["networks"] = engine.network.interface_stats(c)
    return rfc3339_nano_fixed(), raw, _system_cpu_ns()


def docker_stats(c: Container, cur: Sample, prev: Sample | None) -> dict[str, Any]:
    read, raw, system = cur
    mem = raw.get("memory") or {}
    musage = mem.get("usage") or {}
    stats_raw = dict(mem.get("raw") or mem.get("stats") or {})
    pids = raw.get("pids") or {}
    blk = raw.get("blkio") or {}

    def cpu_stats(r: dict[str, Any] | None, sys_ns: int) -> dict[str, Any]:
        cu = ((r or {}).get("cpu") or {}).get("usage") or {}
        thr = ((r or {}).get("cpu") or {}).get("throttling") or {}
        return {"cpu_usage": {"total_usage": cu.get("total", 0),
                              "percpu_usage": cu.get("percpu") or None,
                              "usage_in_kernelmode": cu.get("kernel", 0),
                              "usage_in_usermode": cu.get("user", 0)},
                "system_cpu_usage": sys_ns, "online_cpus": _online_cpus(),
                "throttling_data": {"periods": thr.get("periods", 0),
                                    "throttled_periods": thr.get("throttledPeriods", 0),
                                    "throttled_time": thr.get("throttledTime", 0)}}

    limit = musage.get("limit") or 0
    if not limit or limit >= 1 << 62:
        limit = _mem_total()
    out: dict[str, Any] = {
        "read": read,
        "preread": prev[0] if prev else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": pids.get("current", 0),
                       **({"limit": pids["limit"]} if pids.get("limit") else {})},
        "blkio_stats": {
            "io_service_bytes_recursive": _blkio(blk.get("ioServiceBytesRecursive")),
            "io_serviced_recursive": _blkio(blk.get("ioServicedRecursive")),
            "io_queue_recursive": None, "io_service_time_recursive": None,
            "io_wait_time_recursive": None, "io_merged_recursive": None,
            "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(raw, system),
        "precpu_stats": cpu_stats(prev[1], prev[2]) if prev else
        {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
         "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {"usage": musage.get("usage", 0),
                         "max_usage": musage.get("max", 0),
                         "stats": stats_raw, "limit": limit},
        "name": c.docker_name,
        "id": c.id,
    }
    if musage.get("failcnt"):
        out["memory_stats"]["failcnt"] = musage["failcnt"]
    if raw.get("networks"):  # dockerd's omitempty: none for --network none/host
        out["networks"] = raw["networks"]
    return out


def _blkio(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not entries:
        return None
    return [{"major": e.get("major", 0), "minor": e.get("minor", 0),
             "op": e.get("op", ""), "value": e.get("value", 0)} for e in entries]


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def stats_stream(engine: Engine, c: Container, stream: bool, one_shot: bool = False,
                 cancelled: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """Yield docker stats documents: one (after a second sample, so precpu is
    filled, as dockerd does) unless ``stream``, then one a second."""
    if not c.state.running:
        yield _empty_stats(c)
        return
    prev = None
    if not one_shot:
        prev = sample(engine, c)
        if not stream:
            time.sleep(1.0 if not one_shot else 0)
    while True:
        if not c.state.running:
            return
        try:
            cur = sample(engine, c)
        except PyboxError:
            return
        yield docker_stats(c, cur, prev)
        if not stream:
            return
        prev = cur
        for _ in range(10):
            time.sleep(0.1)
            if cancelled is not None and cancelled():
                return


def _empty_stats(c: Container) -> dict[str, Any]:
    return {"read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z",
            "pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {}, "name": c.docker_name, "id": c.id}


# -- update ------------------------------------------------------------------

UPDATABLE = ("CpuShares", "Memory", "MemorySwap", "MemoryReservation", "NanoCpus",
             "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit",
             "BlkioWeight", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
             "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "KernelMemory",
             "CpuRealtimePeriod", "CpuRealtimeRuntime", "OomKillDisable")


def update(engine: Engine, c: Container, body: dict[str, Any]) -> list[str]:
    """POST /containers/ID/update: the limits given (0/"" mean unchanged, as in
    docker), live when running, and the restart policy."""
    hc = c.host_config
    changes = {k: body[k] for k in UPDATABLE if body.get(k) not in (None, 0, "", [])}
    policy = body.get("RestartPolicy") or {}
    validate_restart_policy(policy)
    if policy.get("Name") not in (None, "", "no") and hc.get("AutoRemove"):
        # dockerd's check, as at create: --rm and a restart policy exclude each other
        raise BadRequest("Restart policy cannot be updated because AutoRemove is enabled "
                         "for the container")
    warnings = discard_unsupported(changes)
    changes = {k: v for k, v in changes.items() if v not in (0, [])}
    with c.lock:
        # dockerd's update checks (a create runs all of spec.validate_create)
        merged = validate_update(hc, changes)
        if c.state.running and changes:
            res = resources(merged)
            res.pop("devices", None)
            live: dict[str, Any] = {}
            if any(k.startswith("Memory") or k == "OomKillDisable" for k in changes):
                live["memory"] = res.get("memory", {})
            if any(k.startswith("Cpu") or k == "NanoCpus" for k in changes):
                live["cpu"] = res.get("cpu", {})
            if "PidsLimit" in changes:
                live["pids"] = res.get("pids", {"limit": -1})
            if any(k.startswith("Blkio") for k in changes):
                live["blockIO"] = res.get("blockIO", {})
            try:
                engine.runner.update(c.id, live)
            except PyboxError as e:
                raise BadRequest(f"Cannot update container {c.id}: {e}") from None
        hc.update(changes)
        if policy.get("Name") is not None and policy.get("Name") != "":
            hc["RestartPolicy"] = {"Name": policy["Name"],
                                   "MaximumRetryCount": policy.get("MaximumRetryCount", 0)}
        c.save()
    engine.events.emit("container", "update", c.id, attributes(c))
    return warnings


# -- prune and disk usage ----------------------------------------------------


def prune_containers(engine: Engine, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    filters, until, not_labels = prune_filters(filters)
    deleted: list[str] = []
    reclaimed = 0
    for c in engine.store.all():
        if c.state.listed_running or is_cri(c):  # kubelet removes its own (pybox.cri)
            continue
        if until is not None and parse_rfc3339(c.created) >= until:
            continue
        if not_labels and has_labels(c.config.get("Labels") or {}, not_labels):
            continue
        if filters and not engine.views.filter_match(c, filters, True):
            continue
        try:
            size = engine.images.rootfs_size(c.id)[0]
        except Exception:  # noqa: BLE001
            size = 0
        try:
            engine.remove(c.id, force=False, volumes=False)
        except PyboxError:
            continue
        deleted.append(c.id)
        reclaimed += size
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def disk_usage(engine: Engine) -> dict[str, Any]:
    images = engine.images.images
    image_list = images.list()
    users: dict[str | None, int] = {}
    containers = []
    for c in engine.store.all():
        image = c.image if c.has("Image") else None
        users[image] = users.get(image, 0) + 1
        summary = engine.views.summary(c, size=True)
        containers.append(summary)
    for img in image_list:
        img["Containers"] = users.get(img["Id"], 0)
    layers_size = sum(img.get("Size", 0) for img in image_list)
    vol_users = engine.volume_users()
    volumes = []
    for v in engine.volumes.list():
        v = dict(v)
        v["UsageData"] = {"RefCount": len(vol_users.get(v["Name"], ())),
                          "Size": path_size(v["Mountpoint"])}  # (volumes' du)
        volumes.append(v)
    return {"LayersSize": layers_size, "Images": image_list, "Containers": containers,
            "Volumes": volumes, "BuildCache": []}
