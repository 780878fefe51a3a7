"""The runtime-spec lifecycle, driven through pybox-runtime's command line as
containerd and podman drive runc."""

import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import host_mounts_mentioning

pytestmark = pytest.mark.root


def wait_status(rt, cid, status, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = rt.state(cid)["status"]
        if s == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} did not become {status} (is {s})")


def test_run_foreground_output_and_exit_code(rt, bundle):
    bundle.sh("echo pid=$$ host=$(hostname); exit 3")
    proc = rt("run", "--bundle", bundle.write(), rt.new_id(), check=False)
    assert proc.stdout == "pid=1 host=pybox\n"
    assert proc.returncode == 3
    assert os.listdir(rt.root) == []  # foreground run deletes the container


def test_run_exit_status_of_a_signal_is_128_plus_n(rt, bundle):
    # (pid 1 of a pid namespace cannot be killed from inside: kill it from outside)
    cid = rt.new_id()
    bundle.sh("echo started; exec sleep 100")
    proc = subprocess.Popen(rt.cmd + ["--root", rt.root, "run", "-b", bundle.write(), cid],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "started\n"
    wait_status(rt, cid, "running")
    rt("kill", cid, "KILL")
    assert proc.wait(timeout=10) == 137


def test_stdin_is_passed_through(rt, bundle):
    bundle.set_args("/bin/cat")
    proc = rt("run", "-b", bundle.write(), rt.new_id(), input="from stdin\n")
    assert proc.stdout == "from stdin\n"


def test_create_start_state_kill_delete(rt, bundle, tmp_path):
    bundle.sh("trap 'exit 7' TERM; while true; do sleep 0.05; done")
    cid = rt.new_id()
    pidfile = tmp_path / "init.pid"
    rt("create", "--bundle", bundle.write(), "--pid-file", str(pidfile), cid)

    state = rt.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid and state["bundle"] == bundle.path
    assert state["ociVersion"].startswith("1.")
    pid = state["pid"]
    assert int(pidfile.read_text()) == pid
    # blocked before the user program: init is still the runtime, not sh
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"while true" not in f.read()

    rt("start", cid)
    wait_status(rt, cid, "running")
    assert rt.state(cid)["pid"] == pid
    err = rt("start", cid, check=False)
    assert err.returncode != 0 and "running" in err.stderr

    err = rt("delete", cid, check=False)
    assert err.returncode != 0 and "running" in err.stderr

    rt("kill", cid)  # default TERM: the trap exits
    wait_status(rt, cid, "stopped")
    assert rt.state(cid)["pid"] == 0
    err = rt("kill", cid, "KILL", check=False)
    assert err.returncode != 0 and "not running" in err.stderr

    rt("delete", cid)
    err = rt("state", cid, check=False)
    assert err.returncode != 0 and "does not exist" in err.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_program_does_not_run_before_start(rt, bundle):
    marker = os.path.join(bundle.rootfs, "ran")
    bundle.sh("touch /ran")
    cid = rt.new_id()
    rt("create", "-b", bundle.write(), cid)
    time.sleep(0.2)
    assert not os.path.exists(marker)
    rt("start", cid)
    wait_status(rt, cid, "stopped")
    assert os.path.exists(marker)
    rt("delete", cid)


def test_delete_of_created_container_needs_force(rt, bundle):
    cid = rt.new_id()
    rt("create", "-b", bundle.sh("sleep 100").write(), cid)
    err = rt("delete", cid, check=False)
    assert err.returncode != 0 and "created" in err.stderr
    pid = rt.state(cid)["pid"]
    rt("delete", "--force", cid)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert rt("list", "-q").stdout == ""


def test_force_delete_of_running_container(rt, bundle):
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), cid)
    assert rt.state(cid)["status"] == "running"
    rt("delete", "-f", cid)
    assert rt("list", "-q").stdout == ""


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_signal_names(rt, bundle, sig):
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), cid)
    rt("kill", cid, sig)
    wait_status(rt, cid, "stopped")


def test_kill_all_reaches_every_process(rt, bundle):
    cid = rt.new_id()
    bundle.sh("sleep 100 & sleep 100 & wait")
    rt("run", "-d", "-b", bundle.write(), cid)
    rt("kill", "--all", cid, "KILL")
    wait_status(rt, cid, "stopped")


