"""Pull from a real docker-registry: formats, platforms, layer reuse, progress."""

import json
import os

import pytest

from pybox.errors import RegistryNotFound
from pybox.images import progress as P
from pybox.images.platforms import host_platform
from pybox.images.pull import pull

from .conftest import ImageSpec, random_layer, sha, store_listing, unique

pytestmark = [pytest.mark.registry, pytest.mark.root]


def test_pull_multi_layer_image_verifies_unpacks_and_reports_docker_progress(
        images, registries, published, busybox_layer):
    info = published([ImageSpec([busybox_layer, random_layer(unique(), 1_500_000),
                                  random_layer(unique(), 700_000)])])
    messages = P.Collector()
    result = pull(images, registries, info["ref"], report=messages)

    assert result["id"] == info["configs"][0]
    assert result["digest"] == info["digests"][0]
    assert result["new"] is True
    doc = images.inspect(info["ref"])
    host, port_repo = info["ref"].split("/", 1)
    assert doc["RepoTags"] == [info["ref"]]
    assert doc["RepoDigests"] == [f"{host}/{info['repo']}@{info['digests'][0]}"]
    assert doc["RootFS"]["Layers"] == [sha(layer) for layer in (busybox_layer,)] + \
        doc["RootFS"]["Layers"][1:] and len(doc["RootFS"]["Layers"]) == 3
    # every layer blob is stored under its digest
    for digest in info["layers"][0]:
        assert images.has_blob(digest)

    statuses = [m.get("status") for m in messages.messages]
    assert statuses[0] == f"Pulling from {info['repo']}"
    assert messages.messages[0]["id"] == "latest"
    for digest in info["layers"][0]:
        layer_id = digest[7:19]
        mine = messages.statuses(layer_id)
        assert mine[0] == "Pulling fs layer"
        for expected in ("Downloading", "Verifying Checksum", "Download complete",
                         "Extracting", "Pull complete"):
            assert expected in mine, (layer_id, mine)
        assert mine[-1] == "Pull complete"
        assert mine.index("Download complete") < mine.index("Extracting")
    downloading = [m for m in messages.messages if m.get("status") == "Downloading"]
    assert all(set(m["progressDetail"]) == {"current", "total"} for m in downloading)
    last = {m["id"]: m["progressDetail"] for m in downloading}
    sizes = {d[7:19]: None for d in info["layers"][0]}
    assert set(last) == set(sizes)
    assert all(v["current"] == v["total"] for v in last.values())
    assert statuses[-2] == f"Digest: {info['digests'][0]}"
    assert statuses[-1] == f"Status: Downloaded newer image for {info['ref']}"
    json.dumps(messages.messages)  # docker's wire format: plain JSON

    # the image is usable: a container rootfs from it has the layers' files
    rootfs = images.prepare_rootfs("c" * 64, info["ref"])
    try:
        assert os.path.exists(os.path.join(rootfs, "bin", "busybox"))
        assert len(os.listdir(os.path.join(rootfs, "data"))) == 2
    finally:
        images.release_rootfs("c" * 64)

    again = P.Collector()
    result = pull(images, registries, info["ref"], report=again)
    assert result["new"] is False
    assert again.statuses()[-1] == f"Status: Image is up to date for {info['ref']}"
    assert not any(m.get("id") and m.get("status") == "Downloading" for m in again.messages)


def test_pull_by_digest_records_the_repo_digest_and_no_tag(images, registries, published):
    info = published()
    by_digest = info["ref"].rsplit(":", 1)[0] + "@" + info["digests"][0]
    result = pull(images, registries, by_digest)
    doc = images.inspect(by_digest)
    assert doc["Id"] == result["id"] == info["configs"][0]
    assert doc["RepoTags"] == []
    assert doc["RepoDigests"] == [by_digest]


def test_layers_already_present_are_not_downloaded(images, registries, published,
                                                    busybox_layer):
    shared = random_layer(unique(), 400_000)
    first = published([ImageSpec([busybox_layer, shared])])
    second = published([ImageSpec([busybox_layer, shared, random_layer(unique(), 10_000)])])
    pull(images, registries, first["ref"])
    messages = P.Collector()
    pull(images, registries, second["ref"], report=messages)
    for digest in second["layers"][0][:2]:
        assert messages.statuses(digest[7:19]) == ["Already exists"]
    new_layer = second["layers"][0][2][7:19]
    assert "Downloading" in messages.statuses(new_layer)


