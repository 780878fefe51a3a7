"""Bad input and failure (issue 6 item 6): unknown images, name conflicts, invalid
flags and values, start errors with docker's exit codes, a monitor killed under
a running container, clients that go away mid-stream -- a clear error, the
daemon keeps serving, nothing is leaked or lost."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from .conftest import fd_count, mounts_under, settle, thread_count

pytestmark = [pytest.mark.root, pytest.mark.engine]


# -- unknown image ---------------------------------------------------------------------------
def test_unknown_image_is_404_then_the_pull_fails_with_125(pyboxd, names):
    status, body = pyboxd.api("POST", "/containers/create",
                              {"Image": "pybox-no-such-image:1.0", "Cmd": ["true"]})
    assert status == 404
    assert body["message"] == "No such image: pybox-no-such-image:1.0"
    name = names()
    proc = pyboxd.docker("run", "--name", name, "pybox-no-such-image:1.0", "true")
    assert proc.returncode == 125
    assert "Unable to find image 'pybox-no-such-image:1.0' locally" in proc.stderr
    assert "Error response from daemon:" in proc.stderr
    assert "pybox-no-such-image" in proc.stderr.splitlines()[-1] or \
        "pybox-no-such-image" in proc.stderr
    assert pyboxd.docker("inspect", name).returncode == 1  # nothing was created
    proc = pyboxd.docker("create", "pybox-no-such-image:1.0")
    assert proc.returncode == 1
    proc = pyboxd.docker("image", "inspect", "pybox-no-such-image:1.0")
    assert proc.returncode == 1
    assert "No such image: pybox-no-such-image:1.0" in proc.stderr


# -- names -----------------------------------------------------------------------------------------
def test_name_conflict_is_409_with_dockers_message(pyboxd, names):
    name = names()
    cid = pyboxd.ok("create", "--name", name, "busybox", "true").strip()
    proc = pyboxd.docker("run", "--name", name, "busybox", "true")
    assert proc.returncode == 125
    assert (f'Conflict. The container name "/{name}" is already in use by container '
            f'"{cid}". You have to remove (or rename) that container to be able to reuse '
            "that name.") in proc.stderr
    status, body = pyboxd.api("POST", f"/containers/create?name={name}",
                              {"Image": "busybox", "Cmd": ["true"]})
    assert status == 409
    # the holder is untouched, and the name is free again once it is removed
    assert pyboxd.inspect(name)["Id"] == cid
    pyboxd.ok("rm", name)
    pyboxd.ok("create", "--name", name, "busybox", "true")


@pytest.mark.parametrize("bad", ["a", "bad name", "-x", "ä1"])
def test_invalid_container_name(pyboxd, bad):
    proc = pyboxd.docker("create", "--name", bad, "busybox", "true")
    assert proc.returncode != 0
    assert "Invalid container name" in proc.stderr or "invalid" in proc.stderr.lower()


# -- invalid flags and values -------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["-m", "1k"], "Minimum memory limit allowed is 6MB"),
    (["-m", "20m", "--memory-swap", "10m"], "Minimum memoryswap limit should be larger than "
                                             "memory limit"),
    (["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
    (["--cpu-period", "10"], "CPU cfs period can not be less than 1ms"),
    (["--cpus", "0.5", "--cpu-quota", "1000"], "Conflicting options: Nano CPUs and CPU Quota"),
    (["--cpus", "abc"], 'invalid argument "abc" for "--cpus" flag'),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["-m", "lots"], 'invalid argument "lots" for "-m, --memory" flag'),
    (["--restart", "sometimes"], "invalid restart policy"),
    (["--log-driver", "bogus"], 'error looking up logging plugin bogus: plugin "bogus" not found'),
])
def test_invalid_values_are_125_with_a_message(pyboxd, names, args, message):
    name = names()
    proc = pyboxd.docker("run", "--name", name, *args, "busybox", "true")
    assert proc.returncode == 125, proc.stderr
    assert message.lower() in proc.stderr.lower()
    assert pyboxd.docker("inspect", name).returncode == 1  # nothing left behind


def test_unknown_network_is_a_clear_125(pyboxd, names):
    name = names()
    proc = pyboxd.docker("run", "--rm", "--name", name, "--network", "pybox-no-such-net",
                         "busybox", "true")
    assert proc.returncode == 125
    assert "network pybox-no-such-net not found" in proc.stderr
    assert "Unable to find image" not in proc.stderr  # not mistaken for a missing image


def test_unknown_flag_is_125(pyboxd):
    proc = pyboxd.docker("run", "--pybox-no-such-flag", "busybox", "true")
    assert proc.returncode == 125
    assert "unknown flag: --pybox-no-such-flag" in proc.stderr


# -- start errors: 127 / 126 / 125 ---------------------------------------------------------------------
@pytest.mark.parametrize("command, code, message", [
    (["/pybox-no-such-exe"], 127, "no such file or directory"),
    (["pybox-no-such-cmd"], 127, "executable file not found"),
    (["/etc/passwd"], 126, "permission denied"),
    (["/etc"], 126, ""),
])
def test_start_errors_give_dockers_exit_codes(pyboxd, names, command, code, message):
    name = names()
    proc = pyboxd.docker("run", "--name", name, "busybox", *command)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Error waiting for container" not in proc.stderr  # docker's wait has no Error
    info = pyboxd.inspect(name)
    assert info["State"]["Running"] is False
    assert info["State"]["ExitCode"] == code
    assert info["State"]["Error"]
    # --rm: the container is removed even though it never ran
    proc = pyboxd.docker("run", "--rm", "busybox", *command)
    assert proc.returncode == code
    assert "Error waiting for container" not in proc.stderr


def test_unknown_user_and_relative_workdir_are_125(pyboxd):
    proc = pyboxd.docker("run", "--rm", "-u", "pybox-no-such-user", "busybox", "true")
    assert proc.returncode == 125
    assert "pybox-no-such-user" in proc.stderr
    proc = pyboxd.docker("run", "--rm", "-w", "relative", "busybox", "true")
    assert proc.returncode == 125


def test_exec_errors(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert pyboxd.docker("exec", name, "/pybox-no-such-exe").returncode == 127
    assert pyboxd.docker("exec", name, "/etc/passwd").returncode == 126
    stopped = names()
    pyboxd.ok("create", "--name", stopped, "busybox", "true")
    proc = pyboxd.docker("exec", stopped, "true")
    assert proc.returncode == 1 and "is not running" in proc.stderr
    proc = pyboxd.docker("exec", "pybox-no-such-container", "true")
    assert proc.returncode == 1 and "No such container: pybox-no-such-container" in proc.stderr


def test_state_errors_are_409(pyboxd, names):
    name = names()
    pyboxd.ok("create", "--name", name, "busybox", "sleep", "1000")
    for cmd in ("pause", "unpause", "kill"):
        proc = pyboxd.docker(cmd, name)
        assert proc.returncode == 1, cmd
        assert "is not running" in proc.stderr or "is not paused" in proc.stderr, proc.stderr
    proc = pyboxd.docker("attach", name)
    assert proc.returncode == 1
    assert "You cannot attach to a stopped container, start it first" in proc.stderr
    status, _ = pyboxd.api("POST", f"/containers/{name}/pause")
    assert status == 409


# -- a monitor killed mid-run ---------------------------------------------------------------------------
def test_monitor_killed_mid_run(pyboxd, names):
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000").strip()
    pid = pyboxd.inspect(name)["State"]["Pid"]
    monitor = pyboxd.monitor_pid(cid)
    os.kill(monitor, signal.SIGKILL)
    assert settle(lambda: pyboxd.inspect(name)["State"]["Status"] == "exited")
    info = pyboxd.inspect(name)
    assert info["State"]["Running"] is False
    assert info["State"]["Error"]  # says what happened
    assert info["State"]["ExitCode"] != 0
    # the container's processes are gone, and so is its cgroup
    assert settle(lambda: not os.path.exists(f"/proc/{pid}"))
    assert not os.path.exists(f"/sys/fs/cgroup/pids/pybox/{cid}")
    assert not [m for m in mounts_under(pyboxd.data_root) if cid in m]
    # the daemon keeps serving: the container restarts and is removable
    pyboxd.ok("start", name)
    assert pyboxd.inspect(name)["State"]["Running"] is True
    pyboxd.ok("rm", "-f", name)


def test_container_killed_from_outside(pyboxd, names):
    """The container's init killed by someone else: exited 137, like docker."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    os.kill(pyboxd.inspect(name)["State"]["Pid"], signal.SIGKILL)
    assert pyboxd.ok("wait", name) == "137\n"


