"""The same docker commands against pyboxd and a real dockerd (Debian's 20.10,
private, no bridge): what the user sees must have the same shape -- table
headers and columns, JSON keys of ps/images --format json and of inspect, exit
codes and error messages of the failure cases."""

import json
import re
import uuid

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]


def both(pyboxd, dockerd, *args, **kw):
    return pyboxd.docker(*args, **kw), dockerd.docker(*args, **kw)


@pytest.fixture
def pair(pyboxd, dockerd):
    """Runs a command on both daemons; removes the named containers at the end."""
    made = []

    def run(*args, name=None, **kw):
        if name:
            made.append(name)
        return both(pyboxd, dockerd, *args, **kw)

    yield run
    for d in (pyboxd, dockerd):
        if made:
            d.docker("rm", "-f", *made)


def keys(obj, prefix=""):
    """Every key path of a JSON object, dicts only (lists and values are leaves)."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(prefix + k)
            out |= keys(v, prefix + k + ".")
    return out


def header(table):
    return re.split(r"\s{2,}", table.splitlines()[0].strip())


# keys dockerd has that pyboxd does not fill, with the reason
DOCKERD_ONLY = {
    "HostConfig.KernelMemory", "HostConfig.KernelMemoryTCP",  # deprecated, gone in API 1.42+
    "Config.OnBuild",  # no builder
    "Config.NetworkDisabled",  # dockerd --bridge none sets it on default-network containers
}
# deprecated image fields (API < 1.45) the docker CLI does not read
IMAGE_DEPRECATED = ("ContainerConfig", "Container", "VirtualSize")


def test_ps_and_images_shapes(pair):
    n = f"cmp-{uuid.uuid4().hex[:8]}"
    p, d = pair("run", "-d", "--name", n, "-l", "k=v", "busybox", "sleep", "1000", name=n)
    assert p.returncode == d.returncode == 0
    for args in (("ps",), ("ps", "-a", "-s"), ("images",), ("history", "busybox")):
        p, d = pair(*args)
        assert header(p.stdout) == header(d.stdout), args
    p, d = pair("ps", "--filter", f"name={n}", "--format", "json")
    prow, drow = json.loads(p.stdout), json.loads(d.stdout)
    assert set(prow) == set(drow)
    for key in ("Command", "Image", "Labels", "Names", "State", "Networks", "Ports", "Mounts"):
        assert prow[key] == drow[key], key
    p, d = pair("ps", "--filter", f"name={n}", "-s", "--format", "{{.Size}}")
    # a container that wrote nothing: 0B (the virtual size is the image's, measured
    # differently: dockerd counts the layer tar, pybox the files)
    assert p.stdout.split()[0] == d.stdout.split()[0] == "0B"
    p, d = pair("images", "--format", "json", "busybox")
    assert set(json.loads(p.stdout)) == set(json.loads(d.stdout))


def test_container_inspect_keys(pair, pyboxd, dockerd):
    n = f"cmp-{uuid.uuid4().hex[:8]}"
    pair("run", "--name", n, "-e", "A=1", "-l", "k=v", "busybox", "sh", "-c", "exit 3", name=n)
    p, d = pair("inspect", n)
    pj, dj = json.loads(p.stdout)[0], json.loads(d.stdout)[0]
    missing = keys(dj) - keys(pj) - DOCKERD_ONLY
    assert not missing, sorted(missing)
    for path in ("Path", "Args", "Name", "RestartCount", "Driver", "Platform"):
        assert pj[path] == dj[path], path
    for key in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                "ExitCode", "Error"):
        assert pj["State"][key] == dj["State"][key], key
    for key in ("Env", "Cmd", "Image", "Labels", "Entrypoint", "WorkingDir", "User", "Tty",
                "OpenStdin", "AttachStdout"):
        assert pj["Config"][key] == dj["Config"][key], key


def test_image_inspect_keys(pair):
    p, d = pair("image", "inspect", "busybox")
    pj, dj = json.loads(p.stdout)[0], json.loads(d.stdout)[0]
    missing = {k for k in keys(dj) - keys(pj) - DOCKERD_ONLY
               if k.split(".")[0] not in IMAGE_DEPRECATED}
    # (a single layer: overlay2 reports it as UpperDir, pybox as a lower layer)
    missing -= {"GraphDriver.Data.MergedDir", "GraphDriver.Data.WorkDir",
                "GraphDriver.Data.UpperDir"}
    assert not missing, sorted(missing)
    for key in ("RepoTags", "Architecture", "Os", "Comment"):
        assert pj[key] == dj[key], key
    assert pj["Config"]["Cmd"] == dj["Config"]["Cmd"]


@pytest.mark.parametrize("args, code", [
    (["run", "--rm", "busybox", "/pybox-no-such-exe"], 127),
    (["run", "--rm", "busybox", "pybox-no-such-cmd"], 127),
    (["run", "--rm", "busybox", "/etc/passwd"], 126),
    (["run", "--rm", "busybox", "/etc"], 126),
    (["run", "--rm", "-m", "1k", "busybox", "true"], 125),
    (["run", "--rm", "-w", "relative", "busybox", "true"], 125),
    (["run", "--rm", "-u", "pybox-no-such-user", "busybox", "true"], 125),
    (["run", "--rm", "busybox", "sh", "-c", "exit 42"], 42),
    (["run", "--rm", "pybox-no-such-image:1.0", "true"], 125),
    (["inspect", "pybox-no-such-thing"], 1),
    (["rm", "pybox-no-such-thing"], 1),
    (["kill", "-s", "NOPE", "pybox-no-such-thing"], 1),
])
def test_exit_codes_match(pair, args, code):
    p, d = pair(*args)
    assert d.returncode == code, d.stderr  # (the reference itself)
    assert p.returncode == code, p.stderr
    assert ("Error response from daemon" in p.stderr) == ("Error response from daemon" in
                                                          d.stderr)


@pytest.mark.parametrize("args", [
    ["run", "--rm", "-m", "1k", "busybox", "true"],
    ["run", "--rm", "-w", "relative", "busybox", "true"],
    ["create", "--name", "a", "busybox"],
    ["inspect", "pybox-no-such-thing"],
    ["rm", "pybox-no-such-thing"],
])
def test_error_messages_match(pair, args):
    p, d = pair(*args)
    assert p.stderr == d.stderr


def test_messages_naming_a_container(pair, pyboxd, dockerd):
    n = f"cmp-{uuid.uuid4().hex[:8]}"
    pair("run", "-d", "--name", n, "busybox", "sleep", "1000", name=n)
    ids = {pyboxd: pyboxd.inspect(n)["Id"],
           dockerd: json.loads(dockerd.docker("inspect", n).stdout)[0]["Id"]}

    def same(args):
        p, d = pair(*args)
        assert (p.returncode, p.stderr.replace(ids[pyboxd], "ID")) == (
            d.returncode, d.stderr.replace(ids[dockerd], "ID")), args

    same(["rm", n])
    same(["run", "--name", n, "busybox", "true"])
    same(["kill", "-s", "NOPE", n])
    same(["unpause", n])
    pair("stop", "-t", "0", n)
    same(["pause", n])
    same(["exec", n, "true"])
    same(["attach", n])
