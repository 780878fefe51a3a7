"""pybox-runtime exec: joins every namespace and the cgroup of the container."""

import json
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def running(rt, bundle):
    cid = rt.new_id()
    bundle.config["hostname"] = "exec-target"
    bundle.process["env"] = ["PATH=/bin:/sbin", "FROM_CONFIG=yes"]
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), cid)
    return cid


def test_exec_joins_namespaces_and_cgroup(rt, running):
    init = rt.state(running)["pid"]
    out = rt("exec", running, "sh", "-c",
             "hostname; echo $$; echo $FROM_CONFIG; readlink /proc/self/ns/net; "
             "cat /proc/self/cgroup").stdout.splitlines()
    assert out[0] == "exec-target"
    assert int(out[1]) > 1  # in the container's pid namespace, init is 1
    assert out[2] == "yes"
    assert out[3] == os.readlink(f"/proc/{init}/ns/net")
    for line in out[4:]:
        assert line.split(":", 2)[2] == "/"  # inside the container's cgroup namespace
    # and the host sees it in the container's cgroup: it shows up in `ps`
    pids_before = json.loads(rt("ps", "--format", "json", running).stdout)
    assert pids_before == [init]


def test_exec_exit_status_and_env_user_cwd(rt, running):
    proc = rt("exec", "-e", "EXTRA=1", "--cwd", "/tmp", "-u", "1000:1000", running,
              "sh", "-c", "echo $EXTRA $(pwd) $(id -u):$(id -g); exit 7", check=False)
    assert proc.returncode == 7
    assert proc.stdout == "1 /tmp 1000:1000\n"


def test_exec_with_process_json(rt, running, tmp_path):
    process = {"args": ["/bin/sh", "-c", "echo from json $A"], "cwd": "/",
               "env": ["A=b", "PATH=/bin"], "user": {"uid": 0, "gid": 0},
               "terminal": False}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    assert rt("exec", "--process", str(path), running).stdout == "from json b\n"


def test_exec_detached_pid_file(rt, running, tmp_path):
    pidfile = tmp_path / "exec.pid"
    rt("exec", "-d", "--pid-file", str(pidfile), running, "sleep", "30")
    pid = int(pidfile.read_text())
    assert pid in json.loads(rt("ps", "-f", "json", running).stdout)


def test_exec_missing_program_and_stopped_container(rt, running, bundle):
    err = rt("exec", running, "no-such-program", check=False)
    assert err.returncode != 0
    assert 'exec: "no-such-program": executable file not found' in err.stderr
    rt("kill", running, "KILL")
    for _ in range(200):
        if rt.state(running)["status"] == "stopped":
            break
        time.sleep(0.02)
    err = rt("exec", running, "true", check=False)
    assert err.returncode != 0 and "stopped" in err.stderr


def test_exec_caps_and_no_new_privs(rt, running):
    out = rt("exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", running, "sh", "-c",
             "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status").stdout
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert int(fields["CapEff"], 16) & (1 << 21)  # CAP_SYS_ADMIN
    assert fields["NoNewPrivs"] == "1"


def test_exec_signal_forwarding_in_foreground(rt, running):
    proc = subprocess.Popen(rt.cmd + ["--root", rt.root, "exec", running, "sh", "-c",
                                      "trap 'echo term; exit 3' TERM; echo up; "
                                      "while true; do sleep 0.05; done"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"
    proc.terminate()
    assert proc.communicate(timeout=10)[0] == "term\n"
    assert proc.returncode == 3


def test_runtime_is_not_reachable_from_the_container(rt, bundle):
    """The CVE-2019-5736 class: a created container's init is still a copy of
    the runtime (the host's Python) until start.  A process in the container must
    not be able to open it through /proc/1/exe, to read or to write."""
    cid = rt.new_id()
    rt("create", "-b", bundle.sh("true").write(), cid)
    out = rt("exec", cid, "sh", "-c",
             "cat /proc/1/exe > /dev/null 2>&1 && echo READ; "
             "(echo x >> /proc/1/exe) 2>/dev/null && echo WROTE; "
             "ls -l /proc/1/exe 2>&1 | grep -q -- '->' && echo LINK; echo done").stdout
    assert out.split() == ["done"], out
