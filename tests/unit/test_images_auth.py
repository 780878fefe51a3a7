"""Registry credentials kept and passed as docker keeps and passes them
(pybox.images.auth): ~/.docker/config.json ``auths``, credential helpers, the
API's X-Registry-Auth header, WWW-Authenticate challenges.  No registry needed."""

import base64
import json
import os
import stat
import sys

import pytest

from pybox.cli.pybox import credentials
from pybox.cli.pybox.credentials import DockerConfig
from pybox.errors import AuthenticationError, RegistryError
from pybox.formats import registryauth
from pybox.formats.registryauth import Credentials
from pybox.images import auth

pytestmark = pytest.mark.unit
USER, PASSWORD = "pyboxtest", "s3cret-pw"
GOOD = Credentials(USER, PASSWORD)


# -- credentials as docker keeps them ------------------------------------------------------------
def test_docker_config_auths(tmp_path):
    workdir = str(tmp_path)
    config = DockerConfig(os.path.join(workdir, "docker"))
    assert config.get("127.0.0.1:5000") == auth.ANONYMOUS
    config.store("127.0.0.1:5000", GOOD)
    config.store("docker.io", Credentials("hubuser", "hubpw"))
    doc = json.load(open(config.path))
    assert doc["auths"]["127.0.0.1:5000"]["auth"] == base64.b64encode(
        f"{USER}:{PASSWORD}".encode()).decode()
    assert "https://index.docker.io/v1/" in doc["auths"]
    assert stat.S_IMODE(os.stat(config.path).st_mode) == 0o600
    assert config.get("127.0.0.1:5000") == GOOD
    assert config.get("docker.io") == Credentials("hubuser", "hubpw")
    # docker's older keys: a URL with scheme and path
    doc["auths"] = {"http://10.0.0.1:5000/v2/": {"auth": base64.b64encode(b"u:p").decode()}}
    doc["other"] = {"kept": True}
    json.dump(doc, open(config.path, "w"))
    assert config.get("10.0.0.1:5000") == Credentials("u", "p")
    assert config.erase("10.0.0.1:5000") is True
    assert config.erase("10.0.0.1:5000") is False
    assert json.load(open(config.path))["other"] == {"kept": True}


def install_helper(directory, monkeypatch, name="pyboxtest"):
    """A ``docker-credential-NAME`` on PATH keeping its secrets in a JSON file
    (the protocol of docker-credential-helpers); -> that file's path."""
    bindir = os.path.join(directory, "bin")
    store = os.path.join(directory, "helper-store.json")
    os.makedirs(bindir, exist_ok=True)
    helper = os.path.join(bindir, f"docker-credential-{name}")
    with open(helper, "w") as f:
        f.write(f"""#!{sys.executable}
import json, sys
path = {store!r}
try:
    data = json.load(open(path))
except OSError:
    data = {{}}
verb = sys.argv[1]
if verb == "store":
    doc = json.load(sys.stdin)
    data[doc["ServerURL"]] = doc
    json.dump(data, open(path, "w"))
elif verb == "get":
    url = sys.stdin.read().strip()
    if url not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(data[url]))
elif verb == "erase":
    url = sys.stdin.read().strip()
    if url not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    del data[url]
    json.dump(data, open(path, "w"))
""")
    os.chmod(helper, 0o755)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ["PATH"])
    return store


def test_credential_helpers(tmp_path, monkeypatch):
    workdir = str(tmp_path)
    store = install_helper(workdir, monkeypatch)
    config = DockerConfig(os.path.join(workdir, "docker"))
    os.makedirs(config.directory)
    json.dump({"credHelpers": {"127.0.0.1:5000": "pyboxtest"}}, open(config.path, "w"))
    config.store("127.0.0.1:5000", GOOD)
    assert json.load(open(store))["127.0.0.1:5000"]["Secret"] == PASSWORD
    assert json.load(open(config.path))["auths"]["127.0.0.1:5000"] == {}  # no secret here
    assert config.get("127.0.0.1:5000") == GOOD
    assert config.erase("127.0.0.1:5000") is True
    assert config.get("127.0.0.1:5000") == auth.ANONYMOUS
    json.dump({"credsStore": "missing-helper"}, open(config.path, "w"))
    with pytest.raises(RegistryError, match="docker-credential-missing-helper"):
        config.get("quay.io")


