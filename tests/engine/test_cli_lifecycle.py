"""The docker CLI's lifecycle commands on pyboxd: start (-a, -i), stop, kill,
pause, unpause, restart, wait, rm, ps, logs -- docker's state machine as ps and
inspect report it."""

import json
import re
import subprocess
import time

import pytest

from support.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.engine]


def state(pyboxd, name):
    return pyboxd.ok("inspect", "-f", "{{.State.Status}}", name).strip()


def test_start_attach_returns_the_exit_code(pyboxd, names):
    name = names()
    pyboxd.ok("create", "--name", name, "busybox", "sh", "-c",
              "echo started; echo oops >&2; exit 2")
    proc = pyboxd.docker("start", "-a", name)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "started\n", "oops\n")
    # a second start -a runs it again (exited -> running -> exited)
    proc = pyboxd.docker("start", "-a", name)
    assert (proc.returncode, proc.stdout) == (2, "started\n")
    assert pyboxd.ok("logs", name) == "started\nstarted\n"


def test_start_attach_interactive(pyboxd, names):
    name = names()
    pyboxd.ok("create", "-i", "--name", name, "busybox", "sh", "-c",
              'read a; read b; echo "got $a and $b"; exit 9')
    proc = pyboxd.docker("start", "-ai", name, input="one\ntwo\n")
    assert (proc.returncode, proc.stdout) == (9, "got one and two\n"), proc.stderr


def test_run_interactive_with_piped_stdin(pyboxd):
    proc = pyboxd.docker("run", "--rm", "-i", "busybox", "sh", input="echo from-stdin; exit 4\n")
    assert (proc.returncode, proc.stdout) == (4, "from-stdin\n"), proc.stderr
    # cat sees EOF when the client's stdin ends (StdinOnce)
    proc = pyboxd.docker("run", "--rm", "-i", "busybox", "wc", "-c", input="x" * 100000)
    assert (proc.returncode, proc.stdout.strip()) == (0, "100000")


def test_detached_run_ps_and_stop(pyboxd, names):
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert state(pyboxd, name) == "running"
    row = pyboxd.ok("ps", "--filter", f"name={name}", "--format",
                    "{{.ID}}|{{.Image}}|{{.Command}}|{{.Status}}|{{.Names}}|{{.State}}")
    short, image, command, status, names_, st = row.strip().split("|")
    assert (short, image, command, names_, st) == (cid[:12], "busybox", '"sleep 1000"', name,
                                                   "running")
    assert status.startswith("Up ")
    assert pyboxd.ok("stop", "-t", "1", name) == name + "\n"
    assert state(pyboxd, name) == "exited"
    assert pyboxd.ok("ps", "-q", "--filter", f"name={name}") == ""
    row = pyboxd.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert row.startswith("Exited (137) ")
    # stopping a stopped container is not an error (304)
    assert pyboxd.docker("stop", name).returncode == 0


def test_kill_with_signal(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              'trap "echo hup; exit 5" HUP; echo ready; while :; do sleep 0.1; done')
    assert wait_for(lambda: "ready" in pyboxd.ok("logs", name))
    assert pyboxd.ok("kill", "-s", "HUP", name) == name + "\n"
    assert pyboxd.ok("wait", name) == "5\n"
    assert "hup" in pyboxd.ok("logs", name)
    name2 = names()
    pyboxd.ok("run", "-d", "--name", name2, "busybox", "sleep", "1000")
    pyboxd.ok("kill", name2)  # SIGKILL by default
    assert pyboxd.ok("wait", name2) == "137\n"
    assert pyboxd.inspect(name2)["State"]["ExitCode"] == 137
    # kill of a stopped container: 409, exit 1
    proc = pyboxd.docker("kill", name2)
    assert proc.returncode == 1
    assert "is not running" in proc.stderr


