"""Push to a real registry: checked with skopeo inspect and pulled back."""

import io
import os

import pytest

from pybox.images import progress as P
from pybox.images.pull import pull
from pybox.images.push import push, push_repository
from pybox.images.registry import Registries
from pybox.images.registry_config import RegistryOptions
from pybox.images.service import Images

from .conftest import ImageSpec, random_layer, sha, skopeo_inspect, unique

pytestmark = [pytest.mark.registry, pytest.mark.root]


def _import_plain_image(images, busybox_layer, name):
    """An image whose layers the store keeps as plain tars (docker import)."""
    return images.import_(io.BytesIO(busybox_layer), reference=name, changes=['CMD ["sh"]'])


def test_push_an_imported_image_compresses_and_round_trips(images, registries, registry,
                                                           busybox_layer, data_root):
    name = f"{registry.host}/pushed/{unique()}:v1"
    image_id = _import_plain_image(images, busybox_layer, name)
    messages = P.Collector()
    result = push(images, registries, name, report=messages)

    layer_id = images.inspect(name)["RootFS"]["Layers"][0][7:19]
    assert messages.messages[0] == {"status": f"The push refers to repository "
                                              f"[{name.rsplit(':', 1)[0]}]"}
    mine = messages.statuses(layer_id)
    assert mine[0] == "Preparing" and mine[-1] == "Pushed" and "Pushing" in mine
    assert messages.statuses()[-2] == (f"v1: digest: {result['digest']} size: "
                                       f"{result['size']}")
    assert messages.messages[-1]["aux"] == {"Tag": "v1", "Digest": result["digest"],
                                            "Size": result["size"]}

    inspected = skopeo_inspect(name)
    assert inspected["Digest"] == result["digest"]
    raw = skopeo_inspect(name, raw=True)
    assert raw["config"]["digest"] == image_id
    assert raw["layers"][0]["mediaType"].endswith("tar+gzip")  # compressed on the way

    again = P.Collector()
    assert push(images, registries, name, report=again)["digest"] == result["digest"]
    assert again.statuses(layer_id) == ["Preparing", "Layer already exists"]

    other_root = os.path.join(data_root, "other")
    other = Images.open(other_root)
    back = pull(other, registries, name)
    assert back["id"] == image_id
    assert other.inspect(name)["RootFS"]["Layers"] == [sha(busybox_layer)]


def test_pushing_a_pulled_image_keeps_its_manifest_digest(images, registries, registry,
                                                          published):
    info = published()
    pull(images, registries, info["ref"])
    target = f"{registry.host}/copy/{unique()}:same"
    images.tag(info["ref"], target)
    result = push(images, registries, target)
    assert result["digest"] == info["digests"][0]
    assert skopeo_inspect(target)["Digest"] == info["digests"][0]


def test_cross_repository_mount(images, registries, registry, published, fault_proxy):
    info = published()
    via = info["ref"].replace(registry.host, fault_proxy.host)
    pull(images, registries, via)
    target = f"{fault_proxy.host}/mounted/{unique()}:m"
    images.tag(via, target)
    messages = P.Collector()
    push(images, registries, target, report=messages)
    mounted = [m["status"] for m in messages.messages
               if str(m.get("status", "")).startswith("Mounted from")]
    assert mounted and all(s == f"Mounted from {info['repo']}" for s in mounted)
    posts = [r[1] for r in fault_proxy.requests("POST")]
    assert any("mount=sha256" in p and "from=" in p for p in posts)
    assert skopeo_inspect(target.replace(fault_proxy.host, registry.host))["Digest"] == \
        info["digests"][0]


def test_chunked_upload(images, registry, fault_proxy, busybox_layer):
    name = f"{fault_proxy.host}/chunked/{unique()}:c"
    _import_plain_image(images, busybox_layer, name)
    regs = Registries(RegistryOptions(chunk_size=256 * 1024, proxies={},
                                      backoff_seconds=0.01))
    try:
        result = push(images, regs, name)
    finally:
        regs.close()
    patches = fault_proxy.requests("PATCH")
    assert len(patches) >= 3
    real = name.replace(fault_proxy.host, registry.host)
    assert skopeo_inspect(real)["Digest"] == result["digest"]


def test_push_all_tags_and_missing_images(images, registries, registry, busybox_layer):
    from pybox.errors import ImageError, ImageNotFound

    repo = f"{registry.host}/alltags/{unique()}"
    _import_plain_image(images, busybox_layer, f"{repo}:a")
    images.tag(f"{repo}:a", f"{repo}:b")
    results = push_repository(images, registries, repo)
    assert [r["tag"] for r in results] == ["a", "b"]
    assert sorted(skopeo_inspect(f"{repo}:a")["RepoTags"]) == ["a", "b"]
    with pytest.raises(ImageNotFound):
        push(images, registries, f"{registry.host}/none/{unique()}:x")
    with pytest.raises(ImageError, match="does not exist locally"):
        push_repository(images, registries, f"{registry.host}/none/{unique()}")


def test_multi_layer_push_in_parallel(images, registry, fault_proxy, busybox_layer, workdir):
    """Five layers uploaded by three threads; the registry's name differs (the
    proxy's address), so nothing can be mounted: every layer is sent."""
    from .conftest import skopeo_copy, write_layout

    layers = [busybox_layer] + [random_layer(unique(), 200_000) for _ in range(4)]
    layout = os.path.join(workdir, "multi")
    info = write_layout(layout, [ImageSpec(layers, compression="gzip")])
    src = f"{registry.host}/multi/{unique()}:1"
    skopeo_copy(layout, "latest", src)
    regs = Registries(RegistryOptions(proxies={}, max_concurrent_uploads=3))
    try:
        pull(images, regs, src)
        target = f"{fault_proxy.host}/multi2/{unique()}:1"
        images.tag(src, target)
        messages = P.Collector()
        result = push(images, regs, target, report=messages)
    finally:
        regs.close()
    assert result["digest"] == info["digests"][0]
    assert messages.statuses().count("Pushed") == 5
    assert messages.statuses().count("Waiting") == 2
    assert len([r for r in fault_proxy.requests("PUT") if "/blobs/uploads/" in r[1]]) == 6
