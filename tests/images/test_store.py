"""The store's docker-facing operations on real images: import with --change,
inspect/history/list, tag and remove with docker's rules, prune, and layers
shared between images (stored once, removed with their last user)."""

import hashlib
import io
import os

import pytest

from pybox.errors import ImageInUse, ImageNotFound

from .conftest import umoci_layout, unique_id

pytestmark = [pytest.mark.root, pytest.mark.images]


def test_import_inspect_history_list(images, busybox_tar):
    image_id = images.import_(io.BytesIO(busybox_tar), reference="pybox-test/bb:1",
                              changes=['CMD ["sh"]', "ENV A=1", "WORKDIR /srv",
                                       "USER 1:1", "EXPOSE 80", "LABEL x=y",
                                       "VOLUME /data", "STOPSIGNAL SIGINT"],
                              message="from a test")
    config_digest = images.record(image_id)["config"]["digest"]
    blob = open(images.blobs.path(config_digest), "rb").read()
    assert image_id == "sha256:" + hashlib.sha256(blob).hexdigest()  # Id = config digest
    doc = images.inspect("pybox-test/bb:1")
    assert doc["Id"] == image_id
    assert doc["RepoTags"] == ["pybox-test/bb:1"] and doc["RepoDigests"] == []
    config = doc["Config"]
    assert config["Cmd"] == ["sh"] and config["Env"] == ["A=1"]
    assert (config["WorkingDir"], config["User"]) == ("/srv", "1:1")
    assert config["ExposedPorts"] == {"80/tcp": {}} and config["Labels"] == {"x": "y"}
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGINT"
    assert doc["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(busybox_tar).hexdigest()]
    assert doc["Size"] > 1_000_000 and doc["Created"].endswith("Z")
    assert doc["Comment"] == "from a test"
    history = images.history(image_id)
    assert [h["Comment"] for h in history] == ["from a test"]
    assert history[0]["Id"] == image_id and history[0]["Tags"] == ["pybox-test/bb:1"]
    summary, = images.list()
    assert summary["Id"] == image_id and summary["RepoTags"] == ["pybox-test/bb:1"]
    assert summary["Size"] == doc["Size"] and summary["Labels"] == {"x": "y"}
    assert images.list(filters={"reference": ["pybox-test/*"]}) == [summary]
    assert images.list(filters={"dangling": ["true"]}) == []
    assert images.resolve(image_id[7:19]) == image_id  # a short id


def test_tag_remove_and_prune(images, busybox_tar):
    image_id = images.import_(io.BytesIO(busybox_tar), reference="a:1")
    images.tag("a:1", "b")  # untagged target: latest
    assert images.inspect(image_id)["RepoTags"] == ["a:1", "b:latest"]
    # by Id while two names point at it: docker refuses without force
    with pytest.raises(ImageInUse, match="referenced in multiple repositories"):
        images.remove(image_id[7:19])
    assert images.remove("b") == [{"Untagged": "b:latest"}]  # by name: untag only
    # a stopped container uses it: must force; a running one: never
    cid = unique_id()
    images.prepare_rootfs(cid, "a:1")
    with pytest.raises(ImageInUse, match="must force"):
        images.remove("a:1")
    images.container_running = lambda c: c == cid
    with pytest.raises(ImageInUse, match="cannot be forced"):
        images.remove("a:1", force=True)
    images.container_running = lambda c: False
    result = images.remove("a:1", force=True)
    assert result == [{"Untagged": "a:1"}, {"Deleted": image_id}]
    with pytest.raises(ImageNotFound):
        images.inspect("a:1")
    # the container keeps its layers until its rootfs is released
    layer = images.snapshots.container_info(cid)["chain_ids"][0]
    assert images.snapshots.has_layer(layer)
    assert images.layer_users(layer) == [("container", cid)]
    images.release_rootfs(cid)
    images.collect_garbage()
    assert not images.snapshots.has_layer(layer)
    assert images.blobs.all() == set()
    # prune: dangling images go, tagged ones stay
    keep = images.import_(io.BytesIO(busybox_tar), reference="keep:1")
    dangling = images.import_(io.BytesIO(busybox_tar), changes=["CMD x"])
    report = images.prune()
    assert report["ImagesDeleted"] == [{"Deleted": dangling}]
    assert [s["Id"] for s in images.list()] == [keep]


def test_tag_moves_and_leaves_the_old_image_dangling(images, busybox_tar):
    first = images.import_(io.BytesIO(busybox_tar), reference="t:1", changes=["CMD a"])
    second = images.import_(io.BytesIO(busybox_tar), reference="t:1", changes=["CMD b"])
    assert first != second
    assert images.resolve("t:1") == second
    assert images.inspect(first)["RepoTags"] == []
    assert images.list(filters={"dangling": ["true"]})[0]["Id"] == first


def test_layers_shared_by_two_images_are_stored_once(images, busybox_tree, workdir,
                                                     oci_tools):
    def add_a(rootfs):
        open(os.path.join(rootfs, "a.txt"), "w").write("a\n")

    # umoci: image x:base (busybox) and x:a (busybox + a layer), one layout
    layout = umoci_layout(workdir, busybox_tree, "one", ("base", "a"), (add_a,))
    loaded = images.load(layout, name="pybox-test/x")
    assert sorted(t for item in loaded for t in item["RepoTags"]) == [
        "pybox-test/x:a", "pybox-test/x:base"]
    record_a = images.record("pybox-test/x:a")
    base_chain = record_a["layers"][0]["chain_id"]
    assert images.record("pybox-test/x:base")["layers"][0]["chain_id"] == base_chain
    layers_before = sorted(os.listdir(images.snapshots.layers_dir))
    images.load(layout, name="pybox-test/again")  # the same content: nothing new
    assert sorted(os.listdir(images.snapshots.layers_dir)) == layers_before
    # a third image on the same base: commit of a container
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, "pybox-test/x:base")
    open(os.path.join(rootfs, "b.txt"), "w").write("b\n")
    b_id = images.commit(cid, reference="pybox-test/b:1")
    images.release_rootfs(cid)
    assert images.record(b_id)["layers"][0]["chain_id"] == base_chain
    assert os.listdir(images.snapshots.layers_dir).count(base_chain[7:]) == 1
    users = set(images.layer_users(base_chain))
    assert {("image", record_a["id"]), ("image", b_id)} <= users
    # removing the others keeps the base for b
    for ref in ("pybox-test/x:a", "pybox-test/x:base", "pybox-test/again:a",
                "pybox-test/again:base"):
        images.remove(ref)
    assert images.snapshots.has_layer(base_chain)
    assert images.layer_users(base_chain) == [("image", b_id)]
    cid2 = unique_id()
    rootfs = images.prepare_rootfs(cid2, "pybox-test/b:1")
    assert open(os.path.join(rootfs, "b.txt")).read() == "b\n"
    assert not os.path.exists(os.path.join(rootfs, "a.txt"))
    assert os.path.exists(os.path.join(rootfs, "bin/busybox"))
    images.release_rootfs(cid2)
    # the last user goes: so does the layer, its short link and every blob
    images.remove("pybox-test/b:1")
    assert not images.snapshots.has_layer(base_chain)
    assert os.listdir(images.snapshots.layers_dir) == []
    assert os.listdir(images.snapshots.links_dir) == []
    assert images.blobs.all() == set()


