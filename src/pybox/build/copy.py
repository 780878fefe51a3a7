"""COPY and ADD: sources from the context (or a stage's or image's rootfs)
into the step's root filesystem, as moby's builder/dockerfile/copy.go.

Every path is hostile: a source is resolved inside its root (symlinks followed
but never out of it, ``..`` stops at the root, as moby's FollowSymlinkInScope),
and so is the destination inside the image's rootfs (an image may hold
``/dst -> /etc`` or ``-> ../../..``).  Symlinks met inside a copied directory
are copied as symlinks, never followed.
"""

from __future__ import annotations

import email.utils
import enum
import fnmatch
import functools
import grp
import hashlib
import os
import posixpath
import pwd
import shutil
import socket
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pybox.engine.archive import extract_tree, read_file_in_root
from pybox.errors import BuildError, PyboxError
from pybox.images.progress import bar

MAX_SYMLINKS = 255
URL_TIMEOUT = 60
READ_SIZE = 32 << 10  # a download's reads: a Go reader's, so its progress counts as dockerd's
PROGRESS_EVERY = 512 << 10  # moby's progress.Reader: bytes between two updates, at most...
PROGRESS_INTERVAL = 0.1  # ...and seconds between two (its rate limiter), the last one aside
Progress = Callable[[dict[str, Any]], None]  # takes one of docker's JSON progress messages


def resolve_in_scope(root: str, path: str) -> str:
    """``path`` (absolute or relative to ``root``) as a host path below
    ``root``, each symlink on the way followed inside ``root``; the last
    component too (a missing one is left as it is)."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise BuildError(f"too many links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def resolve_parent_in_scope(root: str, path: str) -> str:
    """As resolve_in_scope, but the last component is not followed (a
    symlink there is the thing itself: COPY'd sources named by a link are
    followed by the caller when it wants)."""
    head, _, name = path.rstrip("/").rpartition("/")
    if not name or name in (".", ".."):
        return resolve_in_scope(root, path)
    return os.path.join(resolve_in_scope(root, head or "/"), name)


def has_wildcard(path: str) -> bool:
    return any(ch in path for ch in "*?[")


@dataclass
class Source:
    """One resolved source: the host path of it, its path as written (relative
    to its root), and its checksum ("file:<hex>" / "dir:<hex>")."""

    host_path: str
    rel: str
    digest: str
    is_dir: bool
    url: str = ""
    mtime: float | None = None


class Headers(enum.Enum):
    """Whose tar header dockerd 20.10 hashes a source's file by (tarsum v1:
    name, mode, owner, size, type, link, no mtime, the device numbers, the
    security xattrs)."""

    # the context as the docker CLI tars it: permission bits only (its
    # go-archive drops the type bits), no user names (tarsum blanks them)
    CLI = "cli"
    # a context dockerd tars itself (a git checkout): its own 20.10 archive's
    # FileInfoHeader keeps the file type bits in the mode (fillGo18FileTypeBits);
    # tarsum still blanks the names
    DAEMON = "daemon"
    # a stage's or an image's files, a download: dockerd's lazySource hashes its
    # FileInfoHeader directly -- type bits, and the owners' names Go's
    # tar.FileInfoHeader looks up on the daemon's host
    LAZY = "lazy"


def _tarsum_header(name: str, st: os.stat_result, link: str, xattrs: dict[str, bytes],
                   headers: Headers = Headers.CLI, hard_link: str = "") -> bytes:
    """tarsum v1's header of one file as ``headers`` says.  ``hard_link``: the
    file is the tar's hard link to that earlier member (typeflag 1, no size,
    no data)."""
    mode = st.st_mode
    if hard_link:
        flag, link = "1", hard_link
    elif stat.S_ISDIR(mode):
        flag, name = "5", name.rstrip("/") + "/"
    elif stat.S_ISLNK(mode):
        flag = "2"
    elif stat.S_ISCHR(mode):
        flag = "3"
    elif stat.S_ISBLK(mode):
        flag = "4"
    elif stat.S_ISFIFO(mode):
        flag = "6"
    else:
        flag = "0"
    size = st.st_size if flag == "0" else 0
    major = os.major(st.st_rdev) if flag in "34" else 0
    minor = os.minor(st.st_rdev) if flag in "34" else 0
    bits = stat.S_IMODE(mode) | (stat.S_IFMT(mode) if headers is not Headers.CLI else 0)
    uname, gname = _host_names(st.st_uid, st.st_gid) if headers is Headers.LAZY else ("", "")
    fields = [("name", name), ("mode", str(bits)), ("uid", str(st.st_uid)),
              ("gid", str(st.st_gid)), ("size", str(size)), ("typeflag", flag),
              ("linkname", link), ("uname", uname), ("gname", gname), ("devmajor", str(major)),
              ("devminor", str(minor))]
    out = b"".join((k + v).encode("utf-8", "surrogateescape") for k, v in fields)
    for key in sorted(xattrs):
        out += key.encode() + xattrs[key]
    return out


@functools.cache
def _host_names(uid: int, gid: int) -> tuple[str, str]:
    """The user and group names of ``uid``/``gid`` on this host ("" if none),
    as Go's archive/tar fills Uname/Gname (os/user, best effort)."""
    try:
        uname = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        uname = ""
    try:
        gname = grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        gname = ""
    return uname, gname


