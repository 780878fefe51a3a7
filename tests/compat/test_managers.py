"""docker and podman driving pybox-runtime: one lifecycle scenario, run by each
manager (the ``manager`` fixture: docker, then podman; conftest.py's Docker and
Podman say how each picks the runtime, where the runtime's state is, and where
their answers differ).

* docker: Debian's dockerd 20.10 -> containerd -> containerd-shim-runc-v2, the
  runtime registered with --add-runtime pybox=PATH and picked with
  `docker run --runtime pybox`;
* podman: Debian's, through conmon, with --runtime PATH.

Each test is what the manager's user does and sees; where the result depends
on the runtime at all, it is what the same command gives with runc (the probe
tests run both and compare what a container sees).  What only one manager
offers or reports is tested as that manager's own (test_docker_*)."""

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
# client sets the size only once the container runs (docker 20.10 ignores the
# create-time ConsoleSize), so the shell may come up at 0x0 first.
TYPED = ("echo hi-$((6*7)); tty; "
         "until [ \"$(stty size 2>/dev/null | grep -v '^0 0')\" ]; do sleep 0.1; done; "
         "stty size\r")

COUNTER_SH = 'echo started; trap "echo got-term; exit 0" TERM; i=0; ' \
             'while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'


@pytest.fixture(params=["docker", "podman"])
def manager(request):
    """Each manager in turn (its session fixture: started on first use)."""
    return request.getfixturevalue(request.param)


def test_run_rm_output_and_exit_status(manager):
    proc = manager.run("--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3",
                       check=False)
    assert (proc.returncode, proc.stdout) == (3, "out\n")
    assert "err" in proc.stderr
    assert manager("ps", "-aq").stdout == ""  # --rm removed it


def test_run_with_stdin(manager):
    proc = manager.run("--rm", "-i", IMAGE, "sh", "-c", 'read x; echo "got:$x"',
                       input="hello\n")
    assert proc.stdout == "got:hello\n"


def test_failing_commands_give_the_managers_exit_codes(manager):
    missing = manager.run("--rm", IMAGE, "no-such-program", check=False)
    assert missing.returncode == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in missing.stderr
    not_executable = manager.run("--rm", IMAGE, "/etc/passwd", check=False)
    assert not_executable.returncode == 126
    assert "permission denied" in not_executable.stderr
    assert manager("ps", "-aq").stdout == ""


def test_run_interactive_on_a_pty(manager):
    term = PtySession(manager.argv + ["run", "-it", "--rm", *manager.run_options(), IMAGE, "sh"],
                      manager.env, rows=30, cols=100)
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
def running(manager):
    """A detached container (name, pid, id) whose shell counts in /tmp/count."""
    name = unique_name()
    manager.run("-d", "--name", name, IMAGE, "sh", "-c", COUNTER_SH)
    yield name, manager.pid(name), manager.full_id(name)
    manager.remove(name)


