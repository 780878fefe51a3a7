"""Which driver a host or a saved state gets: the manager factory.

Its own module, above base, v1, v2 and hybrid: the drivers import the base,
and only the factory imports the drivers, so there is no cycle (it used to live
in base.py, importing the drivers that import base).  Only the driver the host
needs is imported: on the runtime's create path the other two would cost
~0.35 ms (v1.py and hybrid.py, measured with -X importtime on this host).
"""

from __future__ import annotations

from pybox.cgroups.layout import HYBRID, V1, detect
from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cgroups.base import Manager
    from pybox.cgroups.fs import CgroupFs
    from pybox.cgroups.hybrid import HybridManager
    from pybox.cgroups.layout import Layout
    from pybox.cgroups.v1 import V1Manager
    from pybox.cgroups.v2 import V2Manager

    Driver = type[V1Manager] | type[V2Manager] | type[HybridManager]


def _driver(name: str) -> Driver:
    """The manager class for "v1", "v2" or "hybrid", imported on first use."""
    if name == "v1":
        from pybox.cgroups.v1 import V1Manager  # noqa: PLC0415 -- start-up cost, see the doc

        return V1Manager
    if name == "hybrid":
        from pybox.cgroups.hybrid import HybridManager  # noqa: PLC0415 -- start-up cost

        return HybridManager
    from pybox.cgroups.v2 import V2Manager  # noqa: PLC0415 -- start-up cost

    return V2Manager


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
    mode = {V1: "v1", HYBRID: "hybrid"}.get(layout.mode, "v2")
    return _driver(mode).for_layout(layout, cgroups_path, name, rootless=rootless,
                                    systemd=systemd, fs=fs)


def load_manager(saved: Any, *, fs: CgroupFs | None = None) -> Manager:
    """Rebuild a manager from ``Manager.to_state()`` output (no detection)."""
    if not isinstance(saved, dict) or "driver" not in saved:
        raise CgroupError(f"not a saved cgroup manager state: {saved!r}")
    name = saved["driver"]
    if name not in ("v1", "v2", "hybrid"):
        raise CgroupError(f"unknown cgroup driver {name!r} in saved state")
    return _driver(name).from_state(saved, fs=fs)
