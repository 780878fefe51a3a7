"""Hybrid hosts: v1 controllers where they are mounted, the cgroup2 mount for the rest.

On a hybrid host (this one: every controller on its own v1 mount, plus cgroup2
at /sys/fs/cgroup/unified with no controllers or only hugetlb) a container gets
a directory in every v1 hierarchy *and* one in the unified hierarchy:

* the unified directory tracks the container's processes the way systemd does on
  such hosts, gives a freezer and cgroup.kill even where v1 freezer is absent,
  and takes eBPF device programs when the v1 devices controller is not mounted;
* each section of linux.resources goes to the v1 controller when it is mounted,
  otherwise to the same controller on the cgroup2 mount (hugetlb here), and is an
  error naming the field when neither has it.

crun refuses this layout; runc ignores the unified half.  Composition keeps both
drivers unchanged: this class only routes.
"""

from __future__ import annotations

from pybox.cgroups.base import SIGKILL, Driver, Manager
from pybox.cgroups.v1 import V1Manager
from pybox.cgroups.v2 import V2Manager
from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cgroups.fs import CgroupFs
    from pybox.cgroups.layout import Layout

P = "linux.resources"


class HybridManager(Manager):
    version = 1
    driver = "hybrid"

    def __init__(self, v1: V1Manager, v2: V2Manager) -> None:
        self.v1 = v1
        self.v2 = v2
        self.v2_used = False  # did a limit land on the cgroup2 half?

    @classmethod
    def for_layout(cls, layout: Layout, cgroups_path: str, name: str, *, rootless: bool = False,
                   systemd: bool = False, fs: CgroupFs | None = None) -> HybridManager:
        v1 = V1Manager.for_layout(layout, cgroups_path, name, rootless=rootless,
                                  systemd=systemd, fs=fs)
        v2 = V2Manager.for_layout(layout, cgroups_path, name, rootless=rootless,
                                  systemd=systemd, fs=fs, partial=True)
        return cls(v1, v2)

    @classmethod
    def from_state(cls, saved: dict[str, Any], fs: CgroupFs | None = None) -> HybridManager:
        mgr = cls(V1Manager.from_state(saved["v1"], fs=fs),
                  V2Manager.from_state(saved["v2"], fs=fs))
        mgr.v2_used = saved.get("v2_used", True)
        return mgr

    def to_state(self) -> dict[str, Any]:
        return {"driver": self.driver, "version": 1, "path": self.v1.cgroup_path,
                "paths": self.paths, "created": self.created, "rootless": self.v1.rootless,
                "v1": self.v1.to_state(), "v2": self.v2.to_state(),
                "v2_used": self.v2_used}

    @property
    def paths(self) -> dict[str, str]:
        out = dict(self.v1.paths)
        out[""] = self.v2.dir
        return out

    @property
    def created(self) -> list[str]:
        return list(self.v1.created) + list(self.v2.created)

    @property
    def warnings(self) -> list[str]:
        return self.v1.warnings + self.v2.warnings

    @property
    def rootless(self) -> bool:
        return self.v1.rootless

    # -- lifecycle ----------------------------------------------------------------
    def create(self) -> None:
        self.v1.create()
        try:
            self.v2.create()
        except BaseException:
            self.v1.rollback()
            raise

    def add(self, pid: int) -> None:
        self.v1.add(pid)
        self.v2.add(pid)

    def enter_self(self) -> None:
        """v1 hierarchies always; the cgroup2 half only when a limit went there
        (hugetlb, raw unified keys...): joining it costs an RCU grace period and
        an empty v2 cgroup enforces nothing."""
        self.v1.enter_self()
        if self.v2_used:
            self.v2.enter_self()

    def join_info(self) -> dict[str, Any]:
        return {"v2_used": self.v2_used}

    def adopt_join_info(self, info: dict[str, Any]) -> None:
        # stage1's copy was forked before apply() routed a limit to the cgroup2
        # half: without this it joined v1 only and that limit bound nothing
        self.v2_used = self.v2_used or bool(info.get("v2_used"))

    def pids(self) -> list[int]:
        found = set(self.v1.pids())
        found.update(self.v2.pids())
        return sorted(found)

    # -- resources ----------------------------------------------------------------
    def _owner(self, v1_controller: str, v2_controller: str) -> Driver:
        """The driver that handles a controller: v1 if mounted there, else v2 if
        the cgroup2 mount offers it, else v1 (whose error names the field)."""
        if v1_controller in self.v1.paths:
            return self.v1
        if v2_controller in self.v2.controllers():
            self.v2_used = True
            return self.v2
        return self.v1

    # hybrid's routing for the base class's one section dispatch: (the v1
    # hierarchy, the cgroup2 controller) that can take each section
    _CONTROLLERS = {"cpuset": ("cpuset", "cpuset"), "memory": ("memory", "memory"),
                    "cpu": ("cpu", "cpu"), "pids": ("pids", "pids"), "blockIO": ("blkio", "io"),
                    "hugetlb": ("hugetlb", "hugetlb"), "rdma": ("rdma", "rdma")}

    def _begin_apply(self) -> None:
        self.v2.forget_controllers()

    def _writer(self, section: str) -> Manager:
        if section == "devices":
            # v1's devices controller, else eBPF on the cgroup2 half (not a
            # controller listed in cgroup.controllers)
            owner = self.v1 if "devices" in self.v1.paths else self.v2
            self.v2_used = self.v2_used or owner is self.v2
            return owner
        if section == "network":
            return self.v1  # net_cls/net_prio exist on v1 only
        if section == "unified":
            return self  # set_unified below checks the keys, then routes to v2
        return self._owner(*self._CONTROLLERS[section])

    def _rollback_unjoined(self) -> None:
        if not (self.v1.joined or self.v2.joined):
            self.v1.rollback()
            self.v2.rollback()

    def set_unified(self, unified: dict[str, str]) -> None:
        """Raw v2 keys are honoured for controllers that live on the cgroup2 mount
        (and cgroup.* core files); a key for a v1-mounted controller is refused
        because writing it would configure nothing."""
        offered = self.v2.controllers()
        for key in unified:
            controller = key.split(".", 1)[0]
            if controller != "cgroup" and controller not in offered:
                raise CgroupError(
                    f"{P}.unified[{key!r}]: the {controller} controller is not on this "
                    f"host's cgroup2 mount (hybrid host; cgroup2 offers: "
                    f"{', '.join(offered) or 'nothing'})", errno=95)
        self.v2_used = True
        self.v2.set_unified(unified)

    # -- freezer / kill -----------------------------------------------------------
    def _freezer_driver(self) -> Driver:
        return self.v1 if "freezer" in self.v1.paths else self.v2

    def freeze(self) -> None:
        self._freezer_driver().freeze()

    def thaw(self) -> None:
        self._freezer_driver().thaw()

    def is_frozen(self) -> bool:
        return self._freezer_driver().is_frozen()

    def kill_all(self, sig: int) -> None:
        if sig == SIGKILL and self.v2.has_file(self.v2.dir, "cgroup.kill"):
            self.v2.kill_all(sig)
            # Processes that joined only the v1 side (e.g. the unified write
            # failed in rootless mode) still need the signal.
            if self.v1.pids():
                self.v1.kill_all(sig)
            return
        self._freezer_driver().kill_all(sig)

    def destroy(self) -> None:
        if self.v1.owned_leaves() or self.v2.owned_leaves():
            if self.pids():
                for _ in range(3):
                    self.kill_all(SIGKILL)
                    try:
                        self.thaw()
                    except CgroupError:
                        pass
                    if self.v1.wait_empty() and self.v2.wait_empty():
                        break
        errors: list[CgroupError] = []
        for driver in (self.v1, self.v2):
            try:
                driver.destroy()
            except CgroupError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    # -- stats ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        from pybox.cgroups import stats  # noqa: PLC0415 -- only the stats/events path needs it

        out = stats.v1_stats(self.v1.paths, self.v1.fs)
        offered = self.v2.controllers()
        if offered:
            extra = stats.v2_stats(self.v2.dir, self.v2.fs)
            if "hugetlb" in offered and "hugetlb" not in self.v1.paths:
                out["hugetlb"] = extra["hugetlb"]
            if "memory" in offered and "memory" not in self.v1.paths:
                out["memory"] = extra["memory"]
            if "pids" in offered and "pids" not in self.v1.paths:
                out["pids"] = extra["pids"]
            if "io" in offered and "blkio" not in self.v1.paths:
                out["blkio"] = extra["blkio"]
        return out

    def oom_kill_count(self) -> int:
        if "memory" in self.v1.paths:
            return self.v1.oom_kill_count()
        return self.v2.oom_kill_count()
