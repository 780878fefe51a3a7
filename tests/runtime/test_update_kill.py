"""update and kill --all on real containers, as containerd's CRI drives them
(issue 14): an update carrying the spec's "deny all" device list keeps the
default devices usable, and kill --all succeeds on a stopped container,
signalling what its init left behind."""

import json
import os
import time

import pytest

from .test_lifecycle import wait_status

pytestmark = pytest.mark.root

DENY_ALL = {"allow": False, "access": "rwm"}
# containerd's CRI sends the spec's linux.resources whole (kubelet's CPU
# manager, in-place pod resize): a device list of one "deny all" rule
CRI_UPDATE = {"devices": [DENY_ALL],
              "memory": {"limit": 96 << 20, "swap": 96 << 20},
              "cpu": {"shares": 512, "quota": 40000, "period": 100000}}

DEVICE_PROBE = ("echo x > /dev/null && echo null-ok; "
                "head -c 4 /dev/urandom | wc -c; "
                "exec 3<>/dev/ptmx && echo ptmx-ok")


def cgroup_paths(rt, cid):
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        return json.load(f)["cgroup"]["paths"]


def gone_or_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while not gone_or_zombie(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} is still there")
        time.sleep(0.02)


def test_update_with_the_cri_device_list_keeps_the_default_devices(rt, bundle):
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.set_args("sleep", "100").write(), cid)
    before = rt("exec", cid, "sh", "-c", DEVICE_PROBE).stdout
    assert before.split() == ["null-ok", "4", "ptmx-ok"]
    rt("update", "-r", "-", cid, input=json.dumps(CRI_UPDATE))
    after = rt("exec", cid, "sh", "-c", DEVICE_PROBE, check=False)
    assert (after.returncode, after.stdout.split()) == (0, ["null-ok", "4", "ptmx-ok"]), \
        after.stderr
    paths = cgroup_paths(rt, cid)
    if "devices" in paths:  # cgroup v1: the kernel's own list
        with open(paths["devices"] + "/devices.list") as f:
            listed = f.read().splitlines()
        assert "c 1:3 rwm" in listed and "c 5:2 rwm" in listed
    # the limits did change
    if "memory" in paths:
        with open(paths["memory"] + "/memory.limit_in_bytes") as f:
            assert f.read().strip() == str(96 << 20)
    else:
        with open(paths[""] + "/memory.max") as f:
            assert f.read().strip() == str(96 << 20)


def test_kill_all_of_a_stopped_container_signals_what_init_left(rt, bundle, tmp_path):
    # no pid namespace of its own: the init's child outlives it, in the cgroup
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "pid"]
    bundle.sh("sleep 100 >/dev/null 2>&1 & echo $! > /left.pid")
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.write(), cid)
    wait_status(rt, cid, "stopped")
    with open(os.path.join(bundle.rootfs, "left.pid")) as f:
        left = int(f.read())
    assert not gone_or_zombie(left)
    err = rt("kill", cid, "TERM", check=False)  # init is gone: refused, as runc
    assert err.returncode != 0 and "not running" in err.stderr
    assert not gone_or_zombie(left)
    rt("kill", "--all", cid, "TERM")
    wait_gone(left)
    rt("kill", "--all", cid, "KILL")  # nothing left: still success
    rt("delete", cid)


def test_kill_all_of_a_created_container_whose_init_exited(rt, bundle):
    cid = rt.new_id()
    rt("create", "-b", bundle.set_args("sleep", "100").write(), cid)
    rt("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    for sig in ("KILL", "TERM"):
        rt("kill", "--all", cid, sig)
    rt("delete", cid)
    assert rt("list", "-q").stdout == ""


def test_kill_all_of_a_stopped_container_whose_cgroup_is_gone(rt, bundle):
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.set_args("true").write(), cid)
    wait_status(rt, cid, "stopped")
    for path in sorted(set(cgroup_paths(rt, cid).values()), key=len, reverse=True):
        if os.path.isdir(path):
            os.rmdir(path)  # empty: the container's only process exited
    rt("kill", "--all", cid, "KILL")
    rt("kill", "--all", cid)
    rt("delete", cid)
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_sigkill_of_a_paused_container_kills_it(rt, bundle):
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.set_args("sleep", "100").write(), cid)
    pid = rt.state(cid)["pid"]
    rt("pause", cid)
    rt("kill", cid, "KILL")
    wait_gone(pid)
    wait_status(rt, cid, "stopped")
    rt("delete", cid)