def _first_links(root: str) -> dict[tuple[int, int], str]:
    """The context's hard-linked files: (device, inode) -> the path the docker
    CLI's tar sends as the file (the first of its links in the CLI's walk:
    each directory's names in byte order, depth first); its other links are
    tar hard links to it, which dockerd's tarsum hashes as such.  Made once
    per context (and only for one that has hard links)."""
    st = os.stat(root)
    return _first_links_of(root, (st.st_dev, st.st_ino, st.st_ctime_ns))


@functools.lru_cache(maxsize=4)
def _first_links_of(root: str, _identity: tuple[int, int, int]) -> dict[tuple[int, int], str]:
    # a walk in that order meets a before b iff a's components (bytes) sort before b's
    first: dict[tuple[int, int], tuple[tuple[bytes, ...], str]] = {}
    stack = [""]
    while stack:
        top = stack.pop()
        with os.scandir(os.path.join(root, top) if top else root) as it:
            for entry in it:
                rel = f"{top}/{entry.name}" if top else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink > 1:
                        key = tuple(os.fsencode(part) for part in rel.split("/"))
                        known = first.get((st.st_dev, st.st_ino))
                        if known is None or key < known[0]:
                            first[(st.st_dev, st.st_ino)] = (key, rel)
    return {inode: rel for inode, (_, rel) in first.items()}


