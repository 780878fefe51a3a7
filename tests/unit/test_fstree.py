"""pybox.linux.fstree: iterative, fd-relative walking and removal, at depths
past Python's recursion limit and past PATH_MAX."""

import io
import os
import tarfile

import pytest

from pybox.images import layers
from pybox.linux import fstree

DEPTH = 2500  # "a/" * 2500: 5,000 bytes, past PATH_MAX and the recursion limit


@pytest.fixture(autouse=True)
def _clean(tmp_path):
    """pytest's own clean-up of old tmp dirs is shutil.rmtree: no deep tree
    may outlive its test."""
    yield
    for name in os.listdir(tmp_path):
        fstree.remove_tree(str(tmp_path / name))


def _deep(root, depth=DEPTH):
    """root/a/a/.../a (depth levels) with a file 'f' (3 bytes) at the bottom;
    returns the fd of the deepest directory (the caller closes it)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("a", dir_fd=fd)
        new = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = new
    with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
        f.write(b"abc")
    return fd


def test_walk_deep_tree(tmp_path):
    os.close(_deep(str(tmp_path)))
    os.symlink("/", tmp_path / "link")
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        entries = [(e.rel, e.fd is not None) for e in fstree.walk(top)]
    finally:
        os.close(top)
    assert entries[0] == ("", True)
    dirs = [rel for rel, is_dir in entries if is_dir and rel]
    assert len(dirs) == DEPTH
    assert ("/".join(["a"] * DEPTH) + "/f", False) in entries
    assert ("link", False) in entries  # a symlink is an entry, never followed
    assert len(entries) == DEPTH + 3


def test_walk_skip_and_size(tmp_path):
    os.close(_deep(str(tmp_path), 50))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "g").write_bytes(b"12345")
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = []
        for e in fstree.walk(top):
            seen.append(e.rel)
            if e.rel == "a":
                e.descend = False
        assert seen == ["", "a", "b", "b/g"]
        assert fstree.tree_size(top) == 8
    finally:
        os.close(top)
    assert fstree.path_size(str(tmp_path)) == 8
    assert fstree.path_size(str(tmp_path / "missing")) == 0


def test_remove_deep_tree(tmp_path):
    (tmp_path / "x").mkdir()
    os.close(_deep(str(tmp_path / "x")))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    os.symlink(outside, tmp_path / "x" / "link")
    fstree.remove_tree(str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    assert (outside / "keep").read_text() == "k"  # a symlink's target is left alone
    fstree.remove_tree(str(tmp_path / "x"))  # gone: no error
    with pytest.raises(OSError):
        fstree.remove_tree(str(tmp_path / "nodir" / "x"))
    fstree.remove_tree(str(tmp_path / "nodir" / "x"), ignore_errors=True)


def test_open_beneath_deep_and_confined(tmp_path):
    os.close(_deep(str(tmp_path)))
    root = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = fstree.open_beneath(root, "/".join(["a"] * DEPTH))
        try:
            assert os.listdir(fd) == ["f"]
        finally:
            os.close(fd)
        os.symlink("/", tmp_path / "a" / "up")
        with pytest.raises(OSError):
            os.close(fstree.open_beneath(root, "a/up/etc"))
        with pytest.raises(OSError):
            os.close(fstree.open_beneath(root, "a/../.."))
    finally:
        os.close(root)


def test_layer_round_trip_deep(tmp_path):
    """write_tree then unpack_layer of a tree deeper than PATH_MAX: every
    level back, with its file, modes and a hard link."""
    src = tmp_path / "src"
    src.mkdir()
    fd = _deep(str(src))
    os.link("f", "g", src_dir_fd=fd, dst_dir_fd=fd)
    os.chmod("f", 0o640, dir_fd=fd)
    os.close(fd)
    buf = io.BytesIO()
    layers.write_tree(str(src), buf)
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    deepest = "/".join(["a"] * DEPTH)
    assert deepest + "/f" in names and deepest + "/g" in names
    dest = tmp_path / "dest"
    dest.mkdir()
    buf.seek(0)
    result = layers.unpack_layer(buf, str(dest))
    assert result.size == 3
    root = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = fstree.open_beneath(root, deepest)
    finally:
        os.close(root)
    try:
        st_f = os.stat("f", dir_fd=fd)
        assert st_f.st_mode & 0o777 == 0o640 and st_f.st_nlink == 2
        assert st_f.st_ino == os.stat("g", dir_fd=fd).st_ino
    finally:
        os.close(fd)
    fstree.remove_tree(str(dest))
    fstree.remove_tree(str(src))
    assert not dest.exists() and not src.exists()
