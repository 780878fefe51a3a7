"""Layer tarballs: unpack one into a directory overlayfs can stack, and write one
back from a directory (commit, export, save).

An image layer is a tar (plain, gzip or zstd) of the files it adds or changes,
with two kinds of marker for what it removes: ``DIR/.wh.NAME`` deletes NAME from
the layers below, and ``DIR/.wh..wh..opq`` hides everything below in DIR.
overlayfs marks the same things differently, so unpacking translates:

    .wh.NAME        ->  NAME as a character device 0:0     (an overlay whiteout)
    .wh..wh..opq    ->  DIR with xattr trusted.overlay.opaque=y

and writing a layer from an overlay upper directory translates back.

Unpacking trusts nothing in the tar.  Every member's path is normalised and must
stay inside the layer (``..`` that climbs out is refused); no member is ever
written through a symlink or a non-directory (each parent is checked, and the
destination is a fresh directory this module made, so only its own creations are
there); a hard link must name a file already in this layer; a relative symlink
may not climb above the layer's root (docker's rule; absolute symlinks are
resolved inside the container, never here); device nodes only when the caller
allows them; overlay's own ``trusted.overlay.*`` xattrs are never taken from a
tar.  Ownership, modes (set after chown, which clears set-id bits), mtimes
(directories last), xattrs, hard links, fifos and devices are kept.

The uncompressed stream is hashed as it is read: that hash is the layer's
diff-id, checked against the image config, and a tar that ends without its
end-of-archive marker (a truncated file) is refused even when no digest is
known.
"""

import bz2
import dataclasses
import enum
import errno as errno_codes
import hashlib
import io
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Collection, Iterable
from typing import IO, TYPE_CHECKING, cast

from pybox.errors import DigestMismatch, LayerError
from pybox.images.store import BlobStore, Readable
from pybox.linux import fstree

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
XATTR_PAX_PREFIX = "SCHILY.xattr."

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"

COPY_CHUNK = 1 << 20

# owner_map(uid, gid) -> the (uid, gid) to record in a tar
OwnerMap = Callable[[int, int], tuple[int, int]]
# TarFile.addfile, or a wrapper of it
AddFile = Callable[[tarfile.TarInfo, IO[bytes] | None], None]


# -- compression ---------------------------------------------------------------

class _RawReader(io.RawIOBase):
    """A readable raw stream whose read() always gives bytes (never None: these
    streams never block), so it fits ``Readable``."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        return super().read(size) or b""


class _Prefixed(_RawReader):
    """A stream with some already-read bytes put back in front (for sniffing)."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def readinto(self, buffer: "WriteableBuffer", /) -> int:
        buf = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


def detect_compression(head: bytes) -> str | None:
    """'gzip', 'zstd', 'bzip2', 'xz' or None (plain tar), from the first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    return None


def blob_compression(blobs: BlobStore, digest: str) -> str | None:
    """detect_compression of a stored blob's first bytes."""
    with blobs.open(digest) as f:
        return detect_compression(f.read(6))


def decompressed(stream: Readable, allowed: Collection[str | None] = ("gzip", "zstd", None)
                 ) -> tuple[Readable, str | None]:
    """(readable uncompressed stream, compression name) for a layer or archive,
    whatever the media type claimed: the magic bytes decide, as docker does."""
    head = b""
    while len(head) < 6:
        chunk = stream.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    kind = detect_compression(head)
    if kind not in allowed:
        raise LayerError(f"unsupported compression {kind}")
    raw = _Prefixed(head, stream)
    if kind is None:
        return io.BufferedReader(raw, COPY_CHUNK), kind
    if kind == "gzip":
        return _GzipReader(raw), kind
    if kind == "zstd":
        import zstandard  # noqa: PLC0415 -- optional and heavy: only for a zstd layer

        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], raw),  # a file object: io.RawIOBase, not typing.IO
            read_across_frames=True, closefd=False)
        return _ZstdChecked(reader), kind
    if kind == "bzip2":
        return bz2.BZ2File(io.BufferedReader(raw)), kind
    return lzma.LZMAFile(io.BufferedReader(raw)), kind


