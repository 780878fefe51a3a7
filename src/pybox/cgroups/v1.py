"""cgroup v1 driver: one directory per mounted hierarchy.

Each controller lives at its own mount (or shares one, "cpu,cpuacct"), and the
container's cgroup is a directory in every hierarchy; a process joins by writing
its pid to cgroup.procs in each.  The files and their quirks:

* cpuset.cpus / cpuset.mems of a new cgroup are empty (unless the parent has
  cgroup.clone_children), and the kernel refuses tasks until both are set, so
  create() copies them from the parent at every level it walks.
* memory.memsw.limit_in_bytes (memory+swap) must never be below
  memory.limit_in_bytes, so raising the limit writes memsw first and lowering it
  writes the limit first.  Lowering below usage fails with EBUSY after the kernel
  tried to reclaim: reported as "below current usage".
* devices.allow / devices.deny edit a whitelist; see devices.py for how a rule
  list becomes writes without ever widening access in between.
* blkio.weight (CFQ) is gone from current kernels; BFQ's blkio.bfq.weight takes
  the same range, so it is used when blkio.weight is absent.
"""

from __future__ import annotations

from pybox.cgroups import devices as devmod
from pybox.cgroups import resources as res
from pybox.cgroups.base import FREEZE_TIMEOUT, Driver, backoff
from pybox.cgroups.convert import THROTTLE_FIELDS, hugepage_size_name
from pybox.cgroups.fs import parse_flat_keyed, parse_int
from pybox.cgroups.paths import resolve
from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from pybox.cgroups.fs import CgroupFs
    from pybox.cgroups.layout import Layout

P = "linux.resources"
# Join and configure cpuset first: the kernel refuses tasks in a cpuset cgroup
# with no cpus/mems, and memory may migrate with the task.
_ORDER = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids",
          "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc")
# The controller that owns each section of linux.resources on v1.
CONTROLLER_OF = {
    "cpuset": "cpuset", "cpu": "cpu", "memory": "memory", "devices": "devices",
    "blockIO": "blkio", "pids": "pids", "hugepageLimits": "hugetlb",
    "network.classID": "net_cls", "network.priorities": "net_prio",
}


def _set(value: int | None) -> bool:
    """runtime-spec "set" for numbers: present and not 0 (runc's convention:
    0 means unset for shares, limits, weights)."""
    return value is not None and value != 0