# -- clients that go away ----------------------------------------------------------------------------
def _baseline(pyboxd):
    return fd_count(pyboxd.pid), thread_count(pyboxd.pid)


def _settled(pyboxd, before):
    fds, threads = before
    ok = settle(lambda: fd_count(pyboxd.pid) <= fds and thread_count(pyboxd.pid) <= threads,
                timeout=15)
    return ok, (fd_count(pyboxd.pid), thread_count(pyboxd.pid))


def _kill_after_output(argv, env, text, timeout=20):
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        seen = b""
        while text.encode() not in seen:
            assert time.monotonic() < deadline, seen
            line = proc.stdout.readline()
            assert line, f"{argv} ended: {proc.stderr.read()}"
            seen += line
    finally:
        proc.kill()
        proc.wait()


def test_clients_disconnecting_leak_nothing(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "while :; do echo tick; sleep 0.1; done")
    # warm up (first-use imports and caches), then measure
    _kill_after_output(["docker", "logs", "-f", name], pyboxd.cli_env, "tick")
    before = _baseline(pyboxd)
    for _ in range(3):
        _kill_after_output(["docker", "logs", "-f", name], pyboxd.cli_env, "tick")
        _kill_after_output(["docker", "attach", "--no-stdin", name], pyboxd.cli_env, "tick")
        waiter = subprocess.Popen(["docker", "wait", name], env=pyboxd.cli_env,
                                  stdout=subprocess.PIPE)
        time.sleep(0.3)
        waiter.kill()
        waiter.wait()
        # a raw client that sends a wait and a hijacked attach, then just closes
        for req in (f"POST /containers/{name}/wait HTTP/1.1\r\nHost: x\r\n"
                    "Content-Length: 0\r\n\r\n",
                    f"POST /containers/{name}/attach?stream=1&stdout=1 HTTP/1.1\r\n"
                    "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                    "Content-Length: 0\r\n\r\n"):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(pyboxd.socket)
                s.sendall(req.encode())
                s.recv(100)
    ok, after = _settled(pyboxd, before)
    assert ok, f"pyboxd fds/threads before {before}, after {after}"
    # still serving, the container untouched
    assert pyboxd.inspect(name)["State"]["Running"] is True
    assert "tick" in pyboxd.ok("logs", "--tail", "1", name)


def test_run_d_abandons_its_wait_without_a_leak(pyboxd, names):
    """docker run -d opens a wait and drops it: nothing may pile up."""
    made = [names() for _ in range(3)]
    pyboxd.ok("run", "-d", "--name", made[0], "busybox", "true")
    before = _baseline(pyboxd)
    for name in made[1:]:
        pyboxd.ok("run", "-d", "--name", name, "busybox", "true")
    ok, after = _settled(pyboxd, before)
    assert ok, f"pyboxd fds/threads before {before}, after {after}"


def test_malformed_requests_get_json_errors(pyboxd):
    status, body = pyboxd.api("POST", "/containers/create", None)
    assert status == 400
    conn_status, body = _raw(pyboxd, b"POST /containers/create HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Type: application/json\r\n"
                                     b"Content-Length: 5\r\n\r\n{nope")
    assert conn_status == 400 and b"message" in body
    status, body = pyboxd.api("GET", "/v1.99/version")
    assert status == 400 and "too new" in body["message"]
    status, body = pyboxd.api("GET", "/containers/pybox-no-such/json")
    assert status == 404 and body["message"] == "No such container: pybox-no-such"
    status, body = pyboxd.api("GET", "/pybox/no/such/route")
    assert status == 404 and "message" in body
    # and it still answers
    assert pyboxd.ping()


def _raw(pyboxd, request):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(pyboxd.socket)
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        return int(head.split()[1]), body


def test_inspect_of_unknown_object(pyboxd):
    proc = pyboxd.docker("inspect", "pybox-no-such-thing")
    assert proc.returncode == 1
    assert "No such object: pybox-no-such-thing" in proc.stderr
    assert json.loads(proc.stdout) == []


# -- the daemon restarts: containers survive and are re-adopted ----------------------------------------
def test_pyboxd_restart_readopts_containers(pyboxd, names):
    running, ticking, created, exited, dies = (names() for _ in range(5))
    pyboxd.ok("run", "-d", "--name", running, "busybox", "sleep", "1000")
    pyboxd.ok("run", "-d", "--name", ticking, "busybox", "sh", "-c",
              "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    pyboxd.ok("create", "--name", created, "busybox", "true")
    assert pyboxd.docker("run", "--name", exited, "busybox", "sh", "-c", "exit 7").returncode == 7
    pyboxd.ok("run", "-d", "--name", dies, "busybox", "sleep", "1000")
    before = {n: pyboxd.inspect(n) for n in (running, ticking, dies)}
    monitor = pyboxd.monitor_pid(before[running]["Id"])

    # while pyboxd is down, one container's init is killed
    pyboxd.restart(between=lambda: os.kill(before[dies]["State"]["Pid"], signal.SIGKILL))

    info = pyboxd.inspect(running)
    assert info["State"]["Running"] is True
    assert info["State"]["Pid"] == before[running]["State"]["Pid"]
    assert pyboxd.monitor_pid(info["Id"]) == monitor  # the same monitor
    assert pyboxd.ok("exec", running, "echo", "still here") == "still here\n"
    lines = pyboxd.ok("logs", ticking).splitlines()
    assert settle(lambda: len(pyboxd.ok("logs", ticking).splitlines()) > len(lines))
    assert pyboxd.inspect(created)["State"]["Status"] == "created"
    assert pyboxd.inspect(exited)["State"]["ExitCode"] == 7
    assert settle(lambda: pyboxd.inspect(dies)["State"]["Status"] == "exited")
    assert pyboxd.inspect(dies)["State"]["ExitCode"] == 137
    # and the re-adopted ones are fully managed: stop, wait, rm
    pyboxd.ok("stop", "-t", "1", running)
    assert pyboxd.ok("wait", running) == "137\n"
    pyboxd.ok("rm", "-f", ticking)
    assert settle(lambda: not os.path.exists(
        os.path.join(pyboxd.exec_root, "containers", before[ticking]["Id"])))


def test_a_killed_zygote_is_replaced(pyboxd, names):
    """The monitor zygote killed (an operator, the OOM killer): pyboxd starts a
    new one, so containers still start; those already running keep their
    monitors."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    old = pyboxd.zygote_pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert settle(lambda: pyboxd.zygote_pid() not in (None, old), timeout=20), \
        pyboxd.log_tail()
    assert pyboxd.ok("run", "--rm", "busybox", "echo", "after").strip() == "after"
    assert pyboxd.ok("exec", name, "echo", "still").strip() == "still"
    assert "the monitor zygote" in pyboxd.log_tail(20000)
