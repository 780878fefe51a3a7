"""The container create surface as dockerd has it (issue 16): inspect's full
HostConfig and Config, the create body's top-level HostConfig fields and
case-insensitive keys, annotations into the OCI spec, --platform against the
image, --storage-opt and --gpus refused with dockerd's words, --blkio-weight's
warning.  The docker 28 CLI and docker-py drive a private pyboxd; where it is
cheap the same request goes to a private dockerd (20.10, API 1.41) too."""

import hashlib
import io
import json
import os
import platform as host
import sys
import tarfile

import pytest

from support.paths import IMAGE
from support.unixhttp import api

pytestmark = [pytest.mark.root, pytest.mark.engine]

API = "/v1.44"
DOCKERD_API = "/v1.41"  # Debian's dockerd 20.10
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
OTHER_PLATFORM = "linux/arm64" if GO_ARCH != "arm64" else "linux/amd64"
STORAGE_OPT = "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
NO_GPU = 'could not select device driver "" with capabilities: [[gpu]]'
NO_BLKIO_WEIGHT = ("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                   "Weight discarded.")


def create(daemon, body, name, version=API, query=""):
    """POST /containers/create to pyboxd or dockerd -> (status, reply)."""
    return api(daemon.socket, "POST", f"{version}/containers/create?name={name}{query}", body)


def inspect(daemon, name, version=API):
    status, doc = api(daemon.socket, "GET", f"{version}/containers/{name}/json")
    assert status == 200, doc
    return doc


def kind(value):
    """A JSON value's shape: what a client decoding it sees (null, [], {}...)."""
    return "null" if value is None else type(value).__name__


@pytest.fixture
def dockerd_names(dockerd):
    """Container names made on the private dockerd, removed at the end."""
    made = []
    yield lambda: made.append(f"h1-{os.urandom(5).hex()}") or made[-1]
    if made:
        dockerd.docker("rm", "-f", *made, check=False)


# -- inspect: the full HostConfig and Config ------------------------------------------------
def test_inspect_shows_every_host_config_field_as_dockerd(pyboxd, names, dockerd,
                                                          dockerd_names):
    body = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {}}
    n, dn = names(), dockerd_names()
    assert create(pyboxd, body, n)[0] == 201
    assert create(dockerd, body, dn, DOCKERD_API)[0] == 201
    ours, theirs = inspect(pyboxd, n), inspect(dockerd, dn, DOCKERD_API)
    hc, ref = ours["HostConfig"], theirs["HostConfig"]
    # API 1.42 dropped KernelMemory (docker 25 leaves the zero out); nothing else differs
    assert set(hc) == set(ref) - {"KernelMemory", "KernelMemoryTCP"}
    for key in hc:  # null stays null, [] stays [], 0 stays 0: what a client decodes
        assert kind(hc[key]) == kind(ref[key]), (key, hc[key], ref[key])
    # the same machine, the same defaults (cgroup namespace mode by cgroup version)
    for key in ("CgroupnsMode", "IpcMode", "ShmSize", "OomKillDisable", "Privileged",
                "NetworkMode", "LogConfig", "ConsoleSize", "Binds", "Dns",
                "PidsLimit", "MemorySwappiness", "Isolation", "ReadonlyPaths"):
        assert hc[key] == ref[key], key
    assert hc["Runtime"] == "pybox"  # docker info's DefaultRuntime
    # docker 25 (API 1.44) names the policy it defaults to; 20.10 left it ""
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert "Annotations" not in hc and "Init" not in hc  # omitempty, as dockerd
    assert set(ref["MaskedPaths"]) <= set(hc["MaskedPaths"])
    config, ref_config = ours["Config"], theirs["Config"]
    assert set(config) == set(ref_config)
    for key in config:
        assert kind(config[key]) == kind(ref_config[key]), (key, config[key], ref_config[key])


