"""cgroup v2 driver: one directory in the unified hierarchy.

What v2 changes, and how this driver copes:

* A controller's files exist in a cgroup only if the parent lists it in
  cgroup.subtree_control, so create() enables every controller the parent offers
  (cgroup.controllers) at each level from the mount root down, as runc does.  A
  level that holds processes cannot enable domain controllers ("no internal
  processes" rule): that write fails with EBUSY, the failure is remembered, and
  a limit that needs the controller later fails with a message saying why.
* The runtime-spec speaks v1; convert.py maps each value (shares -> cpu.weight,
  memory+swap -> memory.swap.max, ...).  Fields with no v2 equivalent
  (network, realtime cpu, disableOOMKiller, leafWeight) are an error naming the
  field; deprecated ones the kernel ignores anyway (memory.kernel, kernelTCP,
  swappiness) are skipped with a warning, as runc does.
* Devices: no files; an eBPF program (ebpf.py).
* Freezer: cgroup.freeze, done when cgroup.events says "frozen 1".
* Kill: cgroup.kill (5.14+) kills every process atomically, even forking ones.
* Lowering memory.max below usage does not fail on v2: the kernel reclaims and
  then OOM-kills.  update() therefore refuses a limit below the processes'
  anonymous memory (which cannot be reclaimed without swap), and below the whole
  usage when checkBeforeUpdate is set.

``partial=True`` is the hybrid driver's mode: only the controllers attached to
the cgroup2 mount are expected here.
"""

from __future__ import annotations

from pybox.cgroups import convert
from pybox.cgroups import devices as devmod
from pybox.cgroups import resources as res
from pybox.cgroups.base import FREEZE_TIMEOUT, SIGKILL, Driver, backoff
from pybox.cgroups.fs import cgroup_error, parse_flat_keyed, parse_int
from pybox.cgroups.paths import resolve
from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from pybox.cgroups.fs import CgroupFs
    from pybox.cgroups.layout import Layout

P = "linux.resources"


def _set(value: int | None) -> bool:
    return value is not None and value != 0


