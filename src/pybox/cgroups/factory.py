"""Which driver a host or a saved state gets: the manager factory.

Its own module, above base, v1, v2 and hybrid, so that the drivers import the
base and the factory imports the drivers, all at module top, with no cycle
(it used to live in base.py, importing the drivers that import base).  Cheap:
the three drivers together import in well under a millisecond.
"""

from __future__ import annotations

from pybox.cgroups.hybrid import HybridManager
from pybox.cgroups.layout import HYBRID, V1, detect
from pybox.cgroups.v1 import V1Manager
from pybox.cgroups.v2 import V2Manager
from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cgroups.base import Manager
    from pybox.cgroups.fs import CgroupFs
    from pybox.cgroups.layout import Layout


def new_manager(cgroups_path: str, name: str, *, layout: Layout | None = None,
                rootless: bool = False, systemd: bool = False, fs: CgroupFs | None = None) -> Manager:
    """A manager for the cgroup a container with id ``name`` should live in.

    ``cgroups_path`` is linux.cgroupsPath as runc reads it: absolute paths are
    relative to each hierarchy's root, relative ones to the calling process's own
    cgroup, and an empty one means ``name`` relative to the caller's cgroup.  With
    ``systemd``, "slice:prefix:name" is accepted and mapped to cgroupfs paths.
    """
    if layout is None:
        layout = detect()
    driver: type[V1Manager] | type[V2Manager] | type[HybridManager] = V2Manager
    if layout.mode == V1:
        driver = V1Manager
    elif layout.mode == HYBRID:
        driver = HybridManager
    return driver.for_layout(layout, cgroups_path, name, rootless=rootless, systemd=systemd, fs=fs)


def load_manager(saved: Any, *, fs: CgroupFs | None = None) -> Manager:
    """Rebuild a manager from ``Manager.to_state()`` output (no detection)."""
    if not isinstance(saved, dict) or "driver" not in saved:
        raise CgroupError(f"not a saved cgroup manager state: {saved!r}")
    drivers: dict[str, type[V1Manager] | type[V2Manager] | type[HybridManager]] = {
        "v1": V1Manager, "v2": V2Manager, "hybrid": HybridManager}
    name = saved["driver"]
    driver = drivers.get(name) if isinstance(name, str) else None
    if driver is None:
        raise CgroupError(f"unknown cgroup driver {name!r} in saved state")
    return driver.from_state(saved, fs=fs)
