"""The copying driver on layers deeper than Python's recursion limit and
PATH_MAX: flatten_layers walks iteratively and fd-relative (a container's
2,500-deep mkdir loop, committed, is an ordinary image).  Root: the layers
hold an overlay whiteout (a char 0:0 device) and trusted.* xattrs."""

import os
import stat
import tempfile

import pytest

from pybox.images import layers
from pybox.images.snapshots import flatten_layers
from pybox.linux import fstree

pytestmark = pytest.mark.root

DEPTH = 2500  # "a/" * 2500: 5,000 bytes, past PATH_MAX and the recursion limit


def make_chain(top: str, depth: int) -> int:
    """top/a/a/.../a (``depth`` levels): the deepest directory's fd."""
    fd = os.open(top, fstree.DIR_FLAGS)
    for _ in range(depth):
        os.mkdir("a", 0o755, dir_fd=fd)
        child = os.open("a", fstree.DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def open_chain(top: str, depth: int) -> int:
    fd = os.open(top, fstree.DIR_FLAGS)
    for _ in range(depth):
        child = os.open("a", fstree.DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def write_file(dir_fd: int, name: str, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode, dir_fd=dir_fd)
    os.write(fd, data)
    os.close(fd)


@pytest.fixture
def work():
    root = tempfile.mkdtemp(prefix="pybox-test-deep-layers-")
    yield root
    fstree.remove_tree(root)  # iterative: shutil.rmtree cannot remove these trees


def test_flatten_layers_past_the_recursion_limit_and_path_max(work):
    base, upper, dest = (os.path.join(work, n) for n in ("base", "upper", "dest"))
    for d in (base, upper, dest):
        os.mkdir(d)
    # the base layer: the deep chain, a file at the bottom, two files beside it
    fd = make_chain(base, DEPTH)
    write_file(fd, "end", b"bottom\n", 0o600)
    write_file(fd, "gone", b"deleted by the upper layer\n")
    os.mkdir("hidden", dir_fd=fd)
    write_file(fd, "old", b"under an opaque dir\n")
    os.rename("old", "hidden/old", src_dir_fd=fd, dst_dir_fd=fd)
    os.utime(fd, ns=(10**18, 10**18))
    os.close(fd)
    # the upper layer: the same chain; a whiteout of 'gone', 'hidden' opaque,
    # a new file and a symlink at the bottom
    fd = make_chain(upper, DEPTH)
    os.mknod("gone", stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=fd)
    os.mkdir("hidden", dir_fd=fd)
    os.setxattr(f"/proc/self/fd/{fd}/hidden", layers.OVERLAY_OPAQUE_XATTR, b"y")
    write_file(fd, "new", b"added\n")
    os.symlink("end", "link", dir_fd=fd)
    mtime = 1_600_000_000 * 10**9
    os.utime(fd, ns=(mtime, mtime))
    os.close(fd)

    flatten_layers([base, upper], dest)

    fd = open_chain(dest, DEPTH)
    try:
        assert sorted(os.listdir(fd)) == ["end", "hidden", "link", "new"]
        hidden = os.open("hidden", fstree.DIR_FLAGS, dir_fd=fd)
        assert os.listdir(hidden) == []  # opaque in the upper layer: 'old' is hidden
        os.close(hidden)
        with open(f"/proc/self/fd/{fd}/end", "rb") as f:
            assert f.read() == b"bottom\n"
        assert stat.S_IMODE(os.stat("end", dir_fd=fd).st_mode) == 0o600
        assert os.readlink("link", dir_fd=fd) == "end"
        # the deepest directory's time is the top layer's, set after its entries
        assert os.fstat(fd).st_mtime_ns == mtime
    finally:
        os.close(fd)
    top = os.open(dest, fstree.DIR_FLAGS)
    try:
        entries = {e.rel.count("/"): e.depth for e in fstree.walk(top)}
    finally:
        os.close(top)
    assert max(entries.values()) == DEPTH + 1  # the deepest dir's entries