class V2Manager(Driver):
    version = 2
    driver = "v2"

    def __init__(self, cgroup_path: str, mountpoint: str, *, created: Iterable[str] = (),
                 rootless: bool = False, fs: CgroupFs | None = None, partial: bool = False) -> None:
        self.cgroup_path = cgroup_path
        self.mountpoint = mountpoint.rstrip("/") or "/"
        self.dir = self.mountpoint.rstrip("/") + cgroup_path
        self.paths = {"": self.dir}
        self.partial = partial
        self._enable_failures: dict[str, str] = {}
        self._controllers: tuple[str, ...] | None = None
        self._init_common(created, rootless, fs)

    @classmethod
    def for_layout(cls, layout: Layout, cgroups_path: str, name: str, *, rootless: bool = False,
                   systemd: bool = False, fs: CgroupFs | None = None,
                   partial: bool = False) -> V2Manager:
        h = layout.unified
        assert h is not None, "a v2 manager on a host without cgroup2"
        # A relative path (an empty one too) is below the *parent* of the caller's
        # cgroup on a pure v2 host, as runc's fs2 places it: the caller's own cgroup
        # holds processes (the caller), so it could not enable controllers for a
        # child (no internal processes).  The hybrid half follows runc's v1 rule,
        # below the caller's own cgroup, like the v1 hierarchies beside it.
        base = h.own if partial else (h.own.rstrip("/").rsplit("/", 1)[0] or "/")
        inner = resolve(cgroups_path, name, base, systemd=systemd, rootless=rootless)
        return cls(inner, h.mountpoint, rootless=rootless, fs=fs, partial=partial)

    @classmethod
    def from_state(cls, saved: dict[str, Any], fs: CgroupFs | None = None) -> V2Manager:
        return cls(saved["path"], saved["mountpoint"], created=saved.get("created", ()),
                   rootless=saved.get("rootless", False), fs=fs,
                   partial=saved.get("partial", False))

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"driver": self.driver, "version": 2, "path": self.cgroup_path,
                 "mountpoint": self.mountpoint, "paths": dict(self.paths),
                 "created": list(self.created), "rootless": self.rootless}
        if self.partial:
            state["partial"] = True
        return state

    # -- create / add -----------------------------------------------------------
    def create(self) -> None:
        made: list[str] = []
        try:
            try:
                self._make_path(self.mountpoint, self.cgroup_path, made=made,
                                before_mkdir=self._enable_controllers)
            except CgroupError as e:
                if self.rootless and getattr(e, "errno", None) in (1, 13, 30):
                    # Not delegated to this user: rootless containers then run
                    # without a cgroup of their own (runc does the same).
                    self._warn(f"cgroup {self.dir} not created (rootless): {e}")
                    return
                raise
            # Levels that already existed were skipped above; their parents may
            # still lack controllers (e.g. a leaf pre-made by someone else).
            parent = self.dir.rsplit("/", 1)[0]
            if parent.startswith(self.mountpoint):
                self._enable_down_to(parent)
        except BaseException:
            self._remove_dirs(made)
            raise
        self.created.extend(d for d in made if d not in self.created)
        self._controllers = None

    def _enable_down_to(self, parent: str) -> None:
        current = self.mountpoint
        self._enable_controllers(current)
        for part in parent[len(self.mountpoint):].strip("/").split("/"):
            if part:
                current = f"{current}/{part}"
                self._enable_controllers(current)

    def _enable_controllers(self, parent: str) -> None:
        """Enable in ``parent``'s subtree_control every controller it offers."""
        offered = (self._read_or_none(parent, "cgroup.controllers") or "").split()
        enabled = (self._read_or_none(parent, "cgroup.subtree_control") or "").split()
        for c in offered:
            if c in enabled:
                continue
            try:
                self._write(parent, "cgroup.subtree_control", "+" + c)
            except CgroupError as e:
                # EBUSY: parent has processes (no internal processes rule);
                # EACCES/EPERM: not delegated.  Remembered for the error message
                # of the limit that needs it.
                self._enable_failures[c] = str(e)

    def add(self, pid: int) -> None:
        try:
            self._write(self.dir, "cgroup.procs", str(pid),
                        hint="a v2 cgroup with controllers enabled in its own "
                             "cgroup.subtree_control cannot hold processes")
        except CgroupError as e:
            if self.rootless and getattr(e, "errno", None) in (1, 13, 2, 30):
                self._warn(f"pid {pid} not moved into {self.dir} (rootless): {e}")
            else:
                raise
        self._joined = True

    def enter_self(self) -> None:
        # cgroup v2 has no cheap path for a whole process (cgroup.procs always
        # takes the threadgroup rwsem); clone3(CLONE_INTO_CGROUP) would avoid it.
        self.add(0)

    def pids(self) -> list[int]:
        return self._procs_in(self.dir)

    # -- resources ----------------------------------------------------------------
    def controllers(self) -> tuple[str, ...]:
        """Controllers usable in our cgroup (its cgroup.controllers)."""
        if self._controllers is None:
            text = self._read_or_none(self.dir, "cgroup.controllers")
            self._controllers = tuple((text or "").split())
        return self._controllers

    def _need(self, controller: str, field: str) -> bool:
        if controller in self.controllers():
            return True
        why = self._enable_failures.get(controller)
        if why:
            reason = f"enabling it in cgroup.subtree_control failed: {why}"
        else:
            reason = ("the parent does not offer it (not in cgroup.controllers: not "
                      "delegated, or bound to a cgroup v1 hierarchy)")
        self._unsupported(field, f"the {controller} controller is not available in "
                                 f"{self.dir}: {reason}")
        return False

    def _begin_apply(self) -> None:
        self.forget_controllers()

    def forget_controllers(self) -> None:
        """cgroup.controllers is read again at the next look (an apply may have
        enabled some on the way down)."""
        self._controllers = None
    def set_cpuset(self, cpu: dict[str, Any]) -> None:
        if not self._need("cpuset", f"{P}.cpu.cpus"):
            return
        if cpu.get("cpus"):
            self._write(self.dir, "cpuset.cpus", cpu["cpus"], field=f"{P}.cpu.cpus")
        if cpu.get("mems"):
            self._write(self.dir, "cpuset.mems", cpu["mems"], field=f"{P}.cpu.mems")

    def set_cpu(self, cpu: dict[str, Any]) -> None:
        d = self.dir
        if _set(cpu.get("realtimeRuntime")) or _set(cpu.get("realtimePeriod")):
            self._unsupported(f"{P}.cpu.realtimeRuntime",
                              "cgroup v2 has no realtime cpu budget (cpu.rt_runtime_us is v1 only)")
        wanted = ([k for k in ("shares", "quota", "period") if _set(cpu.get(k))]
                  + [k for k in ("burst", "idle") if cpu.get(k) is not None])
        if not wanted or not self._need("cpu", f"{P}.cpu.{wanted[0]}"):
            return
        if _set(cpu.get("shares")):
            self._write(d, "cpu.weight", convert.cpu_shares_to_weight(cpu["shares"]),
                        field=f"{P}.cpu.shares")
        text = convert.cpu_max(cpu.get("quota"), cpu.get("period"))
        if text:
            self._write(d, "cpu.max", text, field=f"{P}.cpu.quota")
        if cpu.get("burst") is not None:
            if not self.has_file(d, "cpu.max.burst"):
                self._unsupported(f"{P}.cpu.burst", "this kernel has no cpu.max.burst")
            else:
                self._write(d, "cpu.max.burst", cpu["burst"], field=f"{P}.cpu.burst")
        if cpu.get("idle") is not None:
            if not self.has_file(d, "cpu.idle"):
                self._unsupported(f"{P}.cpu.idle", "this kernel has no cpu.idle")
            else:
                self._write(d, "cpu.idle", cpu["idle"], field=f"{P}.cpu.idle")

    def set_memory(self, mem: dict[str, Any], update: bool) -> None:
        d = self.dir
        limit: int = mem.get("limit") or 0  # 0: unset, as None
        swap, reservation = mem.get("swap"), mem.get("reservation")
        if _set(mem.get("kernel")):
            self._warn(f"{P}.memory.kernel: ignored: cgroup v2 has no separate kernel memory limit")
        if _set(mem.get("kernelTCP")):
            self._warn(f"{P}.memory.kernelTCP: ignored: cgroup v2 has no separate TCP memory limit")
        if mem.get("swappiness") is not None:
            self._warn(f"{P}.memory.swappiness: ignored: cgroup v2 has no per-cgroup swappiness")
        if mem.get("disableOOMKiller"):
            self._unsupported(f"{P}.memory.disableOOMKiller",
                              "cgroup v2 cannot disable the OOM killer for a cgroup")
        if mem.get("useHierarchy") is False:
            self._unsupported(f"{P}.memory.useHierarchy",
                              "cgroup v2 accounting is always hierarchical")
        if not (_set(limit) or _set(swap) or _set(reservation)):
            return
        if not self._need("memory", f"{P}.memory.limit"):
            return
        swap_text = convert.memory_swap_to_v2(swap, limit)
        limit_text = convert.memory_value(limit)
        if limit_text and limit_text != "max" and (update or mem.get("checkBeforeUpdate")):
            self._check_below_usage(limit, bool(mem.get("checkBeforeUpdate")))
        if swap_text is not None:
            if not self.has_file(d, "memory.swap.max"):
                if swap_text not in ("max", "0"):
                    self._unsupported(f"{P}.memory.swap",
                                      "swap accounting is not available (no memory.swap.max)")
            else:
                self._write(d, "memory.swap.max", swap_text, field=f"{P}.memory.swap")
        if limit_text:
            self._write(d, "memory.max", limit_text, field=f"{P}.memory.limit")
        reservation_text = convert.memory_value(reservation)
        if reservation_text:
            self._write(d, "memory.low", reservation_text, field=f"{P}.memory.reservation")

    def _check_below_usage(self, limit: int, whole_usage: bool) -> None:
        current = self._read_or_none(self.dir, "memory.current")
        if current is None:
            return
        usage = parse_int(current)
        if whole_usage:
            if limit < usage:
                raise CgroupError(f"{P}.memory.limit: {limit} is below the current usage "
                                  f"{usage} of {self.dir} (checkBeforeUpdate)", errno=16)
            return
        anon = parse_flat_keyed(self._read_or_none(self.dir, "memory.stat") or "").get("anon", 0)
        if limit < anon:
            raise CgroupError(f"{P}.memory.limit: {limit} is below the anonymous memory "
                              f"{anon} the processes in {self.dir} use now; the kernel would "
                              "OOM-kill them", errno=16)

    def set_pids(self, pids: dict[str, Any]) -> None:
        if self._need("pids", f"{P}.pids.limit"):
            self._write(self.dir, "pids.max", convert.pids_max(pids["limit"]),
                        field=f"{P}.pids.limit")

    def set_blockio(self, blk: dict[str, Any]) -> None:
        d = self.dir
        if _set(blk.get("leafWeight")) or any(_set(w.get("leafWeight"))
                                               for w in blk.get("weightDevice") or ()):
            self._unsupported(f"{P}.blockIO.leafWeight", "cgroup v2 has no leaf weights")
        wanted = (_set(blk.get("weight")) or blk.get("weightDevice")
                  or any(blk.get(k) for k, _, _ in convert.THROTTLE_FIELDS))
        if not wanted or not self._need("io", f"{P}.blockIO"):
            return
        bfq = self.has_file(d, "io.bfq.weight")
        if _set(blk.get("weight")):
            if bfq:
                self._write(d, "io.bfq.weight", blk["weight"], field=f"{P}.blockIO.weight")
            elif self.has_file(d, "io.weight"):
                self._write(d, "io.weight", convert.blkio_weight_to_io_weight(blk["weight"]),
                            field=f"{P}.blockIO.weight")
            else:
                self._unsupported(f"{P}.blockIO.weight",
                                  "neither io.bfq.weight nor io.weight exists in this kernel")
        for i, dev in enumerate(blk.get("weightDevice") or ()):
            if not _set(dev.get("weight")):
                continue
            numbers = f"{dev['major']}:{dev['minor']}"
            field = f"{P}.blockIO.weightDevice[{i}].weight"
            if bfq:
                self._write(d, "io.bfq.weight", f"{numbers} {dev['weight']}", field=field,
                            hint=f"is {numbers} an existing block device using bfq?")
            else:
                self._write(d, "io.weight",
                            f"{numbers} {convert.blkio_weight_to_io_weight(dev['weight'])}",
                            field=field, hint=f"is {numbers} an existing block device?")
        for key, _, v2key in convert.THROTTLE_FIELDS:
            for i, dev in enumerate(blk.get(key) or ()):
                self._write(d, "io.max",
                            convert.io_max_line(dev["major"], dev["minor"], v2key, dev["rate"]),
                            field=f"{P}.blockIO.{key}[{i}]",
                            hint=f"is {dev['major']}:{dev['minor']} an existing block device?")

    def set_hugetlb(self, limits: list[dict[str, Any]]) -> None:
        if not self._need("hugetlb", f"{P}.hugepageLimits"):
            return
        for i, hp in enumerate(limits):
            size = convert.hugepage_size_name(hp["pageSize"])
            field = f"{P}.hugepageLimits[{i}]"
            name = f"hugetlb.{size}.max"
            if not self.has_file(self.dir, name):
                raise CgroupError(f"{field}.pageSize: {hp['pageSize']!r} is not a huge page "
                                  f"size this kernel supports (no {self.dir}/{name})", errno=22)
            self._write(self.dir, name, hp["limit"], field=f"{field}.limit")
            if self.has_file(self.dir, f"hugetlb.{size}.rsvd.max"):
                self._write(self.dir, f"hugetlb.{size}.rsvd.max", hp["limit"],
                            field=f"{field}.limit")

    def set_network(self, net: dict[str, Any]) -> None:
        if net.get("classID") is not None or net.get("priorities"):
            self._unsupported(f"{P}.network", "net_cls/net_prio are cgroup v1 controllers; "
                              "cgroup v2 has no equivalent")

    def set_rdma(self, rdma: dict[str, dict[str, int]]) -> None:
        if not self._need("rdma", f"{P}.rdma"):
            return
        for line in res.rdma_lines(rdma):
            self._write(self.dir, "rdma.max", line, field=f"{P}.rdma",
                        hint="is the RDMA device present?")

    def set_unified(self, unified: dict[str, str]) -> None:
        for key, value in unified.items():
            field = f"{P}.unified[{key!r}]"
            controller = key.split(".", 1)[0]
            if controller != "cgroup" and controller not in self.controllers():
                if "." not in key:
                    raise CgroupError(f"{field}: must be CONTROLLER.KNOB", errno=22)
                self._need(controller, field)
                continue
            # Multi-line values (io.max for two devices) go one line per write,
            # as the kernel parses one line per write.
            for line in value.split("\n") or [""]:
                if line or value == "":
                    self._write(self.dir, key, line, field=field)

    def set_devices(self, rules: list[dict[str, Any]]) -> None:
        state = devmod.state_from_rules(rules)
        from pybox.cgroups import ebpf  # noqa: PLC0415 -- and struct: only when device rules are set

        try:
            ebpf.install(self.dir, state)
        except CgroupError as e:
            if self.rootless:
                self._warn(f"{P}.devices: ignored (rootless): {e}")
                return
            raise
        self.device_state = state

    # -- freezer / kill -------------------------------------------------------------
    def _can_freeze(self) -> bool:
        return self.has_file(self.dir, "cgroup.freeze")

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        want = "1" if frozen else "0"
        self._write(self.dir, "cgroup.freeze", want)
        for _ in backoff(FREEZE_TIMEOUT):
            if self._events().get("frozen", 0) == int(want):
                return
        if frozen:
            self._write(self.dir, "cgroup.freeze", "0")
        raise CgroupError(f"cannot {'freeze' if frozen else 'thaw'} {self.dir}: cgroup.events "
                          f"does not say frozen {want} after {FREEZE_TIMEOUT:.0f}s", errno=16)

    def _events(self) -> dict[str, int]:
        return parse_flat_keyed(self._read_or_none(self.dir, "cgroup.events") or "")

    def is_frozen(self) -> bool:
        return self._events().get("frozen", 0) == 1

    def kill_all(self, sig: int) -> None:
        if sig == SIGKILL and self.has_file(self.dir, "cgroup.kill"):
            try:
                self.fs.write(self.dir + "/cgroup.kill", "1")
                return
            except OSError as e:
                if e.errno == 2:  # the cgroup is gone already
                    return
                raise cgroup_error("write", self.dir + "/cgroup.kill", e.errno, value="1") from None
        Driver.kill_all(self, sig)

    # -- stats ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        from pybox.cgroups import stats  # noqa: PLC0415 -- only the stats/events path needs it

        return stats.v2_stats(self.dir, self.fs)

    def oom_kill_count(self) -> int:
        text = self._read_or_none(self.dir, "memory.events")
        return parse_flat_keyed(text or "").get("oom_kill", 0)