def file_sum(root: str, rel: str, headers: Headers = Headers.CLI) -> str:
    """moby's lazySource.Hash: ``rel`` resolved inside ``root`` (symlinks
    followed in scope), its tarsum v1 header and content hashed; a path that
    resolves to nothing hashes as a path; ``headers``: whose tar headers (see
    Headers)."""
    host = resolve_in_scope(root, rel)
    rel_path = os.path.relpath(host, root)
    try:
        st = os.lstat(host)
    except OSError:
        # (a dangling symlink: the lazySource names the path it resolved to, the
        # context's archiveContext the path as asked)
        return rel_path if headers is Headers.LAZY else rel
    link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
    xattrs: dict[str, bytes] = {}
    try:
        xattrs["security.capability"] = os.getxattr(host, "security.capability",
                                                    follow_symlinks=False)
    except OSError:
        pass
    hard_link = ""
    if headers is not Headers.LAZY and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        first = _first_links(root).get((st.st_dev, st.st_ino), rel_path)
        hard_link = first if first != rel_path else ""
    h = hashlib.sha256(_tarsum_header(rel_path, st, link, xattrs, headers, hard_link))
    if stat.S_ISREG(st.st_mode) and st.st_size and not hard_link:
        with open(host, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def source_digest(root: str, rel: str, headers: Headers = Headers.CLI) -> tuple[str, bool]:
    """The checksum the cache compares and history shows, as dockerd's copier:
    "file:<sum>" for a file, "dir:" + sha256 of the sorted sums of everything
    below a directory (itself included unless it is the root), joined by
    commas.  -> (checksum, is a directory)."""
    host = resolve_in_scope(root, rel)
    if not os.path.isdir(host) or os.path.islink(host):
        return "file:" + file_sum(root, rel, headers), False
    sums = []
    base = os.path.relpath(host, root)
    if base != ".":
        sums.append(file_sum(root, base, headers))
    for dirpath, dirnames, filenames in os.walk(host):
        for name in dirnames + filenames:
            sums.append(file_sum(root, os.path.relpath(os.path.join(dirpath, name), root), headers))
    return "dir:" + hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest(), True


def _walk_rel(root: str) -> Iterator[str]:
    """Every path below root, relative, '/'-separated (for wildcards)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


def _match(pattern: str, rel: str) -> bool:
    """Go's filepath.Match: '*' does not cross '/'."""
    pat_parts, rel_parts = pattern.split("/"), rel.split("/")
    if len(pat_parts) != len(rel_parts):
        return False
    return all(fnmatch.fnmatchcase(r, p) for p, r in zip(pat_parts, rel_parts, strict=True))


def collect_sources(root: str, srcs: list[str], instruction: str,
                    headers: Headers = Headers.CLI) -> list[Source]:
    """The sources named by ``srcs`` under ``root``, wildcards expanded; docker's
    errors for the missing ones.  ``headers``: how their sums are made (the
    context's, COPY --from's stage or image: see Headers)."""
    out: list[Source] = []
    for src in srcs:
        clean = posixpath.normpath("/" + src).lstrip("/")
        if has_wildcard(clean):
            found = [rel for rel in _walk_rel(root) if _match(clean, rel)]
            if not found:
                raise BuildError(f"{instruction} failed: no source files were specified")
            for rel in found:
                host = resolve_in_scope(root, rel)
                digest, is_dir = source_digest(root, rel, headers)
                out.append(Source(host, rel, digest, is_dir))
            continue
        host = resolve_in_scope(root, clean)
        if not os.path.lexists(host):
            raise BuildError(f"{instruction} failed: file not found in build context or "
                             f"excluded by .dockerignore: stat {clean or '.'}: file does not exist")
        digest, is_dir = source_digest(root, clean, headers)
        out.append(Source(host, clean, digest, is_dir))
    return out


class ReadProgress:
    """moby's progress.Reader, as dockerd wraps a download in it: after each
    read, an update when more than 512 KiB (or 1% of ``total``, if less) were
    read since the last one; an update is sent when it is the last (the read
    that met the end with nothing), when the whole ``total`` is in, or else
    at most one per 100 ms.  A message is docker's JSON progress ("status":
    ``action``, "progressDetail", "progress" as JSONProgress renders it,
    "id" when there is one); the last update is followed by an empty
    message."""

    def __init__(self, report: Progress, action: str, id_: str = "", total: int = 0) -> None:
        self.report = report
        self.action = action
        self.id = id_
        self.total = max(total, 0)
        self.current = 0
        self.last_update = 0
        self.allowed_at = 0.0

    def read(self, count: int, end: bool = False) -> None:
        """``count`` bytes read; ``end``: this read met the end of the body."""
        self.current += count
        every = PROGRESS_EVERY
        if self.total > 0:
            every = min(every, int(0.01 * self.total))
        if self.current - self.last_update > every or end:
            self._update(end and count == 0)
            self.last_update = self.current

    def _update(self, last: bool) -> None:
        now = time.monotonic()
        if not (last or self.current == self.total or now >= self.allowed_at):
            return
        if not last and self.current != self.total:
            self.allowed_at = now + PROGRESS_INTERVAL
        message: dict[str, Any] = {"status": self.action}
        detail = {k: v for k, v in (("current", self.current), ("total", self.total)) if v}
        message["progressDetail"] = detail
        if self.current > 0 or self.total > 0:
            message["progress"] = bar(self.current, self.total)
        if self.id:
            message["id"] = self.id
        self.report(message)
        if last:
            self.report({})


def download(url: str, tmpdir: str, report: Progress | None = None) -> Source:
    """ADD URL: the file fetched into ``tmpdir``; its mtime the Last-Modified;
    its progress to ``report`` as dockerd streams it ("Downloading")."""
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response:
            name = _safe_name(urllib.parse.urlsplit(url).path)
            root = tempfile.mkdtemp(prefix="download-", dir=tmpdir)
            path = os.path.join(root, name)
            try:
                total = int(response.headers.get("Content-Length") or -1)
            except ValueError:
                total = -1
            tracker = ReadProgress(report, "Downloading", total=total) if report else None
            with open(path, "wb") as f:
                while data := response.read(READ_SIZE):
                    f.write(data)
                    if tracker is not None:
                        # (Go's body gives the end with the last bytes when it knows the length)
                        tracker.read(len(data), end=tracker.current + len(data) == total)
                if tracker is not None and tracker.current != total:
                    tracker.read(0, end=True)
            mtime = None
            modified = response.headers.get("Last-Modified")
            if modified:
                try:
                    mtime = email.utils.parsedate_to_datetime(modified).timestamp()
                except (TypeError, ValueError):
                    mtime = None
    except urllib.error.HTTPError as e:
        body = e.read(512).decode("utf-8", "replace").strip()
        raise BuildError(f"ADD failed: failed to GET {url} with status {e.code} {e.reason}: "
                         f"{body}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise BuildError(f'ADD failed: Get "{url}": {_dial_error(url, e)}') from None
    os.chmod(path, 0o600)
    # (dockerd names a download by its bare sum, no "file:")
    return Source(path, name, file_sum(root, name, Headers.LAZY), False, url=url, mtime=mtime)


def _dial_error(url: str, e: BaseException) -> str:
    """Go's net/http words for a failed GET, as dockerd prints them."""
    reason = getattr(e, "reason", e)
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if isinstance(reason, ConnectionRefusedError):
        return f"dial tcp {host}:{port}: connect: connection refused"
    if isinstance(reason, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"dial tcp {host}:{port}: i/o timeout"
    return str(getattr(reason, "strerror", None) or reason)


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


# -- the destination ---------------------------------------------------------------

def mkdir_all(root: str, path: str, owner: tuple[int, int]) -> str:
    """Create ``path`` (absolute, in the image) inside ``root`` with 0755 and
    ``owner`` for the new directories; -> its host path."""
    parts = [p for p in path.split("/") if p and p != "."]
    current = "/"
    for part in parts:
        current = posixpath.join(current, part)
        host = resolve_in_scope(root, current)
        if os.path.isdir(host):
            continue
        if os.path.lexists(host):
            raise BuildError(f"mkdir {current}: not a directory")
        os.mkdir(host, 0o755)
        os.chmod(host, 0o755)
        os.lchown(host, *owner)
    return resolve_in_scope(root, path)


def _copy_entry(src: str, dest: str, owner: tuple[int, int] | None, mode: int | None,
                mtime: float | None = None) -> None:
    """One file, symlink or special file from ``src`` to the host path ``dest``
    (replacing a non-directory there)."""
    st = os.lstat(src)
    if os.path.lexists(dest) and not os.path.isdir(dest) or os.path.islink(dest):
        os.unlink(dest)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISREG(st.st_mode):
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dest)
    else:
        return  # sockets, devices: not copied
    uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
    os.lchown(dest, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dest, mode if mode is not None else stat.S_IMODE(st.st_mode))
    times = (st.st_atime, mtime if mtime is not None else st.st_mtime)
    os.utime(dest, times, follow_symlinks=False)


def _hard_link(first: str, dest: str) -> None:
    """``dest`` made a hard link of ``first`` (a file this copy wrote inside its
    destination, so the link never reaches out of it), replacing a
    non-directory there."""
    if os.path.islink(dest) or os.path.lexists(dest) and not os.path.isdir(dest):
        os.unlink(dest)
    os.link(first, dest, follow_symlinks=False)


def _copy_dir(src: str, dest: str, owner: tuple[int, int] | None, mode: int | None) -> None:
    """The contents of directory ``src`` into the host directory ``dest``.
    Files hard-linked to each other inside ``src`` stay so in ``dest`` (one
    copy, the others linked to it), as dockerd's tar-and-untar copy keeps
    them; a link to a file outside ``src`` is a file of its own."""
    linked: dict[tuple[int, int], str] = {}  # (dev, inode) in src -> its first copy in dest
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target_dir = dest if rel == "." else os.path.join(dest, rel)
        for name in list(dirnames):
            s = os.path.join(dirpath, name)
            d = os.path.join(target_dir, name)
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):  # a link to a dir: copied as a link
                dirnames.remove(name)
                _copy_entry(s, d, owner, None)
                continue
            if os.path.lexists(d) and (os.path.islink(d) or not os.path.isdir(d)):
                os.unlink(d)
            if not os.path.isdir(d):
                os.mkdir(d)
            uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
            os.lchown(d, uid, gid)
            os.chmod(d, mode if mode is not None else stat.S_IMODE(st.st_mode))
        for name in filenames:
            s, d = os.path.join(dirpath, name), os.path.join(target_dir, name)
            st = os.lstat(s)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                first = linked.get((st.st_dev, st.st_ino))
                if first is not None:
                    _hard_link(first, d)
                    continue
                linked[(st.st_dev, st.st_ino)] = d
            _copy_entry(s, d, owner, mode)
    # directory times last (writing into them changed them)
    for dirpath, dirnames, _ in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        for name in dirnames:
            s = os.path.join(dirpath, name)
            if not os.path.islink(s):
                st = os.lstat(s)
                d = os.path.join(dest, rel, name) if rel != "." else os.path.join(dest, name)
                os.utime(d, (st.st_atime, st.st_mtime), follow_symlinks=False)


def _is_archive(path: str) -> bool:
    """ADD's auto-extraction: a tar, plain or gzip/bzip2/xz compressed."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _safe_name(path: str) -> str:
    """The last element of a path, never one that climbs ('..', '.', '')."""
    name = posixpath.basename(path.rstrip("/"))
    return name if name not in ("", ".", "..") else "download"


def copy_into(rootfs: str, sources: list[Source], dest: str, workdir: str, *,
              owner: tuple[int, int] | None, mode: int | None, extract: bool,
              instruction: str) -> None:
    """Copy ``sources`` to ``dest`` of the image at ``rootfs`` (a mounted
    snapshot): dest relative to ``workdir``; a trailing '/' or several sources
    make it a directory; a directory's contents go into dest; ADD extracts
    local archives (``extract``)."""
    dir_owner = owner if owner is not None else (0, 0)
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest in ("/", ".")
    if len(sources) > 1 and not dest_is_dir:
        raise BuildError(f"When using {instruction} with more than one source file, the "
                         "destination must be a directory and end with a /")
    clean = posixpath.normpath(dest)
    for source in sources:
        if source.is_dir:
            target = mkdir_all(rootfs, clean, dir_owner)
            _copy_dir(source.host_path, target, owner, mode)
            continue
        if extract and not source.url and _is_archive(source.host_path):
            target = mkdir_all(rootfs, clean, dir_owner)
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with open(source.host_path, "rb") as f:
                    extract_tree(fd, clean, iter(lambda: f.read(1 << 20), b""))
            except PyboxError as e:  # a hostile member (a link out of dest...), in dockerd's frame
                raise BuildError(f"failed to copy files: {e}") from None
            finally:
                os.close(fd)
            continue
        existing = resolve_in_scope(rootfs, clean)
        if dest_is_dir or os.path.isdir(existing):
            parent = mkdir_all(rootfs, clean, dir_owner)
            target = os.path.join(parent, _safe_name(source.rel))
        else:
            parent = mkdir_all(rootfs, posixpath.dirname(clean), dir_owner)
            target = os.path.join(parent, _safe_name(clean))
        # (host_path is resolved in its root already: never realpath'd out of it)
        _copy_entry(source.host_path, target, owner, mode, source.mtime)


def chown_ids(rootfs: str, spec: str) -> tuple[int, int]:
    """--chown=user[:group] (names looked up in the image's /etc/passwd and
    /etc/group; a lone user is also the group, as moby's parseChownFlag)."""
    user, _, group = spec.partition(":")
    group = group or user

    def table(path: str) -> list[list[str]]:
        fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            data = read_file_in_root(fd, path, 4 << 20)
        except OSError:
            return []
        finally:
            os.close(fd)
        return [line.split(":") for line in data.decode(errors="replace").splitlines()
                if line and not line.startswith("#")]

    def lookup(name: str, path: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        entry = next((e for e in table(path) if len(e) > 2 and e[0] == name and e[2].isdigit()),
                     None)
        if entry is None:
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't "
                             f"find {what} for {'user' if what == 'uid' else 'group'} {name}: "
                             f"no such {'user' if what == 'uid' else 'group'}: {name}")
        return int(entry[2])

    return lookup(user, "/etc/passwd", "uid"), lookup(group, "/etc/group", "gid")


def write_heredoc_source(tmpdir: str, name: str, content: str) -> Source:
    """COPY <<EOF /file: the here-document as a file of the context."""
    root = tempfile.mkdtemp(prefix="heredoc-", dir=tmpdir)
    path = os.path.join(root, _safe_name(name))
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, 0o644)
    return Source(path, name, "file:" + file_sum(root, _safe_name(name)), False)