def test_id_in_use_and_invalid_ids(rt, bundle):
    cid = rt.new_id()
    path = bundle.sh("sleep 100").write()
    rt("create", "-b", path, cid)
    err = rt("create", "-b", path, cid, check=False)
    assert err.returncode != 0 and "already exists" in err.stderr
    assert rt.state(cid)["status"] == "created"  # the first one is untouched
    for bad in ("../escape", "a/b", "."):
        err = rt("create", "-b", path, bad, check=False)
        assert err.returncode != 0 and "invalid container id" in err.stderr


def test_list_table_json_quiet(rt, bundle):
    a, b = rt.new_id(), rt.new_id()
    path = bundle.sh("sleep 100").write()
    rt("create", "-b", path, a)
    rt("run", "-d", "-b", path, b)
    table = rt("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[a][2] == "created" and rows[b][2] == "running"
    assert rows[a][5] == "root"
    listed = json.loads(rt("list", "--format", "json").stdout)
    assert {s["id"]: s["status"] for s in listed} == {a: "created", b: "running"}
    assert sorted(rt("list", "-q").stdout.split()) == sorted([a, b])


def test_foreground_run_forwards_signals(rt, bundle):
    bundle.sh("trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.05; done")
    proc = subprocess.Popen(rt.cmd + ["--root", rt.root, "run", "-b", bundle.write(),
                                      rt.new_id()], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert out == "got TERM\n" and proc.returncode == 42


def run_with_fds(rt, shell_redirects, *args):
    """Start the runtime from a shell that opened extra fds (as conmon passes
    --preserve-fds ones), with nothing else inherited."""
    return subprocess.run(["/bin/sh", "-c", f'{shell_redirects}; exec "$@"', "sh"]
                          + rt.cmd + ["--root", rt.root] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


def test_preserve_fds(rt, bundle, tmp_path):
    data = tmp_path / "extra"
    data.write_text("passed fd\n")
    bundle.sh("cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '")
    proc = run_with_fds(rt, f"exec 3<{data}", "run", "--preserve-fds", "1", "-b",
                        bundle.write(), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "passed fd"
    # 0,1,2, the preserved 3, and the fd ls opens for the directory: nothing else
    assert lines[1].split() == ["0", "1", "2", "3", "4"]


def test_no_host_fd_leaks_into_container(rt, bundle, tmp_path):
    bundle.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '")
    proc = run_with_fds(rt, f"exec 5>{tmp_path}/leak 6<{tmp_path}/leak", "run", "-b",
                        bundle.write(), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


def test_log_json_on_error(rt, bundle, tmp_path):
    log = tmp_path / "log.json"
    bundle.set_args("/no/such/program")
    err = rt("--log", str(log), "--log-format", "json", "create", "-b", bundle.write(),
             rt.new_id(), check=False)
    assert err.returncode != 0
    assert "/no/such/program" in err.stderr and len(err.stderr.splitlines()) == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error" and "/no/such/program" in entries[-1]["msg"]
    assert entries[-1]["time"].endswith("Z")


def test_spec_writes_valid_default(tmp_path, rt):
    rt("spec", "--bundle", str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["root"]["path"] == "rootfs"
    assert {ns["type"] for ns in cfg["linux"]["namespaces"]} >= {"pid", "mount", "uts"}
    err = rt("spec", "--bundle", str(tmp_path), check=False)
    assert err.returncode != 0 and "exists" in err.stderr


def test_version(rt):
    out = rt("--version").stdout
    assert out.startswith("pybox-runtime version ") and "spec: 1." in out


def test_no_pivot(rt, bundle):
    bundle.sh("cat /proc/self/mountinfo | head -1")
    out = rt("run", "--no-pivot", "-b", bundle.write(), rt.new_id()).stdout
    fields = out.split()
    # the rootfs was moved onto "/" (MS_MOVE + chroot) instead of pivot_root
    assert fields[4] == "/" and fields[3].endswith("/bundle/rootfs")


def test_without_mount_namespace_mounts_are_cleaned_up(rt, bundle):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "mount"]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] in ("/proc", "/dev")]
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.sh("echo ok")
    cid = rt.new_id()
    rt("create", "-b", bundle.write(), cid)
    assert host_mounts_mentioning(bundle.rootfs)  # made in the host's namespace
    rt("start", cid)
    wait_status(rt, cid, "stopped")
    rt("delete", cid)
    assert host_mounts_mentioning(bundle.rootfs) == []
