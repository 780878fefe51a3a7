"""User namespaces: the container's root is an unprivileged host uid; and the
runtime itself run by an unprivileged user on a `spec --rootless` bundle."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from pybox.images.rootfs import build_busybox_rootfs

pytestmark = pytest.mark.root


@pytest.fixture
def bundle(busybox_rootfs):
    """As conftest's bundle, in a directory the container's (unprivileged, mapped)
    root can traverse: pytest's own tmp dirs are mode 0700, and the runtime binds
    the rootfs from inside the new user namespace, as runc does."""
    from .conftest import Bundle

    d = tempfile.mkdtemp(prefix="pybox-test-userns-")
    os.chmod(d, 0o755)
    yield Bundle(os.path.join(d, "bundle"), busybox_rootfs)
    shutil.rmtree(d, ignore_errors=True)


def map_userns(bundle, uid_maps, gid_maps=None):
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = uid_maps
    bundle.linux["gidMappings"] = gid_maps or uid_maps


def test_container_root_is_unprivileged_on_host(rt, bundle):
    map_userns(bundle, [{"containerID": 0, "hostID": 200000, "size": 65536}])
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("id -u > /dev/null; sleep 100").write(), cid)
    pid = rt.state(cid)["pid"]
    st = os.stat(f"/proc/{pid}")
    assert st.st_uid == 200000  # host view: an ordinary high uid
    out = rt("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.split()
    assert out == ["0", "0", "200000", "65536"]
    # devices were bind-mounted (mknod is not allowed in a user namespace)
    out = rt("exec", cid, "sh", "-c", "echo x > /dev/null && echo ok").stdout
    assert out == "ok\n"


def test_multi_range_mappings(rt, bundle):
    map_userns(bundle, [{"containerID": 0, "hostID": 300000, "size": 1000},
                        {"containerID": 1000, "hostID": 400000, "size": 1000}])
    out = rt("run", "-b", bundle.sh("cat /proc/self/uid_map /proc/self/gid_map").write(),
             rt.new_id()).stdout.split()
    assert out == ["0", "300000", "1000", "1000", "400000", "1000"] * 2


def test_bad_mapping_fails_cleanly(rt, bundle):
    # overlapping ranges: the kernel refuses the map
    map_userns(bundle, [{"containerID": 0, "hostID": 500000, "size": 10},
                        {"containerID": 5, "hostID": 600000, "size": 10}])
    cid = rt.new_id()
    err = rt("create", "-b", bundle.write(), cid, check=False)
    assert err.returncode != 0 and "uid_map" in err.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


@pytest.fixture
def nobody_dir():
    """A directory the unprivileged user can use (tmp_path is root-only)."""
    d = tempfile.mkdtemp(prefix="pybox-test-rootless-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(cmd, cwd):
    return subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                           "--clear-groups", "--"] + cmd, cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"]})


def test_rootless_runtime(nobody_dir, rt):
    bundle = os.path.join(nobody_dir, "bundle")
    build_busybox_rootfs(os.path.join(bundle, "rootfs"))
    subprocess.run(["chown", "-R", "65534:65534", nobody_dir], check=True)
    state = os.path.join(nobody_dir, "state")
    runtime = rt.cmd
    proc = as_nobody(runtime + ["spec", "--rootless"], cwd=bundle)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 65534, "size": 1}]
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    proc = as_nobody(runtime + ["--root", state, "run", "rootless-test"], cwd=bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0", "65534", "1", "pybox"]
    # cgroups are not delegated here: a warning, not a failure
    assert "not delegated" in proc.stderr or proc.stderr == ""
    assert os.listdir(state) == []


@pytest.fixture
def nobody_subids():
    """Give nobody a subordinate id range for the test's duration (restored
    byte for byte afterwards), as an administrator would for a rootless user."""
    saved = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                saved[path] = f.read()
        except FileNotFoundError:
            saved[path] = None
        with open(path, "a") as f:
            f.write("nobody:700000:65536\n")
    yield
    for path, text in saved.items():
        if text is None:
            os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(text)


def test_rootless_multi_range_uses_newuidmap(nobody_dir, nobody_subids, rt):
    if not shutil.which("newuidmap"):
        pytest.skip("newuidmap is not installed (apt-get install uidmap)")
    bundle = os.path.join(nobody_dir, "bundle")
    build_busybox_rootfs(os.path.join(bundle, "rootfs"))
    subprocess.run(["chown", "-R", "65534:65534", nobody_dir], check=True)
    proc = as_nobody(rt.cmd + ["spec", "--rootless"], cwd=bundle)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["cat", "/proc/self/uid_map", "/proc/self/gid_map"]
    more = [{"containerID": 0, "hostID": 65534, "size": 1},
            {"containerID": 1, "hostID": 700000, "size": 1000}]
    cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = more
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    state = os.path.join(nobody_dir, "state")
    proc = as_nobody(rt.cmd + ["--root", state, "run", "rootless-multi"], cwd=bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "65534", "1", "1", "700000", "1000"] * 2
