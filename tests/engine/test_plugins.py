"""Managed plugins (issue 16): `docker plugin create/ls/inspect/set/enable/disable/
rm/push/install` and docker-py's plugin calls against a private pyboxd, answered
as dockerd 20.10 answers them with no network: the plugin stored (and kept
across a restart), its settings changed as moby allows, enable failing with
runc's error for a plugin whose entrypoint cannot start (docker-py's dummy
plugin), the registry operations failing as offline.  Where Debian's dockerd
is there, the same plugin and the same bad archives go to both and the
answers are compared."""

import contextlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import uuid

import pytest

from support.paths import IMAGE
from support.unixhttp import TIMEOUT

DUMMY_CONFIG = {
    "description": "pybox test plugin",
    "documentation": "https://example.com/plugin",
    "entrypoint": ["/dummy"],
    "network": {"type": "host"},
    "interface": {"types": ["docker.volumedriver/1.0"], "socket": "dummy.sock"},
    "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"}],
}
RUNC_DENIED = ('failed to create shim task: OCI runtime create failed: runc create failed: '
               'unable to start container process: exec: "/dummy": permission denied: unknown')


def plugin_dir(tmp_path, config=None, marker="x"):
    """A plugin directory as `docker plugin create` takes it: config.json and
    rootfs/ (docker-py's dummy plugin: /dummy is a directory, not a program)."""
    d = tmp_path / f"plugin-{uuid.uuid4().hex[:8]}"
    (d / "rootfs" / "dummy").mkdir(parents=True)
    (d / "rootfs" / "dummy" / "file.txt").write_text(marker)
    (d / "config.json").write_text(json.dumps(config or DUMMY_CONFIG))
    return str(d)


@pytest.fixture
def plugin_names(pyboxd):
    """plugin_names(prefix="") -> a unique plugin name (after ``prefix``: a
    registry's "host:port/"); each is `docker plugin rm -f`'d at the end."""
    made = []

    def make(prefix=""):
        name = f"{prefix}pbtest/plugin-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield make
    for name in made:
        pyboxd.docker("plugin", "rm", "-f", name)


