"""Real archives in and out: OCI layouts made by umoci (whiteouts from its own
diff) and skopeo (docker-archive, oci-archive), docker-archive tarballs built in
the test to the documented format (legacy and docker >= 25), zstd layers, and
what pybox saves read back by skopeo, umoci and pybox itself."""

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile

import pytest

from support.tarbuild import make_tar, member, tar_of

from .conftest import skopeo, umoci, umoci_layout, unique_id

pytestmark = [pytest.mark.root, pytest.mark.images]


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _edits():
    def edit(rootfs):
        os.unlink(os.path.join(rootfs, "etc", "hostname"))        # -> .wh.hostname
        shutil.rmtree(os.path.join(rootfs, "home"))              # -> .wh.home
        os.makedirs(os.path.join(rootfs, "opt", "app"))
        with open(os.path.join(rootfs, "opt", "app", "run.sh"), "w") as f:
            f.write("#!/bin/sh\necho app\n")
        os.chmod(os.path.join(rootfs, "opt", "app", "run.sh"), 0o755)
    return edit


def test_umoci_layout_with_whiteouts(images, busybox_tree, workdir, oci_tools):
    layout = umoci_layout(workdir, busybox_tree, "app", ("base", "v2"), (_edits(),))
    loaded = images.load(layout, name="pybox-test/app")
    assert {t for item in loaded for t in item["RepoTags"]} == {
        "pybox-test/app:base", "pybox-test/app:v2"}
    record = images.record("pybox-test/app:v2")
    assert len(record["layers"]) == 2
    top = images.snapshots.diff_dir(record["layers"][1]["chain_id"])
    st = os.lstat(os.path.join(top, "etc", "hostname"))   # umoci's .wh. -> overlay's
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/app:v2")
    assert not os.path.exists(os.path.join(rootfs, "etc", "hostname"))
    assert not os.path.exists(os.path.join(rootfs, "home"))
    assert open(os.path.join(rootfs, "opt/app/run.sh")).read() == "#!/bin/sh\necho app\n"
    assert os.path.exists(os.path.join(rootfs, "etc", "passwd"))
    images.release_rootfs(cid)
    # the image's config is umoci's (cmd set with umoci config)
    assert images.inspect("pybox-test/app:base")["Config"]["Cmd"] == ["sh"]


def test_skopeo_docker_archive_and_oci_archive(images, busybox_tree, workdir, oci_tools):
    layout = umoci_layout(workdir, busybox_tree, "src", ("base", "v2"), (_edits(),))
    docker_tar = os.path.join(workdir, "docker.tar")
    skopeo("copy", f"oci:{layout}:v2", f"docker-archive:{docker_tar}:pybox-test/sk:v2")
    oci_tar = os.path.join(workdir, "oci.tar")
    skopeo("copy", f"oci:{layout}:v2", f"oci-archive:{oci_tar}:v2")
    (from_docker,) = images.load(docker_tar)
    assert from_docker["RepoTags"] == ["pybox-test/sk:v2"]
    (from_oci,) = images.load(oci_tar, name="pybox-test/ocia")
    assert from_oci["RepoTags"] == ["pybox-test/ocia:v2"]
    # the same image whichever way it came: same config, same diff-ids
    assert from_docker["Id"] == from_oci["Id"]
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/sk:v2")
    assert os.path.exists(os.path.join(rootfs, "opt/app/run.sh"))
    images.release_rootfs(cid)


