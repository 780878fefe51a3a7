"""docker cp: the container archive endpoints (HEAD/GET/PUT /containers/ID/archive).

Every path is the container's and is resolved by the kernel inside the
container's own view (pybox.engine.rootview): the root fd of its whole mount
view -- /proc/PID/root of a running container, a private mount namespace
holding the rootfs with its volumes, binds and /etc files for a stopped one --
and ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)``.  From the directory
fd so obtained nothing is opened by a host path string built from container
data: a tree is walked one name at a time with ``O_NOFOLLOW`` relative to its
parent's fd, a regular file is opened ``O_PATH`` and reopened for reading only
once fstat says it is one (a fifo or device node swapped in is never opened),
a file is created ``O_EXCL`` (never an existing one written) and its owner,
mode and times are set through its fd.  A container that changes its tree
during a copy can change what it gets, never reach a host file.  Kernel
filesystems the container has mounted (proc, sysfs, cgroupfs, devpts, mqueue,
...) bound a copy: their mount points are archived empty and nothing in them is
read or written on the container's behalf (docker's view never has them).

Extraction follows moby's archive.Unpack: a member's name is cleaned and taken
relative to the destination whatever it is (``/tmp/x`` lands at DEST/tmp/x); a
name, hard link or symlink target that climbs out of the destination is refused
(400); the parent of a member is opened beneath the destination without
leaving it (a member through a symlink that points out of the destination is
refused too: a member never lands outside the destination directory); missing
parents are made 0755 for the container's root; an existing entry is replaced
unless both are directories (``noOverwriteDirNonDir`` refuses a directory
swapped for a non-directory and back); a hard link only to a file inside the
destination; symlinks stored as given; devices, fifos, owners (numeric, shifted
through --userns-remap's maps), modes, mtimes (directories' last) and
``SCHILY.xattr`` records applied as docker does.  ``copyUIDGID`` (docker cp -a)
gives everything to the container's Config.User, looked up in its own
/etc/passwd.  The body is parsed as it arrives (pybox.engine.tarstream), never
held whole.

The stat header is docker's: base64 JSON with a Go os.FileMode ``mode`` and an
RFC3339Nano ``mtime``.  A GET streams the tar straight to the client.
"""

from __future__ import annotations

import base64
import os
import posixpath
import stat as st
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from pybox.engine import rootview, tarstream
from pybox.engine.rootview import MountedRootfs as RootView  # noqa: F401 (export, commit)
from pybox.engine.tarstream import Member, TarReader
from pybox.errors import BadRequest, NotFound, PyboxError
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.linux import constants as C
from pybox.linux.fstree import remove_tree_at  # rm -rf at any depth, fd-relative
from pybox.linux.idmap import OVERFLOW_ID, IdMapping, map_id

if TYPE_CHECKING:
    from pybox.engine.engine import Engine
    from pybox.engine.store import Container
    from pybox.images.snapshots import IdMap

T = TypeVar("T")

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHARDEV = 1 << 21
GO_STICKY = 1 << 20

O_PATH = C.O_PATH
O_CLOEXEC = os.O_CLOEXEC
BENEATH = C.RESOLVE_BENEATH | C.RESOLVE_NO_MAGICLINKS
FLUSH_AT = 1 << 20  # GET: bytes gathered before a write to the client
CHUNK = 1 << 20  # file data read or written at once
DIR_CACHE = 64  # PUT: directory fds kept open for the next members
XATTR_PAX_PREFIX = "SCHILY.xattr."
# ENOENT, ENOTDIR, EEXIST, EXDEV, ELOOP, ENOTEMPTY: what a container changing
# its tree under an extraction makes the next step fail with (400, not 500)
RACED = frozenset({2, 20, 17, 18, 40, 39})
# ENAMETOOLONG, E2BIG, EFBIG, EMLINK, EINVAL, ERANGE: what an archive's own
# names, sizes and records make the kernel refuse (400: the client's mistake)
REFUSED = frozenset({36, 7, 27, 31, 22, 34})
MESSAGE_PATH = 256  # characters of a client's path quoted in an error
# moby's boundTime: an mtime before the epoch or past what a 64-bit timespec
# in nanoseconds holds (2262) is set to the epoch
MAX_TIME_NS = (1 << 63) - 1


# Kernel filesystems a container may have mounted (procfs, sysfs, cgroupfs,
# devpts, mqueue, ...): not the container's files.  docker's cp view never has
# them (only the rootfs and the volumes); here they are in the container's
# mount view, so a copy stops at them: their files are neither read nor
# written by the daemon on the container's behalf.
KERNEL_FILESYSTEMS = frozenset({
    0x9FA0,  # proc
    0x62656572,  # sysfs
    0x27E0EB,  # cgroup
    0x63677270,  # cgroup2
    0x1CD1,  # devpts
    0x19800202,  # mqueue
    0x73636673,  # securityfs
    0x64626720,  # debugfs
    0x74726163,  # tracefs
    0xCAFE4A11,  # bpf
    0x65735543,  # fusectl
    0x62656570,  # configfs
    0x6165676C,  # pstore
    0xDE5E81E4,  # efivarfs
    0x42494E4D,  # binfmt_misc
    0xF97CFF8C,  # selinuxfs
    0x6E736673,  # nsfs
})