class _GzipReader(_RawReader):
    """Multi-member gzip through zlib directly: faster than gzip.GzipFile for big
    sequential reads, and a stream that ends mid-member is an error, not EOF.
    Output is handed out by offset (no re-slicing of a large buffer per read)."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(31)
        self._pending = b""
        self._pos = 0
        self._eof = False

    def readinto(self, buffer: "WriteableBuffer", /) -> int:
        buf = memoryview(buffer).cast("B")
        while self._pos >= len(self._pending) and not self._eof:
            self._pending, self._pos = b"", 0
            if self._z.eof:
                rest = self._z.unused_data
                self._z = zlib.decompressobj(31)
                data = rest or self._raw.read(COPY_CHUNK)
                if not data:
                    self._eof = True
                    break
                if not data.lstrip(b"\x00"):  # trailing zero padding after members
                    continue
            else:
                data = self._z.unconsumed_tail or self._raw.read(COPY_CHUNK)
                if not data:
                    raise LayerError("gzip stream truncated: compressed data ended "
                                     "before the end-of-stream marker")
            try:
                self._pending = self._z.decompress(data, COPY_CHUNK)
            except zlib.error as e:
                raise LayerError(f"gzip stream corrupt: {e}") from None
        n = min(len(buf), len(self._pending) - self._pos)
        if n <= 0:
            return 0
        buf[:n] = memoryview(self._pending)[self._pos:self._pos + n]
        self._pos += n
        return n


class _ZstdChecked(_RawReader):
    """zstandard's reader, with its errors and an unfinished frame reported as
    LayerError (the reader returns a short EOF for a truncated frame)."""

    def __init__(self, reader: Readable) -> None:
        self._reader = reader

    def readinto(self, buffer: "WriteableBuffer", /) -> int:
        import zstandard  # noqa: PLC0415 -- optional and heavy: only for a zstd layer

        buf = memoryview(buffer).cast("B")
        try:
            data = self._reader.read(len(buf))
        except zstandard.ZstdError as e:
            raise LayerError(f"zstd stream corrupt: {e}") from None
        n = len(data)
        buf[:n] = data
        return n


class HashingReader(_RawReader):
    """Counts and sha256-hashes everything read through it."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.hash = hashlib.sha256()
        self.size = 0

    def readinto(self, buffer: "WriteableBuffer", /) -> int:
        buf = memoryview(buffer).cast("B")
        data = self._stream.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.hash.update(data)
        self.size += n
        return n

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        data = self._stream.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(COPY_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class TarStreamError(Exception):
    """What went wrong reading a streamed tar (``read_tar_stream``); each caller
    says it in its own words (a layer's, an archive's)."""

    class Kind(enum.Enum):
        TRUNCATED = "truncated"    # tarfile: unexpected end of data
        CORRUPT = "corrupt"        # any other tarfile error
        ENDED = "ended"            # the stream ended inside a member
        NO_MARKER = "no-marker"    # complete members, but no end-of-archive marker

    def __init__(self, kind: "TarStreamError.Kind", detail: str = "") -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def read_tar_stream(hashed: HashingReader,
                    add: Callable[[tarfile.TarFile, tarfile.TarInfo], None]) -> None:
    """``add(tar, member)`` for each member of the tar read through ``hashed``,
    then the rest of the stream read (so its hash covers all of it) and the
    end-of-archive marker required: a file cut short at a member boundary is
    refused too.  tarfile's own errors raise TarStreamError."""
    try:
        with tarfile.open(fileobj=hashed, mode="r|") as tar:
            for member in tar:
                add(tar, member)
            end = tar.offset
        hashed.drain()
    except tarfile.TarError as e:
        kind = (TarStreamError.Kind.TRUNCATED if "unexpected end" in str(e)
                else TarStreamError.Kind.CORRUPT)
        raise TarStreamError(kind, str(e)) from None
    except EOFError as e:
        raise TarStreamError(TarStreamError.Kind.ENDED, str(e)) from None
    if hashed.size < end + tarfile.BLOCKSIZE:
        raise TarStreamError(TarStreamError.Kind.NO_MARKER)


# -- member checks (pure: unit-tested without root) ----------------------------

def normalise_member_name(name: str) -> str:
    """The path a member names, relative to the layer root ('' for the root).

    Leading '/' and './' are dropped (tar's convention); a path that climbs out
    with '..' is refused, as is a NUL byte."""
    if "\x00" in name:
        raise LayerError(f"invalid member name {name!r}: NUL byte")
    norm = os.path.normpath("/" + name.lstrip("/"))
    parts = [p for p in name.split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise LayerError(f"invalid member name {name!r}: path escapes the layer")
    return norm.lstrip("/")


def check_symlink_target(rel_path: str, target: str) -> str:
    """docker's rule: a relative symlink must not point above the layer's root
    from where it sits; an absolute one is resolved in the container's root."""
    if not target:
        raise LayerError(f"invalid symlink {rel_path!r}: empty target")
    if "\x00" in target:
        raise LayerError(f"invalid symlink {rel_path!r}: NUL byte in target")
    if target.startswith("/"):
        return target
    depth = rel_path.count("/")  # components of the link's directory
    for part in target.split("/"):
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise LayerError(f"invalid symlink {rel_path!r} -> {target!r}: points "
                             "outside the layer")
    return target


def classify_member(member: tarfile.TarInfo, allow_devices: bool) -> str:
    """What to do with a member: 'whiteout', 'opaque', 'skip' (aufs metadata),
    'dir', 'file', 'symlink', 'hardlink', 'device', 'fifo'.  Raises LayerError
    for types that are not allowed."""
    base = os.path.basename(member.name.rstrip("/"))
    if base == WHITEOUT_OPAQUE:
        return "opaque"
    if base.startswith(WHITEOUT_META_PREFIX):
        return "skip"
    if base.startswith(WHITEOUT_PREFIX):
        if base == WHITEOUT_PREFIX:
            raise LayerError(f"invalid whiteout {member.name!r}: no name")
        return "whiteout"
    if member.isdir():
        return "dir"
    if member.isreg():
        return "file"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.ischr() or member.isblk():
        if not allow_devices:
            raise LayerError(f"device node {member.name!r} not allowed in this layer")
        return "device"
    if member.isfifo():
        return "fifo"
    raise LayerError(f"unsupported tar member type {member.type!r} for {member.name!r}")


# -- unpack --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class UnpackResult:
    """diff_id: sha256 of the uncompressed tar; tar_size: its length; size:
    bytes of file content; compression: what the stream was ('gzip'...)."""

    diff_id: str
    tar_size: int
    size: int
    compression: str | None


_LAYER_TAR_ERRORS = {
    TarStreamError.Kind.TRUNCATED: "truncated layer tar: {}",
    TarStreamError.Kind.CORRUPT: "corrupt layer tar: {}",
    TarStreamError.Kind.ENDED: "truncated layer: {}",
    TarStreamError.Kind.NO_MARKER: "truncated layer: the tar ends without its end-of-archive "
                                   "marker",
}


def unpack_layer(stream: Readable, dest: str, *, allow_devices: bool = True,
                 expected_diff_id: str | None = None) -> UnpackResult:
    """Unpack a (possibly compressed) layer tar from ``stream`` into ``dest``,
    which must be an empty directory this process made.

    Whiteouts become overlay's (char 0:0 devices, the opaque xattr).  Returns
    an UnpackResult; raises LayerError (corrupt, truncated, traversal, not
    allowed) or DigestMismatch, leaving ``dest`` to the caller to remove."""
    plain, kind = decompressed(stream)
    hashed = HashingReader(plain)
    unpacker = _Unpacker(dest, allow_devices=allow_devices)
    try:
        read_tar_stream(hashed, unpacker.add)
        unpacker.finish()
    except TarStreamError as e:
        raise LayerError(_LAYER_TAR_ERRORS[e.kind].format(e.detail)) from None
    finally:
        unpacker.close()
    if expected_diff_id is not None and hashed.digest != expected_diff_id:
        raise DigestMismatch("layer diff-id", expected_diff_id, hashed.digest)
    return UnpackResult(hashed.digest, hashed.size, unpacker.size, kind)


class _Unpacker:
    def __init__(self, dest: str, *, allow_devices: bool) -> None:
        self.dest = dest
        self.allow_devices = allow_devices
        self.is_root = os.geteuid() == 0
        self.known_dirs = {""}
        self.dir_times: dict[str, int] = {}
        self.size = 0
        self.dest_fd = os.open(dest, fstree.DIR_FLAGS)
        self._parent = ("", self.dest_fd)  # the last parent opened: (rel, fd)

    # paths: fd-relative, a layer may hold a tree deeper than PATH_MAX
    def _at(self, rel: str) -> tuple[int | None, str]:
        """(dir fd, name) of rel: its parent directory is opened from the
        layer's root without following a symlink, however deep (the last
        one is kept: tar members come parent before child).  rel "" is the
        root: (None, dest)."""
        if not rel:
            return None, self.dest
        parent, _, name = rel.rpartition("/")
        cached, fd = self._parent
        if parent != cached:
            if parent.startswith(cached + "/") if cached else True:
                rest = parent[len(cached) + 1:] if cached else parent
                base = fd
            else:
                rest, base = parent, self.dest_fd
            new = fstree.open_beneath(base, rest)
            self._drop_parent()
            self._parent = (parent, new)
            fd = new
        return fd, name

    def _drop_parent(self) -> None:
        fd = self._parent[1]
        if fd != self.dest_fd:
            os.close(fd)
        self._parent = ("", self.dest_fd)

    def _lstat(self, rel: str) -> os.stat_result:
        pfd, name = self._at(rel)
        return os.stat(name, dir_fd=pfd, follow_symlinks=False)

    def _proc(self, rel: str) -> str:
        """A path for the calls without dir_fd (l*xattr): the parent pinned
        by its fd, the name not followed."""
        pfd, name = self._at(rel)
        return name if pfd is None else f"/proc/self/fd/{pfd}/{name}"

    def close(self) -> None:
        self._drop_parent()
        os.close(self.dest_fd)

    def _ensure_parent(self, rel: str, name: str) -> None:
        """Make sure every component of rel's parent is a real directory (created
        0755 when missing, as docker does); refuse symlinks and files in the way."""
        parent = os.path.dirname(rel)
        if parent in self.known_dirs:
            return
        walked = ""
        for part in parent.split("/"):
            walked = f"{walked}/{part}" if walked else part
            if walked in self.known_dirs:
                continue
            try:
                st = self._lstat(walked)
            except FileNotFoundError:
                pfd, pname = self._at(walked)
                os.mkdir(pname, 0o755, dir_fd=pfd)
                self.known_dirs.add(walked)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise LayerError(f"invalid member {name!r}: {walked!r} is not a "
                                 "directory (a symlink or file in the path)")
            self.known_dirs.add(walked)

    def _clear(self, rel: str) -> None:
        """Remove whatever this layer already has at rel (a later member wins)."""
        try:
            st = self._lstat(rel)
        except FileNotFoundError:
            return
        pfd, name = self._at(rel)
        if stat.S_ISDIR(st.st_mode):
            fstree.remove_tree_at(pfd, name)
            prefix = rel + "/"
            self.known_dirs = {d for d in self.known_dirs
                               if d != rel and not d.startswith(prefix)}
            self.dir_times = {d: t for d, t in self.dir_times.items()
                              if d != rel and not d.startswith(prefix)}
        else:
            os.unlink(name, dir_fd=pfd)

    # members
    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        action = classify_member(member, self.allow_devices)
        rel = normalise_member_name(member.name)
        if action == "skip":
            return
        if action == "opaque":
            dir_rel = os.path.dirname(rel)
            self._ensure_parent(rel, member.name)
            self._make_dir(dir_rel, None)
            os.setxattr(self._proc(dir_rel), OVERLAY_OPAQUE_XATTR, b"y",
                        follow_symlinks=False)
            return
        if action == "whiteout":
            base = os.path.basename(rel)
            target = os.path.join(os.path.dirname(rel), base[len(WHITEOUT_PREFIX):])
            self._ensure_parent(target, member.name)
            self._clear(target)
            pfd, name = self._at(target)
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
            self._set_owner_time(target, member)
            return
        if rel == "":
            if action != "dir":
                raise LayerError(f"invalid member {member.name!r}: the layer root must "
                                 "be a directory")
            self._set_metadata("", member, tar, is_dir=True)
            return
        self._ensure_parent(rel, member.name)
        if action == "dir":
            self._make_dir(rel, member)
            return
        if action == "hardlink":
            target = normalise_member_name(member.linkname)
            self._check_link_target(rel, target, member)
            if target == rel:
                return
            self._clear(rel)
            tfd = fstree.open_beneath(self.dest_fd, os.path.dirname(target))
            try:
                pfd, name = self._at(rel)
                os.link(os.path.basename(target), name, src_dir_fd=tfd, dst_dir_fd=pfd,
                        follow_symlinks=False)
            finally:
                os.close(tfd)
            return
        self._clear(rel)
        pfd, name = self._at(rel)
        if action == "file":
            self._write_file(pfd, name, tar, member)
            self.size += member.size
        elif action == "symlink":
            check_symlink_target(rel, member.linkname)
            os.symlink(member.linkname, name, dir_fd=pfd)
        elif action == "device":
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                     dir_fd=pfd)
        elif action == "fifo":
            os.mkfifo(name, 0o600, dir_fd=pfd)
        self._set_metadata(rel, member, tar, is_dir=False)

    def _check_link_target(self, rel: str, target: str, member: tarfile.TarInfo) -> None:
        if not target:
            raise LayerError(f"invalid hard link {member.name!r}: empty target")
        walked = ""
        for part in os.path.dirname(target).split("/") if "/" in target else ():
            walked = f"{walked}/{part}" if walked else part
            if walked not in self.known_dirs:
                try:
                    st = self._lstat(walked)
                except FileNotFoundError:
                    break
                if not stat.S_ISDIR(st.st_mode):
                    raise LayerError(f"invalid hard link {member.name!r} -> "
                                     f"{member.linkname!r}: goes through a non-directory")
        try:
            st = self._lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise LayerError(f"invalid hard link {member.name!r} -> {member.linkname!r}: "
                             "target is not in this layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise LayerError(f"invalid hard link {member.name!r} -> {member.linkname!r}: "
                             "target is a directory")

    def _make_dir(self, rel: str, member: tarfile.TarInfo | None) -> None:
        is_dir: bool | None
        try:
            st = self._lstat(rel)
            is_dir = stat.S_ISDIR(st.st_mode)
        except FileNotFoundError:
            is_dir = None
        if is_dir is False:
            self._clear(rel)
        if not is_dir:
            pfd, name = self._at(rel)
            os.mkdir(name, 0o755, dir_fd=pfd)
        self.known_dirs.add(rel)
        if member is not None:
            self._set_metadata(rel, member, None, is_dir=True)

    def _write_file(self, pfd: int | None, name: str, tar: tarfile.TarFile,
                    member: tarfile.TarInfo) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            src = tar.extractfile(member) if member.size else None
            if src is not None:
                remaining = member.size
                while remaining:
                    data = src.read(min(COPY_CHUNK, remaining))
                    if not data:
                        raise LayerError(f"truncated layer: {member.name!r} ends early")
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    remaining -= len(data)
        finally:
            os.close(fd)

    def _set_owner_time(self, rel: str, member: tarfile.TarInfo) -> None:
        pfd, name = self._at(rel)
        if self.is_root:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        mtime_ns = int(member.mtime * 10**9)
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _set_metadata(self, rel: str, member: tarfile.TarInfo, tar: tarfile.TarFile | None,
                      is_dir: bool) -> None:
        pfd, name = self._at(rel)
        is_link = member.issym()
        if self.is_root:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        for key, value in member.pax_headers.items():
            if key.startswith(XATTR_PAX_PREFIX):
                self._set_xattr(self._proc(rel), key[len(XATTR_PAX_PREFIX):], value,
                                member)
        if not is_link:
            os.chmod(name, member.mode & 0o7777, dir_fd=pfd)
        mtime_ns = int(member.mtime * 10**9)
        if is_dir:
            self.dir_times[rel] = mtime_ns
        else:
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _set_xattr(self, path: str, name: str, value: str | bytes,
                   member: tarfile.TarInfo) -> None:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            return  # never let a tar set overlay's own metadata (redirects, opaque)
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        try:
            os.setxattr(path, name, data, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno_codes.ENOTSUP, errno_codes.EOPNOTSUPP):
                return
            raise LayerError(f"{member.name!r}: cannot set xattr {name}: "
                             f"{e.strerror}", errno=e.errno) from None

    def finish(self) -> None:
        # deepest first: setting a child's time never disturbs its parent's again
        for rel in sorted(self.dir_times, key=lambda r: r.count("/"), reverse=True):
            ns = self.dir_times[rel]
            pfd, name = self._at(rel)
            os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)


