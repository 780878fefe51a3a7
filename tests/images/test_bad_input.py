"""Bad input gives a clear ImageError and leaves the store as it was, with
nothing mounted: corrupt and truncated tarballs, digests that do not match, a
manifest naming a missing blob, path traversal, device nodes where not allowed,
a full disk; and concurrent imports of the same layers do not corrupt each
other."""

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import pytest

from pybox.errors import DigestMismatch, ImageError, LayerError
from pybox.images.service import Images
from support.tarbuild import make_tar, member

from .conftest import docker_archive, own_mounts_under, store_listing, unique_id

pytestmark = [pytest.mark.root, pytest.mark.images]


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def seeded(images, busybox_tar):
    """A store that already holds an image (so "unchanged" means something)."""
    images.import_(io.BytesIO(busybox_tar), reference="pybox-test/present:1")
    return images


def assert_refused(images, data_root, exc, call, match=None):
    before = store_listing(data_root)
    with pytest.raises(exc, match=match) as err:
        call()
    assert store_listing(data_root) == before
    assert [m for m in own_mounts_under(data_root) if m != data_root] == []
    assert os.listdir(os.path.join(data_root, "images", "ingest")) == []
    return err.value


def test_corrupt_and_truncated_archives(seeded, data_root):
    layer = make_tar([member("f", data=os.urandom(200_000))])
    good = docker_archive([layer])
    with tarfile.open(fileobj=io.BytesIO(good)) as tar:
        tar.getmembers()
        end_of_members = tar.offset  # where the end-of-archive blocks start
    cases = [
        (os.urandom(4096), "invalid archive|corrupt|unsupported|invalid tar header"),
        (good[:len(good) // 2], "truncated|invalid archive|mismatch|end|unexpected EOF"),
        (good[:end_of_members], "truncated|invalid archive|end|unexpected EOF"),
    ]
    for data, match in cases:
        assert_refused(seeded, data_root, ImageError,
                       lambda d=data: seeded.load(io.BytesIO(d)), match)
    gz = bytearray(__import__("gzip").compress(good))
    gz[len(gz) // 2: len(gz) // 2 + 64] = b"\0" * 64
    assert_refused(seeded, data_root, ImageError,
                   lambda: seeded.load(io.BytesIO(bytes(gz))))
    # a rootfs tarball for import, cut short
    plain = make_tar([member("a", data=b"x" * 100_000)])
    assert_refused(seeded, data_root, LayerError,
                   lambda: seeded.import_(io.BytesIO(plain[:50_000])), "truncated")


def test_digest_mismatches(seeded, data_root):
    layer = make_tar([member("f", data=b"content")])
    # a blob whose name is not its hash
    data = docker_archive([layer])
    evil = data.replace(b"content", b"CONTENT")
    err = assert_refused(seeded, data_root, DigestMismatch,
                         lambda: seeded.load(io.BytesIO(evil)))
    assert "digest mismatch" in str(err)
    # a config whose diff-id does not match the layer
    wrong = docker_archive([layer], diff_ids=["sha256:" + "0" * 64])
    assert_refused(seeded, data_root, DigestMismatch,
                   lambda: seeded.load(io.BytesIO(wrong)), "diff-id")


def test_manifest_naming_a_missing_blob(seeded, data_root, tmp_path):
    layer = make_tar([member("f", data=b"x")])
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _sha(config), "size": len(config)},
                           "layers": [{"mediaType":
                                       "application/vnd.oci.image.layer.v1.tar",
                                       "digest": _sha(layer), "size": len(layer)}]}).encode()
    layout = tmp_path / "pybox-test-layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    for blob in (config, manifest):  # the layer is left out
        (layout / "blobs" / "sha256" / _sha(blob)[7:]).write_bytes(blob)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _sha(manifest), "size": len(manifest)}]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    assert_refused(seeded, data_root, ImageError,
                   lambda: seeded.load(str(layout), name="pybox-test/missing"),
                   "missing")