def test_x_registry_auth_round_trip():
    header = registryauth.encode_registry_auth(GOOD, "127.0.0.1:5000")
    assert auth.decode_registry_auth(header) == GOOD
    assert auth.decode_registry_auth("e30=") == auth.ANONYMOUS
    assert auth.decode_registry_auth("") == auth.ANONYMOUS
    unpadded = base64.urlsafe_b64encode(json.dumps(
        {"username": "a", "password": "b+/?"}).encode()).decode().rstrip("=")
    assert auth.decode_registry_auth(unpadded) == Credentials("a", "b+/?")
    with pytest.raises(AuthenticationError):
        auth.decode_registry_auth("!!!not base64")


def test_www_authenticate_parsing():
    parse = auth.parse_challenges
    assert parse('Bearer realm="https://auth.example/token",service="reg",'
                 'scope="repository:a/b:pull,push"') == [
        ("bearer", {"realm": "https://auth.example/token", "service": "reg",
                    "scope": "repository:a/b:pull,push"})]
    assert parse('Basic realm="x y"') == [("basic", {"realm": "x y"})]
    assert parse('Bearer realm="r", error="insufficient_scope", Basic realm="b"') == [
        ("bearer", {"realm": "r", "error": "insufficient_scope"}), ("basic", {"realm": "b"})]


def test_x_registry_auth_is_dockers_encoding():
    header = registryauth.encode_registry_auth(GOOD, "127.0.0.1:5000")
    assert "+" not in header and "/" not in header         # URL-safe alphabet
    assert base64.urlsafe_b64decode(header) == (
        b'{"username":"pyboxtest","password":"s3cret-pw","serveraddress":"127.0.0.1:5000"}')
    assert registryauth.encode_registry_auth(auth.ANONYMOUS) == "e30="


def test_registry_auth_header_from_the_stored_login(tmp_path, monkeypatch):
    config = DockerConfig(str(tmp_path / "docker"))
    assert credentials.registry_auth_header("127.0.0.1:5000", config) == "e30="
    config.store("127.0.0.1:5000", GOOD)
    config.store("docker.io", Credentials("hubuser", "hubpw"))
    sent = json.loads(base64.urlsafe_b64decode(credentials.registry_auth_header("127.0.0.1:5000",
                                                                         config)))
    assert sent == {"username": USER, "password": PASSWORD, "serveraddress": "127.0.0.1:5000"}
    sent = json.loads(base64.urlsafe_b64decode(credentials.registry_auth_header("docker.io", config)))
    assert sent["serveraddress"] == "https://index.docker.io/v1/"
    assert credentials.registry_auth_header("quay.io", config) == "e30="
    # the default place: $DOCKER_CONFIG/config.json
    monkeypatch.setenv("DOCKER_CONFIG", config.directory)
    assert auth.decode_registry_auth(credentials.registry_auth_header("127.0.0.1:5000")) == GOOD
    # a store that cannot answer counts as no login, as in docker's CLI
    json.dump({"credsStore": "missing-helper"}, open(config.path, "w"))
    assert credentials.registry_auth_header("127.0.0.1:5000") == "e30="


def test_registry_domain_of_a_login_server():
    for hub in ("", "docker.io", "https://index.docker.io/v1/", "index.docker.io"):
        assert registryauth.registry_domain(hub) == "docker.io"
        assert registryauth.config_key(registryauth.registry_domain(hub)) == "https://index.docker.io/v1/"
    assert registryauth.registry_domain("http://Host:5000/v2/") == "host:5000"
    assert registryauth.config_key("127.0.0.1:5000") == "127.0.0.1:5000"
