"""The container's root filesystem: config mounts, /dev, pivot_root, masked and
read-only paths.  Runs inside the container's init, in its mount namespace.

Every kernel call goes through ``sc`` (a pybox.linux.syscalls.Syscalls or a test
fake), so the order of mounts and their flags can be checked without root.  Plain
file operations (mkdir, open) are done directly: they work unprivileged on a
temporary directory.

Order (runc's, which the runtime-spec's conformance tests assume):
  1. "/" made rslave (or linux.rootfsPropagation), rootfs bind-mounted on itself
  2. config mounts in order, each destination resolved inside the rootfs without
     following symlinks out of it
  3. default devices and linux.devices on a tmpfs /dev, the /dev/fd and std* links
  4. (createContainer hooks, run by the caller)
  5. pivot_root (or MS_MOVE + chroot with --no-pivot, or chroot without a mount
     namespace)
  6. read-only paths, masked paths, read-only root -- done by ``finalize``
"""

from __future__ import annotations

import os
import stat as _stat

from pybox.errors import RootfsError, SyscallError
from pybox.linux import constants as C

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from pybox.linux.syscalls import Syscalls
    from pybox.runtime.records import CgroupMount

# option -> (flags to set, flags to clear)
MOUNT_FLAGS = {
    "async": (0, C.MS_SYNCHRONOUS), "atime": (0, C.MS_NOATIME), "bind": (C.MS_BIND, 0),
    "defaults": (0, 0), "dev": (0, C.MS_NODEV), "diratime": (0, C.MS_NODIRATIME),
    "dirsync": (C.MS_DIRSYNC, 0), "exec": (0, C.MS_NOEXEC), "lazytime": (C.MS_LAZYTIME, 0),
    "loud": (0, C.MS_SILENT), "mand": (C.MS_MANDLOCK, 0), "noatime": (C.MS_NOATIME, 0),
    "nodev": (C.MS_NODEV, 0), "nodiratime": (C.MS_NODIRATIME, 0), "noexec": (C.MS_NOEXEC, 0),
    "nolazytime": (0, C.MS_LAZYTIME), "nomand": (0, C.MS_MANDLOCK),
    "norelatime": (0, C.MS_RELATIME), "nostrictatime": (0, C.MS_STRICTATIME),
    "nosuid": (C.MS_NOSUID, 0), "nosymfollow": (C.MS_NOSYMFOLLOW, 0),
    "rbind": (C.MS_BIND | C.MS_REC, 0), "relatime": (C.MS_RELATIME, 0),
    "remount": (C.MS_REMOUNT, 0), "ro": (C.MS_RDONLY, 0), "rw": (0, C.MS_RDONLY),
    "silent": (C.MS_SILENT, 0), "strictatime": (C.MS_STRICTATIME, 0),
    "suid": (0, C.MS_NOSUID), "sync": (C.MS_SYNCHRONOUS, 0),
    "iversion": (1 << 23, 0), "noiversion": (0, 1 << 23),
}
PROPAGATION_FLAGS = {
    "private": C.MS_PRIVATE, "rprivate": C.MS_PRIVATE | C.MS_REC,
    "shared": C.MS_SHARED, "rshared": C.MS_SHARED | C.MS_REC,
    "slave": C.MS_SLAVE, "rslave": C.MS_SLAVE | C.MS_REC,
    "unbindable": C.MS_UNBINDABLE, "runbindable": C.MS_UNBINDABLE | C.MS_REC,
}
# runc's own extensions: copy what the image has at the destination into the
# tmpfs; "rro", read-only all the way down (every mount below the destination
# too: mount_setattr(AT_RECURSIVE); for a cgroup v1 mount, the tmpfs holding the
# hierarchies as well as each hierarchy)
EXTENSION_OPTIONS = ("tmpcopyup", "rro")
AT_FDCWD = -100

