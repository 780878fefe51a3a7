"""Authentication and transport security against real registries: htpasswd
(Basic), token auth (Bearer, the tests' token server), TLS from a test CA.
(Credentials kept as docker keeps them, which needs no registry:
tests/unit/test_images_auth.py.)"""

import json
import os

import pytest

from pybox.errors import AuthenticationError, RegistryError
from pybox.images.auth import Credentials
from pybox.images.pull import pull
from pybox.images.push import push
from pybox.images.registry import Registries, login
from pybox.images.registry_config import RegistryOptions

from .conftest import PASSWORD, USER, ImageSpec, random_layer, store_listing, unique

pytestmark = [pytest.mark.registry, pytest.mark.root]
GOOD = Credentials(USER, PASSWORD)
BAD = Credentials(USER, "wrong")


# -- Basic (htpasswd) --------------------------------------------------------------------
def test_htpasswd_registry_needs_the_credentials(images, registries, published, auth_registry,
                                                 data_root, busybox_layer):
    info = published([ImageSpec([busybox_layer])], server=auth_registry,
                     creds=f"{USER}:{PASSWORD}")
    before = store_listing(data_root)
    with pytest.raises(AuthenticationError) as err:
        pull(images, registries, info["ref"])
    assert "pull access denied" in str(err.value)
    assert "unauthorized: authentication required" in str(err.value)
    with pytest.raises(AuthenticationError):
        pull(images, registries, info["ref"], credentials=BAD)
    assert store_listing(data_root) == before
    result = pull(images, registries, info["ref"], credentials=GOOD)
    assert result["id"] == info["configs"][0]


def test_login_basic(registries, auth_registry):
    assert login(registries, auth_registry.host, GOOD) == {"Status": "Login Succeeded",
                                                           "IdentityToken": ""}
    with pytest.raises(AuthenticationError) as err:
        login(registries, f"http://{auth_registry.host}/", BAD)
    assert str(err.value).startswith("login attempt to ")
    assert str(err.value).endswith(f"{auth_registry.host}/v2/ failed with status: "
                                   "401 Unauthorized")


def test_push_to_htpasswd_registry(images, registries, published, auth_registry,
                                   busybox_layer):
    info = published([ImageSpec([busybox_layer])])
    pull(images, registries, info["ref"])
    target = f"{auth_registry.host}/pushed/{unique()}:v1"
    images.tag(info["ref"], target)
    with pytest.raises(AuthenticationError):
        push(images, registries, target)
    result = push(images, registries, target, credentials=GOOD)
    from .conftest import skopeo_inspect

    assert skopeo_inspect(target, creds=f"{USER}:{PASSWORD}")["Digest"] == result["digest"]


# -- Bearer (token server) -------------------------------------------------------------------
def test_token_flow_pull_push_scopes_and_cache(images, registries, token_registry,
                                               token_server, busybox_layer, workdir):
    from .conftest import skopeo_copy, write_layout

    layout = os.path.join(workdir, "tok")
    info = write_layout(layout, [ImageSpec([busybox_layer, random_layer(unique(), 10000)])])
    repo = f"private/{unique()}"
    ref = f"{token_registry.host}/{repo}:latest"
    skopeo_copy(layout, "latest", ref, creds=f"{USER}:{PASSWORD}")
    token_server.requests.clear()

    with pytest.raises(AuthenticationError) as err:  # anonymous: token without access
        pull(images, registries, ref)
    assert "pull access denied" in str(err.value)
    result = pull(images, registries, ref, credentials=GOOD)
    assert result["id"] == info["configs"][0]
    authed = [r for r in token_server.requests if r[2]]
    assert authed and all(r[0] == USER for r in authed)
    assert {s for r in authed for s in r[1]} == {f"repository:{repo}:pull"}
    count = len(token_server.requests)
    pull(images, registries, ref, credentials=GOOD)  # the cached token serves again
    assert len(token_server.requests) == count

    with pytest.raises(AuthenticationError, match="incorrect username or password"):
        pull(images, Registries(registries.options), ref, credentials=BAD)

    target = f"{token_registry.host}/private/{unique()}:v2"
    images.tag(ref, target)
    pushed = push(images, registries, target, credentials=GOOD)
    scopes = {s for r in token_server.requests for s in r[1]}
    assert f"repository:{target.split('/', 1)[1].split(':')[0]}:pull,push" in scopes
    back = pull(images, Registries(registries.options), target, credentials=GOOD)
    assert back["digest"] == pushed["digest"]


