"""podman (Debian's, through conmon) driving pybox-runtime with --runtime PATH.

Each test is what a podman user does and sees; where the result depends on the
runtime at all, it is what the same command gives with runc (the last test runs
both and compares what a container sees)."""

import json
import os
import subprocess

import pytest

from .conftest import (
    CGROUP_LIMITS_SH,
    EXEC_VARIANTS,
    IMAGE,
    PIDS_SH,
    PODMAN_ULIMITS,
    RUN_VARIANTS,
    PtySession,
    diff_from_runc,
    is_frozen,
    read_in_container,
    unique_name,
    wait_for,
)

pytestmark = [pytest.mark.root, pytest.mark.compat]

# What the user types: a computation, the terminal's name and its size (which
# the client may set only once the container runs: the shell can see 0x0 first).
TYPED = ("echo hi-$((6*7)); tty; "
         "until [ \"$(stty size 2>/dev/null | grep -v '^0 0')\" ]; do sleep 0.1; done; "
         "stty size\r")

COUNTER_SH = 'echo started; trap "echo got-term; exit 0" TERM; i=0; ' \
             'while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'


def runtime_state(podman, full_id):
    """`pybox-runtime state`: conmon passes no --root, so the default one."""
    proc = subprocess.run([podman.runtime_path, "state", full_id], capture_output=True,
                          text=True)
    return json.loads(proc.stdout)["status"] if proc.returncode == 0 else None


def test_run_rm_output_and_exit_status(podman):
    proc = podman.run("--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3",
                      check=False)
    assert (proc.returncode, proc.stdout) == (3, "out\n")
    assert "err" in proc.stderr
    assert podman("ps", "-aq").stdout == ""  # --rm removed it


def test_run_with_stdin(podman):
    proc = podman.run("--rm", "-i", IMAGE, "sh", "-c", 'read x; echo "got:$x"',
                      input="hello\n")
    assert proc.stdout == "got:hello\n"


def test_failing_commands_give_podmans_exit_codes(podman):
    missing = podman.run("--rm", IMAGE, "no-such-program", check=False)
    assert missing.returncode == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in missing.stderr
    not_executable = podman.run("--rm", IMAGE, "/etc/passwd", check=False)
    assert not_executable.returncode == 126
    assert "permission denied" in not_executable.stderr
    assert podman("ps", "-aq").stdout == ""


def test_run_interactive_on_a_pty(podman):
    term = PtySession(podman.argv + ["run", "-it", "--rm", *podman.runtime_args,
                                     *PODMAN_ULIMITS, "--network", "none",
                                     "--cgroup-parent", podman.cgroup_parent, IMAGE, "sh"],
                      podman.env, rows=30, cols=100)
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
def running(podman):
    """A detached container (name, pid) whose shell counts in /tmp/count."""
    name = unique_name()
    podman.run("-d", "--name", name, IMAGE, "sh", "-c", COUNTER_SH)
    yield name, podman.pid(name)
    podman.remove(name)


def test_detached_exec_logs_pause_unpause_stop_rm(podman, running):
    name, pid = running
    full_id = podman("inspect", "-f", "{{.Id}}", name).stdout.strip()
    assert podman.status(name) == "running"
    assert runtime_state(podman, full_id) == "running"  # pybox-runtime runs it

    proc = podman("exec", name, "sh", "-c", "echo in-exec $(id -u) $PPID; exit 4", check=False)
    assert (proc.returncode, proc.stdout) == (4, "in-exec 0 0\n")
    missing = podman("exec", name, "no-such-program", check=False)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    podman("exec", "-d", name, "sleep", "123")
    assert "sleep 123" in podman("top", name, "args").stdout

    wait_for(lambda: "started" in podman("logs", name).stdout, "the log line")

    podman("pause", name)
    assert podman.status(name) == "paused"
    assert runtime_state(podman, full_id) == "paused"
    assert is_frozen(pid)
    before = read_in_container(pid, "/tmp/count")
    subprocess.run(["sleep", "0.5"])
    assert read_in_container(pid, "/tmp/count") == before  # nothing runs while paused

    podman("unpause", name)
    assert podman.status(name) == "running"
    assert not is_frozen(pid)
    wait_for(lambda: read_in_container(pid, "/tmp/count") != before, "the count to move on")

    podman("stop", "-t", "10", name)
    assert podman("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                  name).stdout.split() == ["exited", "0"]
    assert "got-term" in podman("logs", name).stdout  # SIGTERM reached the shell
    podman("rm", name)
    assert not podman.exists(name)
    assert runtime_state(podman, full_id) is None  # conmon/podman deleted it


def test_exec_interactive_on_a_pty(podman, running):
    name, _ = running
    term = PtySession(podman.argv + ["exec", "-it", name, "sh"], podman.env, rows=24, cols=80)
    try:
        term.expect("# ")
        term.send(TYPED)
        out = term.expect("hi-42") + term.expect("24 80")
        assert "/dev/pts/" in out
        term.send("exit 6\r")
        assert term.wait() == 6
    finally:
        term.close()


def test_resource_flags_reach_the_container(podman):
    proc = podman.run("--rm", "-m", "64m", "--cpus", "1.5", "--pids-limit", "20", IMAGE,
                      "sh", "-c", CGROUP_LIMITS_SH)
    limits = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert limits["memory"] == "67108864"
    assert limits["cpu"] == "150000 100000"
    assert limits["pids"] == "20"


def test_pids_limit_is_enforced(podman):
    proc = podman.run("--rm", "--pids-limit", "20", IMAGE, "sh", "-c", PIDS_SH)
    assert "can't fork" in proc.stderr
    current = int(proc.stdout.split("current=")[1])
    assert 1 < current <= 20


def test_memory_limit_is_enforced(podman):
    # dd's 100 MiB buffer does not fit in 64 MiB (no swap allowed): OOM-killed
    proc = podman.run("--rm", "-m", "64m", "--memory-swap", "64m", IMAGE,
                      "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1", check=False)
    assert proc.returncode == 137


@pytest.mark.parametrize("variant", RUN_VARIANTS)
def test_container_sees_what_it_sees_under_runc(variant, podman):
    assert diff_from_runc(podman, ("runc", podman.runtime_path), RUN_VARIANTS[variant]) == ""


@pytest.mark.parametrize("variant", EXEC_VARIANTS)
def test_exec_sees_what_it_sees_under_runc(variant, podman):
    assert diff_from_runc(podman, ("runc", podman.runtime_path), [], EXEC_VARIANTS[variant]) == ""


def test_nothing_left_behind(podman):
    """After run --rm: no pybox state, mount or cgroup left for the container."""
    name = unique_name()
    podman.run("--name", name, IMAGE, "true")
    full_id = podman("inspect", "-f", "{{.Id}}", name).stdout.strip()
    podman("rm", name)
    with open("/proc/self/mountinfo") as f:
        assert full_id not in f.read()
    for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"):
        for dirpath, dirnames, _ in os.walk(root + podman.cgroup_parent):
            assert not [d for d in dirnames if full_id in d], dirpath
