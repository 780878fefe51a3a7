"""Control groups: one manager interface over cgroup v1, v2 and hybrid hosts.

The package knows nothing about containers beyond a cgroup path, a runtime-spec
``linux.resources`` object (a dict; Manager.apply/update check it with
pybox.oci.resources, the one rule set) and pids.

    from pybox import cgroups
    mgr = cgroups.new_manager(cgroups_path, name=container_id)  # detects the layout
    mgr.create()                      # make the directories (nothing joined yet)
    mgr.apply(resources)              # write every limit; CgroupError on failure
    mgr.add(pid)                      # move a process in
    ...
    saved = mgr.to_state()            # a JSON-able dict for the runtime's state file
    mgr = cgroups.load_manager(saved) # later, from another process
    mgr.destroy()                     # kill leftovers, remove directories

Public surface (see base.Manager for the contract of each method):
  new_manager, load_manager, detect_layout, Manager, CgroupError
The drivers live in v1.py, v2.py and hybrid.py, the factory in factory.py;
layout.py reads /proc/self/mountinfo and /proc/self/cgroup; paths.py implements runc's cgroupsPath rules.
``fs`` (tests only) replaces the kernel's cgroupfs, see fakefs.py.
Import cost matters (this is on the runtime's create path): stdlib only, no re,
json, enum, functools, signal or logging on the create/apply/add/destroy path.
"""

from __future__ import annotations

import os

from pybox.cgroups.base import Manager
from pybox.cgroups.factory import load_manager, new_manager
from pybox.cgroups.layout import Layout, detect
from pybox.errors import CgroupError

__all__ = ["CgroupError", "Manager", "blkio_weight_support", "detect_layout", "load_manager",
           "new_manager"]


def detect_layout(mountinfo: str | None = None, proc_cgroup: str | None = None, *,
                  prefix: str = "") -> Layout:
    """The host's Layout (layout.py); arguments let tests feed fake /proc text."""
    return detect(mountinfo, proc_cgroup, prefix=prefix)


def blkio_weight_support(layout: Layout | None = None) -> tuple[bool, bool]:
    """(weight, weight_device): whether this kernel can take a proportional block
    io weight, as dockerd's sysinfo decides before it discards one with a
    warning.  Current kernels have no CFQ, so v1 offers blkio.weight only with
    BFQ's blkio.bfq.weight; on v2 the io controller must be available."""
    layout = layout or detect_layout()
    blkio = layout.v1.get("blkio")
    if blkio is not None:
        def has(*names: str) -> bool:
            return any(os.path.exists(os.path.join(blkio.mountpoint, n)) for n in names)
        return (has("blkio.weight", "blkio.bfq.weight"),
                has("blkio.weight_device", "blkio.bfq.weight_device"))
    unified = layout.unified
    if unified is not None and "io" in unified.controllers:
        return True, True
    return False, False
