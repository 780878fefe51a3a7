"""docker (Debian's dockerd 20.10 -> containerd -> containerd-shim-runc-v2)
driving pybox-runtime, registered with --add-runtime pybox=PATH and picked with
`docker run --runtime pybox`.

Each test is what a docker user does and sees; where the result depends on the
runtime at all, it is what the same command gives with runc (the probe test
runs both and compares what a container sees)."""

import glob
import json
import os
import subprocess

import pytest

from .conftest import (
    CGROUP_LIMITS_SH,
    EXEC_VARIANTS,
    IMAGE,
    PIDS_SH,
    RUN_VARIANTS,
    PtySession,
    diff_from_runc,
    is_frozen,
    read_in_container,
    unique_name,
    wait_for,
)

pytestmark = [pytest.mark.root, pytest.mark.compat]

# What the user types: a computation, the terminal's name and its size.  The
# client sets the size through the API after the start (docker 20.10 ignores
# the create-time ConsoleSize), so the shell may come up at 0x0 first.
TYPED = ("echo hi-$((6*7)); tty; "
         "until [ \"$(stty size 2>/dev/null | grep -v '^0 0')\" ]; do sleep 0.1; done; "
         "stty size\r")

COUNTER_SH = 'echo started; trap "echo got-term; exit 0" TERM; i=0; ' \
             'while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'


def runtime_state(docker, full_id):
    """`pybox-runtime state` in the state root the shim gave the runtime."""
    roots = glob.glob(f"{docker.base}/exec/runtime-*/moby")
    assert roots, "the shim's --root for the runtime"
    proc = subprocess.run([docker.runtime_path, "--root", roots[0], "state", full_id],
                          capture_output=True, text=True)
    return json.loads(proc.stdout)["status"] if proc.returncode == 0 else None


def test_run_rm_output_and_exit_status(docker):
    proc = docker.run("--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (proc.returncode, proc.stdout) == (3, "out\n")
    assert "err" in proc.stderr
    assert docker("ps", "-aq").stdout == ""  # --rm removed it


def test_run_with_stdin(docker):
    proc = docker.run("--rm", "-i", IMAGE, "sh", "-c", 'read x; echo "got:$x"', input="hello\n")
    assert proc.stdout == "got:hello\n"


def test_failing_commands_give_dockers_exit_codes(docker):
    missing = docker.run("--rm", IMAGE, "no-such-program", check=False)
    assert missing.returncode == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in missing.stderr
    not_executable = docker.run("--rm", IMAGE, "/etc/passwd", check=False)
    assert not_executable.returncode == 126
    assert "permission denied" in not_executable.stderr
    assert docker("ps", "-aq").stdout == ""


def test_home_user_and_workdir(docker):
    # docker's config.json has no HOME: the runtime sets it from /etc/passwd
    proc = docker.run("--rm", IMAGE, "sh", "-c", 'echo "$HOME"; id -u; pwd')
    assert proc.stdout.split() == ["/root", "0", "/"]
    proc = docker.run("--rm", "-u", "1:1", "-w", "/tmp", "-e", "FOO=bar", IMAGE,
                      "sh", "-c", 'echo "$HOME $FOO"; id; pwd')
    assert proc.stdout.splitlines() == [
        "/usr/sbin bar", "uid=1(daemon) gid=1(daemon) groups=1(daemon)", "/tmp"]


def test_run_interactive_on_a_pty(docker):
    term = PtySession(docker.argv + ["run", "-it", "--rm", *docker.runtime_args,
                                     "--network", "none", IMAGE, "sh"],
                      docker.env, rows=30, cols=100)
    try:
        term.expect("# ")
        term.send(TYPED)
        # the typed line is echoed as typed; only the shell prints hi-42
        out = term.expect("hi-42") + term.expect("30 100")
        assert "/dev/pts/0" in out
        term.send("exit 5\r")
        assert term.wait() == 5
    finally:
        term.close()


@pytest.fixture
def running(docker):
    """A detached container (name, pid, id) whose shell counts in /tmp/count."""
    name = unique_name()
    full_id = docker.run("-d", "--name", name, IMAGE, "sh", "-c", COUNTER_SH).stdout.strip()
    yield name, docker.pid(name), full_id
    docker.remove(name)


def test_detached_exec_logs_pause_unpause_stop_rm(docker, running):
    name, pid, full_id = running
    assert docker.status(name) == "running"
    assert runtime_state(docker, full_id) == "running"

    proc = docker("exec", name, "sh", "-c", "echo in-exec $(id -u) $PPID; exit 4", check=False)
    assert (proc.returncode, proc.stdout) == (4, "in-exec 0 0\n")
    missing = docker("exec", name, "no-such-program", check=False)
    assert missing.returncode == 126  # what docker gives for this with runc too
    assert "executable file not found" in missing.stdout + missing.stderr
    docker("exec", "-d", name, "sleep", "123")
    assert "sleep 123" in docker("top", name).stdout  # `top` runs the runtime's ps

    wait_for(lambda: "started" in docker("logs", name).stdout, "the log line")

    docker("pause", name)
    assert docker.status(name) == "paused"
    assert runtime_state(docker, full_id) == "paused"
    assert is_frozen(pid)
    before = read_in_container(pid, "/tmp/count")
    subprocess.run(["sleep", "0.5"])
    assert read_in_container(pid, "/tmp/count") == before  # nothing runs while paused

    docker("unpause", name)
    assert docker.status(name) == "running"
    assert not is_frozen(pid)
    wait_for(lambda: read_in_container(pid, "/tmp/count") != before, "the count to move on")

    docker("stop", "-t", "10", name)
    assert docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                  name).stdout.split() == ["exited", "0"]
    assert "got-term" in docker("logs", name).stdout  # SIGTERM reached the shell
    docker("rm", name)
    assert not docker.exists(name)
    assert runtime_state(docker, full_id) is None  # the shim deleted it


