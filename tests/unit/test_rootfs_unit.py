"""Mount planning, option decoding and path resolution, with a fake kernel."""

import os

import pytest

from pybox.errors import RootfsError
from pybox.linux import constants as C
from pybox.oci.defaults import default_spec
from pybox.runtime import rootfs as R

from .fakes import FakeSyscalls

pytestmark = pytest.mark.unit


def test_parse_mount_options():
    o = R.parse_mount_options(["nosuid", "noexec", "mode=755", "size=65536k", "rprivate",
                               "ro", "rw", "tmpcopyup"])
    assert o.flags == C.MS_NOSUID | C.MS_NOEXEC  # rw cancels ro
    assert o.data == "mode=755,size=65536k"
    assert o.propagation == [C.MS_PRIVATE | C.MS_REC]
    assert o.extensions == {"tmpcopyup"}
    assert R.parse_mount_options(["rbind"]).flags == C.MS_BIND | C.MS_REC
    assert R.parse_mount_options(None).flags == 0


def test_clean_path_never_escapes():
    assert R.clean_path("/a/../../b/./c//") == "/b/c"
    assert R.clean_path("../../etc") == "/etc"
    assert R.clean_path("/") == "/"


def test_secure_join_keeps_symlinks_inside_root(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/real", root / "abs")          # absolute link: relative to root
    os.symlink("../../../../real", root / "up")  # climbing link: clamped at root
    os.symlink("/etc", root / "hostetc")       # would point at the host's /etc
    r = str(root)
    assert R.secure_join(r, "/abs/x") == f"{r}/real/x"
    assert R.secure_join(r, "/up/x") == f"{r}/real/x"
    assert R.secure_join(r, "/hostetc/passwd") == f"{r}/etc/passwd"
    assert R.secure_join(r, "/../../x") == f"{r}/x"
    assert R.secure_join(r, "/") == r


def test_secure_join_symlink_loop(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(RootfsError, match="too many symlinks"):
        R.secure_join(str(tmp_path), "/a/x")


def builder(tmp_path, config=None, **kw):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    cfg = config or default_spec()
    sc = FakeSyscalls()
    return R.RootfsBuilder(sc, cfg, str(rootfs), **kw), sc, str(rootfs)


def test_default_mounts_in_config_order(tmp_path):
    b, sc, rootfs = builder(tmp_path, cgroup_mounts={
        "memory": {"path": "/sys/fs/cgroup/memory/x", "options": "memory", "aliases": []}})
    b.prepare_root()
    b.mount_all()
    mounts = sc.mounts()
    # "/" made rslave, rootfs bound on itself, then the config's mounts in order
    assert mounts[0] == ("mount", None, "/", None, C.MS_SLAVE | C.MS_REC, None)
    assert mounts[1][1:4] == (rootfs, rootfs, "bind")
    targets = [m[2] for m in mounts[2:]]
    assert targets[:6] == [f"{rootfs}/proc", f"{rootfs}/dev", f"{rootfs}/dev/pts",
                           f"{rootfs}/dev/shm", f"{rootfs}/dev/mqueue", f"{rootfs}/sys"]
    dev = mounts[3]
    assert dev[3] == "tmpfs" and dev[4] == C.MS_NOSUID | C.MS_STRICTATIME
    assert dev[5] == "mode=755,size=65536k"
    pts = mounts[4]
    assert pts[3] == "devpts" and "newinstance" in pts[5] and "ptmxmode=0666" in pts[5]
    sysfs = mounts[7]
    assert sysfs[4] & C.MS_RDONLY
    # v1 /sys/fs/cgroup: a tmpfs, each hierarchy bound, then the whole thing read-only
    assert (f"{rootfs}/sys/fs/cgroup") in [m[2] for m in mounts if m[3] == "tmpfs"]
    assert any(m[1] == "/sys/fs/cgroup/memory/x" for m in mounts)
    assert os.path.isdir(f"{rootfs}/dev/pts")


def test_bind_mount_flags_need_a_remount(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    cfg = default_spec()
    cfg["mounts"] = [{"destination": "/data", "type": "bind", "source": str(src),
                      "options": ["rbind", "ro", "nosuid", "rprivate"]}]
    b, sc, rootfs = builder(tmp_path, cfg)
    b.mount_all()
    m = sc.mounts()
    assert m[0] == ("mount", str(src), f"{rootfs}/data", "bind", C.MS_BIND | C.MS_REC, None)
    assert m[1][4] == C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | C.MS_NOSUID
    assert m[2][4] == C.MS_PRIVATE | C.MS_REC
    assert os.path.isdir(f"{rootfs}/data")


def test_bind_of_a_file_creates_a_file(tmp_path):
    src = tmp_path / "hosts"
    src.write_text("x")
    cfg = default_spec()
    cfg["mounts"] = [{"destination": "/etc/hosts", "source": str(src), "options": ["bind"]}]
    b, sc, rootfs = builder(tmp_path, cfg)
    b.mount_all()
    assert os.path.isfile(f"{rootfs}/etc/hosts")


def test_missing_bind_source_is_a_clear_error(tmp_path):
    cfg = default_spec()
    cfg["mounts"] = [{"destination": "/x", "type": "bind", "source": "/nonexistent/path",
                      "options": ["bind"]}]
    b, sc, _ = builder(tmp_path, cfg)
    with pytest.raises(RootfsError, match=r"mounts\[0\].*/nonexistent/path does not exist"):
        b.mount_all()


def test_symlinked_destination_stays_in_rootfs(tmp_path):
    cfg = default_spec()
    cfg["mounts"] = [{"destination": "/evil/proc", "type": "proc", "source": "proc"}]
    b, sc, rootfs = builder(tmp_path, cfg)
    os.symlink("/", f"{rootfs}/evil")  # /evil -> / of the container, not the host
    b.mount_all()
    assert sc.mounts()[0][2] == f"{rootfs}/proc"


def test_devices_default_and_extra(tmp_path):
    cfg = default_spec()
    cfg["linux"]["devices"] = [{"type": "c", "path": "/dev/fuse", "major": 10,
                                "minor": 229, "fileMode": 0o600, "uid": 0, "gid": 0}]
    b, sc, rootfs = builder(tmp_path, cfg)
    b.create_devices()
    nodes = {c[1][len(rootfs):]: c for c in sc.calls if c[0] == "mknod"}
    assert set(nodes) == {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                          "/dev/urandom", "/dev/tty", "/dev/fuse"}
    assert nodes["/dev/fuse"][2] == 0o020000 | 0o600
    assert nodes["/dev/null"][3] == os.makedev(1, 3)
    assert os.readlink(f"{rootfs}/dev/fd") == "/proc/self/fd"
    assert os.readlink(f"{rootfs}/dev/stderr") == "/proc/self/fd/2"
    assert os.path.isdir(f"{rootfs}/dev/shm")


def test_devices_are_bind_mounted_in_a_user_namespace(tmp_path):
    b, sc, rootfs = builder(tmp_path, in_user_ns=True)
    b.create_devices()
    assert not [c for c in sc.calls if c[0] == "mknod"]
    binds = [c for c in sc.mounts() if c[3] == "bind"]
    assert ("mount", "/dev/null", f"{rootfs}/dev/null", "bind", C.MS_BIND, None) in binds


def test_pivot_root_sequence(tmp_path):
    b, sc, rootfs = builder(tmp_path)
    cwd = os.getcwd()
    try:
        b.enter()
    finally:
        os.chdir(cwd)
    names = [c[0] for c in sc.calls]
    assert names == ["pivot_root", "mount", "umount2"]
    assert sc.calls[0] == ("pivot_root", ".", ".")
    assert sc.calls[1][4] == C.MS_SLAVE | C.MS_REC
    assert sc.calls[2] == ("umount2", ".", C.MNT_DETACH)


def test_no_pivot_and_no_mount_namespace(tmp_path):
    b, sc, rootfs = builder(tmp_path)
    cwd = os.getcwd()
    try:
        b.enter(no_pivot=True)
    finally:
        os.chdir(cwd)
    assert sc.calls == [("mount", rootfs, "/", None, C.MS_MOVE, None), ("chroot", ".")]
    b, sc, rootfs = builder(tmp_path, has_mount_ns=False)
    try:
        b.enter()
    finally:
        os.chdir(cwd)
    assert sc.calls == [("chroot", rootfs)]


def test_masked_and_readonly_paths(tmp_path, monkeypatch):
    d = tmp_path / "masked_dir"
    d.mkdir()
    f = tmp_path / "masked_file"
    f.write_text("secret")
    cfg = default_spec()
    cfg["linux"]["maskedPaths"] = [str(d), str(f), str(tmp_path / "absent")]
    cfg["linux"]["readonlyPaths"] = [str(d)]
    cfg["root"]["readonly"] = True
    b, sc, rootfs = builder(tmp_path, cfg)
    b.finalize()
    m = sc.mounts()
    assert m[0][1:5] == (str(d), str(d), None, C.MS_BIND | C.MS_REC)
    assert m[1][4] & (C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY) == (
        C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY)
    assert m[2][1:5] == ("tmpfs", str(d), "tmpfs", C.MS_RDONLY)
    assert m[3][1:5] == ("/dev/null", str(f), None, C.MS_BIND)
    assert m[4][2] == "/" and m[4][4] & C.MS_RDONLY
    assert len(m) == 5  # the absent masked path is skipped


def test_mount_error_names_the_mount(tmp_path):
    b, sc, rootfs = builder(tmp_path)
    sc.fail[("mount", "mqueue")] = 1
    with pytest.raises(RootfsError, match=r"mounts\[4\] \(mqueue on /dev/mqueue\)"):
        b.mount_all()