def test_path_traversal_and_escaping_links(seeded, data_root, tmp_path):
    victim = tmp_path / "pybox-test-victim"
    victim.mkdir()
    layers = [
        make_tar([member("../../../../../../" + str(victim).lstrip("/") + "/owned",
                         data=b"x")]),
        make_tar([member("etc", "symlink", link=str(victim)),
                  member("etc/owned", data=b"x")]),
        make_tar([member("x", "hardlink", link="../../etc/shadow")]),
        make_tar([member("up", "symlink", link="../../../../" + str(victim))]),
    ]
    for layer in layers:
        assert_refused(seeded, data_root, LayerError,
                       lambda lay=layer: seeded.load(io.BytesIO(docker_archive([lay]))))
    assert os.listdir(victim) == []


def test_device_nodes_only_where_allowed(data_root):
    strict = Images.open(data_root, allow_device_nodes=False)
    layer = make_tar([member("dev/", "dir"), member("dev/sda", "block", dev=(8, 0))])
    assert_refused(strict, data_root, LayerError,
                   lambda: strict.load(io.BytesIO(docker_archive([layer]))), "device node")
    # the default (root, as docker) keeps device nodes
    allowed = Images.open(data_root)
    allowed.load(io.BytesIO(docker_archive([layer])))
    cid = unique_id()
    rootfs = allowed.prepare_rootfs(cid, "pybox-test/bad:1")
    assert os.stat(os.path.join(rootfs, "dev/sda")).st_rdev == os.makedev(8, 0)
    allowed.release_rootfs(cid)


def test_full_disk(tmp_path):
    root = tempfile.mkdtemp(prefix="pybox-test-enospc-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "pybox-test-tmpfs", root],
                   check=True)
    try:
        images = Images.open(root)
        images.import_(io.BytesIO(make_tar([member("small", data=b"x")])),
                       reference="pybox-test/small:1")
        big = make_tar([member("big", data=os.urandom(3 << 20))])
        err = assert_refused(images, root, ImageError,
                             lambda: images.load(io.BytesIO(docker_archive([big]))),
                             "no space left on device")
        assert err.errno == errno.ENOSPC
        # and the store still works
        assert images.inspect("pybox-test/small:1")["RepoTags"] == ["pybox-test/small:1"]
    finally:
        subprocess.run(["umount", root], check=True)
        os.rmdir(root)


def test_prepare_failure_leaves_nothing(seeded, data_root):
    record = seeded.record("pybox-test/present:1")
    layer_dir = seeded.snapshots.layer_dir(record["layers"][0]["chain_id"])
    os.rename(layer_dir, layer_dir + ".away")
    try:
        cid = unique_id()
        with pytest.raises(ImageError, match="missing"):
            seeded.prepare_rootfs(cid, "pybox-test/present:1")
        assert not os.path.exists(seeded.snapshots.container_dir(cid))
        assert own_mounts_under(data_root) == []
    finally:
        os.rename(layer_dir + ".away", layer_dir)


LOADER = """
import sys
from pybox.images.service import Images
images = Images(sys.argv[1])
print(images.load(sys.argv[2])[0]["Id"])
"""


def test_concurrent_loads_of_the_same_layers(data_root, tmp_path):
    layers = [make_tar([member(f"layer{i}/", "dir")] +
                       [member(f"layer{i}/f{j}", data=os.urandom(30_000)) for j in range(40)])
              for i in range(3)]
    archive = tmp_path / "pybox-test-same.tar"
    archive.write_bytes(docker_archive(layers, tags=("pybox-test/same:1",)))
    Images.open(data_root)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-c", LOADER, data_root, str(archive)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    assert len({out.strip() for out, _ in results}) == 1
    images = Images.open(data_root)
    assert len(os.listdir(images.snapshots.layers_dir)) == 3
    assert os.listdir(os.path.join(data_root, "images", "ingest")) == []
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/same:1")
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    assert open(os.path.join(rootfs, m.name), "rb").read() == \
                        tar.extractfile(m).read()
    images.release_rootfs(cid)