def test_removing_the_last_tag_drops_the_repository_digests(images, busybox_tar):
    """As after a pull: busybox:latest and busybox@sha256:... name one image;
    `rmi busybox` untags both and deletes the image, as docker does."""
    image_id = images.import_(io.BytesIO(busybox_tar), reference="pybox-test/pulled:1")
    record = images.record(image_id)
    manifest = images.blobs.read_json(record["manifest"]["digest"])
    with images.writing():
        images.add_image(manifest, refs=["pybox-test/other:2"],
                         manifest_bytes=images.blobs.read(record["manifest"]["digest"]),
                         repo_digest_names=["pybox-test/pulled"])
    doc = images.inspect(image_id)
    assert doc["RepoDigests"] == [f"pybox-test/pulled@{record['manifest']['digest']}"]
    # another repository's tag remains: untag pulled:1 and its digest only
    assert images.remove("pybox-test/pulled:1") == [
        {"Untagged": "pybox-test/pulled:1"},
        {"Untagged": f"pybox-test/pulled@{record['manifest']['digest']}"}]
    assert images.inspect(image_id)["RepoTags"] == ["pybox-test/other:2"]
    assert images.remove("pybox-test/other:2") == [{"Untagged": "pybox-test/other:2"},
                                                   {"Deleted": image_id}]