def test_exec_interactive_on_a_pty(docker, running):
    name = running[0]
    term = PtySession(docker.argv + ["exec", "-it", name, "sh"], docker.env, rows=24, cols=80)
    try:
        term.expect("# ")
        term.send(TYPED)
        out = term.expect("hi-42") + term.expect("24 80")
        assert "/dev/pts/" in out
        term.send("exit 6\r")
        assert term.wait() == 6
    finally:
        term.close()


def test_restart_and_update(docker, running):
    name, _, full_id = running
    docker("restart", "-t", "10", name)  # delete + create + start under the same id
    assert docker.status(name) == "running"
    assert runtime_state(docker, full_id) == "running"

    def limits():
        out = docker("exec", name, "sh", "-c", CGROUP_LIMITS_SH).stdout
        found = dict(line.split("=", 1) for line in out.splitlines())
        return found["memory"], found["cpu"], found["pids"]

    before = limits()
    # the runtime's `update`: the shim sends every field, those not given as 0
    docker("update", "--memory", "32m", "--memory-swap", "64m", name)
    assert limits() == ("33554432",) + before[1:]
    docker("update", "--pids-limit", "10", "--cpus", "0.5", name)
    assert limits() == ("33554432", "50000 100000", "10")


def test_resource_flags_reach_the_container(docker):
    proc = docker.run("--rm", "-m", "64m", "--cpus", "1.5", "--pids-limit", "20", IMAGE,
                      "sh", "-c", CGROUP_LIMITS_SH)
    limits = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert limits["memory"] == "67108864"
    assert limits["cpu"] == "150000 100000"
    assert limits["pids"] == "20"


def test_pids_limit_is_enforced(docker):
    proc = docker.run("--rm", "--pids-limit", "20", IMAGE, "sh", "-c", PIDS_SH)
    assert "can't fork" in proc.stderr
    current = int(proc.stdout.split("current=")[1])
    assert 1 < current <= 20


def test_memory_limit_is_enforced(docker):
    # dd's 100 MiB buffer does not fit in 64 MiB (no swap allowed): OOM-killed
    name = unique_name()
    proc = docker.run("--name", name, "-m", "64m", "--memory-swap", "64m", IMAGE,
                      "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1", check=False)
    try:
        assert proc.returncode == 137
        assert docker("inspect", "-f", "{{.State.OOMKilled}}", name).stdout.strip() == "true"
    finally:
        docker.remove(name)


@pytest.mark.parametrize("variant", RUN_VARIANTS)
def test_container_sees_what_it_sees_under_runc(variant, docker):
    assert diff_from_runc(docker, ("runc", "pybox"), RUN_VARIANTS[variant]) == ""


@pytest.mark.parametrize("variant", EXEC_VARIANTS)
def test_exec_sees_what_it_sees_under_runc(variant, docker):
    assert diff_from_runc(docker, ("runc", "pybox"), [], EXEC_VARIANTS[variant]) == ""


def test_nothing_left_behind(docker):
    """After rm: no runtime state, mount or cgroup left for the container."""
    name = unique_name()
    docker.run("--name", name, IMAGE, "true")
    full_id = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    docker("rm", name)
    with open("/proc/self/mountinfo") as f:
        assert full_id not in f.read()
    for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"):
        for dirpath, dirnames, _ in os.walk(root + docker.cgroup_parent):
            assert full_id not in dirnames, dirpath
    assert runtime_state(docker, full_id) is None