def test_docker_archive_built_to_the_documented_format(images):
    """docker < 25 layout: CONFIG.json, V1ID/layer.tar (a duplicate as a symlink),
    manifest.json with two images and three tags, repositories."""
    base = make_tar([member("etc/", "dir"), member("etc/os-release", data=b"ID=test\n"),
                     member("bin/", "dir"), member("bin/tool", data=b"t", mode=0o755)])
    extra = make_tar([member("etc/.wh.os-release"), member("srv/", "dir"),
                      member("srv/.wh..wh..opq"), member("srv/new", data=b"n")])

    def config(diff_ids, cmd):
        return json.dumps({"architecture": "amd64", "os": "linux",
                           "created": "2024-05-06T07:08:09.123456789Z",
                           "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
                           "rootfs": {"type": "layers", "diff_ids": diff_ids},
                           "history": [{"created": "2024-05-06T07:08:09Z",
                                        "created_by": f"layer {i}"}
                                       for i in range(len(diff_ids))]}).encode()

    c1 = config([_sha(base)], ["one"])
    c2 = config([_sha(base), _sha(extra)], ["two"])
    manifest = [
        {"Config": f"{_sha(c1)[7:]}.json", "RepoTags": ["pybox-test/one:latest",
                                                         "pybox-test/one:v1"],
         "Layers": ["aaa/layer.tar"]},
        {"Config": f"{_sha(c2)[7:]}.json", "RepoTags": ["pybox-test/two:latest"],
         "Layers": ["bbb/layer.tar", "ccc/layer.tar"]},
    ]
    files = {f"{_sha(c1)[7:]}.json": c1, f"{_sha(c2)[7:]}.json": c2,
             "aaa/layer.tar": base, "aaa/VERSION": b"1.0", "aaa/json": b"{}",
             "ccc/layer.tar": extra, "manifest.json": json.dumps(manifest).encode(),
             "repositories": json.dumps({"pybox-test/one": {"latest": "aaa", "v1": "aaa"},
                                         "pybox-test/two": {"latest": "ccc"}}).encode()}
    data = tar_of(files, links=[("bbb/layer.tar", "../aaa/layer.tar")])
    loaded = images.load(io.BytesIO(gzip.compress(data)))  # docker load takes gzip too
    assert [item["RepoTags"] for item in loaded] == [
        ["pybox-test/one:latest", "pybox-test/one:v1"], ["pybox-test/two:latest"]]
    assert loaded[0]["Id"] == _sha(c1) and loaded[1]["Id"] == _sha(c2)
    doc = images.inspect("pybox-test/two")
    assert doc["Config"]["Cmd"] == ["two"]
    assert doc["Created"] == "2024-05-06T07:08:09.123456789Z"
    assert [h["CreatedBy"] for h in images.history("pybox-test/two")] == [
        "layer 1", "layer 0"]
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/two")
    assert not os.path.exists(os.path.join(rootfs, "etc/os-release"))
    assert os.listdir(os.path.join(rootfs, "srv")) == ["new"]
    assert os.path.exists(os.path.join(rootfs, "bin/tool"))
    images.release_rootfs(cid)
    # the base layer is stored once for both images
    assert len(os.listdir(images.snapshots.layers_dir)) == 2


def test_zstd_layer_in_an_oci_layout(images, workdir):
    layer_plain = make_tar([member("hello.txt", data=b"zstd works\n")])
    layer = make_tar([member("hello.txt", data=b"zstd works\n")], "zstd")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [_sha(layer_plain)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                    "digest": _sha(layer), "size": len(layer)}]}).encode()
    layout = os.path.join(workdir, "zstd")
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    for blob in (layer, config, manifest):
        with open(os.path.join(layout, "blobs", "sha256", _sha(blob)[7:]), "wb") as f:
            f.write(blob)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _sha(manifest), "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name":
                            "localhost/pybox-test/zstd:1"}}]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    (item,) = images.load(layout)
    assert item["RepoTags"] == ["localhost/pybox-test/zstd:1"]
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "localhost/pybox-test/zstd:1")
    assert open(os.path.join(rootfs, "hello.txt")).read() == "zstd works\n"
    images.release_rootfs(cid)
    # save to docker-archive decompresses: the layer there is the plain tar
    out = os.path.join(workdir, "z.tar")
    images.save(["localhost/pybox-test/zstd:1"], out)
    with tarfile.open(out) as tar:
        assert tar.extractfile(f"blobs/sha256/{_sha(layer_plain)[7:]}").read() == \
            layer_plain


def test_save_is_read_by_skopeo_umoci_and_pybox(images, busybox_tar, workdir, oci_tools):
    one = images.import_(io.BytesIO(busybox_tar), reference="pybox-test/s:1",
                         changes=["CMD [\"sh\"]"])
    images.tag(one, "pybox-test/s:alias")
    two = images.import_(io.BytesIO(busybox_tar), reference="pybox-test/t:1",
                         changes=["CMD [\"true\"]"])
    archive = os.path.join(workdir, "save.tar")
    images.save(["pybox-test/s:1", "pybox-test/s:alias", "pybox-test/t:1"], archive)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        repositories = json.load(tar.extractfile("repositories"))
    assert [m["RepoTags"] for m in manifest] == [["pybox-test/s:1", "pybox-test/s:alias"],
                                                 ["pybox-test/t:1"]]
    assert set(repositories) == {"pybox-test/s", "pybox-test/t"}
    info = json.loads(skopeo("inspect", f"docker-archive:{archive}:pybox-test/t:1"))
    assert info["Layers"] == [_sha(busybox_tar)]
    oci_dir = os.path.join(workdir, "oci-out")
    images.save(["pybox-test/s:1"], oci_dir, format="oci-dir")
    umoci("unpack", "--image", f"{oci_dir}:1", os.path.join(workdir, "unpacked"))
    assert os.path.exists(os.path.join(workdir, "unpacked", "rootfs", "bin", "busybox"))
    # round trip into an empty store: same Ids, same tags
    other = type(images).open(os.path.join(workdir, "second-store"))
    loaded = other.load(archive)
    assert [item["Id"] for item in loaded] == [one, two]
    assert other.inspect("pybox-test/s:alias")["Id"] == one
    oci_archive = os.path.join(workdir, "save-oci.tar")
    images.save(["pybox-test/t:1"], oci_archive, format="oci-archive")
    info = json.loads(skopeo("inspect", f"oci-archive:{oci_archive}"))
    assert info["Layers"] == [images.record(two)["layers"][0]["blob"]["digest"]]