def on_kernel_fs(fd: int) -> bool:
    return rootview.fs_type(fd) in KERNEL_FILESYSTEMS


def kernel_mount_point(fd: int) -> bool:
    """Is ``fd`` (on a kernel filesystem) where that filesystem is mounted on
    the container's own files (/proc, /sys, /dev/pts), not a path below it
    (/proc/1, /sys/fs/cgroup)?  Its parent is looked at (fstat, fstatfs),
    never read."""
    try:
        parent = os.open("..", O_PATH | os.O_DIRECTORY | O_CLOEXEC, dir_fd=fd)
    except OSError:
        return False  # not a directory
    try:
        return (not on_kernel_fs(parent)
                and os.fstat(parent).st_dev != os.fstat(fd).st_dev)
    finally:
        os.close(parent)


def go_file_mode(mode: int) -> int:
    out = mode & 0o777
    if st.S_ISDIR(mode):
        out |= GO_DIR
    elif st.S_ISLNK(mode):
        out |= GO_SYMLINK
    elif st.S_ISBLK(mode):
        out |= GO_DEVICE
    elif st.S_ISCHR(mode):
        out |= GO_DEVICE | GO_CHARDEV
    elif st.S_ISFIFO(mode):
        out |= GO_PIPE
    elif st.S_ISSOCK(mode):
        out |= GO_SOCKET
    if mode & st.S_ISUID:
        out |= GO_SETUID
    if mode & st.S_ISGID:
        out |= GO_SETGID
    if mode & st.S_ISVTX:
        out |= GO_STICKY
    return out


def clean_path(path: str) -> str:
    """The container path ``path`` lexically cleaned and absolute ('..' never
    above '/', and no POSIX '//' prefix kept)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _q(text: str) -> str:
    """Go's %q, for moby's messages (a huge name shortened: see _short)."""
    text = _short(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _short(text: str, limit: int = MESSAGE_PATH) -> str:
    """A client's path or name as an error message quotes it: a 100 KB path
    is not echoed whole."""
    if len(text) <= limit:
        return text
    return text[:limit // 2] + "..." + text[-(limit // 4):]


def _go_strerror(e: OSError) -> str:
    """An errno as Go's syscall.Errno prints it (moby's messages)."""
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


def _check_path(path: str) -> None:
    """A container path from a query: a NUL byte cannot be in a path (Go's
    syscalls refuse it with EINVAL; the C string would silently end there)."""
    if "\0" in path:
        raise BadRequest(f"invalid path {_q(path)}: it holds a NUL byte")


def _proc_fd(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _reopen(fd: int, flags: int) -> int:
    """Open again, with real access, the inode an O_PATH fd holds (no path
    walk that anything could redirect)."""
    return os.open(_proc_fd(fd), flags | O_CLOEXEC)


# -- mounts and the read-only checks ---------------------------------------------------------
def container_mounts(c: Container) -> list[dict[str, Any]]:
    """The container's mounts as {Destination, Type, Source, RW}: Mounts, and
    the --tmpfs ones (HostConfig.Tmpfs)."""
    out = list(c.record.get("Mounts") or ())
    for dest, opts in (c.record["HostConfig"].get("Tmpfs") or {}).items():
        out.append({"Destination": dest, "Type": "tmpfs", "Source": "",
                    "RW": "ro" not in (opts or "").split(",")})
    return out


def mount_for(c: Container, running: bool, path: str) -> dict[str, Any] | None:
    """The mount ``path`` (clean, absolute) is under, or None (the rootfs).
    A tmpfs exists only while the container runs: stopped, its path is the
    root filesystem's (as docker's cp sees it)."""
    best = None
    for m in container_mounts(c):
        if m["Type"] == "tmpfs" and not running:
            continue
        dest = m["Destination"]
        if path == dest or path.startswith(dest.rstrip("/") + "/"):
            if best is None or len(dest) > len(best["Destination"]):
                best = m
    return best


def check_writable(c: Container, running: bool, path: str) -> None:
    """docker's refusals for a copy into a read-only place (400), judged on the
    path as written, as dockerd's checkIfPathIsInAVolume does.  Whatever path
    leads there, the kernel enforces the view's read-only mounts (and rootfs)."""
    m = mount_for(c, running, clean_path(path))
    if m is None and c.record["HostConfig"].get("ReadonlyRootfs"):
        raise BadRequest("container rootfs is marked read-only")
    if m is not None and not m.get("RW", True):
        raise BadRequest("mounted volume is marked read-only")


# -- GET and HEAD ------------------------------------------------------------------------------
def stat_header(fd: int, s: os.stat_result, name: str) -> str:
    link = os.readlink("", dir_fd=fd) if st.S_ISLNK(s.st_mode) else ""
    doc = {"name": name, "size": s.st_size, "mode": go_file_mode(s.st_mode),
           "mtime": rfc3339_nano_fixed(s.st_mtime_ns), "linkTarget": link}
    return base64.b64encode(fastjson.dumps(doc).encode()).decode()


