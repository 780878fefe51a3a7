"""A build's context, as dockerd 20.10's classic builder gets it
(builder/remotecontext): the tar of POST /build's body, or a remote context.

The body (plain, gzip, bzip2 or xz: the magic bytes decide, as moby's
DecompressStream) is never held whole in memory.  Its files go into a fresh
directory under the daemon's data root (``<root>/builder/contexts``), with the
rules docker cp's extraction applies to hostile archives
(pybox.engine.archive.extract_tree: no member, hard link or symlink target out
of the directory, nothing written through a symlink).  A plain tar of regular
files and directories only (what the docker CLI and docker-py send) is first
kept on disk as it came and indexed (ContextFiles): the Dockerfile is read and
COPY/ADD's sources hashed from it, and it is extracted (by the same extractor)
only when a step misses the cache -- a cached rebuild writes no file of it.
Any other body is extracted as it arrives.  The directory is the builder's
``context_dir``; ``BuildContext.close`` removes it whatever happened, and a
daemon that died mid-build has its leftovers removed by the next build.

``remote`` (the ``remote`` query parameter) is what dockerd's Detect takes: a
git URL (``git://``, ``git@``, ``github.com/``, or an http(s) URL ending in
``.git`` with an optional ``#ref:subdir``) cloned with Debian's git as moby's
gitutils does (init, fetch --depth 1 of the ref, checkout, submodules;
system and user git config ignored, the file protocol refused) and then taken
through the same extraction as an uploaded tar; an http(s) URL of a tarball,
or of a plain Dockerfile (text/plain: a build without context files).  An
unreachable one fails with dockerd's words ("error downloading remote context
URL: ...", "error fetching: ...").

The Dockerfile (``dockerfile``, a path inside the context; "Dockerfile" by
default, "dockerfile" tried too) is looked up in the context without leaving
it (``..`` that climbs out is refused, symlinks resolve inside it, as moby's
FollowSymlinkInScope).  As dockerd's removeDockerfile, the Dockerfile and
``.dockerignore`` are then removed from the context when ``.dockerignore``
names them (the docker CLI always sends both: the daemon reads the Dockerfile
first); the builder gets the Dockerfile's content as read here
(BuildOptions.dockerfile_content), so one removed, or a remote one, is built
all the same.  docker-py
and the docker CLI send a Dockerfile from outside the context inside the tar
under a private name (``.dockerfile.<hex>``, listed in the .dockerignore they
send): the same rule takes it out of the context.  The rest of .dockerignore is
the client's to apply, as with dockerd.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from pybox.build import dockerignore
from pybox.build.copy import (
    READ_SIZE,
    Headers,
    Progress,
    ReadProgress,
    Source,
    _match,
    _tarsum_header,
    collect_sources,
    has_wildcard,
)
from pybox.engine import archive, rootview
from pybox.engine.tarstream import Member, TarReader
from pybox.errors import BadRequest, BuildError, NotFound, PyboxError
from pybox.images.layers import detect_compression
from pybox.linux import constants as C

CONTEXTS = os.path.join("builder", "contexts")  # under the data root
DEFAULT_DOCKERFILE = "Dockerfile"
CHUNK = 1 << 20
MAX_DOCKERFILE = 16 << 20  # what is read of a Dockerfile (the builder's own limit)
PREAMBLE = 100  # bytes of a remote file sniffed for its type (moby's maxPreambleLength)
URL_TIMEOUT = 300.0  # a remote context that sends nothing for this long fails
# moby's acceptableRemoteMIME
ACCEPTABLE_MIME = re.compile(r"(?:application/(?:(?:x-)?tar|octet-stream|((?:x-)?(?:gzip|bzip2?|xz)))"
                             r"|(?:text/plain))")
GIT_PREFIXES = ("git://", "github.com/", "git@")
URL_PREFIXES = ("http://", "https://")
GIT_SUFFIX = re.compile(r"\.git(?:#.+)?$")
_STALE_CHECKED: set[str] = set()  # contexts directories already swept by this process
SPOOL = "context.tar"  # a plain tar context as it came, beside the context dir
NAME_MAX = 255
PATH_MAX = 4000  # a longer member name is left to the extractor (its ENAMETOOLONG)


@dataclass
class BuildContext:
    """A context on disk: ``context_dir`` (the builder's) under ``root``, which
    ``close`` removes; the Dockerfile's name in the context (``dockerfile``)
    and its content as read before it may have been removed from it."""

    root: str
    context_dir: str
    dockerfile: str
    dockerfile_content: bytes = b""
    # a plain tar of plain files and directories is kept as it came and
    # extracted only when a step needs its files (ContextFiles); None: extracted
    files: ContextFiles | None = None
    # the tar headers carry the file type bits in the mode, which dockerd's tarsum
    # hashes: a docker CLI's before 24 (its archive's fillGo18FileTypeBits, seen in
    # the members), dockerd's own tar of a git checkout (pybox.build.copy.Headers)
    type_bits: bool = False

    def close(self) -> None:
        if self.files is not None:
            self.files.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_git_url(text: str) -> bool:
    """moby's urlutil.IsGitURL."""
    if text.startswith(URL_PREFIXES) and GIT_SUFFIX.search(text):
        return True
    return text.startswith(GIT_PREFIXES)


def is_url(text: str) -> bool:
    """moby's urlutil.IsURL: http(s) only."""
    return text.startswith(URL_PREFIXES)


def _new_root(data_root: str) -> BuildContext:
    """A fresh directory for one build's context (mode 0700: the context's
    files are the client's, readable by nobody else on the host)."""
    parent = os.path.join(data_root, CONTEXTS)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    _sweep_stale(parent)
    root = tempfile.mkdtemp(prefix=f"ctx-{os.getpid()}-", dir=parent)
    context_dir = os.path.join(root, "context")
    os.mkdir(context_dir, 0o755)
    return BuildContext(root, context_dir, DEFAULT_DOCKERFILE)


def _sweep_stale(parent: str) -> None:
    """Remove, once per daemon process, the contexts a daemon that died
    mid-build left (their directory names carry another process's pid)."""
    if parent in _STALE_CHECKED:
        return
    _STALE_CHECKED.add(parent)
    mine = f"ctx-{os.getpid()}-"
    for name in os.listdir(parent):
        if name.startswith("ctx-") and not name.startswith(mine):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def open_context(data_root: str, body: Iterable[bytes], *, remote: str = "",
                 dockerfile: str = "", progress: Progress | None = None) -> BuildContext:
    """The context of one build, from the request ``body`` or ``remote``,
    with its Dockerfile found; errors in dockerd's words, and nothing left
    behind when one is raised.  ``progress`` takes a URL context's download
    progress messages (docker's JSON messages, for the build's stream)."""
    dockerfile = dockerfile or DEFAULT_DOCKERFILE
    if remote == "client-session":
        raise BadRequest("experimental session with v1 builder is no longer supported, use "
                         "builder version v2 (BuildKit) instead")
    if remote and not is_git_url(remote) and not is_url(remote):
        raise PyboxError(f"remoteURL ({remote}) could not be recognized as URL")
    ctx = _new_root(data_root)
    try:
        if not remote:
            chunks = iter(body)
            _receive(ctx, chunks)
            for _ in chunks:  # what follows the archive's end (a tar writer's record
                pass          # padding): read, so a client's hang-up shows mid-build
        elif is_git_url(remote):
            _git_context(ctx, remote)
        elif _url_context(ctx, remote, progress):
            return ctx  # a plain Dockerfile: nothing else to find
        ctx.dockerfile = _find_dockerfile(ctx, dockerfile)
        return ctx
    except BaseException:
        ctx.close()
        raise


def _extract(ctx: BuildContext, chunks: Iterable[bytes]) -> None:
    fd = os.open(ctx.context_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        archive.extract_tree(fd, ctx.context_dir, chunks)
    finally:
        os.close(fd)


# -- a plain tar context, kept and indexed -------------------------------------------------------
def _receive(ctx: BuildContext, chunks: Iterator[bytes]) -> None:
    """The body: a plain tar of regular files and directories (what the
    docker CLI and docker-py send) is written to disk as it came and indexed
    (ContextFiles): a build whose steps all come from the cache never
    extracts it.  Anything else -- compressed, a symlink, a hard link, a
    device, xattrs, a name twice or one out of the context, a member before
    its directory -- goes through the extractor as it arrives (what was kept
    first), as every body did before."""
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        if chunk:
            head.append(chunk)
            size += len(chunk)
            if size >= 6:
                break
    rest = chain(head, chunks)
    if detect_compression(b"".join(head)) is not None:
        _extract(ctx, rest)
        return
    files = ContextFiles(ctx, os.path.join(ctx.root, SPOOL))
    ctx.files = files
    try:
        complete = files.index(rest)
    except ConnectionError:
        raise  # the client left: nobody to answer
    except OSError as e:  # the disk's (full...), as extract_tree words its own
        raise PyboxError(f"extracting {archive._q(files.current)}: {e.strerror or e}") from None
    except (ValueError, OverflowError) as e:  # a value of the archive's, as extract_tree
        raise BadRequest(f"extracting {archive._q(files.current)}: {e}") from None
    ctx.type_bits = files.type_bits  # (the members read so far tell, whatever follows)
    if complete:
        return
    # not one the index can stand for: the extractor takes it from the start
    ctx.files = None
    files.close()
    try:
        with open(files.spool, "rb") as f:
            _extract(ctx, chain(iter(lambda: f.read(CHUNK), b""), rest))
    finally:
        os.unlink(files.spool)


@dataclass(slots=True)
class _Entry:
    """A member of the context as the extractor would make it (pybox.engine.
    archive: the member's mode & 07777 and its owner): a directory and its
    children's names, or a file and where its data is in the spool."""

    is_dir: bool
    mode: int
    uid: int
    gid: int
    size: int = 0
    offset: int = 0
    children: list[str] = field(default_factory=list)


class ContextFiles:
    """The files of a plain tar context without extracting it: the tar kept
    in ``spool`` as it came, and an index of its members (only regular files
    and directories, each with its parent before it, no name twice -- so
    every path is what it names, no symlink to follow).  The Dockerfile and
    .dockerignore are read from it, COPY/ADD's sources found and hashed from
    it as copy.collect_sources does on disk (the same checksums), and
    ``materialize`` extracts it with the extractor's rules when a step needs
    the files (a cache miss)."""

    def __init__(self, ctx: BuildContext, spool: str) -> None:
        self.ctx = ctx
        self.spool = spool
        self.entries: dict[str, _Entry] = {"": _Entry(True, 0o755, 0, 0)}
        self.current = ""  # the member being read (errors name it)
        self.materialized = False
        self.type_bits = False  # a member's mode had its file type bits (BuildContext's)
        self._fd = -1

    @property
    def headers(self) -> Headers:
        """Whose tar headers the sources' sums are of (pybox.build.copy.Headers)."""
        return Headers.DAEMON if self.type_bits else Headers.CLI

    # -- the body --
    def index(self, rest: Iterator[bytes]) -> bool:
        """Keep and index the tar arriving in ``rest``; False (the rest of the
        body left in ``rest``) at the first member the index cannot stand for."""
        fd = os.open(self.spool, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._fd = fd
        pending: list[bytes] = []
        held = 0

        def read(_n: int) -> bytes:
            nonlocal held
            for chunk in rest:
                if chunk:
                    pending.append(chunk)
                    held += len(chunk)
                    if held >= CHUNK:
                        flush()
                    return chunk
            return b""

        def flush() -> None:
            nonlocal held
            data = b"".join(pending)
            pending.clear()
            held = 0
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        reader = TarReader(read)
        try:
            for member in reader:
                self.current = member.name
                if not self._add(member, reader.offset):
                    return False
        finally:
            flush()
        return True

    def _add(self, m: Member, offset: int) -> bool:
        if m.mode & 0o170000:
            self.type_bits = True
        rel = archive.member_path(m.name)
        if rel is None or m.xattrs or not (m.isreg() or m.isdir()):
            return False
        if rel == "":
            return m.isdir()  # the destination itself: left as it is (the extractor's rule)
        if not (0 <= m.uid < 0xFFFFFFFF and 0 <= m.gid < 0xFFFFFFFF) or rel in self.entries:
            return False
        parent, name = posixpath.split(rel)
        holder = self.entries.get(parent)
        if holder is None or not holder.is_dir:
            return False
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX \
                or len(rel.encode("utf-8", "surrogateescape")) > PATH_MAX:
            return False
        if m.isdir():
            self.entries[rel] = _Entry(True, m.mode & 0o7777, m.uid, m.gid)
        else:
            self.entries[rel] = _Entry(False, m.mode & 0o7777, m.uid, m.gid, m.size, offset)
        holder.children.append(name)
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- paths --
    def lookup(self, path: str) -> _Entry | None:
        """The entry ``path`` names inside the context (None: none there), as
        _open_in_context finds it; one that climbs out is refused the same."""
        return self.entries.get(_clean_in_context(path))

    def read(self, entry: _Entry, limit: int) -> bytes:
        return os.pread(self._fd, min(entry.size, limit), entry.offset)

    def remove(self, rel: str) -> None:
        """Take a file out (.dockerignore naming it, as _remove_ignored)."""
        entry = self.entries.get(rel)
        if entry is None or entry.is_dir:
            return
        del self.entries[rel]
        parent, name = posixpath.split(rel)
        self.entries[parent].children.remove(name)

    def materialize(self) -> None:
        """Extract the context into ``context_dir`` (once) with the extractor's
        rules, then take out what .dockerignore removed; the kept tar goes (the
        extracted files answer from then on)."""
        if self.materialized:
            return
        with open(self.spool, "rb") as f:
            _extract(self.ctx, iter(lambda: f.read(CHUNK), b""))
        _remove_ignored(self.ctx, self.ctx.dockerfile)
        self.materialized = True
        self.close()
        os.unlink(self.spool)

    # -- COPY/ADD's sources --
    def _walk(self, rel: str) -> Iterator[str]:
        """Every path below ``rel`` in copy._walk_rel's order (os.walk top
        down, each directory's names sorted)."""
        stack = [rel]
        while stack:
            top = stack.pop()
            entry = self.entries[top]
            names = sorted(entry.children)
            subdirs = []
            for name in names:
                path = f"{top}/{name}" if top else name
                yield path
                if self.entries[path].is_dir:
                    subdirs.append(path)
            stack.extend(reversed(subdirs))

    def file_sum(self, rel: str) -> str:
        """copy.file_sum of the extracted file ``rel``."""
        entry = self.entries[rel]
        kind = stat.S_IFDIR if entry.is_dir else stat.S_IFREG
        st = os.stat_result((kind | entry.mode, 0, 0, 1, entry.uid, entry.gid, entry.size,
                             0, 0, 0))
        h = hashlib.sha256(_tarsum_header(rel, st, "", {}, self.headers))
        left, offset = (0 if entry.is_dir else entry.size), entry.offset
        while left:
            data = os.pread(self._fd, min(left, CHUNK), offset)
            if not data:
                raise BuildError(f"reading the context's {rel}: unexpected end of file")
            h.update(data)
            left -= len(data)
            offset += len(data)
        return h.hexdigest()

    def source_digest(self, rel: str) -> tuple[str, bool]:
        """copy.source_digest of the extracted context."""
        if not self.entries[rel].is_dir:
            return "file:" + self.file_sum(rel), False
        sums = [self.file_sum(rel)] if rel else []
        sums.extend(self.file_sum(path) for path in self._walk(rel))
        return "dir:" + hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest(), True

    def collect_sources(self, srcs: list[str], instruction: str) -> list[Source]:
        """copy.collect_sources of the extracted context: the same sources
        (their host paths where materialize puts them), checksums, errors."""
        if self.materialized:
            return collect_sources(self.ctx.context_dir, srcs, instruction, self.headers)
        out: list[Source] = []
        top = self.ctx.context_dir
        for src in srcs:
            clean = posixpath.normpath("/" + src).lstrip("/")
            if has_wildcard(clean):
                found = [rel for rel in self._walk("") if _match(clean, rel)]
                if not found:
                    raise BuildError(f"{instruction} failed: no source files were specified")
                for rel in found:
                    digest, is_dir = self.source_digest(rel)
                    out.append(Source(os.path.join(top, rel), rel, digest, is_dir))
                continue
            if clean not in self.entries:
                raise BuildError(f"{instruction} failed: file not found in build context or "
                                 f"excluded by .dockerignore: stat {clean or '.'}: file does not "
                                 "exist")
            digest, is_dir = self.source_digest(clean)
            out.append(Source(os.path.join(top, clean) if clean else top, clean, digest, is_dir))
        return out


# -- the Dockerfile -----------------------------------------------------------------------------
def _clean_in_context(path: str) -> str:
    """``path`` relative to the context, clean ("" for itself); one that
    climbs out of it is refused as moby's FullPath does."""
    full = posixpath.normpath(posixpath.join("/", path)) if path.startswith("/") else \
        posixpath.normpath(path)
    if full == ".." or full.startswith("../"):
        raise PyboxError(f"forbidden path outside the build context: {path} ()")
    rel = full.lstrip("/")
    return "" if rel == "." else rel


def _open_in_context(ctx: BuildContext, path: str) -> int:
    """An O_PATH fd of ``path`` in the context, its symlinks resolved inside
    it; a path that climbs out of it is refused as moby's FullPath does."""
    full = _clean_in_context(path) or "."
    dfd = os.open(ctx.context_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return rootview.open_in_root(dfd, full, C.O_PATH, resolve=C.RESOLVE_IN_ROOT
                                     | C.RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(dfd)


def _find_dockerfile(ctx: BuildContext, name: str) -> str:
    """-> the Dockerfile's path for the builder; dockerd's errors for one
    missing or empty; the Dockerfile and .dockerignore then taken out of the
    context when .dockerignore names them (moby's removeDockerfile)."""
    if ctx.files is not None:
        return _find_dockerfile_in_index(ctx, ctx.files, name)
    try:
        fd = _open_in_context(ctx, name)
    except OSError as e:
        if e.errno not in (2, 20, 40):  # ENOENT, ENOTDIR, ELOOP: none there
            raise
        if name == DEFAULT_DOCKERFILE:
            try:
                return _find_dockerfile(ctx, name.lower())
            except PyboxError:
                pass
        raise PyboxError(f"Cannot locate specified Dockerfile: {name}") from None
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):
            raise PyboxError(f"Cannot locate specified Dockerfile: {name}")
        if st.st_size == 0:
            raise BadRequest(f"the Dockerfile ({name}) cannot be empty")
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            ctx.dockerfile_content = f.read(MAX_DOCKERFILE)
    finally:
        os.close(fd)
    _remove_ignored(ctx, name)
    return name


def _find_dockerfile_in_index(ctx: BuildContext, files: ContextFiles, name: str) -> str:
    """_find_dockerfile in a context not extracted (the same lookups, errors
    and removals)."""
    entry = files.lookup(name)
    if entry is None or entry.is_dir:
        if entry is None and name == DEFAULT_DOCKERFILE:
            try:
                return _find_dockerfile_in_index(ctx, files, name.lower())
            except PyboxError:
                pass
        raise PyboxError(f"Cannot locate specified Dockerfile: {name}")
    if entry.size == 0:
        raise BadRequest(f"the Dockerfile ({name}) cannot be empty")
    ctx.dockerfile_content = files.read(entry, MAX_DOCKERFILE)
    entry = files.lookup(".dockerignore")
    if entry is None or entry.is_dir:
        return name
    matcher = dockerignore.PatternMatcher(dockerignore.parse(files.read(entry, 16 << 20)))
    for path in (".dockerignore", name):
        clean = posixpath.normpath(path.lstrip("/"))
        if matcher.matches(clean):
            parent, base = posixpath.split(clean)
            files.remove(posixpath.join(_clean_in_context(parent or "."), base))
    return name


def _remove_ignored(ctx: BuildContext, dockerfile: str) -> None:
    """moby's removeDockerfile: .dockerignore and the Dockerfile are removed
    from the context if .dockerignore excludes them."""
    try:
        fd = _open_in_context(ctx, ".dockerignore")
    except OSError:
        return  # none (or none that can be read): nothing to remove
    try:
        if os.fstat(fd).st_mode & 0o170000 != 0o100000:
            return
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            data = f.read(16 << 20)
    finally:
        os.close(fd)
    matcher = dockerignore.PatternMatcher(dockerignore.parse(data))
    for path in (".dockerignore", dockerfile):
        clean = posixpath.normpath(path.lstrip("/"))
        if not matcher.matches(clean):
            continue
        parent, base = posixpath.split(clean)
        try:
            pfd = _open_in_context(ctx, parent or ".")
        except OSError:
            continue
        try:
            dfd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            os.close(pfd)
            continue
        try:
            os.unlink(base, dir_fd=dfd)
        except (IsADirectoryError, FileNotFoundError):
            pass
        finally:
            os.close(dfd)
            os.close(pfd)


# -- remote contexts ---------------------------------------------------------------------------
def _url_context(ctx: BuildContext, url: str, progress: Progress | None = None) -> bool:
    """An http(s) context: a tarball extracted into the context directory, or
    a plain Dockerfile (-> True: kept beside an empty context); its download's
    progress to ``progress``."""
    try:
        response = urllib.request.urlopen(url, timeout=URL_TIMEOUT)  # noqa: S310 (http(s) only)
    except urllib.error.HTTPError as e:
        body = e.read(1 << 16).decode(errors="replace").strip()
        msg = f"failed to GET {url} with status {e.code} {e.reason}: {body}"
        wrapped = f"error downloading remote context {url}: {msg}"
        raise (NotFound(wrapped) if e.code == 404 else PyboxError(wrapped)) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise PyboxError(f'error downloading remote context {url}: Get "{url}": '
                         f"{_dial_error(url, getattr(e, 'reason', e))}") from None
    with response:
        preamble = response.read(PREAMBLE)
        if not preamble:
            raise PyboxError(f"error detecting content type for remote {url}: empty response")
        declared = response.headers.get("Content-Type") or ""
        kind = declared.split(";")[0].strip().lower()
        if not kind or kind == "application/octet-stream":
            kind = _sniff(preamble)
        match = ACCEPTABLE_MIME.search(kind)
        if match is None:
            raise PyboxError(f"error detecting content type for remote {url}: unsupported "
                             f"Content-Type {declared!r}")

        # (as dockerd's build router wraps the body: no total -- the request's own
        # length, 0 --, and only a plain Dockerfile is read to its end: the tar
        # reader stops at the archive's end marker)
        reader = ReadProgress(progress, url, "Downloading context") if progress else None

        def chunks() -> Iterator[bytes]:
            if reader is not None:
                reader.read(len(preamble))
            yield preamble
            while True:
                try:
                    data = response.read(READ_SIZE)
                except OSError as e:
                    raise PyboxError(f"error downloading remote context {url}: {e}") from None
                if not data:
                    return
                if reader is not None:
                    reader.read(len(data))
                yield data

        if match.group(0) == "text/plain":
            parts, size = [], 0
            for data in chunks():
                parts.append(data)
                size += len(data)
                if size > MAX_DOCKERFILE:
                    raise BadRequest(f"the Dockerfile at {url} is larger than "
                                     f"{MAX_DOCKERFILE} bytes")
            ctx.dockerfile_content = b"".join(parts)
            if reader is not None:
                reader.read(0, end=True)
            return True
        _extract(ctx, chunks())
        return False


def _dial_error(url: str, reason: object) -> str:
    """What Go's http.Get says of a connection that failed, for the usual
    failures (refused, no such host, timeout); Python's words otherwise."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return str(reason)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(reason, ConnectionRefusedError):
        return f"dial tcp {address}: connect: connection refused"
    if isinstance(reason, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"dial tcp {address}: i/o timeout"
    if isinstance(reason, OSError) and reason.strerror:
        return f"dial tcp {address}: connect: {reason.strerror.lower()}"
    return str(reason)


def _sniff(preamble: bytes) -> str:
    """What Go's http.DetectContentType says of a body without a useful
    Content-Type, for the types moby accepts."""
    if preamble.startswith(b"\x1f\x8b"):
        return "application/x-gzip"
    if preamble.startswith(b"BZh"):
        return "application/x-bzip2"
    if preamble.startswith(b"\xfd7zXZ\x00"):
        return "application/x-xz"
    if b"\x00" not in preamble and all(b >= 0x20 or b in b"\t\n\r\x0c\x1b" for b in preamble):
        return "text/plain"
    return "application/octet-stream"


def parse_git_url(url: str) -> tuple[str, str, str]:
    """moby's gitutils.parseRemoteURL: (remote, ref, subdir); the ref is
    "master" when the fragment names none (dockerd 20.10)."""
    if not (url.startswith("git@") or url.split("://", 1)[0].lower() in ("git", "http", "https",
                                                                          "ssh")
            and "://" in url):
        url = "https://" + url
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    ref = ref or "master"
    if ref.startswith("-"):
        raise PyboxError(f"invalid refspec: {ref}")
    return remote, ref, subdir


def _git(cwd: str, *args: str) -> tuple[int, str]:
    """git as moby runs it: no system or user config, the file protocol
    refused (a repository's submodules may not read the daemon's files), no
    prompt for credentials."""
    env = dict(os.environ, GIT_PROTOCOL_FROM_USER="0", GIT_CONFIG_NOSYSTEM="1",
               HOME="/dev/null", GIT_TERMINAL_PROMPT="0")
    try:
        proc = subprocess.run(["git", "-c", "protocol.file.allow=never", *args], cwd=cwd,
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=3600)
    except FileNotFoundError:
        raise PyboxError("unable to find 'git': install git to build from a git "
                         "repository") from None
    return proc.returncode, proc.stdout.decode(errors="replace")


def _shallow_ok(remote: str) -> bool:
    """moby's supportsShallowClone: any transport but http(s), which must be
    a smart server (a dumb one cannot fetch --depth)."""
    if not remote.lower().startswith(URL_PREFIXES):
        return True
    probe = remote + "/info/refs?service=git-upload-pack"
    try:
        with urllib.request.urlopen(probe, timeout=URL_TIMEOUT) as response:  # noqa: S310
            kind = response.headers.get("Content-Type") or ""
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return kind == "application/x-git-upload-pack-advertisement"


def _git_context(ctx: BuildContext, url: str) -> None:
    """Clone, then take the checkout (or its subdir) through the same
    extraction as an uploaded context (moby tars and untars it too)."""
    remote, ref, subdir = parse_git_url(url)
    checkout = os.path.join(ctx.root, "git")
    os.mkdir(checkout, 0o700)
    rc, out = _git(checkout, "init")
    if rc:
        raise PyboxError(f"failed to init repo at {checkout}: {out}: exit status {rc}")
    rc, out = _git(checkout, "remote", "add", "origin", remote)
    if rc:
        raise PyboxError(f"failed add origin repo at {remote}: {out}: exit status {rc}")
    depth = ["--depth", "1"] if _shallow_ok(remote) else []
    rc, out = _git(checkout, "fetch", *depth, "origin", "--", ref)
    if rc:
        raise PyboxError(f"error fetching: {out}: exit status {rc}")
    rc, out = _git(checkout, "checkout", ref)
    if rc and _git(checkout, "checkout", "FETCH_HEAD")[0]:
        raise PyboxError(f"error checking out {ref}: {out}: exit status {rc}")
    rc, out = _git(checkout, "submodule", "update", "--init", "--recursive", "--depth=1")
    if rc:
        raise PyboxError(f"error initializing submodules: {out}: exit status {rc}")
    top = checkout
    if subdir:
        cfd = os.open(checkout, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = rootview.open_in_root(cfd, subdir, C.O_PATH, resolve=C.RESOLVE_IN_ROOT)
        except OSError as e:
            if e.errno == errno.ENOENT:  # moby's os.Stat of it, in Go's words
                raise PyboxError(f"stat {os.path.join(checkout, subdir)}: no such file or "
                                 "directory") from None
            raise PyboxError(f"error setting git context, {subdir!r} not within git root: "
                             f"{e.strerror}") from None
        finally:
            os.close(cfd)
        try:
            top = os.readlink(f"/proc/self/fd/{fd}")
            if not os.path.isdir(f"/proc/self/fd/{fd}"):
                raise PyboxError(f"error setting git context, not a directory: {top}")
        finally:
            os.close(fd)
    _extract(ctx, _tar_stream(top, os.path.join(ctx.root, "git.tar")))
    ctx.type_bits = True
    shutil.rmtree(checkout, ignore_errors=True)


def _tar_stream(top: str, scratch: str) -> Iterator[bytes]:
    """The tree ``top`` as a tar (written to ``scratch``, read back in chunks,
    then removed): a checkout goes through the extraction's checks."""
    with tarfile.open(scratch, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(top)):
            tar.add(os.path.join(top, name), arcname=name, recursive=True)
    try:
        with open(scratch, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
    finally:
        os.unlink(scratch)

