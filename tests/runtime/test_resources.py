"""linux.resources from config.json reach the kernel through the cgroups
package, at the path runc's cgroupsPath rules give, and are enforced."""

import os

import pytest

from pybox import cgroups

pytestmark = pytest.mark.root

LAYOUT = cgroups.detect_layout()


def own_cgroup(controller):
    h = LAYOUT.v1.get(controller) if LAYOUT.mode != "v2" else LAYOUT.unified
    return h.mountpoint, h.own


def cgroup_dir(controller, path):
    mnt, own = own_cgroup(controller)
    if path.startswith("/"):
        return mnt + path
    if LAYOUT.mode == "v2":  # runc's fs2: below the parent of the caller's cgroup
        own = own.rstrip("/").rsplit("/", 1)[0]
    return f"{mnt}{own.rstrip('/')}/{path}"


def read(path):
    with open(path) as f:
        return f.read().strip()


def block_device():
    """major:minor of a real block device for throttle rules."""
    names = sorted(os.listdir("/sys/block"))
    for name in names:
        if not name.startswith(("loop", "ram")):
            return read(f"/sys/block/{name}/dev")
    for name in names:  # the v2 VM has only loop devices: limits still apply to them
        if name.startswith("loop"):
            return read(f"/sys/block/{name}/dev")
    pytest.skip("no block device")


@pytest.mark.skipif(LAYOUT.mode == "v2", reason="v1 file names")
def test_v1_limit_files(rt, bundle):
    dev = block_device()
    major, minor = (int(x) for x in dev.split(":"))
    bundle.linux["resources"].update({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 42},
        "blockIO": {"throttleWriteBpsDevice": [{"major": major, "minor": minor,
                                                "rate": 1048576}]},
    })
    cid = rt.new_id()
    rt("create", "-b", bundle.sh("sleep 100").write(), cid)
    assert read(cgroup_dir("memory", cid) + "/memory.limit_in_bytes") == str(64 << 20)
    assert read(cgroup_dir("memory", cid) + "/memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(cgroup_dir("cpu", cid) + "/cpu.shares") == "512"
    assert read(cgroup_dir("cpu", cid) + "/cpu.cfs_quota_us") == "20000"
    assert read(cgroup_dir("cpuset", cid) + "/cpuset.cpus") == "0"
    assert read(cgroup_dir("pids", cid) + "/pids.max") == "42"
    assert read(cgroup_dir("blkio", cid) + "/blkio.throttle.write_bps_device") == \
        f"{dev} 1048576"
    devices = read(cgroup_dir("devices", cid) + "/devices.list").splitlines()
    assert "c 1:3 rwm" in devices and "a *:* rwm" not in devices
    pid = rt.state(cid)["pid"]
    # init itself sits in every hierarchy's cgroup
    for controller in ("memory", "cpu", "pids", "devices", "freezer"):
        assert str(pid) in read(cgroup_dir(controller, cid) + "/cgroup.procs").split()
    rt("delete", "-f", cid)
    for controller in ("memory", "cpu", "pids"):
        assert not os.path.exists(cgroup_dir(controller, cid))


@pytest.mark.skipif(LAYOUT.mode != "v2", reason="cgroup v2 file names")
def test_v2_limit_files(rt, bundle):
    dev = block_device()
    major, minor = (int(x) for x in dev.split(":"))
    bundle.linux["resources"].update({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 42},
        "blockIO": {"throttleWriteBpsDevice": [{"major": major, "minor": minor,
                                                "rate": 1048576}]},
    })
    cid = rt.new_id()
    rt("create", "-b", bundle.sh("sleep 100").write(), cid)
    d = cgroup_dir("memory", cid)
    assert read(d + "/memory.max") == str(64 << 20)
    assert read(d + "/memory.low") == str(32 << 20)
    assert read(d + "/memory.swap.max") == str(32 << 20)  # swap - limit
    assert read(d + "/cpu.max") == "20000 100000"
    assert read(d + "/cpu.weight") == "100"  # shares 1024 -> weight 100 (docs/cgroups.md)
    assert read(d + "/cpuset.cpus") == "0"
    assert read(d + "/pids.max") == "42"
    assert f"{dev} rbps=max wbps=1048576" in read(d + "/io.max")
    assert str(rt.state(cid)["pid"]) in read(d + "/cgroup.procs").split()
    rt("delete", "-f", cid)
    assert not os.path.exists(d)


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_cgroups_path_rules(rt, bundle, kind):
    cid = rt.new_id()
    path = f"/pybox-test-abs-{cid}" if kind == "absolute" else f"pybox-test-rel-{cid}"
    bundle.linux["cgroupsPath"] = path
    bundle.linux["resources"]["pids"] = {"limit": 99}
    rt("create", "-b", bundle.sh("sleep 100").write(), cid)
    d = cgroup_dir("pids", path)
    assert read(d + ("/pids.max")) == "99"
    rt("delete", "-f", cid)
    assert not os.path.exists(d)


def test_memory_limit_is_enforced(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    # allocate ~64 MiB in the shell: the kernel OOM-kills it inside the limit
    bundle.sh("x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived")
    proc = rt("run", "-b", bundle.write(), rt.new_id(), check=False)
    assert "survived" not in proc.stdout
    assert proc.returncode == 137


def test_pids_limit_is_enforced(rt, bundle):
    bundle.linux["resources"]["pids"] = {"limit": 5}
    bundle.sh("for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1 | head -1; echo done")
    proc = rt("run", "-b", bundle.write(), rt.new_id(), check=False)
    # whichever fork the limit refuses says so: one of the loop's sleeps (its
    # words go through head to stdout) or, when the loop's subshell forked its
    # sleeps before sh forked head, head's own fork (sh's stderr; sh then exits)
    assert "pybox-runtime:" not in proc.stderr, proc.stderr  # the container did run
    out = proc.stdout + proc.stderr
    assert "can't fork" in out or "Resource temporarily unavailable" in out, out


def test_device_cgroup_denies(rt, bundle):
    # the node exists (mknod is allowed) but reading it is not
    bundle.linux["devices"] = [{"type": "c", "path": "/dev/mem", "major": 1, "minor": 1}]
    out = rt("run", "-b", bundle.sh("head -c1 /dev/mem 2>&1; true").write(),
             rt.new_id()).stdout
    assert "Operation not permitted" in out