DEFAULT_DEVICES = (
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


class MountOptions:
    """A mount's options list decoded: flags for mount(2), propagation changes to
    apply afterwards, the data string for the filesystem, and extensions."""

    __slots__ = ("flags", "propagation", "data", "extensions")

    def __init__(self, flags: int = 0, propagation: Iterable[int] = (), data: str = "",
                 extensions: Iterable[str] = ()) -> None:
        self.flags = flags
        self.propagation = list(propagation)
        self.data = data
        self.extensions = set(extensions)


def parse_mount_options(options: Iterable[str] | None) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    extensions: list[str] = []
    for opt in options or ():
        if opt in MOUNT_FLAGS:
            on, off = MOUNT_FLAGS[opt]
            flags = (flags | on) & ~off
        elif opt in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[opt])
        elif opt in EXTENSION_OPTIONS:
            extensions.append(opt)
            if opt == "rro":
                flags |= C.MS_RDONLY
        else:
            data.append(opt)
    return MountOptions(flags, propagation, ",".join(data), extensions)


def clean_path(path: str) -> str:
    """Lexically clean an absolute path ('/a/../b' -> '/b'); never escapes '/'."""
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/" + "/".join(parts)


def secure_join(root: str, unsafe_path: str, max_links: int = 255) -> str:
    """Resolve ``unsafe_path`` as if ``root`` were "/": symlinks (absolute or
    relative) and '..' are followed but can never leave root.  Components that do
    not exist yet are appended literally.  This is what keeps a malicious image's
    symlinks (e.g. /proc -> /host) from redirecting mounts onto the host."""
    root = root.rstrip("/") or "/"
    pending = [c for c in unsafe_path.split("/") if c not in ("", ".")]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        comp = pending.pop()
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join(resolved + [comp])
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(comp)
            continue
        if not _stat.S_ISLNK(st.st_mode):
            resolved.append(comp)
            continue
        links += 1
        if links > max_links:
            raise RootfsError(f"too many symlinks resolving {unsafe_path!r} in {root}",
                              errno=40)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        more = [c for c in target.split("/") if c not in ("", ".")]
        pending.extend(reversed(more))
    return root + "/" + "/".join(resolved) if resolved else root


def reopen_dev_null() -> None:
    """Point fds 0-2 that are a /dev/null at this root's /dev/null, opened
    read-write (dup3 without O_CLOEXEC: they stay stdio across exec)."""
    try:
        fd = os.open("/dev/null", os.O_RDWR)
    except OSError:
        return  # no /dev/null here: nothing better to point them at
    try:
        null = os.fstat(fd)
        for n in (0, 1, 2):
            try:
                st = os.fstat(n)
            except OSError:
                continue
            if _stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev:
                os.dup2(fd, n, inheritable=True)
    finally:
        os.close(fd)


def _mkdir_all(path: str, mode: int = 0o755) -> None:
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        # exists but is not a directory
        raise RootfsError(f"mount point {path} exists and is not a directory",
                          errno=20) from None
    except OSError as e:
        raise RootfsError(f"cannot create mount point {path}: {e.strerror}",
                          errno=e.errno) from None


def _create_file(path: str) -> None:
    """A file to mount on, made only when nothing is there (runc's
    createIfNotExists): an existing one may sit on a read-only filesystem, as
    /sys/devices/system/cpu/online does under the container's "ro" sysfs."""
    if os.path.lexists(path):
        return
    _mkdir_all(os.path.dirname(path))
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        os.close(fd)
    except IsADirectoryError:
        pass
    except OSError as e:
        raise RootfsError(f"cannot create mount point {path}: {e.strerror}",
                          errno=e.errno) from None