class V1Manager(Driver):
    version = 1
    driver = "v1"

    def __init__(self, cgroup_path: str, paths: dict[str, str], mounts: dict[str, str], *,
                 created: Iterable[str] = (), rootless: bool = False,
                 fs: CgroupFs | None = None) -> None:
        self.cgroup_path = cgroup_path
        self.paths = dict(paths)
        self.mounts = dict(mounts)
        self._init_common(created, rootless, fs)

    # -- construction -----------------------------------------------------
    @classmethod
    def for_layout(cls, layout: Layout, cgroups_path: str, name: str, *, rootless: bool = False,
                   systemd: bool = False, fs: CgroupFs | None = None) -> V1Manager:
        paths: dict[str, str] = {}
        mounts: dict[str, str] = {}
        shown: str | None = None
        for controller, h in layout.v1.items():
            inner = resolve(cgroups_path, name, h.own, systemd=systemd, rootless=rootless)
            paths[controller] = h.directory(inner)
            mounts[controller] = h.mountpoint
            if shown is None or controller == "memory":
                shown = inner
        return cls(shown or "/", paths, mounts, rootless=rootless, fs=fs)

    @classmethod
    def from_state(cls, saved: dict[str, Any], fs: CgroupFs | None = None) -> V1Manager:
        return cls(saved.get("path", ""), saved["paths"], saved.get("mounts", {}),
                   created=saved.get("created", ()), rootless=saved.get("rootless", False),
                   fs=fs)

    def to_state(self) -> dict[str, Any]:
        return {"driver": self.driver, "version": 1, "path": self.cgroup_path,
                "paths": dict(self.paths), "mounts": dict(self.mounts),
                "created": list(self.created), "rootless": self.rootless}

    def _controllers_in_order(self) -> list[str]:
        known = [c for c in _ORDER if c in self.paths]
        return known + sorted(c for c in self.paths if c not in known)

    def _unique_dirs(self) -> list[tuple[str, str, str]]:
        """(controller, mountpoint, dir) once per distinct directory."""
        seen = set()
        out: list[tuple[str, str, str]] = []
        for c in self._controllers_in_order():
            d = self.paths[c]
            if d in seen:
                continue
            seen.add(d)
            out.append((c, self.mounts.get(c, ""), d))
        return out

    # -- create / add ---------------------------------------------------------
    def create(self) -> None:
        made: list[str] = []
        try:
            for _controller, mount, directory in self._unique_dirs():
                inner = directory[len(mount.rstrip("/")):] if mount else directory
                try:
                    self._make_path(mount, inner, made=made)
                except CgroupError as e:
                    if self.rootless and getattr(e, "errno", None) in (1, 13, 30):
                        self._warn(f"cgroup {directory} not created (rootless): {e}")
                        for c in [c for c, d in self.paths.items() if d == directory]:
                            del self.paths[c]
                        continue
                    raise
            if "cpuset" in self.paths and self.mounts.get("cpuset"):
                self._init_cpuset(self.mounts["cpuset"], self.paths["cpuset"])
        except BaseException:
            self._remove_dirs(made)
            raise
        self.created.extend(d for d in made if d not in self.created)

    def _init_cpuset(self, mount: str, directory: str) -> None:
        """Copy cpuset.cpus/mems from the parent into every level that has none."""
        parent = mount.rstrip("/")
        for part in directory[len(parent):].strip("/").split("/"):
            if not part:
                continue
            current = f"{parent}/{part}"
            for name in ("cpuset.cpus", "cpuset.mems"):
                mine = self._read_or_none(current, name)
                if mine is not None and not mine.strip():
                    value = self._read(parent, name).strip()
                    self._write(current, name, value)
            parent = current

    def add(self, pid: int) -> None:
        for _controller, _, directory in self._unique_dirs():
            try:
                self._write(directory, "cgroup.procs", str(pid))
            except CgroupError as e:
                if self.rootless and getattr(e, "errno", None) in (1, 13, 2, 30):
                    self._warn(f"pid {pid} not moved into {directory} (rootless): {e}")
                    continue
                raise
        self._joined = True

    def enter_self(self) -> None:
        for _controller, _, directory in self._unique_dirs():
            try:
                self._write(directory, "tasks", "0")
            except CgroupError as e:
                if self.rootless and getattr(e, "errno", None) in (1, 13, 2, 30):
                    self._warn(f"not moved into {directory} (rootless): {e}")
                    continue
                raise
        self._joined = True

    def pids(self) -> list[int]:
        for c in ("pids", "freezer", "devices", "memory", "cpu"):
            if c in self.paths:
                return self._procs_in(self.paths[c])
        for d in self.paths.values():
            return self._procs_in(d)
        return []

    # -- resources -------------------------------------------------------------
    def _dir(self, controller: str, field: str) -> str | None:
        """The directory of ``controller`` or a clear error naming the field."""
        d = self.paths.get(controller)
        if d is None:
            self._unsupported(field, f"the {controller} controller is not mounted on this host "
                                     f"(cgroup v1 hierarchies here: {sorted(self.paths)})")
        return d

    def set_cpuset(self, cpu: dict[str, Any]) -> None:
        d = self._dir("cpuset", f"{P}.cpu.cpus")
        if d is None:
            return
        if cpu.get("cpus"):
            self._write(d, "cpuset.cpus", cpu["cpus"], field=f"{P}.cpu.cpus",
                        hint="cpus must be a subset of the parent's cpuset.cpus")
        if cpu.get("mems"):
            self._write(d, "cpuset.mems", cpu["mems"], field=f"{P}.cpu.mems",
                        hint="mems must be a subset of the parent's cpuset.mems")

    def set_cpu(self, cpu: dict[str, Any]) -> None:
        d = self._dir("cpu", f"{P}.cpu")
        if d is None:
            return
        shares = cpu.get("shares")
        if _set(shares):
            self._write(d, "cpu.shares", shares, field=f"{P}.cpu.shares")
            got = parse_int(self._read(d, "cpu.shares"))
            if got != shares:
                raise CgroupError(f"{P}.cpu.shares: the kernel set {got} instead of {shares} "
                                  f"in {d}/cpu.shares (outside its range)", errno=22)
        period, quota = cpu.get("period"), cpu.get("quota")
        if _set(period):
            try:
                self._write(d, "cpu.cfs_period_us", period, field=f"{P}.cpu.period")
            except CgroupError:
                # The current quota may not fit the new period: quota first.
                if not _set(quota):
                    raise
                self._write(d, "cpu.cfs_quota_us", quota, field=f"{P}.cpu.quota")
                self._write(d, "cpu.cfs_period_us", period, field=f"{P}.cpu.period")
        if _set(quota):
            self._write(d, "cpu.cfs_quota_us", quota, field=f"{P}.cpu.quota")
        if cpu.get("burst") is not None:
            if not self.has_file(d, "cpu.cfs_burst_us"):
                self._unsupported(f"{P}.cpu.burst", "this kernel has no cpu.cfs_burst_us")
            else:
                self._write(d, "cpu.cfs_burst_us", cpu["burst"], field=f"{P}.cpu.burst")
        if _set(cpu.get("realtimePeriod")):
            self._write(d, "cpu.rt_period_us", cpu["realtimePeriod"],
                        field=f"{P}.cpu.realtimePeriod")
        if _set(cpu.get("realtimeRuntime")):
            self._set_rt_runtime(d, cpu["realtimeRuntime"])
        if cpu.get("idle") is not None:
            if not self.has_file(d, "cpu.idle"):
                self._unsupported(f"{P}.cpu.idle", "this kernel has no cpu.idle")
            else:
                self._write(d, "cpu.idle", cpu["idle"], field=f"{P}.cpu.idle")

    def _set_rt_runtime(self, d: str, runtime: int) -> None:
        """A cgroup's rt budget must fit in its parent's, and a new cgroup has
        none, so intermediate cgroups this manager created get the budget first
        (top-down).  Cgroups we did not create are never changed."""
        field = f"{P}.cpu.realtimeRuntime"
        hint = "the parent cgroup must have at least this much rt runtime"
        try:
            self._write(d, "cpu.rt_runtime_us", runtime, field=field, hint=hint)
            return
        except CgroupError as e:
            if e.errno != 22 or runtime == -1:
                raise
        mount = self.mounts.get("cpu", "").rstrip("/")
        ancestors: list[str] = []
        parent = d.rsplit("/", 1)[0]
        while parent in self.created and parent.startswith(mount + "/"):
            ancestors.append(parent)
            parent = parent.rsplit("/", 1)[0]
        for level in reversed(ancestors):
            current = parse_int(self._read(level, "cpu.rt_runtime_us"))
            if current != -1 and current < runtime:
                self._write(level, "cpu.rt_runtime_us", runtime, field=field, hint=hint)
        self._write(d, "cpu.rt_runtime_us", runtime, field=field, hint=hint)

    def set_memory(self, mem: dict[str, Any], update: bool) -> None:
        d = self._dir("memory", f"{P}.memory")
        if d is None:
            return
        limit: int = mem.get("limit") or 0  # 0: unset, as None
        swap: int = mem.get("swap") or 0
        if limit == -1 and not _set(swap):
            swap = -1  # unlimited memory and unset swap: both unlimited (runc)
        if _set(limit) and limit != -1 and mem.get("checkBeforeUpdate"):
            usage = parse_int(self._read(d, "memory.usage_in_bytes"))
            if limit < usage:
                raise CgroupError(f"{P}.memory.limit: {limit} is below the current usage "
                                  f"{usage} of {d} (checkBeforeUpdate)", errno=16)
        has_memsw = self.has_file(d, "memory.memsw.limit_in_bytes")
        want_swap = _set(swap)
        if want_swap and not has_memsw:
            if swap != -1:
                self._unsupported(f"{P}.memory.swap", "swap accounting is disabled in this "
                                  "kernel (no memory.memsw.limit_in_bytes)")
            want_swap = False
        if _set(limit) and want_swap:
            current = parse_int(self._read(d, "memory.limit_in_bytes"))
            if limit == -1 or limit > current:
                self._write_memsw(d, swap)
                self._write_limit(d, limit)
            else:
                self._write_limit(d, limit)
                self._write_memsw(d, swap)
        elif _set(limit):
            self._write_limit(d, limit)
        elif want_swap:
            self._write_memsw(d, swap)
        if _set(mem.get("reservation")):
            self._write(d, "memory.soft_limit_in_bytes", mem["reservation"],
                        field=f"{P}.memory.reservation")
        if _set(mem.get("kernel")):
            self._warn(f"{P}.memory.kernel: ignored: kernel memory limits are deprecated and "
                       "not enforced by current kernels (runc ignores them too)")
        if _set(mem.get("kernelTCP")):
            self._write(d, "memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"],
                        field=f"{P}.memory.kernelTCP")
        if mem.get("swappiness") is not None:
            self._write(d, "memory.swappiness", mem["swappiness"], field=f"{P}.memory.swappiness")
        if mem.get("disableOOMKiller") or (update and mem.get("disableOOMKiller") is False):
            self._write(d, "memory.oom_control", "1" if mem["disableOOMKiller"] else "0",
                        field=f"{P}.memory.disableOOMKiller")
        if mem.get("useHierarchy") is not None:
            self._write(d, "memory.use_hierarchy", "1" if mem["useHierarchy"] else "0",
                        field=f"{P}.memory.useHierarchy",
                        hint="current kernels only support hierarchical accounting")

    def _write_limit(self, d: str, limit: int) -> None:
        try:
            self._write(d, "memory.limit_in_bytes", limit, field=f"{P}.memory.limit")
        except CgroupError as e:
            if e.errno == 16:
                usage = self._read_or_none(d, "memory.usage_in_bytes")
                raise CgroupError(
                    f"{P}.memory.limit: {limit} is below the current usage "
                    f"({(usage or '?').strip()} bytes) of {d} and the kernel could not "
                    f"reclaim enough (errno 16)", errno=16) from None
            if e.errno == 22:
                memsw = self._read_or_none(d, "memory.memsw.limit_in_bytes")
                if memsw is not None and limit != -1 and limit > parse_int(memsw):
                    raise CgroupError(
                        f"{P}.memory.limit: {limit} is above the memory+swap limit "
                        f"{memsw.strip()} of {d}; raise memory.swap too (errno 22)",
                        errno=22) from None
            raise

    def _write_memsw(self, d: str, swap: int) -> None:
        self._write(d, "memory.memsw.limit_in_bytes", swap, field=f"{P}.memory.swap",
                    hint="memory+swap must be -1 or at least the memory limit")

    def set_pids(self, pids: dict[str, Any]) -> None:
        d = self._dir("pids", f"{P}.pids.limit")
        if d is None:
            return
        limit = pids["limit"]
        self._write(d, "pids.max", str(limit) if limit > 0 else "max", field=f"{P}.pids.limit")

    def set_blockio(self, blk: dict[str, Any]) -> None:
        d = self._dir("blkio", f"{P}.blockIO")
        if d is None:
            return
        if _set(blk.get("weight")):
            name = self._first_existing(d, ("blkio.weight", "blkio.bfq.weight"))
            if name is None:
                self._unsupported(f"{P}.blockIO.weight", "no proportional io scheduler "
                                  "(blkio.weight or blkio.bfq.weight) in this kernel")
            else:
                self._write(d, name, blk["weight"], field=f"{P}.blockIO.weight")
        if _set(blk.get("leafWeight")):
            if not self.has_file(d, "blkio.leaf_weight"):
                self._unsupported(f"{P}.blockIO.leafWeight",
                                  "this kernel has no blkio.leaf_weight (CFQ was removed)")
            else:
                self._write(d, "blkio.leaf_weight", blk["leafWeight"],
                            field=f"{P}.blockIO.leafWeight")
        for i, dev in enumerate(blk.get("weightDevice") or ()):
            field = f"{P}.blockIO.weightDevice[{i}]"
            numbers = f"{dev['major']}:{dev['minor']}"
            if _set(dev.get("weight")):
                name = self._first_existing(d, ("blkio.weight_device", "blkio.bfq.weight_device"))
                if name is None:
                    self._unsupported(f"{field}.weight", "no blkio.weight_device in this kernel")
                else:
                    self._write(d, name, f"{numbers} {dev['weight']}", field=f"{field}.weight",
                                hint=f"is {numbers} an existing block device using bfq?")
            if _set(dev.get("leafWeight")):
                if not self.has_file(d, "blkio.leaf_weight_device"):
                    self._unsupported(f"{field}.leafWeight",
                                      "this kernel has no blkio.leaf_weight_device")
                else:
                    self._write(d, "blkio.leaf_weight_device", f"{numbers} {dev['leafWeight']}",
                                field=f"{field}.leafWeight")
        for key, filename, _ in THROTTLE_FIELDS:
            for i, dev in enumerate(blk.get(key) or ()):
                self._write(d, filename, f"{dev['major']}:{dev['minor']} {dev['rate']}",
                            field=f"{P}.blockIO.{key}[{i}]",
                            hint=f"is {dev['major']}:{dev['minor']} an existing block device?")

    def _first_existing(self, d: str, names: Iterable[str]) -> str | None:
        for name in names:
            if self.has_file(d, name):
                return name
        return None

    def set_hugetlb(self, limits: list[dict[str, Any]]) -> None:
        d = self._dir("hugetlb", f"{P}.hugepageLimits")
        if d is None:
            return
        for i, hp in enumerate(limits):
            size = hugepage_size_name(hp["pageSize"])
            field = f"{P}.hugepageLimits[{i}]"
            name = f"hugetlb.{size}.limit_in_bytes"
            if not self.has_file(d, name):
                raise CgroupError(f"{field}.pageSize: {hp['pageSize']!r} is not a huge page "
                                  f"size this kernel supports (no {d}/{name})", errno=22)
            self._write(d, name, hp["limit"], field=f"{field}.limit")
            if self.has_file(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
                self._write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", hp["limit"],
                            field=f"{field}.limit")

    def set_network(self, net: dict[str, Any]) -> None:
        if net.get("classID") is not None:
            d = self._dir("net_cls", f"{P}.network.classID")
            if d is not None:
                self._write(d, "net_cls.classid", net["classID"], field=f"{P}.network.classID")
        prios = net.get("priorities") or ()
        if prios:
            d = self._dir("net_prio", f"{P}.network.priorities")
            if d is not None:
                for i, p in enumerate(prios):
                    self._write(d, "net_prio.ifpriomap", f"{p['name']} {p['priority']}",
                                field=f"{P}.network.priorities[{i}]",
                                hint=f"does interface {p['name']!r} exist?")

    def set_rdma(self, rdma: dict[str, dict[str, int]]) -> None:
        d = self._dir("rdma", f"{P}.rdma")
        if d is None:
            return
        for line in res.rdma_lines(rdma):
            self._write(d, "rdma.max", line, field=f"{P}.rdma",
                        hint="is the RDMA device present?")

    def set_unified(self, unified: dict[str, str]) -> None:
        raise CgroupError(f"{P}.unified: raw cgroup v2 keys ({', '.join(sorted(unified))}) "
                          "need cgroup v2; this host uses cgroup v1", errno=95)

    def set_devices(self, rules: list[dict[str, Any]]) -> None:
        d = self._dir("devices", f"{P}.devices")
        if d is None:
            return
        target = devmod.state_from_rules(rules)
        current = devmod.parse_devices_list(self._read(d, "devices.list"))
        for filename, line in devmod.v1_transition(current, target):
            self._write(d, filename, line, field=f"{P}.devices",
                        hint="a child cgroup cannot allow a device its parent denies")
        self.device_state = target

    # -- freezer --------------------------------------------------------------
    def _can_freeze(self) -> bool:
        return "freezer" in self.paths

    def _freezer(self) -> str:
        d = self.paths.get("freezer")
        if d is None:
            raise CgroupError("the freezer controller is not mounted on this host", errno=95)
        return d

    def freeze(self) -> None:
        d = self._freezer()
        for _ in backoff(FREEZE_TIMEOUT):
            self._write(d, "freezer.state", "FROZEN")
            if self._read(d, "freezer.state").strip() == "FROZEN":
                return
        self._write(d, "freezer.state", "THAWED")
        raise CgroupError(f"cannot freeze {d}: still FREEZING after {FREEZE_TIMEOUT:.0f}s "
                          "(a task is stuck in an uninterruptible sleep?)", errno=16)

    def thaw(self) -> None:
        d = self._freezer()
        for _ in backoff(FREEZE_TIMEOUT):
            self._write(d, "freezer.state", "THAWED")
            if self._read(d, "freezer.state").strip() == "THAWED":
                return
        raise CgroupError(f"cannot thaw {d}: freezer.state is not THAWED", errno=16)

    def is_frozen(self) -> bool:
        d = self.paths.get("freezer")
        state = self._read_or_none(d, "freezer.state") if d else None
        return state is not None and state.strip() == "FROZEN"

    # -- stats ------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        from pybox.cgroups import stats  # noqa: PLC0415 -- only the stats/events path needs it

        return stats.v1_stats(self.paths, self.fs)

    def oom_kill_count(self) -> int:
        d = self.paths.get("memory")
        if d is None:
            return 0
        return parse_flat_keyed(self._read(d, "memory.oom_control")).get("oom_kill", 0)
