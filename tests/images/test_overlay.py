"""Overlay behaviour seen from inside a running container (pybox-runtime runs a
config.json whose root.path is the rootfs the store mounted): copy-up of a lower
file, whiteout of a lower file, an opaque directory; then docker diff, commit and
export of what the container did, and a second container from the committed
image.  The same scenario with the copying driver."""

import io
import json
import os
import stat
import tarfile
import tempfile

import pytest

from pybox.images.layers import OVERLAY_OPAQUE_XATTR
from pybox.images.service import Images
from pybox.oci.defaults import default_spec
from runtime.conftest import Runtime
from support.tarbuild import make_tar, member

from .conftest import cleanup_root, docker_archive, own_mounts_under, unique_id

pytestmark = [pytest.mark.root, pytest.mark.images]

SCRIPT = """
set -e
echo appended >> /etc/hosts
rm /etc/lower-file
rm -rf /opq && mkdir /opq && echo new > /opq/new
mkdir /newdir && echo hi > /newdir/f
tail -n 1 /etc/hosts; ls /opq; test -e /etc/lower-file || echo gone
"""
CHECK = "tail -n 1 /etc/hosts; ls /opq; cat /newdir/f; test -e /etc/lower-file || echo gone"


@pytest.fixture
def rt():
    runtime = Runtime(tempfile.mkdtemp(prefix="pybox-test-rtroot-"))
    yield runtime
    runtime.cleanup()


@pytest.fixture
def bundles():
    path = tempfile.mkdtemp(prefix="pybox-test-bundles-")
    yield path
    cleanup_root(path)


def run_in(rt, bundles, rootfs, script):
    bundle = os.path.join(bundles, unique_id())
    os.makedirs(bundle)
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", script]
    spec["root"] = {"path": rootfs, "readonly": False}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    return rt("run", "--bundle", bundle, rt.new_id())


def mounts_at(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f if line.split()[4] == path]


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_copy_up_whiteout_opaque_diff_commit_export(data_root, busybox_tar, rt, bundles,
                                                   driver):
    images = Images.open(data_root, driver=driver)
    extra = make_tar([member("etc/", "dir"), member("etc/lower-file", data=b"lower\n"),
                      member("opq/", "dir"), member("opq/a", data=b"a"),
                      member("opq/b", data=b"b")])
    images.load(io.BytesIO(docker_archive([busybox_tar, extra], tags=("pybox-test/ov:1",))))
    record = images.record("pybox-test/ov:1")
    lower_hosts = os.path.join(images.snapshots.diff_dir(record["layers"][0]["chain_id"]),
                               "etc", "hosts")
    hosts_before = open(lower_hosts).read()

    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/ov:1")
    if driver == "overlay":
        (mount,) = mounts_at(rootfs)  # one mount, no copying
        assert mount[mount.index("-") + 1:mount.index("-") + 3] == ["overlay", "pybox-overlay"]
    else:
        assert mounts_at(rootfs) == []
    proc = run_in(rt, bundles, rootfs, SCRIPT)
    assert proc.stdout == "appended\nnew\ngone\n"
    assert open(lower_hosts).read() == hosts_before  # the image never changes

    if driver == "overlay":
        upper = os.path.join(images.snapshots.container_dir(cid), "upper")
        assert open(os.path.join(upper, "etc/hosts")).read().endswith("appended\n")
        wh = os.lstat(os.path.join(upper, "etc/lower-file"))
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
        assert os.getxattr(os.path.join(upper, "opq"), OVERLAY_OPAQUE_XATTR) == b"y"

    changes = {(c["Kind"], c["Path"]) for c in images.diff(cid)}
    assert {(0, "/etc"), (0, "/etc/hosts"), (2, "/etc/lower-file"), (2, "/opq/a"),
            (2, "/opq/b"), (1, "/opq/new"), (1, "/newdir"), (1, "/newdir/f")} <= changes
    assert (0, "/opq") in changes or (1, "/opq") in changes
    assert not [p for k, p in changes if p.startswith("/bin")]

    exported = io.BytesIO()
    images.export(cid, exported)
    exported.seek(0)
    with tarfile.open(fileobj=exported) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("etc/hosts").read().decode().endswith("appended\n")
    assert "etc/lower-file" not in names and "opq/a" not in names
    assert {"opq/new", "newdir/f", "bin/busybox"} <= names
    assert not [n for n in names if ".wh." in n]

    new_id = images.commit(cid, reference="pybox-test/ov:2", message="changed")
    assert len(images.record(new_id)["layers"]) == 3
    assert images.history(new_id)[0]["Comment"] == "changed"
    images.release_rootfs(cid)
    assert mounts_at(rootfs) == [] and not os.path.exists(rootfs)

    cid2 = unique_id()
    rootfs2 = images.prepare_rootfs(cid2, "pybox-test/ov:2")
    proc = run_in(rt, bundles, rootfs2, CHECK)
    assert proc.stdout == "appended\nnew\nhi\ngone\n"
    assert images.diff(cid2) == [] or all(
        not c["Path"].startswith(("/etc", "/opq", "/newdir")) for c in images.diff(cid2))
    images.release_rootfs(cid2)
    assert own_mounts_under(data_root) == []


def test_unmount_and_remount_keep_the_container_changes(images, busybox_tar, rt, bundles):
    images.import_(io.BytesIO(busybox_tar), reference="pybox-test/re:1")
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/re:1")
    run_in(rt, bundles, rootfs, "echo kept > /kept")
    images.unmount_rootfs(cid)
    assert mounts_at(rootfs) == []
    assert images.prepare_rootfs(cid, "pybox-test/re:1") == rootfs  # idempotent
    assert run_in(rt, bundles, rootfs, "cat /kept").stdout == "kept\n"
    images.release_rootfs(cid)
    assert own_mounts_under(images.data_root) == []