def request(sock, method, path, body=None, content_type="application/json"):
    """One request to a unix socket -> (status, headers, body text)."""
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(TIMEOUT)
            self.sock.connect(sock)

    conn = Conn("localhost", timeout=TIMEOUT)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def tar_of(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = data
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def store_entries(pyboxd):
    root = os.path.join(pyboxd.data_root, "plugins")
    return sorted(os.listdir(root)), sorted(os.listdir(os.path.join(root, "tmp")))


@pytest.fixture(scope="module")
def registry():
    """Debian's docker-registry on 127.0.0.1 (plain HTTP: an insecure registry to
    docker and pyboxd by default), for this module; -> its host:port."""
    if shutil.which("docker-registry") is None:
        pytest.skip("needs Debian's docker-registry")
    base = tempfile.mkdtemp(prefix="pybox-plugin-registry-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(base, "config.yml")
    with open(config, "w") as f:
        f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {base}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(os.path.join(base, "log"), "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "no registry"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_create_ls_inspect_rm(pyboxd, plugin_names, tmp_path):
    name = plugin_names()
    directory = plugin_dir(tmp_path)
    assert pyboxd.ok("plugin", "create", name, directory).strip() == name
    listed = pyboxd.ok("plugin", "ls", "--no-trunc", "--format",
                       "{{.ID}} {{.Name}} {{.Description}} {{.Enabled}}")
    (line,) = [ln for ln in listed.splitlines() if f" {name}:latest " in ln]
    pid = line.split()[0]
    assert len(pid) == 64 and line.endswith(" pybox test plugin false")

    data = json.loads(pyboxd.ok("plugin", "inspect", name))[0]
    assert (data["Id"], data["Name"], data["PluginReference"], data["Enabled"]) == (
        pid, f"{name}:latest", f"{name}:latest", False)
    assert data["Settings"] == {"Args": [], "Devices": [], "Env": ["DEBUG=0"], "Mounts": []}
    config = data["Config"]
    assert config["Entrypoint"] == ["/dummy"] and config["Network"] == {"Type": "host"}
    assert config["Interface"] == {"Socket": "dummy.sock", "Types": ["docker.volumedriver/1.0"]}
    assert config["Env"] == [{"Description": "", "Name": "DEBUG", "Settable": ["value"],
                              "Value": "0"}]
    assert config["rootfs"]["type"] == "layers" and config["DockerVersion"]
    # by id, id prefix, full reference: the same plugin
    for ref in (pid, pid[:12], f"docker.io/{name}:latest"):
        assert json.loads(pyboxd.ok("plugin", "inspect", ref))[0]["Id"] == pid
    # the rootfs is stored as the directory held it
    rootfs = os.path.join(pyboxd.data_root, "plugins", pid, "rootfs")
    with open(os.path.join(rootfs, "dummy", "file.txt")) as f:
        assert f.read() == "x"

    proc = pyboxd.docker("plugin", "create", name, directory)
    assert proc.returncode == 1
    assert f"plugin {name}:latest already exists" in proc.stderr

    assert pyboxd.ok("plugin", "rm", name).strip() == name
    assert not os.path.exists(os.path.join(pyboxd.data_root, "plugins", pid))
    proc = pyboxd.docker("plugin", "inspect", name)
    assert proc.returncode == 1 and f'plugin "{name}" not found' in proc.stderr


def test_enable_fails_as_dockerd_and_disable_rm_of_a_disabled_one(pyboxd, plugin_names,
                                                                  tmp_path):
    name = plugin_names()
    pyboxd.ok("plugin", "create", name, plugin_dir(tmp_path))
    proc = pyboxd.docker("plugin", "enable", name)
    assert proc.returncode == 1
    assert RUNC_DENIED in proc.stderr
    assert pyboxd.ok("plugin", "inspect", "-f", "{{.Enabled}}", name).strip() == "false"
    proc = pyboxd.docker("plugin", "disable", name)
    assert proc.returncode == 1
    assert f"plugin is already disabled: plugin {name}:latest found but disabled" in proc.stderr
    # the API's enable needs a timeout, as dockerd's (strconv.Atoi of "")
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/{name}/enable")
    assert (status, json.loads(body)) == (
        500, {"message": 'strconv.Atoi: parsing "": invalid syntax'})


def test_enable_mount_without_type(pyboxd, plugin_names, tmp_path):
    """runc mounts a plugin mount without "type" as type "": no such device."""
    name = plugin_names()
    pyboxd.ok("plugin", "create", name, plugin_dir(tmp_path, dict(DUMMY_CONFIG, mounts=[
        {"name": "m", "source": "/tmp", "destination": "/m", "settable": ["source"]}])))
    pyboxd.ok("plugin", "set", name, "m=/srv")
    proc = pyboxd.docker("plugin", "enable", name)
    assert proc.returncode == 1
    assert ('unable to start container process: error during container init: error mounting '
            '"/srv" to rootfs at "/m": mount /srv:/m (via /proc/self/fd/6): no such device: '
            'unknown') in proc.stderr


def test_enable_entrypoint_missing_or_not_in_path(pyboxd, plugin_names, tmp_path):
    name = plugin_names()
    pyboxd.ok("plugin", "create", name, plugin_dir(tmp_path, dict(DUMMY_CONFIG,
                                                                  entrypoint=["/nothere"])))
    proc = pyboxd.docker("plugin", "enable", name)
    assert proc.returncode == 1
    assert 'exec: "/nothere": stat /nothere: no such file or directory: unknown' in proc.stderr
    other = plugin_names()
    pyboxd.ok("plugin", "create", other, plugin_dir(tmp_path, dict(DUMMY_CONFIG,
                                                                   entrypoint=["plugind"])))
    proc = pyboxd.docker("plugin", "enable", other)
    assert proc.returncode == 1
    assert 'exec: "plugind": executable file not found in $PATH: unknown' in proc.stderr


def test_set(pyboxd, plugin_names, tmp_path):
    name = plugin_names()
    config = dict(DUMMY_CONFIG,
                  mounts=[{"name": "data", "source": "/tmp", "destination": "/data",
                           "type": "bind", "options": ["rbind"], "settable": ["source"]}],
                  linux={"devices": [{"name": "dev", "path": "/dev/null",
                                      "settable": ["path"]}]},
                  args={"name": "args", "value": ["-v"], "settable": ["value"]})
    pyboxd.ok("plugin", "create", name, plugin_dir(tmp_path, config))
    pyboxd.ok("plugin", "set", name, "DEBUG=1", "data=/srv", "dev.path=/dev/zero",
              "args=-x  -y")
    settings = json.loads(pyboxd.ok("plugin", "inspect", "-f", "{{json .Settings}}", name))
    assert settings["Env"] == ["DEBUG=1"]
    assert settings["Args"] == ["-x", "", "-y"]
    assert settings["Mounts"][0]["Source"] == "/srv"
    assert settings["Devices"][0]["Path"] == "/dev/zero"
    for args, words in ((["FOO=1"], 'setting "FOO" not found in the plugin configuration'),
                        (["=1"], "invalid format, must be <name>[.<field>][=<value>]"),
                        (["DEBUG.path=1"], '"DEBUG.path" is not settable'),
                        (["data.destination=/x"], '"data.destination" is not settable')):
        proc = pyboxd.docker("plugin", "set", name, *args)
        assert proc.returncode == 1 and words in proc.stderr, (args, proc.stderr)
    # a failed set changes nothing
    proc = pyboxd.docker("plugin", "set", name, "DEBUG=2", "FOO=1")
    assert proc.returncode == 1
    assert pyboxd.ok("plugin", "inspect", "-f", "{{.Settings.Env}}", name).strip() == "[DEBUG=1]"
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/{name}/set", b'"x"')
    assert (status, json.loads(body)["message"]) == (
        400, "json: cannot unmarshal string into Go value of type []string")
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/{name}/set", b"[")
    assert (status, json.loads(body)["message"]) == (400, "unexpected EOF")


def test_filters(pyboxd, plugin_names, tmp_path):
    volume, network = plugin_names(), plugin_names()
    pyboxd.ok("plugin", "create", volume, plugin_dir(tmp_path))
    pyboxd.ok("plugin", "create", network, plugin_dir(tmp_path, dict(
        DUMMY_CONFIG, interface={"types": ["docker.networkdriver/1.0"], "socket": "n.sock"})))

    def listed(*filters):
        args = [a for f in filters for a in ("--filter", f)]
        out = pyboxd.ok("plugin", "ls", "--format", "{{.Name}}", *args).split()
        return {n for n in out if n in (f"{volume}:latest", f"{network}:latest")}

    assert listed() == {f"{volume}:latest", f"{network}:latest"}
    assert listed("capability=volumedriver") == {f"{volume}:latest"}
    assert listed("capability=network") == {f"{network}:latest"}  # a regular expression
    assert listed("enabled=false") == {f"{volume}:latest", f"{network}:latest"}
    assert listed("enabled=true") == set()
    proc = pyboxd.docker("plugin", "ls", "--filter", "enabled=maybe")
    assert proc.returncode == 1 and "Invalid filter 'enabled=[maybe]'" in proc.stderr
    proc = pyboxd.docker("plugin", "ls", "--filter", "foo=bar")
    assert proc.returncode == 1 and "Invalid filter 'foo'" in proc.stderr


@pytest.mark.parametrize("members, words", [
    ([("rootfs/", None), ("rootfs/a", b"x")], "config not found"),
    ([("config.json", b"{}")], "no rootfs found: EOF"),
    ([("config.json", b'{"entrypoint": "/x"}'), ("rootfs/", None)],
     "failed to parse config: json: cannot unmarshal string into Go struct field "
     "PluginConfig.Entrypoint of type []string"),
    ([("config.json", b'{"user": {"uid": -1}}'), ("rootfs/", None)],
     "failed to parse config: json: cannot unmarshal number -1 into Go struct field "
     "PluginConfigUser.User.UID of type uint32"),
    ([("config.json", b"{"), ("rootfs/", None)],
     "failed to parse config: unexpected end of JSON input"),
    ([("config.json", b"{}"), ("rootfs/", None),
      ("rootfs/l", (tarfile.SYMTYPE, "../../../../etc")), ("rootfs/l/passwd", b"owned")],
     "Error processing tar file"),
    ([("config.json", b"{}"), ("rootfs/", None),
      ("rootfs/h", (tarfile.LNKTYPE, "rootfs/../../../../etc/passwd"))],
     "Error processing tar file: invalid member name '../../../../etc/passwd': path escapes"),
    ([("config.json", b"{}"), ("rootfs/", None), ("rootfs/h", (tarfile.LNKTYPE, "/etc/passwd"))],
     "Error processing tar file: invalid hard link 'h' -> '/etc/passwd'"),
])
def test_bad_archives_refused_and_nothing_left(pyboxd, plugin_names, members, words):
    name = plugin_names()
    before = store_entries(pyboxd)
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/create?name={name}",
                              tar_of(*members), "application/x-tar")
    assert status == 500 and words in json.loads(body)["message"]
    assert store_entries(pyboxd) == before
    assert pyboxd.docker("plugin", "inspect", name).returncode == 1


def test_not_a_tar(pyboxd, plugin_names):
    status, _, body = request(pyboxd.socket, "POST",
                              f"/v1.44/plugins/create?name={plugin_names()}",
                              b"not a tar" * 200, "application/x-tar")
    assert (status, json.loads(body)["message"]) == (
        500, "failed to read from tar: archive/tar: invalid tar header")


def test_kept_across_restart(pyboxd, plugin_names, tmp_path):
    name, upgraded = plugin_names(), plugin_names()
    pyboxd.ok("plugin", "create", name, plugin_dir(tmp_path))
    pyboxd.ok("plugin", "set", name, "DEBUG=3")
    pyboxd.ok("plugin", "create", upgraded, plugin_dir(tmp_path))
    before = json.loads(pyboxd.ok("plugin", "inspect", name, upgraded))
    root = os.path.join(pyboxd.data_root, "plugins")
    upgraded_dir = os.path.join(root, before[1]["Id"])

    def crash_leftovers():  # what a create, a remove and an upgrade cut short leave
        os.makedirs(os.path.join(root, "tmp", "create-crashed"))
        os.makedirs(os.path.join(root, "f" * 64 + "-removing"))
        os.rename(upgraded_dir, upgraded_dir + "-old")  # between an upgrade's renames

    pyboxd.restart(between=crash_leftovers)
    assert json.loads(pyboxd.ok("plugin", "inspect", name, upgraded)) == before
    entries, tmp = store_entries(pyboxd)
    assert tmp == [] and ("f" * 64 + "-removing") not in entries
    assert os.path.basename(upgraded_dir) + "-old" not in entries


def test_registry_operations_offline(pyboxd, plugin_names, tmp_path):
    """No network: privileges is [] (moby swallows the fetch error), install and
    push fail with the registry's error, as dockerd's."""
    name = plugin_names()
    pyboxd.ok("plugin", "create", name, plugin_dir(tmp_path))
    # an address nothing listens on: refused at once, whatever the machine's network
    remote = "127.0.0.1:1/pbtest/nothing:latest"
    status, _, body = request(pyboxd.socket, "GET", f"/v1.44/plugins/privileges?remote={remote}")
    assert (status, json.loads(body)) == (200, [])
    status, headers, body = request(pyboxd.socket, "POST",
                                    f"/v1.44/plugins/pull?remote={remote}", b"[]")
    assert status == 500 and headers["Docker-Plugin-Name"] == remote
    assert json.loads(body)["message"].startswith("error resolving plugin reference: ")
    proc = pyboxd.docker("plugin", "install", "--grant-all-permissions", remote)
    assert proc.returncode == 1 and "error resolving plugin reference" in proc.stderr
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/pull?remote={remote}"
                              f"&name={name}", b"[]")
    assert (status, json.loads(body)["message"]) == (400, f"plugin {name}:latest already exists")
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/pull?remote={remote}")
    assert (status, json.loads(body)["message"]) == (500, "failed to parse privileges: EOF")
    local = f"127.0.0.1:1/{name}"
    pyboxd.ok("plugin", "create", local, plugin_dir(tmp_path))
    try:
        proc = pyboxd.docker("plugin", "push", local)
        assert proc.returncode == 1
        assert f"The push refers to repository [{local}]" in proc.stdout
        assert "error pushing plugin: " in proc.stderr
    finally:
        pyboxd.docker("plugin", "rm", local)


def test_docker_py(pyboxd, dockerpy, plugin_names, tmp_path):
    """docker-py's own calls (its integration suite's create and privileges)."""
    import docker  # noqa: PLC0415 -- only where docker-py is installed (the fixture checked)
    api = dockerpy.api
    name = plugin_names()
    assert api.create_plugin(name, plugin_dir(tmp_path))
    data = api.inspect_plugin(name)
    assert data["Config"]["Entrypoint"] == ["/dummy"] and data["Enabled"] is False
    assert [p["Name"] for p in api.plugins() if p["Name"] == f"{name}:latest"]
    api.configure_plugin(name, {"DEBUG": "1"})
    assert api.inspect_plugin(name)["Settings"]["Env"] == ["DEBUG=1"]
    with pytest.raises(docker.errors.APIError) as info:
        api.enable_plugin(name)
    assert RUNC_DENIED in str(info.value)
    assert api.plugin_privileges("127.0.0.1:1/pbtest/nothing") == []
    assert api.remove_plugin(name) is True
    with pytest.raises(docker.errors.NotFound):
        api.inspect_plugin(name)


def test_same_answers_as_dockerd(pyboxd, dockerd, tmp_path):
    """The same plugin and the same bad archives to both daemons."""
    name = f"pbtest/cmp-{uuid.uuid4().hex[:10]}"
    config = dict(DUMMY_CONFIG, args={"name": "a", "value": ["x"], "settable": ["value"]},
                  mounts=[{"name": "m", "source": "/tmp", "destination": "/m", "type": "bind",
                           "options": ["rbind"], "settable": ["source"]}],
                  linux={"capabilities": ["CAP_SYS_ADMIN"]})
    directory = plugin_dir(tmp_path, config, marker=name)  # (dockerd: unique content)
    views = []
    for daemon in (pyboxd, dockerd):
        proc = daemon.docker("plugin", "create", name, directory, check=False)
        assert proc.returncode == 0, proc.stderr
        try:
            proc = daemon.docker("plugin", "set", name, "m=/srv", "a=y z", check=False)
            assert proc.returncode == 0, proc.stderr
            enable = daemon.docker("plugin", "enable", name, check=False)
            status, _, body = request(daemon.socket, "GET", f"/v1.41/plugins/{name}/json")
            view = json.loads(body)
            view.pop("Id")
            view["Config"].pop("DockerVersion")
            view["Config"].pop("rootfs")
            stderr = enable.stderr if isinstance(enable.stderr, str) else enable.stderr.decode()
            views.append((status, view, enable.returncode, stderr.strip()))
        finally:
            daemon.docker("plugin", "rm", "-f", name, check=False)
    assert views[0] == views[1]

    cases = [
        tar_of(("config.json", b'{"description": 5}'), ("rootfs/", None)),
        tar_of(("config.json", b'{"interface": {"types": [5]}}'), ("rootfs/", None)),
        tar_of(("config.json", b"[]"), ("rootfs/", None)),
        tar_of(("config.json", b"{}{}"), ("rootfs/", None)),
        tar_of(("config.json", b"{}")),
        b"not a tar" * 100,
    ]
    for body in cases:
        answers = [request(d.socket, "POST", f"/v1.41/plugins/create?name={name}", body,
                           "application/x-tar") for d in (pyboxd, dockerd)]
        assert [(s, b) for s, _, b in answers][0] == [(s, b) for s, _, b in answers][1]


def test_push_install_upgrade_through_a_registry(pyboxd, registry, plugin_names, tmp_path):
    """push to a registry, privileges and install from it, upgrade in place."""
    remote = plugin_names(f"{registry}/")
    pyboxd.ok("plugin", "create", remote, plugin_dir(tmp_path))
    created = json.loads(pyboxd.ok("plugin", "inspect", remote))[0]
    proc = pyboxd.docker("plugin", "push", remote)
    assert proc.returncode == 0, proc.stderr
    assert f"The push refers to repository [{remote}]" in proc.stdout
    assert "Upload complete" in proc.stdout
    pyboxd.ok("plugin", "rm", remote)

    status, _, body = request(pyboxd.socket, "GET", f"/v1.44/plugins/privileges?remote={remote}")
    privileges = json.loads(body)
    assert (status, privileges) == (200, [{"Name": "network", "Value": ["host"],
                                           "Description": "permissions to access a network"}])
    # accepted privileges that are not the plugin's: moby's error, in the stream
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/pull?remote={remote}",
                              b"[]")
    assert status == 200 and json.loads(body.splitlines()[-1])["error"] == "incorrect privileges"
    # the docker CLI installs it (and enables it: that fails, as dockerd's does)
    proc = pyboxd.docker("plugin", "install", "--grant-all-permissions", remote)
    assert proc.returncode == 1 and RUNC_DENIED in proc.stderr
    assert "Download complete" in proc.stdout
    pulled = json.loads(pyboxd.ok("plugin", "inspect", remote))[0]
    assert pulled["Id"] != created["Id"]
    assert (pulled["Name"], pulled["PluginReference"], pulled["Enabled"]) == (
        f"{remote}:latest", f"{remote}:latest", False)
    assert pulled["Config"] == created["Config"] and pulled["Settings"] == created["Settings"]

    alias = plugin_names()
    proc = pyboxd.docker("plugin", "install", "--disable", "--grant-all-permissions",
                         "--alias", alias, remote)
    assert proc.returncode == 0, proc.stderr
    pyboxd.ok("plugin", "set", alias, "DEBUG=7")
    proc = pyboxd.docker("plugin", "upgrade", "--grant-all-permissions", alias, remote)
    assert proc.returncode == 0, proc.stderr
    upgraded = json.loads(pyboxd.ok("plugin", "inspect", alias))[0]
    assert upgraded["Settings"]["Env"] == ["DEBUG=7"]  # kept, as moby's upgradePlugin
    assert upgraded["PluginReference"] == f"{remote}:latest"
    proc = pyboxd.docker("plugin", "install", "--grant-all-permissions", "--alias", alias,
                         remote)
    assert proc.returncode == 1 and f"plugin {alias}:latest already exists" in proc.stderr


def test_an_image_is_no_plugin(pyboxd, registry, images_made):
    image = f"{registry}/pbtest/img-{uuid.uuid4().hex[:8]}"
    pyboxd.ok("tag", IMAGE, image)
    images_made.append(image)
    pyboxd.ok("push", image)
    status, _, body = request(pyboxd.socket, "GET", f"/v1.44/plugins/privileges?remote={image}")
    assert (status, json.loads(body)["message"]) == (
        500, f"did not find plugin config for specified reference {image}:latest")
    status, _, body = request(pyboxd.socket, "POST", f"/v1.44/plugins/pull?remote={image}", b"[]")
    assert status == 200
    assert json.loads(body.splitlines()[-1])["error"] == (
        "fetched plugin image but plugin config is missing")


def test_plugins_move_between_pyboxd_and_dockerd(pyboxd, dockerd, registry, tmp_path):
    """What one daemon pushes the other installs, the same config on both."""
    ours = f"{registry}/pbtest/ours-{uuid.uuid4().hex[:8]}"
    theirs = f"{registry}/pbtest/theirs-{uuid.uuid4().hex[:8]}"
    pyboxd.ok("plugin", "create", ours, plugin_dir(tmp_path))
    dockerd.docker("plugin", "create", theirs, plugin_dir(tmp_path, marker=theirs))
    try:
        assert pyboxd.docker("plugin", "push", ours).returncode == 0
        dockerd.docker("plugin", "push", theirs)
        dockerd.docker("plugin", "install", "--disable", "--grant-all-permissions", ours)
        proc = pyboxd.docker("plugin", "install", "--disable", "--grant-all-permissions",
                             theirs)
        assert proc.returncode == 0, proc.stderr
        for name in (ours, theirs):
            a = json.loads(pyboxd.ok("plugin", "inspect", name))[0]
            b = json.loads(dockerd.docker("plugin", "inspect", name).stdout)[0]
            assert a["Config"] == b["Config"] and a["Settings"] == b["Settings"]
            assert a["Name"] == b["Name"]
    finally:
        for name in (ours, theirs):
            pyboxd.docker("plugin", "rm", "-f", name)
            dockerd.docker("plugin", "rm", "-f", name, check=False)


def registry_put(registry, repo, config, layers):
    """A plugin put into the registry by hand (monolithic blob uploads, a
    schema2 manifest): its config and gzip'd layer tars, in order."""
    import gzip  # noqa: PLC0415 -- this helper's alone
    import hashlib  # noqa: PLC0415 -- this helper's alone

    host, port = registry.split(":")

    def call(method, path, body=b"", headers=None):
        conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            text = resp.read()
            assert resp.status in (201, 202), (method, path, resp.status, text)
            return resp.getheader("Location")
        finally:
            conn.close()

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = call("POST", f"/v2/{repo}/blobs/uploads/")
        location = location.split(registry, 1)[-1]  # (the registry's absolute URL)
        joiner = "&" if "?" in location else "?"
        call("PUT", f"{location}{joiner}digest={digest}", data,
             {"Content-Type": "application/octet-stream"})
        return {"size": len(data), "digest": digest}

    config_blob = json.dumps(config).encode()
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.plugin.v1+json",
                           **blob(config_blob)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            **blob(gzip.compress(tar_of(*members)))} for members in layers]}
    call("PUT", f"/v2/{repo}/manifests/latest", json.dumps(manifest).encode(),
         {"Content-Type": manifest["mediaType"]})


def test_install_applies_whiteouts_of_later_layers(pyboxd, registry, plugin_names):
    name = plugin_names(f"{registry}/")
    registry_put(registry, name.partition("/")[2], DUMMY_CONFIG, [
        [("a", b"1"), ("gone", b"2"), ("dir/", None), ("dir/old", b"3")],
        [(".wh.gone", b""), ("dir/", None), ("dir/.wh..wh..opq", b""), ("dir/new", b"4"),
         ("a", b"5")],
    ])
    proc = pyboxd.docker("plugin", "install", "--disable", "--grant-all-permissions", name)
    assert proc.returncode == 0, proc.stderr
    pid = pyboxd.ok("plugin", "inspect", "-f", "{{.Id}}", name).strip()
    rootfs = os.path.join(pyboxd.data_root, "plugins", pid, "rootfs")
    found = sorted(os.path.relpath(os.path.join(d, f), rootfs)
                   for d, dirs, files in os.walk(rootfs) for f in dirs + files)
    assert found == ["a", "dir", "dir/new"]
    with open(os.path.join(rootfs, "a")) as f:
        assert f.read() == "5"
