"""ID-mapped mounts: a user namespace as an idmap, and mounts shifted through it.

An idmapped mount (mount_setattr(MOUNT_ATTR_IDMAP), Linux 5.12+) shows the files
below it with their owners shifted through a user namespace's maps, without
touching the files.  pybox uses it for ``pyboxd --userns-remap``: the image's
layers stay owned by host root once, and each remapped container sees them
owned by its own root (host uid 100000, say), as docker achieves by keeping a
second, chowned copy of every layer.

The kernel takes the maps from a user namespace, referred to by an fd; the only
way to make one with chosen maps is a process that unshares it and whose maps its
parent writes.  That child lives for the few milliseconds it takes to open its
/proc/PID/ns/user; the fd then keeps the namespace alive on its own.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable

from pybox.errors import SyscallError
from pybox.linux import constants as C
from pybox.linux.syscalls import Syscalls, real

IdMapping = tuple[int, int, int]  # (container id, host id, size), as in uid_map

CLONE_NEWUSER = 0x10000000


def format_maps(mappings: Iterable[IdMapping]) -> str:
    """[(container_id, host_id, size), ...] -> uid_map text."""
    return "".join(f"{c} {h} {n}\n" for c, h, n in mappings)


OVERFLOW_ID = 65534  # the kernel's overflowuid/gid: how an unmapped id shows


def map_id(mappings: Iterable[IdMapping], value: int, to_host: bool = True) -> int | None:
    """An id through user namespace maps ([(container, host, size), ...]):
    container -> host, or host -> container with ``to_host=False``.  None when
    the maps do not cover it."""
    for inside, outside, size in mappings:
        src, dst = (inside, outside) if to_host else (outside, inside)
        if src <= value < src + size:
            return dst + value - src
    return None


def user_namespace_fd(uid_mappings: list[IdMapping], gid_mappings: list[IdMapping]) -> int:
    """A new user namespace with these maps (tuples container, host, size); returns
    an O_RDONLY fd of it.  The caller closes the fd.

    The child is util-linux's ``unshare --user cat``, started with subprocess
    (fork+exec): pyboxd is threaded, and forking it to run Python in the child
    could deadlock on a lock another thread held.  The child has unshared once
    its /proc/PID/ns/user differs from ours; ``cat`` then waits on its stdin
    until we have the namespace open."""
    own = os.readlink("/proc/self/ns/user")
    try:
        child = subprocess.Popen(["unshare", "--user", "--", "cat"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 close_fds=True)
    except OSError as e:
        raise SyscallError(e.errno or 1, "unshare", ("CLONE_NEWUSER",),
                           "creating an idmap user namespace (util-linux's unshare)") from None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if os.readlink(f"/proc/{child.pid}/ns/user") != own:
                    break
            except OSError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise SyscallError(1, "unshare", ("CLONE_NEWUSER",),
                                   "creating an idmap user namespace")
            time.sleep(0.0005)
        for name, maps in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
            with open(f"/proc/{child.pid}/{name}", "w") as f:
                f.write(format_maps(maps))
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.kill()
        if child.stdin is not None:
            child.stdin.close()
        child.wait()


def idmapped_tree(path: str, userns_fd: int, syscalls: Syscalls | None = None) -> int:
    """A detached, idmapped clone of the mount tree at ``path`` (an fd).  Attach
    it with move_mount, or hand /proc/self/fd/N to overlayfs as a layer."""
    sys_ = syscalls or real()
    fd = sys_.open_tree(path, C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC)
    try:
        sys_.mount_setattr(fd, "", C.AT_EMPTY_PATH, C.MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd
