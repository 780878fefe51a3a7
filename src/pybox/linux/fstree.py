"""Walking and removing directory trees a container may have written.

A container can build a tree thousands of directories deep (a ``mkdir a; cd
a`` loop) and can change it while the host looks.  Python 3.11's os.walk,
os.fwalk and shutil.rmtree recurse (RecursionError past ~1,000 levels) and
full path strings stop working past PATH_MAX (4,096 bytes).  So everything
here is iterative and fd-relative: each directory is opened from its
parent's fd with O_NOFOLLOW | O_DIRECTORY (a symlink or device swapped in
meanwhile is never followed or opened), and no path longer than one name is
ever built for the kernel.  Stdlib only (and syscalls.openat2), so every
layer above can use it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

from pybox.errors import SyscallError
from pybox.linux import constants as C
from pybox.linux.syscalls import real

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# a chunk of a relative path handed to one openat2: well below PATH_MAX
_CHUNK = 3000


class Entry:
    """One entry met by walk().  ``fd`` is the directory's own open fd (only
    for a directory the walk opened; valid until the walk moves past its
    subtree); ``parent_fd`` the fd of the directory holding it (None for the
    top).  Setting ``descend = False`` on a directory before asking for the
    next entry keeps the walk out of it."""

    __slots__ = ("rel", "name", "parent_fd", "st", "fd", "depth", "descend", "_names")

    def __init__(self, rel: str, name: str, parent_fd: int | None, st: os.stat_result,
                 fd: int | None, depth: int) -> None:
        self.rel = rel
        self.name = name
        self.parent_fd = parent_fd
        self.st = st
        self.fd = fd
        self.depth = depth
        self.descend = fd is not None
        self._names: list[str] | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def names(self) -> list[str]:
        """The directory's entries, sorted (listed once, on first use)."""
        if self._names is None:
            if self.fd is None:
                raise NotADirectoryError(20, "not an open directory", self.rel)
            self._names = sorted(os.listdir(self.fd))
        return self._names


def walk(top_fd: int, *, on_error: Callable[[Entry, OSError], None] | None = None,
         ) -> Iterator[Entry]:
    """Every entry under the directory ``top_fd`` (the caller's; never
    closed here), depth first, names sorted, each directory before what is
    in it; the top itself first, as rel "".  lstat semantics throughout:
    symlinks are entries, never followed.  An entry that vanishes or changes
    type meanwhile is skipped or taken as what it now is.  A directory that
    cannot be listed is passed to ``on_error`` (which may raise) or skipped.
    At most one fd per level of the tree is open at a time."""
    top = Entry("", "", None, os.fstat(top_fd), top_fd, 0)
    yield top
    stack: list[tuple[Entry, Iterator[str]]] = []
    try:
        if top.descend:
            try:
                stack.append((top, iter(top.names())))
            except OSError as e:
                if on_error is not None:
                    on_error(top, e)
        while stack:
            parent, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if parent.fd is not None and parent.fd != top_fd:
                    os.close(parent.fd)
                continue
            pfd = parent.fd
            assert pfd is not None
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            rel = f"{parent.rel}/{name}" if parent.rel else name
            fd = None
            if stat.S_ISDIR(st.st_mode):
                try:
                    fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
                except OSError:
                    continue  # swapped for a non-directory meanwhile
                try:
                    st = os.fstat(fd)
                except OSError:
                    os.close(fd)
                    continue
            entry = Entry(rel, name, pfd, st, fd, parent.depth + 1)
            if fd is None:
                yield entry
                continue
            stack.append((entry, iter(())))  # closed whatever happens next
            yield entry
            if entry.descend:
                try:
                    stack[-1] = (entry, iter(entry.names()))
                except OSError as e:
                    if on_error is not None:
                        on_error(entry, e)
    finally:
        for entry, _ in stack:
            if entry.fd is not None and entry.fd != top_fd:
                os.close(entry.fd)


def tree_size(top_fd: int, *, skip: Callable[[os.stat_result], bool] | None = None) -> int:
    """Bytes of every non-directory under ``top_fd`` (st_size; ``skip`` leaves
    entries out, e.g. overlay whiteouts)."""
    total = 0
    for entry in walk(top_fd):
        if entry.fd is None and not (skip is not None and skip(entry.st)):
            total += entry.st.st_size
    return total


def path_size(path: str, *, skip: Callable[[os.stat_result], bool] | None = None) -> int:
    """tree_size of the directory at ``path`` (0 when it is gone or not one)."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError:
        return 0
    try:
        return tree_size(fd, skip=skip)
    finally:
        os.close(fd)


def remove_tree_at(pfd: int | None, name: str, *, ignore_errors: bool = False) -> None:
    """``rm -rf`` of ``name`` in the directory ``pfd`` (None: the cwd, or an
    absolute ``name``), iteratively at any depth.  Directories are opened
    O_DIRECTORY | O_NOFOLLOW from their parent's fd, so neither a symlink nor
    a device node swapped in meanwhile is ever followed or opened (shutil's
    rmtree opens what it found with a plain O_RDONLY).  A non-directory
    ``name`` is unlinked; a missing one is no error.  Other errors are raised
    unless ``ignore_errors``, which removes whatever it can."""
    try:
        top = os.open(name, DIR_FLAGS, dir_fd=pfd)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno in (20, 40):  # ENOTDIR, ELOOP (a symlink): not a tree
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
            except OSError:
                if not ignore_errors:
                    raise
            return
        if ignore_errors:
            return
        raise
    # every fd is on the stack before anything that can fail (listdir)
    stack: list[tuple[int | None, int, str, Iterator[str]]] = [(pfd, top, name, iter(()))]
    try:
        try:
            stack[-1] = (pfd, top, name, iter(os.listdir(top)))
        except OSError:
            if not ignore_errors:
                raise
        while stack:
            parent, fd, dname, names = stack[-1]
            entry = next(names, None)
            if entry is None:
                os.close(fd)
                stack.pop()
                try:
                    os.rmdir(dname, dir_fd=parent)
                except FileNotFoundError:
                    pass
                except OSError:
                    if not ignore_errors:
                        raise
                continue
            try:
                os.unlink(entry, dir_fd=fd)
                continue
            except FileNotFoundError:
                continue
            except IsADirectoryError:
                pass
            except OSError:
                if not ignore_errors:
                    raise
                continue
            try:
                sub = os.open(entry, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError:
                if not ignore_errors:
                    raise
                continue
            stack.append((fd, sub, entry, iter(())))
            try:
                stack[-1] = (fd, sub, entry, iter(os.listdir(sub)))
            except OSError:
                if not ignore_errors:
                    raise
    finally:
        for _, fd, _, _ in stack:
            os.close(fd)


def remove_tree(path: str, *, ignore_errors: bool = False) -> None:
    """shutil.rmtree(path) without its recursion or its path strings (see
    remove_tree_at); the components of ``path`` itself are the host's."""
    parent, name = os.path.split(os.path.normpath(path))
    try:
        pfd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        if ignore_errors:
            return
        raise
    try:
        remove_tree_at(pfd, name, ignore_errors=ignore_errors)
    finally:
        os.close(pfd)


def _chunks(rel: str) -> Iterator[str]:
    """``rel`` cut at slashes into pieces shorter than _CHUNK bytes (a single
    name is at most 255, so each piece fits one openat2); linear in len(rel)."""
    rel = rel.strip("/")
    while len(rel) >= _CHUNK:
        cut = rel.rfind("/", 0, _CHUNK)
        if cut <= 0:
            raise OSError(36, os.strerror(36), rel[:64])  # ENAMETOOLONG: a name > 255
        yield rel[:cut]
        rel = rel[cut + 1:].lstrip("/")
    if rel:
        yield rel


def open_beneath(root_fd: int, rel: str, flags: int = DIR_FLAGS & ~os.O_NOFOLLOW) -> int:
    """An fd of ``rel`` below ``root_fd`` reached without following any
    symlink or leaving the tree (openat2 RESOLVE_BENEATH |
    RESOLVE_NO_SYMLINKS), however long ``rel`` is: it is resolved in pieces
    shorter than PATH_MAX, each from the previous piece's directory fd.
    ``rel`` "" opens root_fd's directory again.  Raises OSError."""
    resolve = C.RESOLVE_BENEATH | C.RESOLVE_NO_SYMLINKS
    pieces = list(_chunks(rel)) or ["."]
    fd = root_fd
    try:
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            how = flags if last else (os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            new = real().openat2(fd, piece, how | os.O_CLOEXEC, 0, resolve)
            if fd != root_fd:
                os.close(fd)
            fd = new
    except SyscallError as e:  # as the plain os call's: FileNotFoundError, ...
        if fd != root_fd:
            os.close(fd)
        raise OSError(e.errno, os.strerror(e.errno or 0), rel[:200]) from None
    except BaseException:
        if fd != root_fd:
            os.close(fd)
        raise
    return fd


__all__ = ["Entry", "walk", "tree_size", "path_size", "remove_tree_at", "remove_tree",
           "open_beneath", "DIR_FLAGS"]
