"""Where a container's namespaces come from, and its /dev/shm (--ipc).

A container either makes its own namespaces or joins another's: docker's
``--network/--ipc/--pid container:ID`` modes.  The question "which holder
gives this namespace, and where is it" is answered here, through one small
interface, ``NamespaceHolder``:

    ns_path(kind) -> "/proc/PID/ns/KIND" of the holder's namespace
    shm_path()    -> the host directory holding its /dev/shm (a tmpfs), or None
    ipc_shareable -> whether its IPC namespace may be joined
    name          -> for docker's error messages

Today the only holders are containers (``ContainerHolder``: a running
container, by its recorded pid).  How a pod (CRI's sandbox) plugs in: the
sandbox is a holder too -- a pause-like process (or bind-mounted namespace
files) holding the net, IPC and UTS namespaces, plus the pod's shm tmpfs --
and ``Namespaces.holder(ref)`` resolves a ``sandbox:ID`` reference to it as
it resolves ``container:ID`` to a ContainerHolder now.  The spec builder asks
``namespace_of(ref, kind)`` and ``prepare_shm`` binds the holder's shm: the
containers of a pod join their sandbox with no change to either.  The pod's
cgroup parent is the runtime's concern (spec.build's cgroupsPath), not the
namespaces'.

/dev/shm: as docker, an IPC namespace is more than SysV IPC -- POSIX shared
memory lives in /dev/shm -- so a ``--ipc shareable`` container gets its
/dev/shm from a tmpfs on the host (DATA/containers/ID/shm, gone at its exit),
which ``--ipc container:ID`` binds too; ``--ipc host`` binds the host's
/dev/shm.  (Joining the IPC namespace alone left the joiner with an empty
/dev/shm of its own.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from pybox.engine import spec as specmod
from pybox.engine.store import Container
from pybox.errors import NotFound
from pybox.images.snapshots import IdMap
from pybox.linux import syscalls
from pybox.linux.constants import NAMESPACE_PROC_NAMES

MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MNT_DETACH = 2


class NamespaceHolder(Protocol):
    """Something whose namespaces a container may join (a container now; a
    pod's sandbox next)."""

    @property
    def name(self) -> str: ...

    @property
    def ipc_shareable(self) -> bool: ...

    def ns_path(self, kind: str) -> str: ...

    def shm_path(self) -> str | None: ...


def shm_dir(c: Container) -> str:
    """Where a shareable container's /dev/shm tmpfs is mounted on the host."""
    return os.path.join(c.dir, "shm")


class ContainerHolder:
    """A container as a namespace holder (``container:ID`` modes)."""

    def __init__(self, c: Container, ref: str) -> None:
        self.c = c
        self.ref = ref

    @property
    def name(self) -> str:
        return self.c.name

    @property
    def ipc_shareable(self) -> bool:
        return not self.c.state.running or \
            (self.c.host_config.get("IpcMode") or "") == "shareable"

    def ns_path(self, kind: str) -> str:
        pid = self.c.state.pid
        if not self.c.state.running or not pid:
            raise specmod.SpecError(f"cannot join the {kind} namespace of a non running "
                                    f"container: {self.ref}", errno=22)
        return f"/proc/{pid}/ns/{NAMESPACE_PROC_NAMES[kind]}"

    def shm_path(self) -> str | None:
        path = shm_dir(self.c)
        return path if os.path.ismount(path) else None


class Namespaces:
    """Namespace holders by reference, and the /dev/shm of a container."""

    def __init__(self, lookup: Callable[[str], Container]) -> None:
        self.lookup = lookup  # a container by name or id (NotFound if none)

    def holder(self, ref: str) -> NamespaceHolder:
        """The holder ``ref`` names (a container's name or id)."""
        return ContainerHolder(self.lookup(ref), ref)

    def namespace_of(self, ref: str, kind: str) -> str:
        """/proc/PID/ns/KIND of a running holder (--ipc/--pid/--network
        container:ID): spec.build's ``namespace_of``."""
        try:
            holder = self.holder(ref)
        except NotFound:
            raise specmod.SpecError(f"No such container: {ref}", errno=2) from None
        return holder.ns_path(kind)

    def prepare_shm(self, c: Container, idmap: IdMap | None = None) -> str | None:
        """The host directory to bind as the container's /dev/shm, or None for a
        tmpfs of its own (see the module's docstring)."""
        mode = c.host_config.get("IpcMode") or ""
        if mode == "host":
            return "/dev/shm"
        if mode.startswith("container:"):
            try:
                donor = self.holder(mode[len("container:"):])
            except NotFound:
                return None  # the namespace lookup reports it
            if not donor.ipc_shareable:
                raise specmod.SpecError(
                    f"non-shareable IPC (hint: use IpcMode:shareable for the donor "
                    f"container {donor.name})", errno=22)
            return donor.shm_path()
        if mode != "shareable":
            return None
        path = shm_dir(c)
        self.release_shm(c)
        os.makedirs(path, mode=0o700, exist_ok=True)
        size = c.host_config.get("ShmSize") or specmod.DEFAULT_SHM_SIZE
        opts = f"mode=1777,size={size}"
        if idmap:
            opts += f",uid={idmap['uid'][0][1]},gid={idmap['gid'][0][1]}"
        syscalls.real().mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
        return path

    @staticmethod
    def release_shm(c: Container) -> None:
        """The container's shm tmpfs, if it had one, unmounted (lazily: the
        containers that joined keep theirs) and its directory removed."""
        path = shm_dir(c)
        if os.path.ismount(path):
            try:
                syscalls.real().umount2(path, MNT_DETACH)
            except OSError:
                pass
        try:
            os.rmdir(path)
        except OSError:
            pass