class PathSource:
    """A container path opened for HEAD/GET, for the time of the context:
    ``header()`` is docker's X-Docker-Container-Path-Stat, ``write_tar(write)``
    streams the tar (a directory with its tree)."""

    def __init__(self, engine: Engine, c: Container, path: str) -> None:
        self.engine = engine
        self.c = c
        self.path = path
        self.fd = -1
        self.kernel_mount = False  # the mount point of /proc, /sys...: an empty directory
        self._root: AbstractContextManager[rootview.Root] | None = None

    def __enter__(self) -> PathSource:
        _check_path(self.path)
        self._root = rootview.container_root(self.engine, self.c)
        root = self._root.__enter__()
        try:
            self._open(root.fd)
        except BaseException:
            self._close()  # _open's fd too: each leaked one pinned the container's proc
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._root is not None:
            root, self._root = self._root, None
            root.__exit__(None, None, None)

    def _open(self, root_fd: int) -> None:
        path = self.path
        # docker: a trailing "/" or "/." follows a final symlink, else it is
        # the symlink itself that is copied
        follow = path.endswith("/") or path.endswith("/.")
        clean = clean_path(path)
        if path.endswith("/") and clean != "/":
            clean += "/"  # the kernel then refuses a non-directory
        try:
            self.fd = rootview.open_in_root(root_fd, clean, O_PATH | (0 if follow else
                                                                       os.O_NOFOLLOW))
        except OSError as e:
            if e.errno in (2, 20, 40):  # ENOENT, ENOTDIR, ELOOP
                raise NotFound(f"Could not find the file {_short(path)} in container "
                               f"{self.c.name}") from None
            if e.errno == 36:  # ENAMETOOLONG: longer than a path can be
                raise BadRequest(f"resolving {_short(path)} in container {self.c.name}: "
                                 "file name too long") from None
            raise PyboxError(f"resolving {_short(path)} in container {self.c.name}: "
                             f"{e.strerror}") from None
        if on_kernel_fs(self.fd):
            # docker's view holds the rootfs's empty directory where the
            # container mounts proc, sysfs, devpts...: so does this one; what
            # is below is not the container's files
            if not kernel_mount_point(self.fd):
                raise NotFound(f"Could not find the file {_short(path)} in container "
                               f"{self.c.name}")
            self.kernel_mount = True
        self.stat = os.fstat(self.fd)
        name = os.path.basename(path.rstrip("/")) or "/"
        if path.rstrip("/") == "":
            name = "/"
        self.name = name

    def header(self) -> str:
        return stat_header(self.fd, self.stat, self.name)

    def write_tar(self, write: Callable[[bytes], object]) -> None:
        idmap = self.engine.images.rootfs_idmap(self.c.id)
        out = _TarWriter(write, idmap)
        arcname = "." if self.name == "/" else self.name
        s = self.stat
        if self.kernel_mount:
            out._header(arcname, s, tarfile.DIRTYPE)
        elif st.S_ISDIR(s.st_mode):
            dfd = _reopen(self.fd, os.O_RDONLY | os.O_DIRECTORY)
            out.add_dir_tree(dfd, arcname)
        elif st.S_ISREG(s.st_mode):
            out.add_file_fd(self.fd, arcname)
        else:
            out.add_other(self.fd, "", arcname, s)
        out.close()


def _mappings(idmap: IdMap | None) -> tuple[list[IdMapping], list[IdMapping]] | None:
    """--userns-remap's uid and gid maps as map_id takes them (None: not remapped)."""
    if not idmap:
        return None
    return ([(a, b, n) for a, b, n in idmap["uid"]], [(a, b, n) for a, b, n in idmap["gid"]])