def test_pause_and_unpause(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done")
    pyboxd.ok("pause", name)
    assert state(pyboxd, name) == "paused"
    status = pyboxd.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").strip()
    assert status.endswith("(Paused)")
    proc = pyboxd.docker("exec", name, "true")
    assert proc.returncode != 0 and "paused" in proc.stderr
    proc = pyboxd.docker("pause", name)
    assert proc.returncode == 1 and "already paused" in proc.stderr
    pyboxd.ok("unpause", name)
    assert state(pyboxd, name) == "running"
    first = pyboxd.ok("exec", name, "cat", "/tmp/n")
    assert wait_for(lambda: pyboxd.ok("exec", name, "cat", "/tmp/n") != first)
    proc = pyboxd.docker("unpause", name)
    assert proc.returncode == 1 and "not paused" in proc.stderr
    # a paused container can be stopped (and rm -f'd)
    pyboxd.ok("pause", name)
    pyboxd.ok("stop", "-t", "1", name)
    assert state(pyboxd, name) == "exited"


def test_restart(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "echo run; trap 'exit 0' TERM; while :; do sleep 0.1; done")
    pid1 = pyboxd.inspect(name)["State"]["Pid"]
    assert pyboxd.ok("restart", "-t", "5", name) == name + "\n"
    info = pyboxd.inspect(name)
    assert info["State"]["Running"] is True
    assert info["State"]["Pid"] != pid1
    assert wait_for(lambda: pyboxd.ok("logs", name) == "run\nrun\n")
    # restart of a stopped container starts it
    pyboxd.ok("stop", name)
    pyboxd.ok("restart", name)
    assert state(pyboxd, name) == "running"


def test_wait_prints_exit_codes(pyboxd, names):
    a, b = names(), names()
    assert pyboxd.docker("run", "--name", a, "busybox", "sh", "-c", "exit 3").returncode == 3
    pyboxd.ok("run", "-d", "--name", b, "busybox", "sh", "-c", "sleep 0.5; exit 4")
    assert pyboxd.ok("wait", a, b) == "3\n4\n"


def test_rm(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    proc = pyboxd.docker("rm", name)
    assert proc.returncode == 1
    assert "You cannot remove a running container" in proc.stderr
    assert "Stop the container before attempting removal or force remove" in proc.stderr
    assert pyboxd.ok("rm", "-f", name) == name + "\n"
    proc = pyboxd.docker("inspect", name)
    assert proc.returncode == 1 and f"No such object: {name}" in proc.stderr
    proc = pyboxd.docker("rm", name)
    assert proc.returncode == 1 and f"No such container: {name}" in proc.stderr


def test_ps_options(pyboxd, names):
    label = f"psopt={names('l')}"
    a, b, c = names(), names(), names()
    ida = pyboxd.ok("run", "-d", "--name", a, "-l", label, "busybox", "sleep", "1000").strip()
    assert pyboxd.docker("run", "--name", b, "-l", label, "busybox", "sh", "-c",
                         "exit 3").returncode == 3
    idb = pyboxd.inspect(b)["Id"]
    idc = pyboxd.ok("create", "--name", c, "-l", label, "busybox", "true").strip()
    flt = ["--filter", f"label={label}"]
    # -q: running only, short ids; -a: all, newest first
    assert pyboxd.ok("ps", "-q", *flt).split() == [ida[:12]]
    assert pyboxd.ok("ps", "-aq", *flt).split() == [idc[:12], idb[:12], ida[:12]]
    assert pyboxd.ok("ps", "-aq", "--no-trunc", *flt).split() == [idc, idb, ida]
    # -n / -l: the newest, whatever its state
    assert pyboxd.ok("ps", "-n", "1", "-q", *flt).split() == [idc[:12]]
    assert pyboxd.ok("ps", "-l", "-q", *flt).split() == [idc[:12]]
    assert pyboxd.ok("ps", "-l", "--format", "{{.Names}}", *flt).split() == [c]
    # --filter status= / exited= / name= / id=
    assert pyboxd.ok("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}",
                     *flt).split() == [c]
    assert pyboxd.ok("ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}",
                     *flt).split() == [b]
    assert pyboxd.ok("ps", "-a", "--filter", f"name={a}", "--format", "{{.Names}}").split() == [a]
    assert pyboxd.ok("ps", "--filter", f"id={ida[:16]}", "-q").split() == [ida[:12]]
    # --no-trunc: full ids and commands
    out = pyboxd.ok("ps", "--no-trunc", "--filter", f"name={a}", "--format",
                    "{{.ID}} {{.Command}}")
    assert out == f'{ida} "sleep 1000"\n'
    # -s: a SIZE column; the default table has docker's header
    table = pyboxd.ok("ps", "-a", "-s", *flt).splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES", "SIZE"]
    assert len(table) == 4
    assert all("(virtual " in line for line in table[1:])
    header = pyboxd.ok("ps").splitlines()[0]
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                              "PORTS", "NAMES"]
    # --format json
    rows = [json.loads(line) for line in pyboxd.ok("ps", "-a", "--format", "json",
                                                   *flt).splitlines()]
    assert {r["Names"] for r in rows} == {a, b, c}
    assert {r["State"] for r in rows} == {"running", "exited", "created"}


def test_logs_options(pyboxd, names):
    name = names()
    # (stdout and stderr are separate pipes: their relative order in the log is
    # whatever order the daemon read them in, as with docker)
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "echo err1 >&2; sleep 0.2; for i in 1 2 3; do echo out$i; done; echo done; "
              "sleep 1000")
    assert wait_for(lambda: "done" in pyboxd.ok("logs", name))
    proc = pyboxd.docker("logs", name)
    assert proc.stdout == "out1\nout2\nout3\ndone\n"
    assert proc.stderr == "err1\n"
    proc = pyboxd.docker("logs", "--tail", "2", name)
    assert (proc.stdout, proc.stderr) == ("out3\ndone\n", "")
    proc = pyboxd.docker("logs", "--tail", "0", name)
    assert (proc.stdout, proc.stderr) == ("", "")
    proc = pyboxd.docker("logs", "-t", "--tail", "1", name)
    stamp, text = proc.stdout.split(" ", 1)
    assert text == "done\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", stamp)
    # --since / --until: absolute timestamps around the output, and relative ones
    assert pyboxd.docker("logs", "--since", "2000-01-01T00:00:00Z", name).stdout.count("\n") == 4
    assert pyboxd.docker("logs", "--until", "2000-01-01T00:00:00Z", name).stdout == ""
    assert pyboxd.docker("logs", "--since", "1h", name).stdout.count("\n") == 4
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert pyboxd.docker("logs", "--since", future, name).stdout == ""
    assert pyboxd.docker("logs", "--until", future, name).stdout.count("\n") == 4
    # between: the stderr line came first, 0.2 s before the rest
    lines = pyboxd.ok("logs", "-t", name).splitlines()
    assert len(lines) == 4
    middle = pyboxd.docker("logs", "-t", "--since", lines[0].split()[0], name)
    assert middle.stdout.splitlines() == lines
    assert pyboxd.docker("logs", "--until", lines[0].split()[0], name).stderr == "err1\n"


def test_logs_follow_until_exit(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "echo first; read x < /tmp/go 2>/dev/null; "
              "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; exit 0")
    follow = subprocess.Popen(["docker", "logs", "-f", name], env=pyboxd.cli_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout.readline() == "first\n"
        pyboxd.ok("exec", name, "touch", "/tmp/go")
        assert follow.stdout.readline() == "second\n"
        # logs -f ends by itself when the container stops
        assert follow.wait(timeout=30) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()


def test_logs_of_a_tty_container_are_raw(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-t", "--name", name, "busybox", "sh", "-c", "echo a; echo b >&2")
    proc = pyboxd.docker("logs", name, raw=True)
    assert (proc.stdout, proc.stderr) == (b"a\r\nb\r\n", b"")


def test_docker_wait_on_a_running_container(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    waiter = subprocess.Popen(["docker", "wait", name], env=pyboxd.cli_env,
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # (not a timing assertion: the wait may begin later, same result)
        pyboxd.ok("kill", name)
        assert waiter.communicate(timeout=30)[0] == "137\n"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
