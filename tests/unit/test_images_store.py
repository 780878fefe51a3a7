"""The content store without root: blobs verified on write (nothing visible when
the content is wrong), concurrent writers of one blob, chain-ids, name lookup,
and archive manifests read into the store."""

import hashlib
import io
import json
import os
import threading

import pytest

from pybox.errors import DigestMismatch, ImageError, ImageNotFound
from pybox.images import archive
from pybox.images import store as st
from support.tarbuild import make_tar, member, tar_of

pytestmark = pytest.mark.unit


@pytest.fixture
def images_store(tmp_path):
    return st.ImageStore(str(tmp_path / "images"))


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_blob_written_and_verified(images_store):
    blobs = images_store.blobs
    digest = blobs.write_bytes(b"hello", _sha(b"hello"))
    assert digest == _sha(b"hello") and blobs.read(digest) == b"hello"
    assert blobs.write_bytes(b"hello") == digest  # again: already there, same result
    assert os.listdir(blobs.ingest) == []


def test_wrong_content_never_becomes_visible(images_store):
    blobs = images_store.blobs
    with pytest.raises(DigestMismatch):
        blobs.write_bytes(b"evil", _sha(b"good"))
    with pytest.raises(ImageError, match="size mismatch"):
        blobs.write_stream(io.BytesIO(b"short"), None, 99)
    assert blobs.all() == set() and os.listdir(blobs.ingest) == []


def test_concurrent_writers_of_one_blob(images_store):
    data = os.urandom(3 << 20)
    errors = []

    def write():
        try:
            images_store.blobs.write_bytes(data, _sha(data))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert images_store.blobs.read(_sha(data)) == data
    assert os.listdir(images_store.blobs.ingest) == []


def test_chain_ids():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    chain = st.chain_ids([a, b])
    assert chain[0] == a
    assert chain[1] == _sha(f"{a} {b}".encode())


def test_resolve(images_store):
    image_id = "sha256:" + "3f57" + "0" * 60
    other = "sha256:" + "3f58" + "0" * 60
    for i in (image_id, other):
        images_store.put_record({"id": i, "layers": []})
    images_store.save_refs({"docker.io/library/busybox:latest": image_id})
    assert images_store.resolve("busybox") == image_id
    assert images_store.resolve("docker.io/library/busybox:latest") == image_id
    assert images_store.resolve("3f570") == image_id
    assert images_store.resolve(image_id) == image_id
    with pytest.raises(ImageError, match="ambiguous"):
        images_store.resolve("3f5")
    with pytest.raises(ImageNotFound, match="No such image: nothere"):
        images_store.resolve("nothere")


def test_rfc3339_round_trip():
    assert st.parse_rfc3339("2024-01-02T03:04:05Z") == 1704164645
    assert st.parse_rfc3339("2024-01-02T03:04:05.5+01:00") == 1704164645 - 3600 + 0.5
    assert st.parse_rfc3339("garbage") == 0


# -- archives (streamed into the blob store, nothing unpacked) --------------------

def _config(diff_ids):
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()


def test_legacy_docker_archive_with_a_symlinked_duplicate_layer(images_store):
    layer = make_tar([member("a", data=b"x")])
    config = _config([_sha(layer), _sha(layer)])
    manifest = [{"Config": "c0ffee.json", "RepoTags": ["busybox:latest", "me/x:1"],
                 "Layers": ["l1/layer.tar", "l2/layer.tar"]}]
    data = tar_of({"c0ffee.json": config, "l1/layer.tar": layer,
                 "manifest.json": json.dumps(manifest).encode(),
                 "repositories": b"{}"}, links=[("l2/layer.tar", "../l1/layer.tar")])
    found = archive.read_archive(io.BytesIO(data), images_store.blobs)
    assert len(found) == 1
    assert found[0].refs == ["docker.io/library/busybox:latest", "docker.io/me/x:1"]
    assert [d["digest"] for d in found[0].manifest["layers"]] == [_sha(layer)] * 2


def test_archive_problems(images_store):
    layer = make_tar([member("a", data=b"x")])
    good = {"blobs/sha256/" + _sha(layer)[7:]: layer,
            "manifest.json": json.dumps([{"Config": "blobs/sha256/" + "0" * 64,
                                          "Layers": []}]).encode()}
    with pytest.raises(ImageError, match="not in the archive"):
        archive.read_archive(io.BytesIO(tar_of(good)), images_store.blobs)
    missing_layer = {"c.json": _config([_sha(layer)]), "manifest.json": json.dumps(
        [{"Config": "c.json", "Layers": ["nothere/layer.tar"]}]).encode()}
    with pytest.raises(ImageError, match="not in the archive"):
        archive.read_archive(io.BytesIO(tar_of(missing_layer)), images_store.blobs)
    lying = {"blobs/sha256/" + "1" * 64: layer, "manifest.json": b"[]"}
    with pytest.raises(DigestMismatch):
        archive.read_archive(io.BytesIO(tar_of(lying)), images_store.blobs)
    with pytest.raises(ImageError, match="does not contain a manifest.json"):
        archive.read_archive(io.BytesIO(tar_of({"x": b"y"})), images_store.blobs)
    whole = tar_of(dict(good, **{"c.json": b"{}"}))
    with pytest.raises(ImageError, match="truncated|invalid archive|unexpected EOF"):
        archive.read_archive(io.BytesIO(whole[:1024]), images_store.blobs)