def test_anonymous_token_for_public_repositories(images, registries, token_registry,
                                                 token_server, busybox_layer, workdir):
    from .conftest import skopeo_copy, write_layout

    layout = os.path.join(workdir, "pub")
    info = write_layout(layout, [ImageSpec([busybox_layer])])
    ref = f"{token_registry.host}/public/{unique()}:latest"
    skopeo_copy(layout, "latest", ref, creds=f"{USER}:{PASSWORD}")
    assert pull(images, registries, ref)["id"] == info["configs"][0]


def test_login_bearer(registries, token_registry):
    assert login(registries, token_registry.host, GOOD)["Status"] == "Login Succeeded"
    with pytest.raises(AuthenticationError, match="incorrect username or password"):
        login(Registries(registries.options), token_registry.host, BAD)


# -- TLS ------------------------------------------------------------------------------------------
def test_tls_registry_checked_against_the_test_ca(images, tls_registry, test_ca, workdir,
                                                  busybox_layer, data_root):
    from .conftest import skopeo_copy, write_layout

    layout = os.path.join(workdir, "tls")
    info = write_layout(layout, [ImageSpec([busybox_layer])])
    ref = f"{tls_registry.host}/secure/{unique()}:latest"
    skopeo_copy(layout, "latest", ref)  # skopeo without verification, just to fill it
    before = store_listing(data_root)

    strict = RegistryOptions(loopback_insecure=False, certs_dirs=[], proxies={},
                             max_attempts=1)
    with pytest.raises(RegistryError, match="certificate verify failed"):
        pull(images, Registries(strict), ref)
    assert store_listing(data_root) == before

    certs = os.path.join(workdir, "certs.d")
    os.makedirs(os.path.join(certs, tls_registry.host))
    os.symlink(test_ca.ca_cert, os.path.join(certs, tls_registry.host, "ca.crt"))
    trusted = RegistryOptions(loopback_insecure=False, certs_dirs=[certs], proxies={})
    assert pull(images, Registries(trusted), ref)["id"] == info["configs"][0]

    insecure = RegistryOptions(loopback_insecure=False, certs_dirs=[], proxies={},
                               insecure_registries=[tls_registry.host])
    assert pull(images, Registries(insecure), ref)["id"] == info["configs"][0]


def test_secure_registry_is_never_tried_over_plain_http(images, registry):
    options = RegistryOptions(loopback_insecure=False, certs_dirs=[], proxies={},
                              max_attempts=1)
    with pytest.raises(RegistryError, match=r'https://127\.0\.0\.1.*/v2/'):
        pull(images, Registries(options), f"{registry.host}/x/y:1")


def test_insecure_registry_rules():
    options = RegistryOptions(insecure_registries=["myreg:5000", "10.0.0.0/8"],
                              loopback_insecure=True, proxies={})
    assert options.is_insecure("myreg:5000")
    assert options.is_insecure("10.1.2.3:443")
    assert options.is_insecure("127.0.0.1:5000") and options.is_insecure("localhost:5000")
    assert not options.is_insecure("example.invalid")
    assert [e.url for e in options.endpoints("myreg:5000")] == ["https://myreg:5000",
                                                                "http://myreg:5000"]
    assert [e.url for e in options.endpoints("quay.io")] == ["https://quay.io"]
    mirrored = RegistryOptions(mirrors=["https://mirror.example/"], proxies={})
    assert [e.url for e in mirrored.endpoints("docker.io")] == [
        "https://mirror.example", "https://registry-1.docker.io"]
    assert [e.url for e in mirrored.endpoints("docker.io", push=True)] == [
        "https://registry-1.docker.io"]


def test_daemon_json_and_flags(workdir):
    path = os.path.join(workdir, "daemon.json")
    with open(path, "w") as f:
        json.dump({"insecure-registries": ["a:1"], "registry-mirrors": ["http://m:5000"],
                   "max-concurrent-downloads": 7}, f)
    options = RegistryOptions.from_daemon_config(path, insecure_registries=["b:2"],
                                                 mirrors=["https://n"])
    assert options.is_insecure("a:1") and options.is_insecure("b:2")
    assert options.mirrors == ["http://m:5000", "https://n"]
    assert options.max_concurrent_downloads == 7
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(RegistryError, match="unable to configure the daemon"):
        RegistryOptions.from_daemon_config(path)
    with pytest.raises(RegistryError, match="invalid mirror"):
        RegistryOptions(mirrors=["mirror.example"])
    assert RegistryOptions.from_daemon_config(os.path.join(workdir, "absent.json")).mirrors == []


def test_proxies_from_the_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,.corp.example")
    options = RegistryOptions()
    assert options.proxy_for("https://quay.io/v2/") == "http://127.0.0.1:3128"
    assert options.proxy_for("https://internal.example/v2/") is None
    assert options.proxy_for("https://r.corp.example/v2/") is None
