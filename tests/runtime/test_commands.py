"""pause/resume, ps, events, update, features, LISTEN_FDS."""

import json
import os
import subprocess
import time

import pytest

from pybox import cgroups

pytestmark = pytest.mark.root


@pytest.fixture
def counter(rt, bundle):
    """A container that counts into a file once every 20 ms, each count renamed
    into place (frozen between a truncate and its write, the file stayed empty
    for the whole pause: 'counter never wrote')."""
    cid = rt.new_id()
    bundle.sh("i=0; while true; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; "
              "sleep 0.02; done")
    rt("run", "-d", "-b", bundle.write(), cid)
    return cid, os.path.join(bundle.rootfs, "count")


def read_count(path):
    for _ in range(50):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("counter never wrote")


def test_pause_and_resume(rt, counter):
    cid, path = counter
    read_count(path)
    rt("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    frozen = read_count(path)
    time.sleep(0.3)
    assert read_count(path) == frozen
    err = rt("pause", cid, check=False)
    assert err.returncode != 0
    rt("resume", cid)
    assert rt.state(cid)["status"] == "running"
    time.sleep(0.3)
    assert read_count(path) > frozen
    err = rt("resume", cid, check=False)
    assert err.returncode != 0 and "not paused" in err.stderr


def test_delete_force_of_paused_container(rt, counter):
    cid, _ = counter
    rt("pause", cid)
    rt("delete", "--force", cid)
    assert rt("list", "-q").stdout == ""


def test_ps_table_and_json(rt, counter):
    cid, _ = counter
    pids = json.loads(rt("ps", "--format", "json", cid).stdout)
    assert rt.state(cid)["pid"] in pids
    table = rt("ps", cid).stdout.splitlines()
    assert "PID" in table[0].split()
    assert any(str(rt.state(cid)["pid"]) in line.split() for line in table[1:])
    table = rt("ps", cid, "--", "-o", "pid,comm").stdout.splitlines()
    assert table[0].split() == ["PID", "COMMAND"]


def test_events_stats(rt, counter):
    cid, _ = counter
    event = json.loads(rt("events", "--stats", cid).stdout)
    assert event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    assert data["pids"]["current"] >= 1
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0


def test_events_stream_reports_oom(rt, bundle):
    cid = rt.new_id()
    bundle.linux["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    # the allocation waits for the test's go (a file in the rootfs), sent once
    # events streams: on a slow (TCG) VM a fixed sleep raced the events start
    bundle.sh("until [ -e /oom-go ]; do sleep 0.05; done; "
              "x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 100")
    rt("run", "-d", "-b", bundle.write(), cid)
    proc = subprocess.Popen(rt.cmd + ["--root", rt.root, "events", "--interval", "100ms", cid],
                            stdout=subprocess.PIPE, text=True)
    kinds = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "oom" not in kinds:
            line = proc.stdout.readline()
            if not line:
                break
            kinds.append(json.loads(line)["type"])
            if kinds == ["stats"]:
                open(os.path.join(bundle.rootfs, "oom-go"), "w").close()
    finally:
        proc.kill()
        proc.wait()
    assert "stats" in kinds and "oom" in kinds


def test_update_live(rt, counter):
    cid, _ = counter
    layout = cgroups.detect_layout()
    rt("update", "--memory", "64m", "--pids-limit", "33", "--cpu-quota", "50000",
       "--cpu-period", "100000", cid)
    mgr_state = json.loads(open(os.path.join(rt.root, cid, "state.json")).read())["cgroup"]
    paths = mgr_state["paths"]
    if layout.mode == "v2":
        assert open(paths[""] + "/memory.max").read().strip() == str(64 << 20)
        assert open(paths[""] + "/pids.max").read().strip() == "33"
    else:
        assert open(paths["memory"] + "/memory.limit_in_bytes").read().strip() == \
            str(64 << 20)
        assert open(paths["pids"] + "/pids.max").read().strip() == "33"
        assert open(paths["cpu"] + "/cpu.cfs_quota_us").read().strip() == "50000"
    # also from a resources file, and the snapshot remembers the values
    res = {"pids": {"limit": 44}}
    rt("update", "-r", "-", cid, input=json.dumps(res))
    cfg = json.loads(open(os.path.join(rt.root, cid, "config.json")).read())
    assert cfg["linux"]["resources"]["pids"]["limit"] == 44
    assert cfg["linux"]["resources"]["memory"]["limit"] == 64 << 20
    err = rt("update", "--memory", "lots", cid, check=False)
    assert err.returncode != 0 and "--memory" in err.stderr


def test_update_zero_means_unchanged_as_in_runc(rt, bundle):
    # containerd-shim (docker update --memory 32m) sends every field, the ones
    # not asked for as 0; runc leaves those alone
    bundle.linux["resources"] = {"cpu": {"quota": 150000, "period": 100000},
                                 "pids": {"limit": 50}}
    bundle.set_args("sleep", "30")
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.write(), cid)
    shim = {"memory": {"limit": 32 << 20, "reservation": 0, "swap": 64 << 20, "kernel": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}}
    rt("update", "-r", "-", cid, input=json.dumps(shim))
    res = json.loads(open(os.path.join(rt.root, cid, "config.json")).read())["linux"]["resources"]
    assert res["memory"]["limit"] == 32 << 20 and res["pids"]["limit"] == 50
    assert (res["cpu"]["quota"], res["cpu"]["period"]) == (150000, 100000)
    if cgroups.detect_layout().mode != "v2":
        state = json.loads(open(os.path.join(rt.root, cid, "state.json")).read())
        paths = state["cgroup"]["paths"]
        assert open(paths["cpu"] + "/cpu.cfs_quota_us").read().strip() == "150000"
        assert open(paths["memory"] + "/memory.limit_in_bytes").read().strip() == str(32 << 20)


def test_features(rt):
    doc = json.loads(rt("features").stdout)
    assert doc["ociVersionMax"].startswith("1.")
    assert "createRuntime" in doc["hooks"] and "rbind" in doc["mountOptions"]
    assert {"pid", "network", "mount", "user", "cgroup"} <= set(doc["linux"]["namespaces"])
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
    assert doc["linux"]["cgroup"]["v1"] and doc["linux"]["cgroup"]["v2"]


def test_listen_fds_pass_through(rt, bundle, tmp_path):
    data = tmp_path / "sock-data"
    data.write_text("activated\n")
    bundle.sh("echo $LISTEN_FDS $LISTEN_PID; cat <&3")
    proc = subprocess.run(["/bin/sh", "-c", f'exec 3<{data}; exec "$@"', "sh"] + rt.cmd
                          + ["--root", rt.root, "run", "-b", bundle.write(), rt.new_id()],
                          env=dict(os.environ, LISTEN_FDS="1"), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1 1\nactivated\n"