def test_index_picks_the_host_platform_or_the_one_asked_for(images, registries, published,
                                                            busybox_layer):
    host = host_platform()
    other_arch = "s390x" if host.architecture != "s390x" else "ppc64le"
    info = published([ImageSpec([busybox_layer]),
                      ImageSpec([random_layer(unique(), 1000)], arch=other_arch),
                      ImageSpec([random_layer(unique(), 1000)], arch="arm", variant="v7")])
    result = pull(images, registries, info["ref"])
    assert result["id"] == info["configs"][0]
    assert result["digest"] == info["index"]  # docker shows the index digest
    assert images.inspect(info["ref"])["RepoDigests"][0].endswith("@" + info["index"])
    assert images.inspect(info["ref"])["Architecture"] == host.architecture

    other = info["ref"].replace(":latest", ":other")
    result = pull(images, registries, info["ref"], platform=f"linux/{other_arch}")
    assert result["id"] == info["configs"][1]
    assert images.config(info["ref"])["architecture"] == other_arch
    result = pull(images, registries, info["ref"], platform="linux/arm/v7")
    assert result["id"] == info["configs"][2]
    del other


def test_unknown_platform_is_a_clear_error_and_the_store_is_unchanged(
        images, registries, published, busybox_layer, data_root):
    info = published([ImageSpec([busybox_layer]),
                      ImageSpec([random_layer(unique(), 1000)], arch="s390x")])
    before = store_listing(data_root)
    with pytest.raises(RegistryNotFound) as err:
        pull(images, registries, info["ref"], platform="linux/mips64")
    assert str(err.value) == "no matching manifest for linux/mips64 in the manifest list entries"
    assert store_listing(data_root) == before

    single = published([ImageSpec([random_layer(unique(), 1000)], arch="s390x")])
    with pytest.raises(RegistryNotFound, match="does not match the specified platform: "
                       "wanted linux/arm64, actual: linux/s390x"):
        pull(images, registries, single["ref"], platform="linux/arm64")
    assert store_listing(data_root) == before


@pytest.mark.parametrize("compression,fmt", [("zstd", None), (None, None),
                                             ("gzip", "v2s2")])
def test_formats_zstd_plain_layers_and_docker_schema2(images, registries, published,
                                                      busybox_layer, compression, fmt):
    info = published([ImageSpec([busybox_layer, random_layer(unique(), 50_000)],
                                compression=compression)], fmt=fmt)
    result = pull(images, registries, info["ref"])
    record = images.record(info["ref"])
    if fmt == "v2s2":
        assert record["manifest"]["mediaType"] == \
            "application/vnd.docker.distribution.manifest.v2+json"
        assert all(layer["blob"]["mediaType"] ==
                   "application/vnd.docker.image.rootfs.diff.tar.gzip"
                   for layer in record["layers"])
    else:
        assert record["manifest"]["digest"] == info["digests"][0]
        assert [layer["blob"]["digest"] for layer in record["layers"]] == info["layers"][0]
    assert result["id"] == record["id"]
    assert [layer["diff_id"] for layer in record["layers"]][0] == sha(busybox_layer)


def test_missing_tag_and_repository_use_dockers_words(images, registries, registry,
                                                      published, data_root):
    info = published()
    before = store_listing(data_root)
    with pytest.raises(RegistryNotFound) as err:
        pull(images, registries, info["ref"].replace(":latest", ":nope"))
    assert str(err.value) == (f"manifest for {info['ref'].replace(':latest', ':nope')} not "
                              "found: manifest unknown: manifest unknown")
    with pytest.raises(RegistryNotFound) as err:
        pull(images, registries, f"{registry.host}/no/such-repo:1")
    assert "pull access denied for" in str(err.value) or "not found" in str(err.value)
    assert store_listing(data_root) == before


def test_docker_hub_mirror_is_used_and_docker_hub_itself_never_contacted(
        images, published, registry, busybox_layer):
    """A docker.io name pulled through a mirror (the local registry); a proxy to
    a dead port catches any attempt to reach the real Docker Hub."""
    from pybox.images.registry import Registries
    from pybox.images.registry_config import RegistryOptions

    name = unique("mirrortest")
    info = published([ImageSpec([busybox_layer])], repo=f"library/{name}")
    dead = "http://127.0.0.1:9"
    options = RegistryOptions(mirrors=[f"http://{registry.host}"], backoff_seconds=0.01,
                              max_attempts=1, proxies={"https": dead, "http": dead,
                                                       "no": "127.0.0.1"})
    regs = Registries(options)
    try:
        result = pull(images, regs, name)
        assert result["id"] == info["configs"][0]
        assert images.inspect(name)["RepoTags"] == [f"{name}:latest"]
        # a tag the mirror lacks: falls through to Docker Hub, which the dead
        # proxy refuses -- an error, not a hang, and nothing leaves the machine
        with pytest.raises(Exception) as err:
            pull(images, regs, f"{name}:absent")
        assert "registry-1.docker.io" in str(err.value)
    finally:
        regs.close()
