"""Fixtures for the image store on real tarballs and real overlay mounts.

Every store lives in its own data root /tmp/pybox-test-images-XXXX; at the end
of a test the overlay mounts made under it (and only those) are unmounted and
the directory removed.  umoci and skopeo come from Debian (installed here with
apt-get when missing, as install.sh --dev does); a busybox root filesystem is
built once per run from busybox-static."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from pybox.images.layers import write_tree
from pybox.images.rootfs import build_busybox_rootfs
from pybox.images.service import Images
from support.tarbuild import tar_of

pytestmark = pytest.mark.root


def own_mounts_under(path):
    """Mount points under ``path`` (deepest first) from /proc/self/mountinfo."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def cleanup_root(path):
    for point in own_mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_root():
    root = tempfile.mkdtemp(prefix="pybox-test-images-")
    yield root
    cleanup_root(root)


@pytest.fixture
def images(data_root):
    return Images.open(data_root)


@pytest.fixture(scope="session")
def busybox_tree(tmp_path_factory):
    return build_busybox_rootfs(str(tmp_path_factory.mktemp("pybox-test-busybox") / "rootfs"))


@pytest.fixture(scope="session")
def busybox_tar(busybox_tree):
    """The busybox rootfs as a plain layer tar (bytes)."""
    out = io.BytesIO()
    write_tree(busybox_tree, out)
    return out.getvalue()


def _ensure_debian_tools(*names):
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"{' '.join(missing)} missing and not root to apt-get install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env,
                   stdout=subprocess.DEVNULL)
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                           *missing], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot install {missing}: {proc.stderr[-500:]}")


@pytest.fixture(scope="session")
def oci_tools():
    _ensure_debian_tools("umoci", "skopeo")


def umoci(*args, cwd=None):
    proc = subprocess.run(["umoci", *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, f"umoci {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def skopeo(*args):
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="pybox-test-work-")
    yield path
    cleanup_root(path)


def umoci_layout(workdir, busybox_tree, name="img", tags=("base",), edits=()):
    """An OCI layout made by umoci: a base layer (busybox) and then one layer per
    ``edits`` item, each a function(rootfs_dir) run between unpack and repack
    (umoci computes the layer diff itself, whiteouts included).  Returns the
    layout dir; tags[i] names the image after edits[:i]."""
    layout = os.path.join(workdir, name)
    umoci("init", "--layout", layout)
    umoci("new", "--image", f"{layout}:{tags[0]}")
    bundle = os.path.join(workdir, f"{name}-bundle")
    umoci("unpack", "--image", f"{layout}:{tags[0]}", bundle)
    shutil.rmtree(os.path.join(bundle, "rootfs"))
    shutil.copytree(busybox_tree, os.path.join(bundle, "rootfs"), symlinks=True)
    umoci("repack", "--image", f"{layout}:{tags[0]}", bundle)
    umoci("config", "--image", f"{layout}:{tags[0]}", "--config.cmd", "sh")
    previous = tags[0]
    for tag, edit in zip(tags[1:], edits, strict=False):
        shutil.rmtree(bundle)
        umoci("unpack", "--image", f"{layout}:{previous}", bundle)
        edit(os.path.join(bundle, "rootfs"))
        umoci("repack", "--image", f"{layout}:{tag}", bundle)
        previous = tag
    shutil.rmtree(bundle)
    return layout


def store_listing(data_root):
    """Everything that defines the store's content (for "unchanged" checks)."""
    root = os.path.join(data_root, "images")
    listing = {}
    for sub in ("blobs/sha256", "imagedb", "layers", "l", "containers"):
        path = os.path.join(root, sub)
        listing[sub] = sorted(os.listdir(path)) if os.path.isdir(path) else []
    tags = os.path.join(root, "repositories.json")
    listing["tags"] = json.load(open(tags)) if os.path.exists(tags) else None
    return listing


def unique_id():
    return f"pybox-test-{uuid.uuid4().hex[:12]}"


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(layers, tags=("pybox-test/bad:1",), diff_ids=None):
    """A docker-archive (docker >= 25 form) of one image with these layer tars."""
    diff_ids = diff_ids or [_sha(layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    files = {f"blobs/sha256/{_sha(config)[7:]}": config}
    for layer in layers:
        files[f"blobs/sha256/{_sha(layer)[7:]}"] = layer
    files["manifest.json"] = json.dumps([{
        "Config": f"blobs/sha256/{_sha(config)[7:]}", "RepoTags": list(tags),
        "Layers": [f"blobs/sha256/{_sha(layer)[7:]}" for layer in layers]}]).encode()
    return tar_of(files)
