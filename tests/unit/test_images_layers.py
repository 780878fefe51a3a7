"""Layer tar members are checked before anything is written: traversal, links
out of the layer, writes through symlinks, devices where not allowed, corrupt and
truncated streams; and what is kept (modes, owners, links, mtimes) is kept."""

import hashlib
import io
import os
import stat

import pytest

from pybox.errors import DigestMismatch, LayerError
from pybox.images import layers
from pybox.images.layers import check_symlink_target, classify_member, normalise_member_name, unpack_layer
from support.tarbuild import make_tar, member

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name, expected", [
    ("etc/passwd", "etc/passwd"), ("./etc/passwd", "etc/passwd"),
    ("/etc/passwd", "etc/passwd"), ("a/./b/", "a/b"), ("a/../b", "b"), ("./", ""),
])
def test_names_normalised(name, expected):
    assert normalise_member_name(name) == expected


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../x", "./../x", "a/\x00b"])
def test_traversal_refused(name):
    with pytest.raises(LayerError):
        normalise_member_name(name)


@pytest.mark.parametrize("path, target, ok", [
    ("usr/bin/sh", "/bin/busybox", True),      # absolute: resolved in the container
    ("usr/bin/sh", "../../bin/busybox", True),
    ("usr/bin/sh", "../../../bin/busybox", False),
    ("sh", "../x", False),
    ("a/b", "c/../../..", False),
    ("a/b", "", False),
])
def test_symlink_targets(path, target, ok):
    if ok:
        assert check_symlink_target(path, target) == target
    else:
        with pytest.raises(LayerError):
            check_symlink_target(path, target)


def test_classify():
    assert classify_member(member("a/.wh..wh..opq")[0], True) == "opaque"
    assert classify_member(member("a/.wh.b")[0], True) == "whiteout"
    assert classify_member(member("a/.wh..wh.plnk")[0], True) == "skip"
    assert classify_member(member("dev/null", "char", dev=(1, 3))[0], True) == "device"
    with pytest.raises(LayerError, match="device node"):
        classify_member(member("dev/sda", "block", dev=(8, 0))[0], False)
    with pytest.raises(LayerError, match="no name"):
        classify_member(member("a/.wh.")[0], True)


def _unpack(tmp_path, data, **kw):
    dest = tmp_path / "layer"
    dest.mkdir()
    return unpack_layer(io.BytesIO(data), str(dest), **kw), dest


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_unpack_keeps_what_a_layer_holds(tmp_path, compression):
    entries = [
        member("bin/", "dir", mode=0o750, mtime=1_600_000_000),
        member("bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1000),
        member("bin/alias", "hardlink", link="bin/tool"),
        member("bin/sh", "symlink", link="/bin/busybox"),
        member("run/fifo", "fifo", mode=0o600),
        member("etc/conf", data=b"x", xattrs={"user.pybox": "yes"}),
    ]
    plain = make_tar(entries)
    data = make_tar(entries, compression)
    result, dest = _unpack(tmp_path, data)
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.compression == compression
    assert result.size == len(b"#!/bin/sh\n") + 1
    tool = os.lstat(dest / "bin/tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755
    if os.geteuid() == 0:
        assert (tool.st_uid, tool.st_gid) == (1000, 1000)
    assert tool.st_nlink == 2 and os.lstat(dest / "bin/alias").st_ino == tool.st_ino
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o750
    assert os.lstat(dest / "bin").st_mtime == 1_600_000_000  # set after its children
    assert (dest / "run").is_dir()  # a parent the tar does not list is made
    try:
        assert os.getxattr(dest / "etc/conf", "user.pybox") == b"yes"
    except OSError:
        pass  # a filesystem without user xattrs: nothing to check


@pytest.mark.parametrize("entries, message", [
    ([member("../evil", data=b"x")], "escapes the layer"),
    ([member("link", "symlink", link="/etc"), member("link/passwd", data=b"x")],
     "not a directory"),
    ([member("link", "symlink", link="../../.."), member("x", data=b"")],
     "points outside"),
    ([member("hl", "hardlink", link="../../etc/shadow")], "escapes the layer"),
    ([member("hl", "hardlink", link="etc/shadow")], "not in this layer"),
    ([member("d/", "dir"), member("hl", "hardlink", link="d")], "is a directory"),
    ([member("f", data=b"x"), member("f/g", data=b"y")], "not a directory"),
])
def test_malicious_members_refused(tmp_path, entries, message):
    with pytest.raises(LayerError, match=message):
        _unpack(tmp_path, make_tar(entries))
    # nothing was written outside the layer
    assert not (tmp_path / "evil").exists()


def test_device_nodes_only_where_allowed(tmp_path):
    with pytest.raises(LayerError, match="device node"):
        _unpack(tmp_path, make_tar([member("dev/null", "char", dev=(1, 3))]),
                allow_devices=False)


def test_overlay_xattrs_never_taken_from_a_tar(tmp_path):
    data = make_tar([member("d/", "dir", xattrs={"trusted.overlay.redirect": "/etc"})])
    _, dest = _unpack(tmp_path, data)
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "d")


def test_truncated_and_corrupt_streams(tmp_path):
    data = make_tar([member("a", data=b"x" * 5000), member("b", data=b"y" * 10)])
    # mid-file, and exactly on member boundaries (after a, after b: no end marker)
    for cut in (len(data) // 2, 1536, 512 + 5120, 512 + 5120 + 1024):
        (tmp_path / str(cut)).mkdir()
        with pytest.raises(LayerError, match="truncated|corrupt|unexpected end"):
            _unpack(tmp_path / str(cut), data[:cut])
    gz = make_tar([member("a", data=os.urandom(20000))], "gzip")
    (tmp_path / "gz").mkdir()
    with pytest.raises(LayerError, match="gzip"):
        _unpack(tmp_path / "gz", gz[:len(gz) // 2])
    (tmp_path / "gzc").mkdir()
    bad = bytearray(gz)
    bad[40:60] = b"\xff" * 20
    with pytest.raises(LayerError):
        _unpack(tmp_path / "gzc", bytes(bad))
    zs = make_tar([member("a", data=os.urandom(20000))], "zstd")
    (tmp_path / "zs").mkdir()
    with pytest.raises(LayerError):
        _unpack(tmp_path / "zs", zs[:len(zs) // 2])
    (tmp_path / "junk").mkdir()
    with pytest.raises(LayerError):
        _unpack(tmp_path / "junk", b"this is not a tar at all" * 100)


def test_diff_id_mismatch(tmp_path):
    with pytest.raises(DigestMismatch, match="diff-id"):
        _unpack(tmp_path, make_tar([member("a", data=b"x")]),
                expected_diff_id="sha256:" + "0" * 64)


def test_write_tree_round_trip(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"hello")
    os.link(src / "d" / "f", src / "d" / "g")
    os.symlink("f", src / "d" / "s")
    out = io.BytesIO()
    layers.write_tree(str(src), out)
    result, dest = _unpack(tmp_path, out.getvalue())
    assert (dest / "d" / "f").read_bytes() == b"hello"
    assert os.lstat(dest / "d" / "g").st_ino == os.lstat(dest / "d" / "f").st_ino
    assert os.readlink(dest / "d" / "s") == "f"
    assert result.diff_id == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