# -- writing layers ------------------------------------------------------------

def read_xattrs(path: str) -> dict[str, bytes]:
    """A file's extended attributes (not followed), without overlay's own."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_fd(fd: int) -> bool:
    """Is the directory open as ``fd`` overlay-opaque (hides what is below it)?"""
    try:
        return os.getxattr(fd, OVERLAY_OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def is_opaque_dir(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def make_tarinfo(rel: str, path: str, st: os.stat_result, is_dir: bool) -> tarfile.TarInfo:
    """The tar header of the entry at ``rel`` (``path`` to read its xattrs
    from): mode, numeric owners, mtime, xattrs; the caller sets type and size."""
    info = tarfile.TarInfo(rel + ("/" if is_dir and rel else "") if rel else "./")
    info.mode = stat.S_IMODE(st.st_mode)
    if is_dir:
        info.type = tarfile.DIRTYPE
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 10**9
    xattrs = read_xattrs(path)
    if xattrs:
        info.pax_headers = {XATTR_PAX_PREFIX + k: v.decode("utf-8", "surrogateescape")
                            for k, v in xattrs.items()}
    return info


def write_tree(root: str, out: IO[bytes], *, overlay_whiteouts: bool = False,
               skip: Iterable[str] = (), owner_map: OwnerMap | None = None) -> None:
    """Write the tree under ``root`` as a layer tar to the binary file ``out``
    (PAX format, sorted names, numeric owners, xattrs, hard links).

    With ``overlay_whiteouts`` (an overlay upper dir: commit) char 0:0 devices
    become ``.wh.NAME`` and opaque directories get ``.wh..wh..opq``; otherwise
    (export of a merged view) the tree is written as it is.  ``skip``: relative
    paths left out with everything under them.  ``owner_map(uid, gid)`` gives
    the owners to record (a --userns-remap container's files, shifted back to
    the ids its processes saw)."""
    seen_inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        add: AddFile = tar.addfile
        if owner_map is not None:
            mapped = owner_map

            def add(info: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None:
                info.uid, info.gid = mapped(info.uid, info.gid)
                info.uname = info.gname = ""
                tar.addfile(info, fileobj)

        try:
            root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise LayerError(f"cannot read {root}: {e.strerror}", errno=e.errno) from None
        try:
            _write_dir(add, root_fd, "", overlay_whiteouts, set(skip), seen_inodes)
        finally:
            os.close(root_fd)


def _write_dir(add: AddFile, dir_fd: int, rel_dir: str, overlay_whiteouts: bool,
               skip: set[str], seen_inodes: dict[tuple[int, int], str]) -> None:
    """The entries of the directory open as ``dir_fd``, at any depth (an
    iterative fd walk: a container's 2,500-deep mkdir loop is one tree like
    any other).  A container may be running and changing this tree (export,
    commit --pause=false): every entry is reached from its parent's fd
    without following a symlink (a directory swapped for a link to / reads
    nothing of the host's), a regular file is opened O_PATH and read only
    once fstat says it is one, and xattrs are read through
    /proc/self/fd/PARENT/NAME (the parent pinned, NAME not followed)."""
    def unreadable(entry: fstree.Entry, e: OSError) -> None:
        rel = f"{rel_dir}/{entry.rel}" if rel_dir and entry.rel else (entry.rel or rel_dir)
        raise LayerError(f"cannot read {rel or '/'}: {e.strerror}", errno=e.errno) from None

    for entry in fstree.walk(dir_fd, on_error=unreadable):
        if not entry.rel:
            if overlay_whiteouts and rel_dir and is_opaque_fd(dir_fd):
                _opaque_marker(add, rel_dir)
            continue
        rel = f"{rel_dir}/{entry.rel}" if rel_dir else entry.rel
        if rel in skip:
            entry.descend = False
            continue
        _write_entry(add, entry, rel, overlay_whiteouts, seen_inodes)


def _opaque_marker(add: AddFile, rel_dir: str) -> None:
    info = tarfile.TarInfo(f"{rel_dir}/{WHITEOUT_OPAQUE}")
    info.mode = 0
    add(info, None)


def _write_entry(add: AddFile, entry: fstree.Entry, rel: str, overlay_whiteouts: bool,
                 seen_inodes: dict[tuple[int, int], str]) -> None:
    """One entry of _write_dir (its parent open as entry.parent_fd)."""
    dir_fd, name, st = entry.parent_fd, entry.name, entry.st
    if dir_fd is None:
        return  # the walk's top: _write_dir's own directory
    if overlay_whiteouts and is_overlay_whiteout(st):
        parent = os.path.dirname(rel)
        info = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent
                               else WHITEOUT_PREFIX + name)
        info.mode = 0
        info.mtime = st.st_mtime_ns // 10**9
        add(info, None)
        return
    if stat.S_ISDIR(st.st_mode):
        if entry.fd is None:
            return
        add(make_tarinfo(rel, f"/proc/self/fd/{dir_fd}/{name}", st, True), None)
        if overlay_whiteouts and is_opaque_fd(entry.fd):
            _opaque_marker(add, rel)
        return
    if st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in seen_inodes:
            info = make_tarinfo(rel, f"/proc/self/fd/{dir_fd}/{name}", st, False)
            info.type = tarfile.LNKTYPE
            info.linkname = seen_inodes[key]
            add(info, None)
            return
        seen_inodes[key] = rel
    add_entry(add, dir_fd, name, rel, st)


def add_entry(add: AddFile, dir_fd: int, name: str, rel: str, st: os.stat_result) -> None:
    """Add entry ``name`` of the directory open as ``dir_fd`` (``st``: its
    lstat) to a tar as ``rel``.  The tree may belong to a running container:
    a regular file is opened O_PATH and read only once fstat says it still is
    one, nothing is followed, an entry gone or swapped meanwhile is left out,
    and sockets are not archived (tar cannot hold them; docker skips them too)."""
    info = make_tarinfo(rel, f"/proc/self/fd/{dir_fd}/{name}", st, stat.S_ISDIR(st.st_mode))
    if stat.S_ISREG(st.st_mode):
        try:
            pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return
        try:
            if not stat.S_ISREG(os.fstat(pfd).st_mode):
                return  # swapped (for a device, a link...) meanwhile: never opened
            with open(f"/proc/self/fd/{pfd}", "rb") as f:
                info.size = os.fstat(f.fileno()).st_size
                add(info, f)
        finally:
            os.close(pfd)
        return
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        try:
            info.linkname = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        return
    add(info, None)
