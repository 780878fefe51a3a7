"""pybox login / logout / push and pull's credentials, against the scripted fake
daemon of test_cli_pybox_client: what is sent (POST /auth, X-Registry-Auth),
what is stored (config.json or a credential helper), what is printed, the exit
statuses.  The real thing, against pyboxd and a registry: tests/registry/test_pybox_cli.py."""

import base64
import io
import json
import os
import stat
import sys
import urllib.parse

import pytest

from pybox.cli.pybox import main

from . import test_cli_pybox_client
from .test_cli_pybox_client import chunked_reply, json_reply
from .test_images_auth import PASSWORD, USER, install_helper

fake = test_cli_pybox_client.fake  # a fixture, shared

pytestmark = pytest.mark.unit
HUB = "https://index.docker.io/v1/"
DIGEST = "sha256:" + "ab" * 32


def sent_auth(request):
    return json.loads(base64.urlsafe_b64decode(request["headers"]["x-registry-auth"]))


def query(request):
    return urllib.parse.parse_qs(request["target"].partition("?")[2], keep_blank_values=True)


def stream(*messages):
    return chunked_reply([json.dumps(m).encode() + b"\n" for m in messages])


PUSH_STREAM = stream({"status": "The push refers to repository [127.0.0.1:5000/a/b]"},
                     {"status": "Preparing", "id": "0123456789ab", "progressDetail": {}},
                     {"status": "Pushed", "id": "0123456789ab", "progressDetail": {}},
                     {"status": f"1: digest: {DIGEST} size: 527"},
                     {"progressDetail": {}, "aux": {"Tag": "1", "Digest": DIGEST, "Size": 527}})