def test_dockerpy_reads_host_config_fields_it_did_not_send(dockerpy, names):
    n = names()
    c = dockerpy.containers.create(IMAGE, "true", name=n)
    hc = c.attrs["HostConfig"]
    assert hc["Privileged"] is False
    assert hc["ReadonlyRootfs"] is False
    assert hc["ShmSize"] == 64 * 1024 * 1024
    assert hc["CpuShares"] == 0 and hc["Memory"] == 0
    assert hc["Devices"] is None and hc["Ulimits"] is None
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert c.attrs["Config"]["Tty"] is False and c.attrs["Config"]["OpenStdin"] is False
    # a privileged container: no masked paths, no SELinux label (dockerd's defaults)
    p = dockerpy.containers.create(IMAGE, "true", name=names(), privileged=True)
    assert p.attrs["HostConfig"]["Privileged"] is True
    assert p.attrs["HostConfig"]["MaskedPaths"] is None
    assert p.attrs["HostConfig"]["SecurityOpt"] == ["label=disable"]


# -- the create body: top-level HostConfig fields, case-insensitive keys ------------------------
def test_top_level_host_config_fields_without_host_config(pyboxd, names, dockerpy):
    n = names()
    body = {"Image": IMAGE, "Cmd": ["true"], "Runtime": "runc", "Memory": 32 << 20,
            "CpuShares": 512, "Cpuset": "0", "Privileged": False}
    assert create(pyboxd, body, n)[0] == 201
    hc = inspect(pyboxd, n)["HostConfig"]
    assert (hc["Runtime"], hc["Memory"], hc["CpuShares"], hc["CpusetCpus"]) == \
        ("runc", 32 << 20, 512, "0")
    # docker-py's create_container(runtime=...) sends it so
    cid = dockerpy.api.create_container(IMAGE, ["echo", "test"], runtime="runc",
                                        name=names())["Id"]
    assert dockerpy.api.inspect_container(cid)["HostConfig"]["Runtime"] == "runc"


def test_top_level_fields_next_to_a_host_config(pyboxd, names, dockerd, dockerd_names):
    """Next to a HostConfig only Memory, MemorySwap, CpuShares, CpusetCpus and
    VolumeDriver are taken from the top, where the HostConfig leaves them unset."""
    body = {"Image": IMAGE, "Cmd": ["true"], "Memory": 32 << 20, "CpuShares": 512,
            "Privileged": True, "ReadonlyRootfs": True,
            "HostConfig": {"CpuShares": 256}}
    n, dn = names(), dockerd_names()
    assert create(pyboxd, body, n)[0] == 201
    assert create(dockerd, body, dn, DOCKERD_API)[0] == 201
    for hc in (inspect(pyboxd, n)["HostConfig"], inspect(dockerd, dn, DOCKERD_API)["HostConfig"]):
        assert (hc["Memory"], hc["CpuShares"], hc["Privileged"], hc["ReadonlyRootfs"]) == \
            (32 << 20, 256, False, False)


def test_keys_match_case_insensitively(pyboxd, names):
    n = names()
    body = {"IMAGE": IMAGE, "cmd": ["true"],
            "hostconfig": {"cpushares": 300, "CPUPeriod": 50000, "MEMORY": 32 << 20,
                           "readOnlyRootFS": True}}
    assert create(pyboxd, body, n)[0] == 201
    doc = inspect(pyboxd, n)
    hc = doc["HostConfig"]
    assert (hc["CpuShares"], hc["CpuPeriod"], hc["Memory"], hc["ReadonlyRootfs"]) == \
        (300, 50000, 32 << 20, True)
    assert doc["Config"]["Cmd"] == ["true"]


def test_cpu_realtime_keys_as_docker_py_spells_them(dockerpy, names):
    """docker-py sends CPURealtimePeriod/CPURealtimeRuntime (the API's names are
    CpuRealtime...): taken, so a kernel without real-time groups refuses them
    as dockerd does, and one with them shows them."""
    rt = any(os.path.exists(f"/sys/fs/cgroup/{d}/cpu.rt_period_us")
             for d in ("cpu", "cpu,cpuacct", "cpuacct,cpu"))
    hc = dockerpy.api.create_host_config(cpu_rt_period=1000, cpu_rt_runtime=500)
    assert hc["CPURealtimePeriod"] == 1000
    if not rt:
        with pytest.raises(sys.modules["docker"].errors.APIError) as e:
            dockerpy.api.create_container(IMAGE, "true", host_config=hc, name=names())
        assert e.value.status_code == 400
        assert "kernel does not support CPU real-time scheduler" in str(e.value)
        return
    cid = dockerpy.api.create_container(IMAGE, "true", host_config=hc, name=names())["Id"]
    got = dockerpy.api.inspect_container(cid)["HostConfig"]
    assert (got["CpuRealtimePeriod"], got["CpuRealtimeRuntime"]) == (1000, 500)