class _TarWriter:
    """A tar written from fds only: PAX headers (docker's), numeric owners
    (shifted back through --userns-remap's maps), whole-second mtimes,
    security.capability, hard links within the archive."""

    def __init__(self, write: Callable[[bytes], object], idmap: IdMap | None) -> None:
        self.write = write
        self.maps = _mappings(idmap)
        self.buf = bytearray()
        self.seen: dict[tuple[int, int], str] = {}

    # -- output --
    def _emit(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.write(bytes(self.buf))
            self.buf.clear()

    def close(self) -> None:
        self._emit(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        self.flush()

    def _header(self, name: str, s: os.stat_result, kind: bytes, size: int = 0,
                linkname: str = "", pax: dict[str, str] | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = st.S_IMODE(s.st_mode)
        uid, gid = s.st_uid, s.st_gid
        if self.maps is not None:
            cuid, cgid = map_id(self.maps[0], uid, False), map_id(self.maps[1], gid, False)
            uid = OVERFLOW_ID if cuid is None else cuid
            gid = OVERFLOW_ID if cgid is None else cgid
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = s.st_mtime_ns // 1_000_000_000
        info.size = size
        info.linkname = linkname
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(s.st_rdev), os.minor(s.st_rdev)
        if pax:
            info.pax_headers = pax
        self._emit(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    # -- entries --
    def add_dir_tree(self, dfd: int, arcname: str) -> None:
        """The directory open as ``dfd`` (taken over) and everything below it,
        depth first in name order; each child opened from its parent's fd
        without following a symlink.  An entry that vanishes or changes type
        while we look is left out or taken as what it now is."""
        stack: list[tuple[int, str, Iterator[str]]] = [(dfd, arcname, iter(()))]
        try:
            self._header(arcname, os.fstat(dfd), tarfile.DIRTYPE)
            try:
                stack[-1] = (dfd, arcname, iter(sorted(os.listdir(dfd))))
            except OSError:
                return
            while stack:
                dfd, arc, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(dfd)
                    stack.pop()
                    continue
                child = f"{arc}/{name}"
                try:
                    s = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                if st.S_ISDIR(s.st_mode):
                    try:
                        cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                      | O_CLOEXEC, dir_fd=dfd)
                    except OSError:
                        continue
                    stack.append((cfd, child, iter(())))  # closed whatever happens next
                    try:
                        s = os.fstat(cfd)
                        # a kernel filesystem mounted here: its mount point only
                        entries = iter(() if on_kernel_fs(cfd) else sorted(os.listdir(cfd)))
                    except OSError:
                        os.close(stack.pop()[0])
                        continue
                    self._header(child, s, tarfile.DIRTYPE)
                    stack[-1] = (cfd, child, entries)
                elif st.S_ISSOCK(s.st_mode):
                    continue  # tar cannot hold one (docker skips them too)
                else:
                    try:
                        pfd = os.open(name, O_PATH | os.O_NOFOLLOW | O_CLOEXEC, dir_fd=dfd)
                    except OSError:
                        continue
                    try:
                        self.add_file_fd(pfd, child)
                    finally:
                        os.close(pfd)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)

    def add_file_fd(self, pfd: int, arcname: str) -> None:
        """An entry from its O_PATH fd: a regular file is reopened for reading
        (through the fd, after fstat said it is one); others are headers."""
        s = os.fstat(pfd)
        if not st.S_ISREG(s.st_mode):
            if not st.S_ISDIR(s.st_mode) and not st.S_ISSOCK(s.st_mode):
                self.add_other(pfd, "", arcname, s)
            return
        if s.st_nlink > 1:
            key = (s.st_dev, s.st_ino)
            first = self.seen.get(key)
            if first is not None:
                self._header(arcname, s, tarfile.LNKTYPE, linkname=first)
                return
            self.seen[key] = arcname
        try:
            rfd = _reopen(pfd, os.O_RDONLY)
        except OSError:
            return
        try:
            pax = None
            try:
                cap = os.getxattr(rfd, "security.capability")
                pax = {XATTR_PAX_PREFIX + "security.capability":
                       cap.decode("utf-8", "surrogateescape")}
            except OSError:
                pass
            size = s.st_size
            self._header(arcname, s, tarfile.REGTYPE, size=size, pax=pax)
            self._copy_data(rfd, size)
        finally:
            os.close(rfd)

    def _copy_data(self, rfd: int, size: int) -> None:
        """Exactly ``size`` bytes (the header's): a file that shrank meanwhile
        is padded with zeros, one that grew is cut (as GNU tar)."""
        left = size
        if size >= FLUSH_AT:
            self.flush()
        while left > 0:
            data = os.read(rfd, min(left, CHUNK))
            if not data:
                data = tarfile.NUL * min(left, CHUNK)
            left -= len(data)
            if size >= FLUSH_AT:
                self.write(data)
            else:
                self.buf += data
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self.buf += tarfile.NUL * pad
        if len(self.buf) >= FLUSH_AT:
            self.flush()

    def add_other(self, fd: int, name: str, arcname: str, s: os.stat_result) -> None:
        """A symlink, device or fifo (``name`` relative to ``fd``, or "" for
        the O_PATH fd itself); never opened."""
        mode = s.st_mode
        if st.S_ISLNK(mode):
            try:
                target = os.readlink(name, dir_fd=fd)
            except OSError:
                return
            self._header(arcname, s, tarfile.SYMTYPE, linkname=target)
        elif st.S_ISCHR(mode):
            self._header(arcname, s, tarfile.CHRTYPE)
        elif st.S_ISBLK(mode):
            self._header(arcname, s, tarfile.BLKTYPE)
        elif st.S_ISFIFO(mode):
            self._header(arcname, s, tarfile.FIFOTYPE)


# -- PUT ------------------------------------------------------------------------------------------
def member_path(name: str) -> str | None:
    """A member's name relative to the destination ("" for itself), as moby's
    Unpack: cleaned, an absolute name taken below the destination, None when
    it climbs out ('../x')."""
    clean = posixpath.normpath(name) if name else "."
    if clean.startswith("/"):
        clean = posixpath.normpath("/" + clean.lstrip("/")).lstrip("/") or "."
    if clean == ".":
        return ""
    if clean == ".." or clean.startswith("../"):
        return None
    return clean


def _inside(base: str, rel: str) -> bool:
    """Is the clean path ``rel`` (relative to the destination, '..' allowed)
    inside the destination ``base`` (clean, absolute)?  moby's HasPrefix check
    of a link target joined to the destination."""
    full = posixpath.normpath(posixpath.join(base, rel))
    return full == base or full.startswith(base.rstrip("/") + "/")


class _Extractor:
    """Members of one archive into the destination directory fd."""

    def __init__(self, dest_fd: int, dest_path: str, idmap: IdMap | None,
                 owner: tuple[int, int] | None, no_overwrite_dir_non_dir: bool) -> None:
        self.dest = dest_fd
        self.dest_path = clean_path(dest_path)
        self.maps = _mappings(idmap)
        self.owner = owner  # copyUIDGID: every entry's owner (container ids)
        self.no_overwrite = no_overwrite_dir_non_dir
        self.dirs: dict[str, int] = {}  # relative path -> open directory fd
        self.dir_times: list[tuple[str, int]] = []
        self.current = ""  # the member being extracted (for errors)
        self.root_ids = (0, 0)
        if idmap:
            self.root_ids = (idmap["uid"][0][1], idmap["gid"][0][1])

    def _abs(self, rel: str) -> str:
        return posixpath.join(self.dest_path, rel)

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    # -- directories --
    def _forget(self, rel: str) -> None:
        """Drop cached fds of ``rel`` and below (it was removed or replaced)."""
        for key in [k for k in self.dirs if k == rel or k.startswith(rel + "/")]:
            os.close(self.dirs.pop(key))

    def _remember(self, rel: str, fd: int) -> int:
        if rel in self.dirs:
            os.close(self.dirs.pop(rel))
        self.dirs[rel] = fd
        return fd

    def _trim(self) -> None:
        """Close the least recently used directory fds.  Only between members:
        within one, the fds it holds (its parent's) stay open."""
        while len(self.dirs) > DIR_CACHE:
            os.close(self.dirs.pop(next(iter(self.dirs))))

    def dir_fd(self, rel: str, create: bool = True) -> int:
        """The fd of directory ``rel`` below the destination, opened beneath
        it (a symlink out of the destination, or '..' above it, refused);
        missing parents made as docker's createImpliedDirectories."""
        if rel == "":
            return self.dest
        fd = self.dirs.pop(rel, None)
        if fd is not None:
            self.dirs[rel] = fd  # most recently used last
            return fd
        fd = self._open_dir(rel)
        if fd is None:
            if not create:
                raise FileNotFoundError(2, "No such file or directory", rel)
            fd = self._make_dirs(rel)
        if on_kernel_fs(fd):
            os.close(fd)
            raise self._kernel_fs(rel)
        return self._remember(rel, fd)

    def _open_dir(self, rel: str) -> int | None:
        """The O_PATH fd of directory ``rel`` opened beneath the destination
        (symlinks inside it followed), or None if it does not exist."""
        try:
            return rootview.open_in_root(self.dest, rel, O_PATH | os.O_DIRECTORY,
                                         resolve=BENEATH)
        except OSError as e:
            if e.errno == 2:
                return None
            if e.errno in (18, 40):  # EXDEV, ELOOP: a link out of the destination
                raise BadRequest(f"invalid tar member path {_q(rel)}: it leaves "
                                 f"{_q(self.dest_path)}") from None
            if e.errno == 20:
                raise BadRequest(f"invalid tar member path {_q(rel)}: not a "
                                 "directory") from None
            if e.errno == 36:
                raise BadRequest(f"invalid tar member path {_q(rel)}: file name too "
                                 "long") from None
            raise

    def _kernel_fs(self, rel: str) -> BadRequest:
        return BadRequest(f"invalid tar member path {_q(rel)}: a kernel filesystem "
                          "(not the container's files)")

    def _make_dirs(self, rel: str) -> int:
        """``mkdir -p`` of ``rel`` (missing): from the deepest directory on the
        way that exists, each missing one made 0755 for the container's root
        and opened without following a symlink.  A loop, not a recursion: a
        member 2,000 directories deep is just a long walk."""
        parts = rel.split("/")
        # bisection for the deepest existing one: a walk to a longer prefix
        # passes through every shorter one, so existence only ends once
        lo, hi, fd = 0, len(parts) - 1, self.dest
        try:
            while lo < hi:
                mid = (lo + hi + 1) // 2
                probe = self._open_dir("/".join(parts[:mid]))
                if probe is None:
                    hi = mid - 1
                    continue
                if fd != self.dest:
                    os.close(fd)
                fd, lo = probe, mid
            if fd != self.dest and on_kernel_fs(fd):
                raise self._kernel_fs("/".join(parts[:lo]))
            for name in parts[lo:]:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    os.chown(name, *self.root_ids, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
                child = rootview.open_in_root(fd, name, O_PATH | os.O_DIRECTORY,
                                              resolve=BENEATH | C.RESOLVE_NO_SYMLINKS)
                if fd != self.dest:
                    os.close(fd)
                fd = child
        except BaseException:
            if fd != self.dest:
                os.close(fd)
            raise
        return fd

    # -- owners --
    def _ids(self, member: Member) -> tuple[int, int]:
        uid, gid = self.owner if self.owner is not None else (member.uid, member.gid)
        if not (0 <= uid < 0xFFFFFFFF and 0 <= gid < 0xFFFFFFFF):  # -1 would mean "keep"
            raise BadRequest(f"invalid owner {uid}:{gid} of tar member {_q(member.name)}")
        if self.maps is not None:  # the tar's owners are the container's: to host ids
            huid, hgid = map_id(self.maps[0], uid), map_id(self.maps[1], gid)
            uid = self.root_ids[0] if huid is None else huid
            gid = self.root_ids[1] if hgid is None else hgid
        return uid, gid

    # -- members --
    def extract(self, tar: TarReader) -> None:
        for member in tar:
            self.member(tar, member)
        for rel, ns in self.dir_times:
            parent, name = posixpath.split(rel)
            try:
                os.utime(name, ns=(ns, ns), dir_fd=self.dir_fd(parent, create=False),
                         follow_symlinks=False)
            except (OSError, BadRequest):
                pass  # gone or moved by the container meanwhile

    def member(self, tar: TarReader, member: Member) -> None:
        self._trim()
        self.current = member.name
        rel = member_path(member.name)
        if rel is None:
            raise BadRequest(f"{_q(member.name)} is outside of {_q(self.dest_path)}")
        if rel == "":
            if member.isdir():
                return  # docker: the destination itself is never replaced
            raise BadRequest(f"invalid tar member {_q(member.name)}: it would replace "
                             f"{self.dest_path}")
        kind = member.type
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk()
                or member.ischr() or member.isblk() or member.isfifo()):
            raise BadRequest(f"unhandled tar header type {kind!r} ({_q(member.name)})")
        parent, name = posixpath.split(rel)
        pfd = self.dir_fd(parent)
        uid, gid = self._ids(member)
        mtime_ns = member.mtime_ns
        if not 0 <= mtime_ns <= MAX_TIME_NS:  # moby's boundTime
            mtime_ns = 0
        if member.isreg():
            fd = self._create(pfd, name, rel, member, lambda: os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC, 0o600,
                dir_fd=pfd))
            assert fd is not None  # (only a directory member keeps what is in its way)
            self._file(tar, fd, member, uid, gid, mtime_ns)
        elif member.isdir():
            self._create(pfd, name, rel, member, lambda: os.mkdir(name, 0o700, dir_fd=pfd))
            self._dir(pfd, name, rel, member, uid, gid)
            self.dir_times.append((rel, mtime_ns))
        elif member.issym():
            # moby: filepath.Join(dir of the member, linkname) -- an absolute
            # target joined like a relative one -- must stay in the destination
            if not _inside(self.dest_path,
                           posixpath.join(parent, member.linkname.lstrip("/"))):
                raise BadRequest(f"invalid symlink {_q(self._abs(rel))} -> "
                                 f"{_q(member.linkname)}")
            self._create(pfd, name, rel, member, lambda: os.symlink(member.linkname, name,
                                                                    dir_fd=pfd))
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)
        elif member.islnk():
            self._hardlink(pfd, name, rel, member, uid, gid, mtime_ns)
        else:
            if member.isfifo():
                self._create(pfd, name, rel, member, lambda: os.mkfifo(name, 0o600,
                                                                       dir_fd=pfd))
            else:
                kind_bits = st.S_IFCHR if member.ischr() else st.S_IFBLK
                if not (0 <= member.devmajor <= 0xFFFFFFFF
                        and 0 <= member.devminor <= 0xFFFFFFFF):
                    raise BadRequest(f"invalid device {member.devmajor}:{member.devminor} "
                                     f"of tar member {_q(member.name)}")
                device = os.makedev(member.devmajor, member.devminor)
                self._create(pfd, name, rel, member, lambda: os.mknod(
                    name, kind_bits | 0o600, device, dir_fd=pfd))
            self._set_meta(pfd, name, member, uid, gid, mtime_ns)

    def _create(self, pfd: int, name: str, rel: str, member: Member,
                make: Callable[[], T]) -> T | None:
        """make() the entry; what is in its way is dealt with as moby's Unpack
        (merged if both are directories -- None: kept --, else removed, or refused
        with noOverwriteDirNonDir) and make() tried again: a fresh copy pays
        no lookup before its creates."""
        for _ in range(8):
            try:
                return make()
            except FileExistsError:
                if self._make_way(pfd, name, rel, member):
                    return None  # an existing directory kept for a directory member
        raise BadRequest(f"extracting {_q(member.name)}: the path keeps reappearing")

    def _make_way(self, pfd: int, name: str, rel: str, member: Member) -> bool:
        """True: an existing directory stays for a directory member."""
        try:
            existing = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        is_dir = st.S_ISDIR(existing.st_mode)
        where = posixpath.join(self.dest_path, rel)
        if self.no_overwrite and is_dir and not member.isdir():
            raise BadRequest(f"cannot overwrite directory {_q(where)} with non-directory "
                             f"{_q(self.dest_path)}")
        if self.no_overwrite and not is_dir and member.isdir():
            raise BadRequest(f"cannot overwrite non-directory {_q(where)} with directory "
                             f"{_q(self.dest_path)}")
        if is_dir and member.isdir():
            return True
        self._remove(pfd, name, is_dir, rel)
        return False

    def _remove(self, pfd: int, name: str, is_dir: bool, rel: str) -> None:
        """moby's RemoveAll of what is in a member's way (fd-relative, never
        following a symlink)."""
        self._forget(rel)
        if is_dir:
            remove_tree_at(pfd, name)
            return
        try:
            os.unlink(name, dir_fd=pfd)
        except IsADirectoryError:  # became one meanwhile
            remove_tree_at(pfd, name)
        except FileNotFoundError:
            pass

    def _dir(self, pfd: int, name: str, rel: str, member: Member, uid: int,
             gid: int) -> None:
        """A directory made (or kept: docker merges) gets the member's owner,
        mode and xattrs through an fd opened without following a symlink."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | O_CLOEXEC,
                         dir_fd=pfd)
        except OSError as e:
            raise BadRequest(f"extracting {_q(rel)}: {e.strerror}") from None
        if on_kernel_fs(fd):  # the mount point of /proc, /sys...: left as it is
            os.close(fd)
            return
        self._remember(rel, fd)
        os.chown(fd, uid, gid)
        os.chmod(fd, member.mode & 0o7777)
        self._xattrs(fd, member, rel)

    def _file(self, tar: TarReader, fd: int, member: Member, uid: int, gid: int,
              mtime_ns: int) -> None:
        """Write a new file (``fd``, made O_EXCL: never an existing one, so never
        a device or a file of the host) and set its metadata through the fd."""
        try:
            for view in tar.data(member):
                while view:
                    view = view[os.write(fd, view):]
            os.chown(fd, uid, gid)
            os.chmod(fd, member.mode & 0o7777)  # after chown, which clears set-id bits
            if member.xattrs:
                self._xattrs(fd, member, member_path(member.name) or "")
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)

    def _hardlink(self, pfd: int, name: str, rel: str, member: Member, uid: int,
                  gid: int, mtime_ns: int) -> None:
        """moby: the target is the member's linkname joined to the destination,
        and must stay in it; here it is also opened beneath the destination, so
        a symlink on the way cannot lead it out."""
        target = member_path(member.linkname)
        if not target:
            raise BadRequest(f"invalid hardlink {_q(self._abs(rel))} -> {_q(member.linkname)}")
        tparent, tname = posixpath.split(target)
        try:
            tfd = self.dir_fd(tparent, create=False)
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise BadRequest(f"invalid hardlink {_q(self._abs(rel))} -> {_q(member.linkname)}: "
                             f"{e.strerror}") from None
        except BadRequest:
            raise BadRequest(f"invalid hardlink {_q(self._abs(rel))} -> "
                             f"{_q(member.linkname)}") from None
        self._set_meta(pfd, name, member, uid, gid, mtime_ns)

    def _set_meta(self, pfd: int, name: str, member: Member, uid: int, gid: int,
                  mtime_ns: int) -> None:
        """Owner, mode and times of an entry that is not opened for data (a
        device, fifo or hard link): through an O_PATH fd, never by a path."""
        os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        fd = os.open(name, O_PATH | os.O_NOFOLLOW | O_CLOEXEC, dir_fd=pfd)
        try:
            if not st.S_ISLNK(os.fstat(fd).st_mode):
                os.chmod(_proc_fd(fd), member.mode & 0o7777)
        finally:
            os.close(fd)
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _xattrs(self, fd: int, member: Member, rel: str) -> None:
        """The member's SCHILY.xattr records; one the kernel refuses (too big,
        a bad name) fails the copy with moby's words, a 400."""
        for key, value in member.xattrs.items():
            try:
                os.setxattr(fd, key, value)
            except OSError as e:
                if e.errno in (1, 95):  # EPERM, ENOTSUP: best effort, as moby
                    continue
                raise BadRequest(f"lsetxattr {_short(key)} {_short(self._abs(rel))}: "
                                 f"{_go_strerror(e)}") from None
            except ValueError:  # a NUL byte in the name
                raise BadRequest(f"lsetxattr {_q(key)} {_short(self._abs(rel))}: invalid "
                                 "argument") from None


