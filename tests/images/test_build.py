"""Images that need no network: pybox/busybox from busybox-static and an image of
host binaries plus their ldd closure, each run as a real container."""

import json
import os
import subprocess
import sys
import tarfile
import tempfile

import pytest

from pybox.images import build
from pybox.oci.defaults import default_spec
from runtime.conftest import Runtime

from .conftest import unique_id

pytestmark = [pytest.mark.root, pytest.mark.images]


@pytest.fixture
def rt():
    runtime = Runtime(tempfile.mkdtemp(prefix="pybox-test-rtroot-"))
    yield runtime
    runtime.cleanup()


def run(rt, images, image, args, workdir):
    cid = unique_id()
    rootfs = images.prepare_rootfs(cid, image)
    try:
        bundle = os.path.join(workdir, cid)
        os.makedirs(bundle)
        spec = default_spec()
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args or images.config(image)["config"]["Cmd"]
        spec["process"]["env"] = images.config(image)["config"]["Env"]
        spec["root"] = {"path": rootfs, "readonly": False}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        return rt("run", "--bundle", bundle, rt.new_id())
    finally:
        images.release_rootfs(cid)


def test_busybox_image(images, rt, workdir):
    image_id = build.build_busybox_image(images)
    doc = images.inspect("pybox/busybox")
    assert doc["Id"] == image_id and doc["RepoTags"] == ["pybox/busybox:latest"]
    assert doc["Config"]["Cmd"] == ["sh"]
    proc = run(rt, images, "pybox/busybox", ["sh", "-c", "ls /bin | wc -l; id -u"],
               workdir)
    applets, uid = proc.stdout.split()
    assert int(applets) > 50 and uid == "0"  # busybox and its applet links


def test_host_binaries_image(images, rt, workdir):
    libs = build.shared_libraries("/bin/ls")
    assert any("libc.so" in lib for lib in libs)
    assert build.shared_libraries("/bin/busybox") == []  # static
    build.build_host_image(images, "pybox-test/host:1", ["/bin/ls", "/usr/bin/env"],
                           files=["/etc/os-release:/etc/os-release"], env=["GREETING=hi"])
    assert images.inspect("pybox-test/host:1")["Config"]["Cmd"] == ["/bin/ls"]
    proc = run(rt, images, "pybox-test/host:1",
               ["/usr/bin/env"], workdir)
    assert "GREETING=hi" in proc.stdout.split()
    proc = run(rt, images, "pybox-test/host:1", ["/bin/ls", "/etc", "/usr/bin"], workdir)
    assert "passwd" in proc.stdout and "os-release" in proc.stdout and "env" in proc.stdout


def test_command_line(data_root, workdir):
    out = os.path.join(workdir, "pybox-test-bash.tar")
    proc = subprocess.run([sys.executable, "-m", "pybox.images.build", "--data-root",
                           data_root, "--bin", "/bin/bash", "--cmd", '/bin/bash -c "echo hi"',
                           "--save", out, "pybox-test/bash"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    name, image_id = proc.stdout.split()
    assert name == "pybox-test/bash" and image_id.startswith("sha256:")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["pybox-test/bash:latest"]
    from pybox.images.service import Images

    config = Images.open(data_root).inspect("pybox-test/bash")["Config"]
    assert config["Cmd"] == ["/bin/bash", "-c", "echo hi"]
    bad = subprocess.run([sys.executable, "-m", "pybox.images.build", "--data-root",
                          data_root, "--bin", "/nonexistent", "x"], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "not an executable" in bad.stderr