# -- annotations ---------------------------------------------------------------------------
def test_annotations_reach_the_runtime_spec_and_inspect(pyboxd, names):
    n = names()
    pyboxd.ok("run", "-d", "--name", n, "--annotation", "com.example.team=blue",
              "--annotation", "org.opencontainers.x=1", IMAGE, "sleep", "60")
    doc = pyboxd.inspect(n)
    assert doc["HostConfig"]["Annotations"] == {"com.example.team": "blue",
                                                "org.opencontainers.x": "1"}
    with open(os.path.join(pyboxd.exec_root, "containers", doc["Id"], "config.json")) as f:
        spec = json.load(f)
    assert spec["annotations"]["com.example.team"] == "blue"
    assert spec["annotations"]["org.opencontainers.x"] == "1"
    # an API 1.42 client's Annotations are not read (dockerd: they came with 1.43)
    old = names()
    body = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"Annotations": {"a": "b"}}}
    assert create(pyboxd, body, old, version="/v1.42")[0] == 201
    assert "Annotations" not in inspect(pyboxd, old)["HostConfig"]
    status, reply = create(pyboxd, {**body, "HostConfig": {"Annotations": {"": "x"}}}, names())
    assert status == 400
    assert "the empty string is not permitted as an annotation key" in reply["message"]


# -- --platform --------------------------------------------------------------------------------
def test_platform_checked_against_the_image(pyboxd, names, dockerd, dockerd_names):
    body = {"Image": IMAGE, "Cmd": ["true"]}
    image = json.loads(pyboxd.ok("image", "inspect", IMAGE))[0]
    actual = f"{image['Os']}/{image['Architecture']}"
    wrong = names()
    status, reply = create(pyboxd, body, wrong, query=f"&platform={OTHER_PLATFORM}")
    assert status == 404  # as dockerd: the docker CLI then pulls that platform
    message = (f"image with reference {IMAGE} was found but does not match the specified "
               f"platform: wanted {OTHER_PLATFORM}, actual: {actual}")
    assert reply["message"] == message
    ref_status, ref_reply = create(dockerd, body, dockerd_names(), DOCKERD_API,
                                   f"&platform={OTHER_PLATFORM}")
    assert (ref_status, ref_reply["message"]) == (status, message)
    assert pyboxd.api("GET", f"{API}/containers/{wrong}/json")[0] == 404  # nothing made
    # the platform the image is for, or none: created
    assert create(pyboxd, body, names(), query=f"&platform={actual}")[0] == 201
    assert create(pyboxd, body, names(), query="&platform=")[0] == 201
    # not a platform: containerd's words, a 400
    status, reply = create(pyboxd, body, names(), query="&platform=linux/a/b/c")
    assert (status, reply["message"]) == \
        (400, '"linux/a/b/c": cannot parse platform specifier: invalid argument')
    # the docker CLI: as with dockerd, the image is taken as missing for that platform
    n = names()
    proc = pyboxd.docker("run", "--rm", "--name", n, "--platform", OTHER_PLATFORM, IMAGE,
                         "true")
    assert proc.returncode == 125
    assert "Unable to find image" in proc.stderr
    assert n not in pyboxd.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert pyboxd.ok("run", "--rm", "--platform", actual, IMAGE, "echo", "ok") == "ok\n"