def _lookup_user(root_fd: int, user: str) -> tuple[int, int]:
    """docker's user spec (name|uid[:group|gid]) in the container's own
    /etc/passwd and /etc/group (read through the confined root)."""
    name, _, group = user.partition(":")

    def table(path: str) -> list[list[str]]:
        try:
            data = read_file_in_root(root_fd, path, 4 << 20)
        except OSError:
            return []
        return [line.split(":") for line in data.decode(errors="replace").splitlines()
                if line and not line.startswith("#")]

    uid = gid = 0
    passwd = table("/etc/passwd")
    if name.isdigit():
        uid = int(name)
        gid = next((int(e[3]) for e in passwd if len(e) > 3 and e[2] == name
                    and e[3].isdigit()), 0)
    elif name:
        entry = next((e for e in passwd if len(e) > 3 and e[0] == name
                      and e[2].isdigit() and e[3].isdigit()), None)
        if entry is None:
            raise BadRequest(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(entry[2]), int(entry[3])
    if group.isdigit():
        gid = int(group)
    elif group:
        entry = next((e for e in table("/etc/group") if len(e) > 2 and e[0] == group
                      and e[2].isdigit()), None)
        if entry is None:
            raise BadRequest(f"unable to find group {group}: no matching entries in group "
                             "file")
        gid = int(entry[2])
    return uid, gid


def read_file_in_root(root_fd: int, path: str, limit: int) -> bytes:
    """A regular file of the container, at most ``limit`` bytes (anything else,
    a device or fifo put there, is refused unopened: ENOENT)."""
    pfd = rootview.open_in_root(root_fd, path, O_PATH)
    try:
        if not st.S_ISREG(os.fstat(pfd).st_mode):
            raise FileNotFoundError(2, "not a regular file", path)
        fd = _reopen(pfd, os.O_RDONLY)
        try:
            return os.read(fd, limit)
        finally:
            os.close(fd)
    finally:
        os.close(pfd)


def extract(engine: Engine, c: Container, path: str, chunks: Iterable[bytes],
            no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
    """PUT: extract the tar arriving in ``chunks`` into the directory ``path``
    of the container."""
    _check_path(path)
    idmap = engine.images.rootfs_idmap(c.id)
    with rootview.container_root(engine, c) as root:
        check_writable(c, root.running, path)
        dest = _open_destination(root.fd, c, path)
        try:
            if on_kernel_fs(dest):
                raise BadRequest(f"extraction point is a kernel filesystem (not the "
                                 f"container's files): {_short(path)}")
            owner = None
            user = c.record["Config"].get("User") or ""
            if copy_uid_gid and user:
                owner = _lookup_user(root.fd, user)
            ex = _Extractor(dest, clean_path(path), idmap, owner, no_overwrite_dir_non_dir)
            try:
                ex.extract(tarstream.open_body(chunks))
            except ConnectionError:
                raise  # the client left (ClientGone): nobody to answer
            except OSError as e:
                path_ = _short(path)
                if e.errno == 30:  # EROFS: a read-only mount of the view said no
                    raise BadRequest(f"copying into {path_}: read-only file system") from None
                where = f"extracting {_q(ex.current)} into {path_} of container {c.name}"
                if e.errno in RACED:  # the container changed its tree under the copy
                    raise BadRequest(f"{where}: {e.strerror}") from None
                if e.errno in REFUSED:  # the archive's names or records
                    raise BadRequest(f"{where}: {_go_strerror(e)}") from None
                raise PyboxError(f"{where}: {e.strerror or e}") from None
            except (ValueError, OverflowError) as e:  # a value of the archive's
                raise BadRequest(f"extracting {_q(ex.current)} into {_short(path)} of "
                                 f"container {c.name}: {e}") from None
            finally:
                ex.close()
        finally:
            os.close(dest)


def extract_tree(dest_fd: int, dest_path: str, chunks: Iterable[bytes]) -> None:
    """Extract the tar (plain or compressed) arriving in ``chunks`` into the
    host directory ``dest_fd`` (``dest_path`` names it in errors) with docker
    cp's rules against hostile archives: nothing lands outside it (a build
    context, pybox.build.context).  Owners are the archive's, unmapped."""
    ex = _Extractor(dest_fd, dest_path, None, None, False)
    try:
        ex.extract(tarstream.open_body(chunks))
    except ConnectionError:
        raise  # the client left: nobody to answer
    except OSError as e:
        if e.errno in RACED or e.errno in REFUSED:
            raise BadRequest(f"extracting {_q(ex.current)}: {_go_strerror(e)}") from None
        raise PyboxError(f"extracting {_q(ex.current)}: {e.strerror or e}") from None
    except (ValueError, OverflowError) as e:
        raise BadRequest(f"extracting {_q(ex.current)}: {e}") from None
    finally:
        ex.close()


def _open_destination(root_fd: int, c: Container, path: str) -> int:
    """The PUT's directory, opened in the container's root; docker's errors
    for one that is missing or no directory."""
    clean = clean_path(path)
    try:
        return rootview.open_in_root(root_fd, clean, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        if e.errno == 20:  # ENOTDIR: the path, or one on the way, is no directory
            try:
                os.close(rootview.open_in_root(root_fd, clean, O_PATH))
            except OSError:
                raise NotFound(f"Could not find the file {_short(path)} in container "
                               f"{c.name}") from None
            raise BadRequest(f"extraction point is not a directory: {_short(path)}") from None
        if e.errno in (2, 40):
            raise NotFound(f"Could not find the file {_short(path)} in container "
                           f"{c.name}") from None
        if e.errno == 36:
            raise BadRequest(f"resolving {_short(path)} in container {c.name}: file name "
                             "too long") from None
        raise PyboxError(f"resolving {_short(path)} in container {c.name}: "
                         f"{e.strerror}") from None
