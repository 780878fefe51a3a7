"""A new volume filled from the image (engine/volumes.py's copy-up): owners,
modes, times, links and special files as in the image, and a tree deeper than
Python's recursion limit and PATH_MAX copied without a RecursionError."""

import os
import stat

import pytest

from pybox.engine.volumes import _copy_contents
from pybox.linux import fstree

pytestmark = [pytest.mark.unit]

DEPTH = 2500  # "a/" * 2500: 5,000 bytes, past PATH_MAX and the recursion limit


@pytest.fixture
def trees(tmp_path):
    """(source, target) directories; no deep tree outlives the test (pytest's
    own clean-up of old tmp dirs is shutil.rmtree)."""
    src, dst = tmp_path / "image", tmp_path / "volume"
    src.mkdir()
    dst.mkdir()
    yield str(src), str(dst)
    for d in (src, dst):
        fstree.remove_tree(str(d))


def _descend(top, depth):
    """fd of top/a/a/.../a (depth levels), opened one level at a time."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        child = os.open("a", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def test_owners_modes_times_links_and_special_files_are_kept(trees):
    if os.geteuid() != 0:
        pytest.skip("needs root (other owners, mknod)")
    src, dst = trees
    os.makedirs(f"{src}/data/sub")
    with open(f"{src}/data/sub/file", "w") as f:
        f.write("hello")
    os.chown(f"{src}/data/sub/file", 1000, 1001)
    os.chmod(f"{src}/data/sub/file", 0o4750)  # set-uid survives the chown
    os.chown(f"{src}/data", 999, 999)
    os.chmod(f"{src}/data", 0o555)  # read-only: filled before its mode is set
    os.symlink("/etc/passwd", f"{src}/link")  # copied as a link, never followed
    os.lchown(f"{src}/link", 5, 6)
    os.mkfifo(f"{src}/fifo", 0o640)
    os.mknod(f"{src}/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.utime(f"{src}/data/sub", ns=(10**18, 10**18))
    os.utime(f"{src}/link", ns=(2 * 10**18, 2 * 10**18), follow_symlinks=False)

    _copy_contents(src, dst)

    for rel in ("data", "data/sub", "data/sub/file", "link", "fifo", "null"):
        a, b = os.lstat(f"{src}/{rel}"), os.lstat(f"{dst}/{rel}")
        assert (b.st_mode, b.st_uid, b.st_gid, b.st_mtime_ns, b.st_rdev) == \
            (a.st_mode, a.st_uid, a.st_gid, a.st_mtime_ns, a.st_rdev), rel
    assert os.readlink(f"{dst}/link") == "/etc/passwd"
    with open(f"{dst}/data/sub/file") as f:
        assert f.read() == "hello"
    assert sorted(os.listdir(dst)) == ["data", "fifo", "link", "null"]


def test_a_tree_deeper_than_the_recursion_limit_and_path_max(trees):
    src, dst = trees
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(DEPTH):
        os.mkdir("a", dir_fd=fd)
        child = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    out = os.open("end", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
    os.write(out, b"bottom")
    os.close(out)
    os.close(fd)

    _copy_contents(src, dst)

    fd = _descend(dst, DEPTH)
    try:
        assert os.listdir(fd) == ["end"]
        end = os.open("end", os.O_RDONLY, dir_fd=fd)
        try:
            assert os.read(end, 100) == b"bottom"
        finally:
            os.close(end)
    finally:
        os.close(fd)
