"""A container's filesystem as the container itself sees it, for the daemon to
read and write through (docker cp), without ever leaving it.

``container_root(engine, c)`` yields a :class:`Root`: an ``O_PATH`` fd of the
container's ``/`` *in its whole mount view* -- its root filesystem with its
volumes, bind mounts, tmpfs mounts and its own /etc/hostname, /etc/hosts and
/etc/resolv.conf on top.  Every path under it is then resolved by the kernel
with ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` (:func:`open_in_root`):
symlinks and ``..`` are taken as the container would take them, and nothing a
container puts in its tree -- a symlink to ``/``, a directory swapped for one in
the middle of a copy -- can make the walk reach a host path.

* A running container: ``/proc/PID/root`` of its init (the pid checked against
  the start time the runtime recorded, through a ``/proc/PID`` directory fd, so
  a recycled pid is never entered).  Walks from it cross the container's own
  mounts, in its own mount namespace.
* A stopped container: its root filesystem is mounted (reference counted, so
  concurrent copies and a start in between share one mount), and a dedicated
  thread unshares a mount namespace of its own (``unshare(CLONE_NEWNS)``, which
  also unshares the thread's fs struct: the rest of pyboxd is untouched), makes
  it a slave of the host's (nothing propagates back), and binds the volumes,
  binds and /etc files at their destinations -- each destination resolved in
  the container's root by openat2 and the bind attached to that fd with
  open_tree/move_mount, never to a path string -- read-only where the
  container has them read-only (its --read-only rootfs included).  The
  thread opens the rootfs from inside that namespace and waits; its
  namespace, and so every mount made for the view, goes away when the thread
  ends.  This is docker's
  containerFSView (moby daemon/containerfs_linux.go) without a chroot: no
  process is forked, and a crash leaves no mount behind.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypedDict

from pybox.errors import Conflict, PyboxError
from pybox.linux import constants as C
from pybox.linux.syscalls import Syscalls, real

if TYPE_CHECKING:
    from pybox.engine.engine import Engine
    from pybox.engine.store import Container

RESOLVE = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS
EAGAIN_RETRIES = 128  # a confined walk raced by renames or mounts: tried again
O_CLOEXEC = os.O_CLOEXEC


def _sys() -> Syscalls:
    return real()


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0,
                 resolve: int = RESOLVE) -> int:
    """openat2 of ``path`` (the container's, absolute or not) inside the root
    ``root_fd``; EAGAIN (a concurrent rename or mount made the kernel unsure
    of a '..' step) is retried.  Raises OSError (a SyscallError) otherwise."""
    sc = _sys()
    for _ in range(EAGAIN_RETRIES):
        try:
            return sc.openat2(root_fd, path, flags | O_CLOEXEC, mode, resolve)
        except OSError as e:
            if e.errno != 11:
                raise
    return sc.openat2(root_fd, path, flags | O_CLOEXEC, mode, resolve)


def fs_type(fd: int) -> int:
    """The magic number of the filesystem ``fd`` is on (fstatfs)."""
    return _sys().fstatfs_type(fd)


def makedirs_in_root(root_fd: int, path: str, mode: int = 0o755,
                     owner: tuple[int, int] | None = None) -> int:
    """``mkdir -p path`` inside the root; returns an O_PATH fd of the
    directory.  Each missing component is made with mkdirat in its parent,
    itself opened confined (docker's MkdirAllAndChownNew).  A loop, not a
    recursion (a destination thousands of directories deep is a long walk, not
    a RecursionError), closing each parent's fd as it goes."""
    path = "/" + path.strip("/")
    flags = C.O_PATH | os.O_DIRECTORY

    def probe(prefix: str) -> int | None:
        try:
            return open_in_root(root_fd, prefix, flags)
        except OSError as e:
            if e.errno != 2 or prefix == "/":
                raise
            return None

    fd = probe(path)
    if fd is not None:
        return fd
    parts = path.strip("/").split("/")
    # the deepest existing directory on the way, by bisection: a walk to a
    # longer prefix passes through every shorter one
    lo, hi = 0, len(parts) - 1
    fd = open_in_root(root_fd, "/", flags)
    try:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            found = probe("/" + "/".join(parts[:mid]))
            if found is None:
                hi = mid - 1
                continue
            os.close(fd)
            fd, lo = found, mid
        for name in parts[lo:]:
            try:
                os.mkdir(name, mode, dir_fd=fd)
                if owner is not None:
                    os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                pass
            child = open_in_root(fd, name, flags, resolve=C.RESOLVE_BENEATH
                                 | C.RESOLVE_NO_SYMLINKS)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class Root:
    """The open view: ``fd`` (O_PATH, the container's "/") and whether the
    container was running when it was opened (its tmpfs mounts exist only
    then)."""

    def __init__(self, fd: int, running: bool, pid: int = 0) -> None:
        self.fd = fd
        self.running = running
        self.pid = pid


# -- a running container ----------------------------------------------------------------
def _init_start_time(engine: Engine, c: Container) -> int | None:
    rc = engine.runner.load(c.id)
    return None if rc is None else rc.record.get("pid_start")


def _open_running(engine: Engine, c: Container, pid: int) -> int:
    """The O_PATH fd of /proc/PID/root, PID checked to be the container's init:
    the /proc/PID directory fd stays bound to the process it was opened for,
    so the start time read and the root opened through it are that process's
    even if the pid is recycled in between."""
    start = _init_start_time(engine, c)
    try:
        pdir = os.open(f"/proc/{int(pid)}", C.O_PATH | os.O_DIRECTORY | O_CLOEXEC)
    except OSError:
        raise Conflict(f"Container {c.id} is not running") from None
    try:
        if start is not None:
            try:
                sfd = os.open("stat", os.O_RDONLY | O_CLOEXEC, dir_fd=pdir)
                try:
                    data = os.read(sfd, 4096)
                finally:
                    os.close(sfd)
                fields = data[data.rindex(b")") + 2:].split()
                if int(fields[19]) != start:
                    raise Conflict(f"Container {c.id} is not running")
            except (OSError, ValueError, IndexError):
                raise Conflict(f"Container {c.id} is not running") from None
        try:
            return os.open("root", C.O_PATH | os.O_DIRECTORY | O_CLOEXEC, dir_fd=pdir)
        except OSError:
            raise Conflict(f"Container {c.id} is not running") from None
    finally:
        os.close(pdir)


# -- a stopped container ------------------------------------------------------------------
class MountedRootfs:
    """The container's root filesystem mounted on the host for the time of a
    context (export, commit, a stopped container's view).  Counted per
    container under its lock: the last user unmounts, and only if the
    container is not running by then (a start in between uses the same
    mount)."""

    def __init__(self, engine: Engine, c: Container) -> None:
        self.engine = engine
        self.c = c
        self.root = ""

    def __enter__(self) -> MountedRootfs:
        c = self.c
        with c.lock:
            if c.state.running:
                self.root = self.engine.images.images.rootfs_path(c.id)
                self.counted = False
                return self
            self.root = self.engine.images.mount_rootfs(c.id)
            c.__dict__["rootfs_users"] = c.__dict__.get("rootfs_users", 0) + 1
            self.counted = True
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.counted:
            return
        c = self.c
        with c.lock:
            c.__dict__["rootfs_users"] -= 1
            if c.__dict__["rootfs_users"] == 0 and not c.state.running:
                try:
                    self.engine.images.unmount_rootfs(c.id)
                except Exception:  # noqa: BLE001 - busy: stays for the next user
                    pass


class ViewMount(TypedDict):
    """One bind of a stopped container's view: ``source`` on the host at
    ``dest`` in the container, read-write or not, with what is mounted below
    ``source`` (rbind) or not."""

    dest: str
    source: str
    rw: bool
    recursive: bool


def view_mounts(engine: Engine, c: Container) -> list[ViewMount]:
    """What a stopped container's view binds, parents first: its volumes and
    binds (tmpfs mounts exist only while it runs) and its /etc files, as
    ViewMounts."""
    out: list[ViewMount] = []
    for m in c.record.get("Mounts") or ():
        kind = m.get("Type")
        if kind not in ("bind", "volume") or not m.get("Destination"):
            continue
        source = m.get("Source") or ""
        if kind == "volume" and m.get("Name"):
            try:
                source = engine.volumes.prepare(m["Name"])
            except PyboxError:
                continue
        if not source.startswith("/") or not os.path.exists(source):
            continue
        out.append(ViewMount(dest=m["Destination"], source=source, rw=bool(m.get("RW", True)),
                             recursive=True))
    taken = {os.path.normpath(m["dest"]) for m in out}
    for dest, key in (("/etc/resolv.conf", "ResolvConfPath"), ("/etc/hostname", "HostnamePath"),
                      ("/etc/hosts", "HostsPath")):
        source = c.record.get(key) or ""
        if dest not in taken and source and os.path.isfile(source):
            out.append(ViewMount(dest=dest, source=source, rw=True, recursive=False))
    out.sort(key=lambda m: os.path.normpath(m["dest"]).count("/"))
    return out


class _NamespaceView:
    """The thread that owns a private mount namespace holding the view."""

    def __init__(self, rootfs: str, mounts: list[ViewMount],
                 owner: tuple[int, int] | None, readonly: bool = False) -> None:
        self.rootfs = rootfs
        self.mounts = mounts
        self.owner = owner
        self.readonly = readonly  # --read-only: the view's copy of the rootfs mount too
        self.fd: int | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cp-view", daemon=True)

    def start(self) -> int:
        self.thread.start()
        self.ready.wait()
        if self.error is not None:
            self.thread.join()
            raise self.error
        assert self.fd is not None
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.done.set()
        self.thread.join()

    def _run(self) -> None:
        sc = _sys()
        fd = None
        try:
            sc.unshare(C.CLONE_NEWNS)  # this thread only (the kernel adds CLONE_FS)
            sc.mount(None, "/", None, C.MS_REC | C.MS_SLAVE)
            fd = os.open(self.rootfs, C.O_PATH | os.O_DIRECTORY | O_CLOEXEC)
            for m in self.mounts:
                self._bind(sc, fd, m)
            if self.readonly:  # this namespace's copy only; the binds keep theirs
                sc.mount_setattr(fd, "", C.AT_EMPTY_PATH, C.MOUNT_ATTR_RDONLY)
            self.fd = fd
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
            self.error = e if isinstance(e, PyboxError) else PyboxError(
                f"setting up the container's filesystem view: {e}")
            if fd is not None:
                os.close(fd)
        finally:
            self.ready.set()
        if self.error is None:
            self.done.wait()

    def _bind(self, sc: Syscalls, root_fd: int, m: ViewMount) -> None:
        """Bind m's source at its destination, resolved (and made if missing,
        as docker's CreateIfNotExists) inside the root."""
        is_dir = os.path.isdir(m["source"])
        dest = "/" + m["dest"].strip("/")
        try:
            target = open_in_root(root_fd, dest, C.O_PATH)
        except OSError as e:
            if e.errno != 2:
                raise
            parent, name = os.path.split(dest)
            pfd = makedirs_in_root(root_fd, parent, 0o755, self.owner)
            try:
                try:
                    if is_dir:
                        os.mkdir(name, 0o755, dir_fd=pfd)
                    else:
                        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                         | os.O_NOFOLLOW | O_CLOEXEC, 0o644, dir_fd=pfd))
                    if self.owner is not None:  # the container's root, as its parents
                        os.chown(name, *self.owner, dir_fd=pfd, follow_symlinks=False)
                except FileExistsError:
                    pass
                target = open_in_root(pfd, name, C.O_PATH, resolve=C.RESOLVE_BENEATH
                                      | C.RESOLVE_NO_SYMLINKS)
            finally:
                os.close(pfd)
        try:
            flags = C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC
            if m["recursive"]:
                flags |= C.AT_RECURSIVE
            tree = sc.open_tree(m["source"], flags)
            try:
                if not m["rw"]:
                    sc.mount_setattr(tree, "", C.AT_EMPTY_PATH | C.AT_RECURSIVE,
                                     C.MOUNT_ATTR_RDONLY)
                sc.move_mount(tree, "", target, "",
                              C.MOVE_MOUNT_F_EMPTY_PATH | C.MOVE_MOUNT_T_EMPTY_PATH)
            finally:
                os.close(tree)
        finally:
            os.close(target)


# -- the context ------------------------------------------------------------------------
@contextlib.contextmanager
def container_root(engine: Engine, c: Container) -> Iterator[Root]:
    """The container's "/" with its mounts, for the time of the context."""
    with c.lock:
        running = bool(c.state.running and c.state.pid)
        pid = c.state.pid
    if running:
        fd = _open_running(engine, c, pid)
        try:
            yield Root(fd, True, pid)
        finally:
            os.close(fd)
        return
    idmap = engine.images.rootfs_idmap(c.id)
    owner = (idmap["uid"][0][1], idmap["gid"][0][1]) if idmap else None
    with MountedRootfs(engine, c) as mounted:
        # under the lock: a start and exit in between cannot unmount the
        # rootfs before the view's namespace holds its copy of the mount
        with c.lock:
            view = _NamespaceView(mounted.root, view_mounts(engine, c), owner,
                                  bool(c.record["HostConfig"].get("ReadonlyRootfs")))
            fd = view.start()
        try:
            yield Root(fd, False)
        finally:
            view.close()