def test_detached_exec_logs_pause_unpause_stop_rm(manager, running):
    name, pid, full_id = running
    assert manager.status(name) == "running"
    assert manager.runtime_state(full_id) == "running"  # pybox-runtime runs it

    proc = manager("exec", name, "sh", "-c", "echo in-exec $(id -u) $PPID; exit 4", check=False)
    assert (proc.returncode, proc.stdout) == (4, "in-exec 0 0\n")
    missing = manager("exec", name, "no-such-program", check=False)
    assert missing.returncode == manager.exec_not_found_status
    assert "executable file not found" in manager.exec_error_text(missing)
    manager("exec", "-d", name, "sleep", "123")
    assert "sleep 123" in manager("top", name, *manager.top_args).stdout  # the runtime's ps

    wait_for(lambda: "started" in manager("logs", name).stdout, "the log line")

    manager("pause", name)
    assert manager.status(name) == "paused"
    assert manager.runtime_state(full_id) == "paused"
    assert is_frozen(pid)
    before = read_in_container(pid, "/tmp/count")
    subprocess.run(["sleep", "0.5"])
    assert read_in_container(pid, "/tmp/count") == before  # nothing runs while paused

    manager("unpause", name)
    assert manager.status(name) == "running"
    assert not is_frozen(pid)
    wait_for(lambda: read_in_container(pid, "/tmp/count") != before, "the count to move on")

    manager("stop", "-t", "10", name)
    assert manager("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                   name).stdout.split() == ["exited", "0"]
    assert "got-term" in manager("logs", name).stdout  # SIGTERM reached the shell
    manager("rm", name)
    assert not manager.exists(name)
    assert manager.runtime_state(full_id) is None  # the shim / conmon deleted it


def test_exec_interactive_on_a_pty(manager, running):
    name = running[0]
    term = PtySession(manager.argv + ["exec", "-it", name, "sh"], manager.env, rows=24, cols=80)
    try:
        term.expect("# ")
        term.send(TYPED)
        out = term.expect("hi-42") + term.expect("24 80")
        assert "/dev/pts/" in out
        term.send("exit 6\r")
        assert term.wait() == 6
    finally:
        term.close()


def test_resource_flags_reach_the_container(manager):
    proc = manager.run("--rm", "-m", "64m", "--cpus", "1.5", "--pids-limit", "20", IMAGE,
                       "sh", "-c", CGROUP_LIMITS_SH)
    limits = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert limits["memory"] == "67108864"
    assert limits["cpu"] == "150000 100000"
    assert limits["pids"] == "20"


def test_pids_limit_is_enforced(manager):
    proc = manager.run("--rm", "--pids-limit", "20", IMAGE, "sh", "-c", PIDS_SH)
    assert "can't fork" in proc.stderr
    current = int(proc.stdout.split("current=")[1])
    assert 1 < current <= 20


def test_memory_limit_is_enforced(manager):
    # dd's 100 MiB buffer does not fit in 64 MiB (no swap allowed): OOM-killed
    proc = manager.run("--rm", "-m", "64m", "--memory-swap", "64m", IMAGE,
                       "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1", check=False)
    assert proc.returncode == 137


@pytest.mark.parametrize("variant", RUN_VARIANTS)
def test_container_sees_what_it_sees_under_runc(variant, manager):
    assert diff_from_runc(manager, ("runc", manager.runtime_name), RUN_VARIANTS[variant]) == ""


@pytest.mark.parametrize("variant", EXEC_VARIANTS)
def test_exec_sees_what_it_sees_under_runc(variant, manager):
    assert diff_from_runc(manager, ("runc", manager.runtime_name), [],
                          EXEC_VARIANTS[variant]) == ""


def test_nothing_left_behind(manager):
    """After rm: no runtime state, mount or cgroup left for the container."""
    name = unique_name()
    manager.run("--name", name, IMAGE, "true")
    full_id = manager.full_id(name)
    manager("rm", name)
    with open("/proc/self/mountinfo") as f:
        assert full_id not in f.read()
    for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"):
        for dirpath, dirnames, _ in os.walk(root + manager.cgroup_parent):
            assert not [d for d in dirnames if full_id in d], dirpath  # podman: libpod-ID
    assert manager.runtime_state(full_id) is None


# -- docker's own -------------------------------------------------------------------------
DOCKER_ONLY = pytest.mark.parametrize("manager", ["docker"], indirect=True)


@DOCKER_ONLY
def test_docker_home_user_and_workdir(manager):
    # docker's config.json has no HOME: the runtime sets it from /etc/passwd
    proc = manager.run("--rm", IMAGE, "sh", "-c", 'echo "$HOME"; id -u; pwd')
    assert proc.stdout.split() == ["/root", "0", "/"]
    proc = manager.run("--rm", "-u", "1:1", "-w", "/tmp", "-e", "FOO=bar", IMAGE,
                       "sh", "-c", 'echo "$HOME $FOO"; id; pwd')
    assert proc.stdout.splitlines() == [
        "/usr/sbin bar", "uid=1(daemon) gid=1(daemon) groups=1(daemon)", "/tmp"]


@DOCKER_ONLY
def test_docker_restart_and_update(manager, running):
    name, _, full_id = running
    manager("restart", "-t", "10", name)  # delete + create + start under the same id
    assert manager.status(name) == "running"
    assert manager.runtime_state(full_id) == "running"

    def limits():
        out = manager("exec", name, "sh", "-c", CGROUP_LIMITS_SH).stdout
        found = dict(line.split("=", 1) for line in out.splitlines())
        return found["memory"], found["cpu"], found["pids"]

    before = limits()
    # the runtime's `update`: the shim sends every field, those not given as 0
    manager("update", "--memory", "32m", "--memory-swap", "64m", name)
    assert limits() == ("33554432",) + before[1:]
    manager("update", "--pids-limit", "10", "--cpus", "0.5", name)
    assert limits() == ("33554432", "50000 100000", "10")


@DOCKER_ONLY
def test_docker_reports_the_oom_kill(manager):
    # dd's 100 MiB buffer does not fit in 64 MiB (no swap allowed): OOM-killed
    name = unique_name()
    proc = manager.run("--name", name, "-m", "64m", "--memory-swap", "64m", IMAGE,
                       "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1", check=False)
    try:
        assert proc.returncode == 137
        assert manager("inspect", "-f", "{{.State.OOMKilled}}", name).stdout.strip() == "true"
    finally:
        manager.remove(name)