def _statvfs_locked_flags(path: str) -> int:
    """Flags a remount must keep: a bind remount that drops nosuid/nodev/noexec of
    a mount locked by a less privileged mount namespace fails with EPERM."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    keep = 0
    for flag in (C.MS_NOSUID, C.MS_NODEV, C.MS_NOEXEC, C.MS_NOATIME, C.MS_NODIRATIME,
                 C.MS_RELATIME):
        if st.f_flag & flag:  # ST_* share the MS_* values
            keep |= flag
    return keep


class RootfsBuilder:
    """Builds one container's filesystem view.  ``sc`` is the syscall interface."""

    def __init__(self, sc: Syscalls, config: dict[str, Any], rootfs: str, *,
                 has_mount_ns: bool = True, in_user_ns: bool = False,
                 cgroup_mounts: dict[str, CgroupMount] | None = None, cgroup_ns: bool = False,
                 cgroup_v2: bool = False) -> None:
        self.sc = sc
        self.config = config
        self.rootfs = rootfs
        self.linux: dict[str, Any] = config.get("linux") or {}
        self.has_mount_ns = has_mount_ns
        self.in_user_ns = in_user_ns
        # {controller-dir-name: host-directory}: what /sys/fs/cgroup shows on v1
        self.cgroup_mounts = cgroup_mounts or {}
        self.cgroup_ns = cgroup_ns
        self.cgroup_v2 = cgroup_v2
        self.dev_is_bind = False
        self.dev_readonly = False
        self.mounted: list[str] = []  # host-side paths we mounted (for cleanup without mount ns)

    # -- step 1 ------------------------------------------------------------
    def prepare_root(self) -> None:
        sc = self.sc
        if self.has_mount_ns:
            prop = self.linux.get("rootfsPropagation") or ""
            # Default rslave: our mounts never leak back to the host, while host
            # mounts made later still arrive.
            flag = PROPAGATION_FLAGS[prop] if prop else C.MS_SLAVE | C.MS_REC
            if flag & C.MS_UNBINDABLE:
                # An unbindable "/" would refuse the rootfs bind below; the
                # requested propagation is applied to the new root in finalize().
                flag = C.MS_SLAVE | C.MS_REC
            sc.mount(None, "/", None, flag)
            self._make_parent_private(self.rootfs)
        sc.mount(self.rootfs, self.rootfs, "bind", C.MS_BIND | C.MS_REC)
        self.mounted.append(self.rootfs)

    def _make_parent_private(self, path: str) -> None:
        """pivot_root refuses a new root whose parent mount is shared; make the
        mount holding the rootfs private (in our namespace only)."""
        mnt = _mount_point_of(path)
        if mnt and _is_shared(mnt):
            self.sc.mount(None, mnt, None, C.MS_PRIVATE)

    # -- step 2 ------------------------------------------------------------
    def mount_all(self) -> None:
        for i, m in enumerate(self.config.get("mounts") or ()):
            try:
                self.mount_one(m)
            except SyscallError as e:
                raise RootfsError(f"mounts[{i}] ({m.get('type') or 'bind'} on "
                                  f"{m['destination']}): {e}", errno=e.errno) from None
            except RootfsError as e:
                raise RootfsError(f"mounts[{i}] ({m['destination']}): {e}",
                                  errno=getattr(e, "errno", None)) from None

    def destination(self, m: dict[str, Any]) -> str:
        dest = m["destination"]
        if not dest.startswith("/"):
            dest = "/" + dest  # runc accepts relative destinations, relative to /
        return secure_join(self.rootfs, clean_path(dest))

    def mount_one(self, m: dict[str, Any]) -> None:
        sc = self.sc
        opts = parse_mount_options(m.get("options"))
        kind = m.get("type") or ("bind" if opts.flags & C.MS_BIND else "")
        source = m.get("source") or kind or "none"
        dest = self.destination(m)
        is_bind = bool(opts.flags & C.MS_BIND) or kind == "bind"
        if clean_path(m["destination"]) == "/dev" and is_bind:
            self.dev_is_bind = True

        if kind == "cgroup":
            self._mount_cgroup(dest, opts)
            return
        if is_bind:
            flags = opts.flags | C.MS_BIND
            src = source
            if not os.path.exists(src):
                raise RootfsError(f"bind source {src} does not exist", errno=2)
            if os.path.isdir(src):
                _mkdir_all(dest)
            else:
                _create_file(dest)
            dest = self._recheck(m, dest)
            sc.mount(src, dest, "bind", flags & (C.MS_BIND | C.MS_REC))
            # Bind mounts ignore every flag but MS_BIND|MS_REC on the first call:
            # the others need a remount of the new mount.
            extra = flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT)
            if extra:
                self._bind_remount(dest, flags)
        else:
            _mkdir_all(dest)
            dest = self._recheck(m, dest)
            if kind == "sysfs" or kind == "proc":
                self._mount_special(kind, source, dest, opts)
            else:
                flags = opts.flags
                if clean_path(m["destination"]) == "/dev" and flags & C.MS_RDONLY:
                    # devices are created in it first; finalize() makes it read-only
                    flags &= ~C.MS_RDONLY
                    self.dev_readonly = True
                if "tmpcopyup" in opts.extensions and kind == "tmpfs":
                    self._mount_tmpfs_copyup(source, dest, opts)
                else:
                    sc.mount(source, dest, kind, flags, opts.data or None)
        if "rro" in opts.extensions:
            self._recursive_readonly(dest)
        for prop in opts.propagation:
            sc.mount(None, dest, None, prop)
        self.mounted.append(dest)

    def _recursive_readonly(self, dest: str) -> None:
        """"rro": the mount at ``dest`` and every mount below it read-only."""
        try:
            self.sc.mount_setattr(AT_FDCWD, dest, C.AT_RECURSIVE, C.MOUNT_ATTR_RDONLY)
        except SyscallError as e:
            if e.errno == 38:  # ENOSYS
                raise RootfsError(f"{dest}: \"rro\" needs mount_setattr (Linux 5.12 or "
                                  "later)", errno=e.errno) from None
            raise

    def _recheck(self, m: dict[str, Any], dest: str) -> str:
        """Resolve again after creating the mount point: closes the window in which
        a component could have been swapped for a symlink."""
        again = self.destination(m)
        if again != dest:
            raise RootfsError(f"mount destination {m['destination']} changed while "
                              "being prepared (symlink race)")
        return dest

    def _bind_remount(self, dest: str, flags: int) -> None:
        remount = C.MS_BIND | C.MS_REMOUNT | (flags & ~(C.MS_REC | C.MS_BIND))
        try:
            self.sc.mount(None, dest, None, remount)
        except SyscallError as e:
            if e.errno != 1:
                raise
            # EPERM: the mount has flags locked by a less privileged mount
            # namespace (nosuid, nodev, ...); keep them and retry.
            self.sc.mount(None, dest, None, remount | _statvfs_locked_flags(dest))

    def _mount_special(self, kind: str, source: str, dest: str, opts: MountOptions) -> None:
        """proc and sysfs: fall back to a recursive bind of the host's where the
        kernel forbids a fresh instance (sysfs without a private network namespace
        inside a user namespace, proc with a shared pid namespace in a userns)."""
        try:
            self.sc.mount(source, dest, kind, opts.flags, opts.data or None)
        except SyscallError as e:
            if e.errno not in (1, 16) or kind != "sysfs":
                raise
            host = "/sys"
            self.sc.mount(host, dest, "bind", C.MS_BIND | C.MS_REC)
            if opts.flags & ~(C.MS_BIND | C.MS_REC):
                self._bind_remount(dest, opts.flags | C.MS_BIND)

    def _mount_tmpfs_copyup(self, source: str, dest: str, opts: MountOptions) -> None:
        # only for runc's tmpcopyup extension: shutil and tempfile cost start-up time
        import shutil  # noqa: PLC0415 -- tmpcopyup only
        import tempfile  # noqa: PLC0415 -- tmpcopyup only

        tmp = tempfile.mkdtemp(prefix=".pybox-copyup-", dir="/tmp" if not
                               self.has_mount_ns else None)
        try:
            self.sc.mount(source, tmp, "tmpfs", opts.flags & ~C.MS_RDONLY, opts.data or None)
            for name in os.listdir(dest):
                s = os.path.join(dest, name)
                if os.path.isdir(s) and not os.path.islink(s):
                    shutil.copytree(s, os.path.join(tmp, name), symlinks=True)
                else:
                    shutil.copy2(s, os.path.join(tmp, name), follow_symlinks=False)
            self.sc.mount(tmp, dest, None, C.MS_MOVE)
            if opts.flags & C.MS_RDONLY:
                self.sc.mount(None, dest, None, C.MS_REMOUNT | opts.flags)
        finally:
            try:
                os.rmdir(tmp)
            except OSError:
                pass

    def _mount_cgroup(self, dest: str, opts: MountOptions) -> None:
        """/sys/fs/cgroup inside the container.

        v2: one cgroup2 mount (its root is the container's cgroup when there is a
        cgroup namespace).  v1: a tmpfs with one entry per hierarchy -- with a
        cgroup namespace a fresh mount of each hierarchy (its root is the
        container's cgroup), without one a bind of the container's own cgroup
        directory -- plus links for co-mounted controllers (cpu -> cpu,cpuacct).
        "ro" (docker's and podman's default) makes the hierarchies read-only but
        not the v1 tmpfs holding them, which runc (1.1 and later) leaves writable:
        containers see the same /sys/fs/cgroup under either runtime.  "rro"
        (pyboxd's default, see engine/spec.py harden_mounts) makes the tmpfs
        read-only too: nothing under /sys/fs/cgroup can be written."""
        sc = self.sc
        _mkdir_all(dest)
        flags = opts.flags & ~C.MS_BIND
        if self.cgroup_v2:
            v2 = self.cgroup_mounts.get("")
            own = v2.get("path") if v2 else None
            if self.cgroup_ns or not own:
                sc.mount("cgroup2", dest, "cgroup2", flags)
            else:
                # no cgroup namespace: show only the container's own sub-tree
                sc.mount(own, dest, "bind", C.MS_BIND | C.MS_REC)
                self._bind_remount(dest, flags | C.MS_BIND)
            return
        sc.mount("tmpfs", dest, "tmpfs", (flags & ~C.MS_RDONLY) | C.MS_NOSUID | C.MS_NODEV
                 | C.MS_NOEXEC, "mode=755")
        for name, info in sorted(self.cgroup_mounts.items()):
            sub = f"{dest}/{name}"
            _mkdir_all(sub)
            if self.cgroup_ns and info.get("options"):
                sc.mount("cgroup", sub, "cgroup", flags, info["options"])
            else:
                sc.mount(info["path"], sub, "bind", C.MS_BIND | C.MS_REC)
                self._bind_remount(sub, flags | C.MS_BIND)
            for alias in info.get("aliases", ()):
                link = f"{dest}/{alias}"
                if not os.path.lexists(link):
                    os.symlink(name, link)
        if "rro" in opts.extensions:
            # the hierarchies are read-only already (MS_RDONLY): the tmpfs is left
            sc.mount(None, dest, None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | C.MS_NOSUID
                     | C.MS_NODEV | C.MS_NOEXEC)

    # -- step 3 ------------------------------------------------------------
    def create_devices(self) -> None:
        if self.dev_is_bind:
            return
        dev = secure_join(self.rootfs, "/dev")
        _mkdir_all(dev)
        wanted: dict[str, dict[str, Any]] = {}
        for path, kind, major, minor, mode in DEFAULT_DEVICES:
            wanted[path] = {"path": path, "type": kind, "major": major, "minor": minor,
                            "fileMode": mode, "uid": 0, "gid": 0}
        for d in self.linux.get("devices") or ():
            wanted[clean_path(d["path"])] = d
        for d in wanted.values():
            self.create_device(d)
        for target, link in DEV_SYMLINKS:
            path = self.rootfs + link
            if not os.path.lexists(path):
                os.symlink(target, path)
        if os.path.exists("/proc/kcore") and not os.path.lexists(self.rootfs + "/dev/core"):
            os.symlink("/proc/kcore", self.rootfs + "/dev/core")
        ptmx = self.rootfs + "/dev/ptmx"
        if os.path.isdir(self.rootfs + "/dev/pts"):
            if os.path.lexists(ptmx) and not os.path.islink(ptmx):
                os.unlink(ptmx)
            if not os.path.lexists(ptmx):
                os.symlink("pts/ptmx", ptmx)
        _mkdir_all(self.rootfs + "/dev/shm", 0o1777)

    def create_device(self, d: dict[str, Any]) -> None:
        path = secure_join(self.rootfs, clean_path(d["path"]))
        _mkdir_all(os.path.dirname(path))
        kind = d["type"]
        mode = d.get("fileMode", 0o666) & 0o7777
        if os.path.lexists(path):
            os.unlink(path)
        if self.in_user_ns:
            # mknod is forbidden in a user namespace: bind the host's node instead.
            host = clean_path(d["path"])
            _create_file(path)
            self.sc.mount(host, path, "bind", C.MS_BIND)
            return
        ftype = {"c": _stat.S_IFCHR, "u": _stat.S_IFCHR, "b": _stat.S_IFBLK,
                 "p": _stat.S_IFIFO}[kind]
        device = os.makedev(d.get("major", 0), d.get("minor", 0)) if kind != "p" else 0
        old = os.umask(0)
        try:
            self.sc.mknod(path, ftype | mode, device)
        finally:
            os.umask(old)
        self.sc.chown(path, d.get("uid", 0), d.get("gid", 0))

    # -- step 5 ------------------------------------------------------------
    def enter(self, no_pivot: bool = False) -> None:
        """Make the rootfs the process's "/"; then stdio on the host's /dev/null
        moves to the container's (runc's reOpenDevNull): no fd of a host mount
        stays open in the container, and the fds are read-write as under runc."""
        self._jail(no_pivot)
        if not self.dev_is_bind:
            reopen_dev_null()

    def _jail(self, no_pivot: bool) -> None:
        sc = self.sc
        root = self.rootfs
        if not self.has_mount_ns:
            sc.chroot(root)
            os.chdir("/")
            return
        if no_pivot:
            os.chdir(root)
            sc.mount(root, "/", None, C.MS_MOVE)
            sc.chroot(".")
            os.chdir("/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            # pivot_root(".", "."): the old root ends up stacked under the new one
            # at the same place; no put_old directory is needed inside the image.
            os.fchdir(new_root)
            sc.pivot_root(".", ".")
            os.fchdir(old_root)
            # Do not let the unmount below propagate to the host.
            sc.mount(None, ".", None, C.MS_SLAVE | C.MS_REC)
            sc.umount2(".", C.MNT_DETACH)
        finally:
            os.close(old_root)
            os.close(new_root)
        os.chdir("/")

    # -- step 6 (after pivot; paths are the container's) ------------------
    def finalize(self) -> None:
        linux = self.linux
        if self.dev_readonly:
            self.sc.mount(None, "/dev", None, C.MS_REMOUNT | C.MS_RDONLY
                          | _statvfs_locked_flags("/dev"))
        for path in linux.get("readonlyPaths") or ():
            self.readonly_path(path)
        for path in linux.get("maskedPaths") or ():
            self.mask_path(path)
        if (self.config.get("root") or {}).get("readonly"):
            self.sc.mount(None, "/", None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY
                          | _statvfs_locked_flags("/"))
        prop = linux.get("rootfsPropagation")
        if prop and self.has_mount_ns:
            self.sc.mount(None, "/", None, PROPAGATION_FLAGS[prop])

    def readonly_path(self, path: str) -> None:
        try:
            self.sc.mount(path, path, None, C.MS_BIND | C.MS_REC)
        except SyscallError as e:
            if e.errno == 2:
                return
            raise RootfsError(f"readonly path {path}: {e}", errno=e.errno) from None
        flags = C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | _statvfs_locked_flags(path)
        self.sc.mount(path, path, None, flags)

    def mask_path(self, path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return  # nothing to hide
        try:
            if _stat.S_ISDIR(st.st_mode):
                self.sc.mount("tmpfs", path, "tmpfs", C.MS_RDONLY, None)
            else:
                self.sc.mount("/dev/null", path, None, C.MS_BIND)
        except SyscallError as e:
            if e.errno in (2, 20):
                return
            raise RootfsError(f"masked path {path}: {e}", errno=e.errno) from None


def _mountinfo() -> Iterator[tuple[str, list[str]]]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            yield fields[4].replace("\\040", " "), fields[6:sep]


def _mount_point_of(path: str) -> str:
    """The mount point (in this namespace) under which ``path`` lives."""
    best = ""
    for mnt, _ in _mountinfo():
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best = mnt
    return best or "/"


def _is_shared(mount_point: str) -> bool:
    shared = False
    for mnt, optional in _mountinfo():
        if mnt == mount_point:
            shared = any(o.startswith("shared:") for o in optional)
    return shared


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in this namespace, deepest first."""
    prefix = path.rstrip("/") + "/"
    found = [mnt for mnt, _ in _mountinfo() if mnt == path or mnt.startswith(prefix)]
    return sorted(set(found), key=len, reverse=True)
