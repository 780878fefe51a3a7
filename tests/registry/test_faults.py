"""A registry that misbehaves (through the fault proxy): interrupted downloads,
wrong bytes, 401/404/429/500.  Each either recovers (retries, Range resumption)
or fails with a clear error -- and a failed pull leaves the store as it was."""

import pytest

from pybox.errors import AuthenticationError, DigestMismatch, RegistryError, RegistryNotFound
from pybox.images.pull import pull

from .conftest import ImageSpec, random_layer, store_listing, unique

pytestmark = [pytest.mark.registry, pytest.mark.root]

BLOB = r"/blobs/sha256:"
MANIFEST = r"/manifests/"


@pytest.fixture
def image(published, busybox_layer):
    return published([ImageSpec([busybox_layer, random_layer(unique(), 2_000_000)])])


def via_proxy(image, proxy):
    return image["ref"].replace(image["ref"].split("/", 1)[0], proxy.host)


def big_blob(image):
    return image["layers"][0][1]


def test_an_interrupted_download_resumes_with_a_range_request(images, registries, image,
                                                              fault_proxy):
    fault_proxy.add("GET", BLOB + big_blob(image)[7:], truncate=True, times=1)
    result = pull(images, registries, via_proxy(image, fault_proxy))
    assert result["id"] == image["configs"][0]
    ranges = [r for r in fault_proxy.ranges() if big_blob(image) in r[1]]
    assert len(ranges) == 1
    resumed_at = int(ranges[0][2][len("bytes="):-1])
    assert 0 < resumed_at < 2_100_000  # from where the cut connection stopped
    assert images.has_blob(big_blob(image))


def test_a_download_that_keeps_breaking_fails_and_leaves_the_store(images, registries, image,
                                                                   fault_proxy, data_root):
    before = store_listing(data_root)
    fault_proxy.add("GET", BLOB + big_blob(image)[7:], truncate=True)
    with pytest.raises(RegistryError, match=f"downloading blob {big_blob(image)}: .*gave up "
                       "after 4 attempts"):
        pull(images, registries, via_proxy(image, fault_proxy))
    assert store_listing(data_root) == before


def test_a_wrong_byte_is_a_digest_mismatch_and_nothing_is_kept(images, registries, image,
                                                               fault_proxy, data_root):
    before = store_listing(data_root)
    fault_proxy.add("GET", BLOB + big_blob(image)[7:], corrupt=True)
    with pytest.raises(DigestMismatch) as err:
        pull(images, registries, via_proxy(image, fault_proxy))
    assert err.value.expected == big_blob(image)
    assert "digest mismatch" in str(err.value)
    assert store_listing(data_root) == before


def test_a_wrong_manifest_digest_is_refused(images, registries, image, fault_proxy, data_root):
    before = store_listing(data_root)
    by_digest = via_proxy(image, fault_proxy).rsplit(":", 1)[0] + "@" + image["digests"][0]
    fault_proxy.add("GET", MANIFEST + image["digests"][0], corrupt=True)
    with pytest.raises(DigestMismatch):
        pull(images, registries, by_digest)
    assert store_listing(data_root) == before


@pytest.mark.parametrize("where", ["manifest", "blob"])
def test_401_is_an_authentication_error(images, registries, image, fault_proxy, data_root,
                                        where):
    before = store_listing(data_root)
    path = MANIFEST if where == "manifest" else BLOB + big_blob(image)[7:]
    fault_proxy.add("GET", path, status=401, body=b'{"errors":[{"code":"UNAUTHORIZED",'
                    b'"message":"authentication required"}]}')
    with pytest.raises(AuthenticationError) as err:
        pull(images, registries, via_proxy(image, fault_proxy))
    assert "unauthorized: authentication required" in str(err.value)
    if where == "manifest":
        assert str(err.value).startswith("pull access denied for")
    assert store_listing(data_root) == before


def test_404_of_a_blob_is_a_not_found_error(images, registries, image, fault_proxy, data_root):
    before = store_listing(data_root)
    fault_proxy.add("GET", BLOB + big_blob(image)[7:], status=404,
                    body=b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to '
                         b'registry"}]}')
    with pytest.raises(RegistryNotFound, match="blob unknown: blob unknown to registry"):
        pull(images, registries, via_proxy(image, fault_proxy))
    assert store_listing(data_root) == before


def test_429_and_500_are_retried_with_back_off(images, registries, image, fault_proxy):
    fault_proxy.add("GET", MANIFEST, status=429, times=2, headers={"Retry-After": "0"})
    fault_proxy.add("GET", BLOB + big_blob(image)[7:], status=503, times=2)
    result = pull(images, registries, via_proxy(image, fault_proxy))
    assert result["id"] == image["configs"][0]
    manifest_gets = [r for r in fault_proxy.requests("GET") if "/manifests/" in r[1]]
    assert len(manifest_gets) == 3


@pytest.mark.parametrize("status,text", [
    (429, "toomanyrequests: slow down"),
    (500, "received unexpected HTTP status: 500 Internal Server Error"),
])
def test_a_registry_that_keeps_failing_gives_up_with_its_error(images, registries, image,
                                                               fault_proxy, data_root,
                                                               status, text):
    before = store_listing(data_root)
    body = (b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            if status == 429 else b"")
    fault_proxy.add("GET", BLOB + big_blob(image)[7:], status=status, body=body)
    with pytest.raises(RegistryError) as err:
        pull(images, registries, via_proxy(image, fault_proxy))
    assert str(err.value) == text
    assert err.value.status == status
    assert store_listing(data_root) == before
    gets = [r for r in fault_proxy.requests("GET") if big_blob(image) in r[1]]
    assert len(gets) == 4  # max_attempts


def test_a_registry_that_is_not_there(images, registries, data_root):
    from .conftest import free_port

    before = store_listing(data_root)
    with pytest.raises(RegistryError, match="connection refused"):
        pull(images, registries, f"127.0.0.1:{free_port()}/x/y:1")
    assert store_listing(data_root) == before


def test_proxy_from_the_options_carries_the_requests(images, image, fault_proxy, registry):
    """The fault proxy as a forward proxy (HTTP_PROXY): requests to the registry
    go through it."""
    from pybox.images.registry import Registries
    from pybox.images.registry_config import RegistryOptions

    regs = Registries(RegistryOptions(proxies={"http": f"http://{fault_proxy.host}"},
                                      backoff_seconds=0.01))
    try:
        # plain HTTP first after the HTTPS try fails through the proxy
        pull(images, regs, image["ref"])
    finally:
        regs.close()
    assert any("/manifests/" in r[1] for r in fault_proxy.requests("GET"))