PULL_STREAM = stream({"status": "Pulling from a/b", "id": "1"},
                     {"status": f"Digest: {DIGEST}"},
                     {"status": "Status: Downloaded newer image for 127.0.0.1:5000/a/b:1"})


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    directory = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def run(d, capsys, monkeypatch, *argv, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(["-H", f"unix://{d.path}", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_login_pull_push_logout_with_config_json(fake, docker_config, capsys, monkeypatch):
    docker_config.mkdir()
    (docker_config / "config.json").write_text('{"psFormat": "table {{.ID}}"}')
    d = fake({("POST", "/auth"): lambda r: json_reply('{"Status":"Login Succeeded"}'),
              ("POST", "/images/create"): lambda r: PULL_STREAM,
              ("POST", "/images/127.0.0.1:5000/a/b/push"): lambda r: PUSH_STREAM})
    rc, out, err = run(d, capsys, monkeypatch, "login", "-u", USER, "--password-stdin",
                       "127.0.0.1:5000", stdin=PASSWORD + "\n")
    assert (rc, out) == (0, "Login Succeeded\n")
    path = str(docker_config / "config.json")
    assert err == (f"WARNING! Your credentials are stored unencrypted in '{path}'.\n"
                   "Configure a credential helper to remove this warning. See\n"
                   "https://docs.docker.com/go/credential-store/\n\n")
    assert json.loads(d.requests[-1]["body"]) == {
        "username": USER, "password": PASSWORD, "serveraddress": "127.0.0.1:5000"}
    doc = json.load(open(path))
    assert doc == {"psFormat": "table {{.ID}}", "auths": {"127.0.0.1:5000": {
        "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [n for n in os.listdir(docker_config) if n != "config.json"] == []  # no temp left

    rc, out, _ = run(d, capsys, monkeypatch, "pull", "127.0.0.1:5000/a/b:1")
    assert rc == 0
    assert out.endswith(f"Digest: {DIGEST}\nStatus: Downloaded newer image for "
                        "127.0.0.1:5000/a/b:1\n127.0.0.1:5000/a/b:1\n")
    assert query(d.requests[-1]) == {"fromImage": ["127.0.0.1:5000/a/b"], "tag": ["1"]}
    assert sent_auth(d.requests[-1]) == {"username": USER, "password": PASSWORD,
                                         "serveraddress": "127.0.0.1:5000"}
    rc, out, _ = run(d, capsys, monkeypatch, "pull", "-a", "127.0.0.1:5000/a/b")
    assert rc == 0 and out.endswith("\n127.0.0.1:5000/a/b\n")
    assert query(d.requests[-1]) == {"fromImage": ["127.0.0.1:5000/a/b"]}    # no tag: all

    rc, out, _ = run(d, capsys, monkeypatch, "push", "127.0.0.1:5000/a/b:1")
    assert rc == 0
    assert out == ("The push refers to repository [127.0.0.1:5000/a/b]\n"
                   "0123456789ab: Preparing\n0123456789ab: Pushed\n"
                   f"1: digest: {DIGEST} size: 527\n")
    assert query(d.requests[-1]) == {"tag": ["1"]}
    assert sent_auth(d.requests[-1])["password"] == PASSWORD
    rc, out, _ = run(d, capsys, monkeypatch, "image", "push", "-q", "127.0.0.1:5000/a/b:1")
    assert (rc, out) == (0, "127.0.0.1:5000/a/b:1\n")
    rc, out, _ = run(d, capsys, monkeypatch, "push", "--all-tags", "127.0.0.1:5000/a/b")
    assert rc == 0 and query(d.requests[-1]) == {}

    rc, out, _ = run(d, capsys, monkeypatch, "logout", "http://127.0.0.1:5000/")
    assert (rc, out) == (0, "Removing login credentials for 127.0.0.1:5000\n")
    assert json.load(open(path)) == {"psFormat": "table {{.ID}}", "auths": {}}
    rc, out, _ = run(d, capsys, monkeypatch, "logout", "127.0.0.1:5000")
    assert (rc, out) == (0, "Not logged in to 127.0.0.1:5000\n")
    run(d, capsys, monkeypatch, "pull", "127.0.0.1:5000/a/b:1")
    assert d.requests[-1]["headers"]["x-registry-auth"] == "e30="


def test_refused_login_stores_nothing(fake, docker_config, capsys, monkeypatch):
    message = ('{"message":"login attempt to http://127.0.0.1:5000/v2/ failed with status: '
               '401 Unauthorized"}')
    d = fake({("POST", "/auth"): lambda r: json_reply(message, "401 Unauthorized")})
    rc, out, err = run(d, capsys, monkeypatch, "login", "-u", USER, "-p", "wrong",
                       "127.0.0.1:5000")
    assert (rc, out) == (1, "")
    assert err == ("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
                   "Error response from daemon: login attempt to http://127.0.0.1:5000/v2/ "
                   "failed with status: 401 Unauthorized\n")
    assert not docker_config.exists()


def test_login_with_a_credential_helper_and_identity_tokens(fake, docker_config, tmp_path,
                                                            capsys, monkeypatch):
    store = install_helper(str(tmp_path), monkeypatch)
    docker_config.mkdir()
    (docker_config / "config.json").write_text('{"credsStore": "pyboxtest"}')
    d = fake({("POST", "/auth"): lambda r: json_reply('{"Status":"Login Succeeded"}'),
              ("POST", "/images/create"): lambda r: PULL_STREAM})
    rc, out, err = run(d, capsys, monkeypatch, "login", "-u", USER, "--password-stdin",
                       stdin=PASSWORD)
    assert (rc, out, err) == (0, "Login Succeeded\n", "")      # no warning with a helper
    assert json.loads(d.requests[-1]["body"])["serveraddress"] == HUB
    assert json.load(open(store))[HUB] == {"ServerURL": HUB, "Username": USER,
                                           "Secret": PASSWORD}
    assert json.load(open(docker_config / "config.json"))["auths"] == {HUB: {}}
    run(d, capsys, monkeypatch, "pull", "busybox")
    assert query(d.requests[-1]) == {"fromImage": ["docker.io/library/busybox"],
                                     "tag": ["latest"]}
    assert sent_auth(d.requests[-1]) == {"username": USER, "password": PASSWORD,
                                         "serveraddress": HUB}
    # no -u: the stored login is tried first
    rc, out, err = run(d, capsys, monkeypatch, "login")
    assert (rc, out) == (0, "Login Succeeded\n")
    assert err == f"Authenticating with existing credentials... [Username: {USER}]\n"
    rc, out, _ = run(d, capsys, monkeypatch, "logout")
    assert (rc, out) == (0, f"Removing login credentials for {HUB}\n")
    assert json.load(open(store)) == {}

    # a registry answering with an identity token: kept instead of the password
    (docker_config / "config.json").write_text("{}")
    d2 = fake({("POST", "/auth"): lambda r: json_reply(
        '{"Status":"Login Succeeded","IdentityToken":"refresh-me"}')})
    rc, _, err = run(d2, capsys, monkeypatch, "login", "-u", USER, "--password-stdin",
                     "quay.example:443", stdin=PASSWORD)
    assert rc == 0 and err == ""
    assert json.load(open(docker_config / "config.json"))["auths"]["quay.example:443"] == {
        "auth": base64.b64encode(f"{USER}:".encode()).decode(), "identitytoken": "refresh-me"}


def test_flag_and_reference_errors(fake, docker_config, capsys, monkeypatch):
    d = fake({("POST", "/images/127.0.0.1:5000/a/b/push"): lambda r: stream(
        {"status": "The push refers to repository [127.0.0.1:5000/a/b]"},
        {"errorDetail": {"message": "An image does not exist locally with the tag: "
                                    "127.0.0.1:5000/a/b"},
         "error": "An image does not exist locally with the tag: 127.0.0.1:5000/a/b"})})
    cases = [
        (["login", "--password-stdin", "r:5000"],
         "the --password-stdin option requires --username to be set"),
        (["login", "-u", "x", "-p", "y", "--password-stdin", "r:5000"],
         "conflicting options: cannot specify both --password and --password-stdin"),
        (["login", "r:5000"], "Error: Cannot perform an interactive login from a non TTY device"),
        (["push", "-a", "127.0.0.1:5000/a/b:1"], "tag can't be used with --all-tags/-a"),
        (["push", "a/b@" + DIGEST], "cannot push a digest reference"),
        (["pull", "-a", "a/b:1"], "tag can't be used with --all-tags/-a"),
        (["push", "127.0.0.1:5000/a/b"], "An image does not exist locally with the tag: "
                                         "127.0.0.1:5000/a/b"),
    ]
    for argv, message in cases:
        rc, _, err = run(d, capsys, monkeypatch, *argv)
        assert rc == 1, argv
        assert err.splitlines()[-1] == message
    assert not docker_config.exists()


def test_global_config_flag_chooses_the_config_dir(fake, docker_config, tmp_path, capsys,
                                                   monkeypatch):
    """`pybox --config DIR login ...` stores into DIR/config.json, not DOCKER_CONFIG's."""
    other = tmp_path / "other"
    d = fake({("POST", "/auth"): lambda r: json_reply('{"Status":"Login Succeeded"}')})
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    rc = main(["-H", f"unix://{d.path}", "--config", str(other), "login", "-u", USER,
               "--password-stdin", "127.0.0.1:5000"])
    capsys.readouterr()
    assert rc == 0
    assert list(json.load(open(other / "config.json"))["auths"]) == ["127.0.0.1:5000"]
    assert not docker_config.exists()