def foreign_image_archive(path, tag, arch):
    """A docker-archive (docker save's layout) of a one-file image whose config
    says linux/ARCH."""
    def add(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        add(t, "hello", b"hi\n")
    layer_bytes = layer.getvalue()
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [
                             "sha256:" + hashlib.sha256(layer_bytes).hexdigest()]}}).encode()
    with tarfile.open(path, "w") as t:
        add(t, "layer.tar", layer_bytes)
        add(t, "config.json", config)
        add(t, "manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                             "Layers": ["layer.tar"]}]).encode())


def test_image_for_another_platform(pyboxd, names, images_made, tmp_path):
    """Without --platform an image for another platform is created with
    dockerd's warning (docker 25+); with that platform, without one."""
    arch = OTHER_PLATFORM.split("/")[1]
    tag = f"{names('plat')}:1"
    foreign_image_archive(tmp_path / "img.tar", tag, arch)
    pyboxd.ok("load", "-i", str(tmp_path / "img.tar"))
    images_made.append(tag)
    status, reply = create(pyboxd, {"Image": tag, "Cmd": ["true"]}, names())
    assert status == 201
    assert len(reply["Warnings"]) == 1
    assert reply["Warnings"][0].startswith(
        f"The requested image's platform ({OTHER_PLATFORM}) does not match the detected host "
        f"platform (linux/{GO_ARCH}")
    assert reply["Warnings"][0].endswith(") and no specific platform was requested")
    status, reply = create(pyboxd, {"Image": tag, "Cmd": ["true"]}, names(),
                           query=f"&platform={OTHER_PLATFORM}")
    assert (status, reply["Warnings"]) == (201, [])


# -- --storage-opt, --gpus: refused where the machine cannot ------------------------------------
def test_storage_opt_refused_as_dockerd(pyboxd, names, dockerd, dockerd_names):
    body = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"StorageOpt": {"size": "1G"}}}
    n = names()
    status, reply = create(pyboxd, body, n)
    ref = create(dockerd, body, dockerd_names(), DOCKERD_API)
    assert (status, reply["message"]) == (500, STORAGE_OPT)
    assert (ref[0], ref[1]["message"]) == (status, STORAGE_OPT)
    assert pyboxd.api("GET", f"{API}/containers/{n}/json")[0] == 404  # nothing left
    proc = pyboxd.docker("create", "--name", names(), "--storage-opt", "size=1G", IMAGE, "true")
    assert proc.returncode != 0
    assert STORAGE_OPT in proc.stderr


def test_gpus_refused_at_start_as_dockerd(pyboxd, names, dockerd, dockerd_names):
    n = names()
    proc = pyboxd.docker("run", "--name", n, "--gpus", "all", IMAGE, "true")
    assert proc.returncode == 125
    assert NO_GPU in proc.stderr
    state = pyboxd.inspect(n)["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == ("created", 128, NO_GPU)
    assert pyboxd.inspect(n)["HostConfig"]["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
    status, reply = pyboxd.api("POST", f"{API}/containers/{n}/start")
    assert (status, reply["message"]) == (500, NO_GPU)
    dn = dockerd_names()
    ref = dockerd.docker("run", "--name", dn, "--gpus", "all", IMAGE, "true", check=False)
    assert ref.returncode == 125 and NO_GPU in ref.stderr
    ref_state = json.loads(dockerd.docker("inspect", dn).stdout)[0]["State"]
    assert (ref_state["Status"], ref_state["ExitCode"], ref_state["Error"]) == \
        (state["Status"], state["ExitCode"], state["Error"])


# -- --blkio-weight on a kernel without proportional io ---------------------------------------
def test_blkio_weight_warns_and_runs_where_the_kernel_lacks_it(pyboxd, names, dockerd,
                                                                dockerd_names):
    supported = any(os.path.exists(p) for p in (
        "/sys/fs/cgroup/blkio/blkio.weight", "/sys/fs/cgroup/blkio/blkio.bfq.weight",
        "/sys/fs/cgroup/io.weight", "/sys/fs/cgroup/io.bfq.weight"))
    body = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"BlkioWeight": 300}}
    n = names()
    status, reply = create(pyboxd, body, n)
    assert status == 201
    if supported:
        assert NO_BLKIO_WEIGHT not in reply["Warnings"]
    else:
        assert reply["Warnings"] == [NO_BLKIO_WEIGHT]
        ref = create(dockerd, body, dockerd_names(), DOCKERD_API)
        assert ref[1]["Warnings"] == reply["Warnings"]
    pyboxd.ok("start", n)
    assert pyboxd.ok("wait", n).strip() == "0"
    proc = pyboxd.docker("run", "--rm", "--blkio-weight", "300", IMAGE, "echo", "ran")
    assert (proc.returncode, proc.stdout) == (0, "ran\n")
    assert (NO_BLKIO_WEIGHT in proc.stderr) == (not supported)
