"""pybox's own CLI -- login, logout, pull, push, pull -a -- against a private
pyboxd (test_pyboxd's Daemon) and the local registries: credentials stored in
$DOCKER_CONFIG/config.json as docker stores them and sent by the CLI with every
pull and push; pushes checked with skopeo inspect."""

import base64
import json
import os
import stat
import subprocess

import pytest

from . import test_pyboxd
from .conftest import PASSWORD, USER, ImageSpec, random_layer, skopeo_inspect, unique
from .test_pyboxd import PYTHON, SRC

daemon = test_pyboxd.daemon  # a fixture: that module's own pyboxd, shared

pytestmark = [pytest.mark.registry, pytest.mark.root]


@pytest.fixture
def pybox(daemon, tmp_path):
    """pybox(*args, stdin=None) -> CompletedProcess, with a config dir of the test's own."""
    env = dict(os.environ, PYTHONPATH=SRC, DOCKER_CONFIG=str(tmp_path / "docker-config"))

    def run(*args, stdin=None):
        return subprocess.run([PYTHON, "-m", "pybox.cli.pybox", "-H", "unix://" + daemon.socket,
                               *args], input=stdin, env=env, capture_output=True, text=True,
                              timeout=120)
    run.config = tmp_path / "docker-config" / "config.json"
    return run


def test_pybox_login_pull_push_logout(pybox, auth_registry, published, busybox_layer):
    info = published([ImageSpec([busybox_layer])], server=auth_registry,
                     creds=f"{USER}:{PASSWORD}")
    host = auth_registry.host
    denied = pybox("pull", info["ref"])
    assert denied.returncode == 1
    assert "pull access denied" in denied.stderr

    wrong = pybox("login", "-u", USER, "--password-stdin", host, stdin="wrong\n")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == (f"Error response from daemon: login attempt to "
                                    f"http://{host}/v2/ failed with status: 401 Unauthorized")
    assert not pybox.config.exists()

    pybox.config.parent.mkdir()
    pybox.config.write_text('{"detachKeys": "ctrl-x,x"}')
    login = pybox("login", "-u", USER, "--password-stdin", host, stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    assert login.stdout == "Login Succeeded\n"
    assert "WARNING! Your credentials are stored unencrypted" in login.stderr
    assert json.loads(pybox.config.read_text()) == {"detachKeys": "ctrl-x,x", "auths": {
        host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}
    assert stat.S_IMODE(os.stat(pybox.config).st_mode) == 0o600

    pulled = pybox("pull", info["ref"])
    assert pulled.returncode == 0, pulled.stderr
    assert f"Digest: {info['digests'][0]}" in pulled.stdout
    assert pulled.stdout.endswith(f"Status: Downloaded newer image for {info['ref']}\n"
                                  f"{info['ref']}\n")

    target = f"{host}/private/{unique()}:p"
    assert pybox("tag", info["ref"], target).returncode == 0
    pushed = pybox("push", target)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"The push refers to repository [{target[:-2]}]\n")
    assert f"p: digest: {info['digests'][0]} size: " in pushed.stdout
    assert skopeo_inspect(target, creds=f"{USER}:{PASSWORD}")["Digest"] == info["digests"][0]

    logout = pybox("logout", host)
    assert (logout.returncode, logout.stdout) == (0, f"Removing login credentials for {host}\n")
    assert json.loads(pybox.config.read_text()) == {"detachKeys": "ctrl-x,x", "auths": {}}
    assert pybox("logout", host).stdout == f"Not logged in to {host}\n"
    denied = pybox("pull", info["ref"])
    assert denied.returncode == 1
    assert "pull access denied" in denied.stderr
    refused = pybox("push", target)
    assert refused.returncode == 1
    assert "unauthorized" in refused.stderr or "authentication required" in refused.stderr


def test_pybox_pull_all_tags(pybox, daemon, published, registry, busybox_layer):
    repo = f"alltags/{unique()}"
    one = published([ImageSpec([busybox_layer])], repo=repo, tag="one")
    two = published([ImageSpec([busybox_layer, random_layer(unique(), 2000)])], repo=repo,
                    tag="two")
    # an index without the host's platform: skipped, as dockerd skips it
    published([ImageSpec([random_layer(unique(), 100)], arch="s390x"),
               ImageSpec([random_layer(unique(), 100)], arch="ppc64le")], repo=repo,
              tag="zz-foreign")
    name = f"{registry.host}/{repo}"
    refused = pybox("pull", "-a", f"{name}:one")
    assert (refused.returncode, refused.stderr) == (1, "tag can't be used with --all-tags/-a\n")
    out = pybox("pull", "--all-tags", name)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "one: Pulling from " + repo in lines and "two: Pulling from " + repo in lines
    assert f"Digest: {one['digests'][0]}" in lines and f"Digest: {two['digests'][0]}" in lines
    assert lines[-2:] == [f"Status: Downloaded newer image for {name}", name]
    assert not any(line.startswith("Status:") for line in lines[:-2])
    listed = pybox("images", "--format", "{{.Tag}}", name)
    assert sorted(listed.stdout.split()) == ["one", "two"]
    # the docker CLI's pull -a goes the same way through pyboxd
    again = daemon.ok("pull", "-a", name)
    assert f"Status: Image is up to date for {name}" in again
    missing = pybox("pull", "-a", f"{registry.host}/alltags/{unique()}")
    assert missing.returncode == 1
    assert "repository does not exist" in missing.stderr


def test_tags_list_follows_the_registrys_pages(registries, published, registry, busybox_layer):
    repo = f"pages/{unique()}"
    for tag in ("c", "a", "b"):
        published([ImageSpec([busybox_layer])], repo=repo, tag=tag)
    client = registries.client(registry.host)
    paged = client.list_tags(repo, page_size=1)        # three pages, in the registry's order
    assert sorted(paged) == ["a", "b", "c"] and len(paged) == 3
    assert sorted(client.list_tags(repo)) == ["a", "b", "c"]
