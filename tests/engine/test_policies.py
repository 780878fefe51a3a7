"""Lifecycle policies through the docker CLI and docker-py: --restart
no|on-failure[:N]|always|unless-stopped (also across a pyboxd restart), --init
(tini as PID 1: zombies reaped, signals forwarded) and healthchecks (State.Health
in inspect, "(healthy)"/"(unhealthy)" in ps, retries, start period)."""

import json
import os
import signal
import time

import pytest

from support.wait import wait_for

from .conftest import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]

# quick checks: a probe every 0.2 s (docker's minimum is 1 ms)
FAST = ("--health-interval", "200ms", "--health-timeout", "2s")


def state(pyboxd, name):
    return pyboxd.inspect(name)["State"]


def restart_count(pyboxd, name):
    return pyboxd.inspect(name)["RestartCount"]


def ps_status(pyboxd, name):
    return pyboxd.ok("ps", "-a", "--filter", f"name={name}", "--format",
                     "{{.Status}}").strip()


# -- restart policies --------------------------------------------------------------------
def test_restart_no_is_the_default(pyboxd, names):
    name = names()
    assert pyboxd.docker("run", "--name", name, "busybox", "sh", "-c", "exit 3").returncode == 3
    doc = pyboxd.inspect(name)
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert (doc["State"]["Status"], doc["State"]["ExitCode"], doc["RestartCount"]) == (
        "exited", 3, 0)


def test_on_failure_stops_after_n_retries(pyboxd, names):
    name = names()
    # every run logs a line, fails; back-off 0.1 s + 0.2 s + 0.4 s
    pyboxd.ok("run", "-d", "--name", name, "--restart", "on-failure:3", "busybox", "sh", "-c",
              "echo run; exit 4")
    done = wait_for(lambda: (lambda s, d: s["Status"] == "exited" and d["RestartCount"] == 3)(
        *(lambda d: (d["State"], d))(pyboxd.inspect(name))))
    doc = pyboxd.inspect(name)
    assert done, doc["State"]
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (doc["State"]["ExitCode"], doc["State"]["Restarting"]) == (4, False)
    assert pyboxd.ok("logs", name) == "run\n" * 4  # the first run and 3 restarts
    assert pyboxd.ok("inspect", "-f", "{{.RestartCount}}", name) == "3\n"
    # a success is not restarted by on-failure
    ok = names()
    pyboxd.ok("run", "-d", "--name", ok, "--restart", "on-failure", "busybox", "true")
    assert pyboxd.ok("wait", ok) == "0\n"
    doc = pyboxd.inspect(ok)
    assert (doc["State"]["Status"], doc["RestartCount"]) == ("exited", 0)


def test_always_restarts_and_docker_stop_ends_it(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c",
              "echo run; sleep 0.2; exit 0")
    assert wait_for(lambda: restart_count(pyboxd, name) >= 2)
    assert pyboxd.ok("logs", name).count("run\n") >= 2
    # while it restarts, ps says so
    assert wait_for(lambda: ps_status(pyboxd, name).startswith(("Restarting (0)", "Up ")))
    pyboxd.ok("stop", "-t", "1", name)
    count = restart_count(pyboxd, name)
    st = state(pyboxd, name)
    assert (st["Status"], st["Running"], st["Restarting"]) == ("exited", False, False)
    # stopped by hand: no further restarts (a second exit would start one)
    pyboxd.ok("start", name)
    pyboxd.ok("stop", "-t", "1", name)
    assert state(pyboxd, name)["Status"] == "exited"
    assert restart_count(pyboxd, name) == count


def test_a_restarting_container_is_listed_and_kept_from_rm(pyboxd, names):
    """dockerd counts a restarting container as running: docker ps shows the
    crash loop, inspect says Running, rm needs -f."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c",
              "exit 1")

    def seen_restarting():
        shown = pyboxd.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        return shown.startswith("Restarting (1) ")

    assert wait_for(seen_restarting)
    assert wait_for(lambda: pyboxd.ok(
        "inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.State.Restarting}}",
        name) == "restarting true true\n")
    refused = wait_for(lambda: "You cannot remove a restarting container" in
                       pyboxd.docker("rm", name).stderr)
    assert refused
    assert pyboxd.docker("inspect", name).returncode == 0
    # docker kill ends the loop, whether it meets it running or between runs
    pyboxd.ok("kill", name)
    pyboxd.ok("wait", name)  # (met running, its exit is recorded after kill returns)
    st = state(pyboxd, name)
    assert (st["Status"], st["Running"], st["Restarting"]) == ("exited", False, False), st
    count = restart_count(pyboxd, name)
    pyboxd.ok("start", name)  # the policy is on again: the loop resumes
    assert wait_for(lambda: restart_count(pyboxd, name) > count)
    assert wait_for(lambda: pyboxd.docker("rm", "-f", name).returncode == 0)
    assert pyboxd.docker("inspect", name).returncode == 1


def test_wait_on_a_restarting_container_waits_for_its_next_exit(pyboxd, names):
    """dockerd: a restarting container is running for `docker wait`, which
    returns at its next exit, not at once with the last one's code.  Each run
    exits with its own number (counted in a volume)."""
    name, volume = names(), names()
    pyboxd.ok("run", "-d", "--name", name, "--restart", "always", "-v", f"{volume}:/data",
              "busybox", "sh", "-c", "echo x >> /data/runs; sleep 0.3; "
              "exit $(wc -l < /data/runs)")
    for _ in range(3):
        assert wait_for(lambda: state(pyboxd, name)["Restarting"])  # between two runs
        last = state(pyboxd, name)["ExitCode"]
        assert int(pyboxd.ok("wait", name)) > last
    pyboxd.ok("rm", "-f", name)
    pyboxd.ok("volume", "rm", volume)


def test_restart_always_comes_back_across_a_pyboxd_restart(pyboxd, names):
    looping, running, stopped = names(), names(), names()
    pyboxd.ok("run", "-d", "--name", looping, "--restart", "always", "busybox", "sh", "-c",
              "echo run; sleep 0.3; exit 1")
    pyboxd.ok("run", "-d", "--name", running, "--restart", "always", "busybox", "sleep", "1000")
    pyboxd.ok("run", "-d", "--name", stopped, "--restart", "always", "busybox", "sleep", "1000")
    pyboxd.ok("stop", "-t", "0", stopped)
    assert wait_for(lambda: restart_count(pyboxd, looping) >= 1)
    old_pid = state(pyboxd, running)["Pid"]
    assert old_pid > 0

    def while_down():
        # the container's program dies while pyboxd is not there to see it
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{old_pid}"), timeout=10)

    pyboxd.restart(between=while_down)
    # the one that died meanwhile is started again, with a new process
    assert wait_for(lambda: state(pyboxd, running)["Running"] and
                    state(pyboxd, running)["Pid"] not in (0, old_pid)), state(pyboxd, running)
    assert restart_count(pyboxd, running) == 1
    assert pyboxd.ok("exec", running, "echo", "alive") == "alive\n"
    # the looping one keeps restarting under the new pyboxd
    runs = pyboxd.ok("logs", looping).count("run\n")
    assert wait_for(lambda: pyboxd.ok("logs", looping).count("run\n") >= runs + 2)
    # docker: an "always" container stopped by hand comes back with the daemon
    assert wait_for(lambda: state(pyboxd, stopped)["Running"]), state(pyboxd, stopped)
    pyboxd.ok("stop", "-t", "0", looping)


def test_unless_stopped(pyboxd, names):
    name, stopped = names(), names()
    pyboxd.ok("run", "-d", "--name", name, "--restart", "unless-stopped", "busybox", "sh", "-c",
              "echo run; sleep 0.2; exit 0")
    assert wait_for(lambda: restart_count(pyboxd, name) >= 1)  # restarts even after 0
    pyboxd.ok("run", "-d", "--name", stopped, "--restart", "unless-stopped", "busybox",
              "sleep", "1000")
    pyboxd.ok("stop", "-t", "0", stopped)
    pyboxd.ok("stop", "-t", "1", name)
    pyboxd.restart()
    # stopped by hand: stays stopped when pyboxd comes back (unlike "always")
    for n in (name, stopped):
        st = state(pyboxd, n)
        assert (st["Status"], st["Running"]) == ("exited", False), (n, st)
    assert ps_status(pyboxd, stopped).startswith("Exited (137)")


def test_update_restart_policy(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert pyboxd.ok("update", "--restart", "on-failure:2", name) == name + "\n"
    policy = pyboxd.inspect(name)["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    # a crash (killed from outside, 137): restarted by the new policy
    os.kill(state(pyboxd, name)["Pid"], signal.SIGKILL)
    assert wait_for(lambda: restart_count(pyboxd, name) == 1 and
                    state(pyboxd, name)["Running"])


TRAP_USR1 = 'trap "exit 3" USR1; echo ready; while :; do sleep 0.1; done'


def test_docker_kill_and_the_restart_policy(pyboxd, names):
    """docker's rules: a fatal signal (KILL, the stop signal, or any signal when
    none is set) turns the policy off until the next start; another one does
    not.  The decision is taken before `docker wait` returns."""
    plain, with_stop_signal = names(), names()
    for name, extra in ((plain, ()), (with_stop_signal, ("--stop-signal", "USR2"))):
        pyboxd.ok("run", "-d", "--name", name, "--restart", "always", *extra, "busybox",
                  "sh", "-c", TRAP_USR1)
        assert wait_for(lambda name=name: "ready" in pyboxd.ok("logs", name))
        # the wait is asked before the kill: one begun while the policy already
        # restarts the container returns at its next exit (dockerd's rule too),
        # and a loaded machine can make the CLI that late
        waiter = UnixHTTPConnection(pyboxd.socket, timeout=60)
        waiter.request("POST", f"/v1.44/containers/{name}/wait")
        answer = waiter.getresponse()  # the 200's headers: the wait is parked
        pyboxd.ok("kill", "-s", "USR1", name)
        assert json.loads(answer.read())["StatusCode"] == 3
        waiter.close()
    # no stop signal set: USR1 counts as fatal, the container stays down
    st = state(pyboxd, plain)
    assert (st["Status"], st["Restarting"], st["ExitCode"]) == ("exited", False, 3)
    assert restart_count(pyboxd, plain) == 0
    # with one (USR2), USR1 is not: the policy brings it back
    assert wait_for(lambda: restart_count(pyboxd, with_stop_signal) == 1 and
                    state(pyboxd, with_stop_signal)["Running"])
    # and SIGKILL always is
    pyboxd.ok("kill", with_stop_signal)
    assert pyboxd.ok("wait", with_stop_signal) == "137\n"
    st = state(pyboxd, with_stop_signal)
    assert (st["Status"], st["Restarting"]) == ("exited", False)
    # a start turns the policy on again
    pyboxd.ok("start", plain)
    assert wait_for(lambda: "ready" in pyboxd.ok("logs", "--tail", "1", plain))
    # from inside: not docker kill.  init exits at once, and the kernel then
    # kills what is left in the container, the exec's sh too if it is not done
    # yet: 137 (SIGKILL) is as right as 0 (dockerd's exec has the same race)
    proc = pyboxd.docker("exec", plain, "sh", "-c", "kill -USR1 1")
    assert proc.returncode in (0, 137), (proc.returncode, proc.stderr)
    assert wait_for(lambda: restart_count(pyboxd, plain) == 1)


def test_bad_restart_policies(pyboxd, names):
    proc = pyboxd.docker("run", "-d", "--restart", "sometimes", "busybox", "true")
    assert proc.returncode == 125
    assert "invalid restart policy" in proc.stderr
    status, body = pyboxd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}})
    assert status == 400 and "invalid restart policy" in body["message"]
    # --rm and a restart policy do not go together (the CLI checks, and the daemon)
    status, body = pyboxd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"AutoRemove": True,
                                           "RestartPolicy": {"Name": "always"}}})
    assert status == 400
    assert body["message"] == "can't create 'AutoRemove' container with restart policy"
    # nor can a --rm container get one later
    name = names()
    pyboxd.ok("run", "-d", "--rm", "--name", name, "busybox", "sleep", "1000")
    proc = pyboxd.docker("update", "--restart", "always", name)
    assert proc.returncode == 1
    assert ("Restart policy cannot be updated because AutoRemove is enabled for the "
            "container") in proc.stderr
    assert pyboxd.inspect(name)["HostConfig"]["RestartPolicy"]["Name"] == "no"


# -- --init --------------------------------------------------------------------------------
# an orphan: the subshell exits at once, its `sleep 0.1` is re-parented to PID 1;
# PID 1 then execs a program that never calls wait()
ORPHAN = "(sleep 0.1 &); exec sleep 1000"


def zombies(pyboxd, name):
    out = pyboxd.ok("exec", name, "ps", "-o", "pid,stat,comm")
    return [line for line in out.splitlines()[1:] if line.split()[1].startswith("Z")]


def orphan_done(pyboxd, name):
    """The orphan has ended (gone, or a zombie)."""
    out = pyboxd.ok("exec", name, "ps", "-o", "pid,stat,args")
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    return not any(args == "sleep 0.1" and not stat.startswith("Z") for _, stat, args in rows)


def test_init_is_pid_1_and_reaps_zombies(pyboxd, names):
    with_init, without = names(), names()
    pyboxd.ok("run", "-d", "--init", "--name", with_init, "busybox", "sh", "-c", ORPHAN)
    pyboxd.ok("run", "-d", "--name", without, "busybox", "sh", "-c", ORPHAN)
    cmdline = pyboxd.ok("exec", with_init, "cat", "/proc/1/cmdline").split("\0")
    assert cmdline[:4] == ["/sbin/docker-init", "--", "sh", "-c"]
    assert pyboxd.ok("exec", with_init, "cat", "/proc/1/comm") == "docker-init\n"
    assert pyboxd.inspect(with_init)["HostConfig"]["Init"] is True
    for name in (with_init, without):
        assert wait_for(lambda name=name: orphan_done(pyboxd, name))
    # without --init the exec'd sleep is PID 1 and the orphan stays a zombie
    # (what --init is for); tini reaped it
    assert len(zombies(pyboxd, without)) == 1
    assert zombies(pyboxd, with_init) == []
    # docker-py: init=True
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=pyboxd.host)
    try:
        out = client.containers.run("busybox", ["cat", "/proc/1/comm"], init=True, remove=True)
    finally:
        client.close()
    assert out == b"docker-init\n"


def test_init_forwards_signals(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--init", "--name", name, "busybox", "sh", "-c",
              'trap "echo got-hup" HUP; trap "echo got-term; exit 7" TERM; echo ready; '
              "while :; do sleep 0.1; done")
    assert wait_for(lambda: "ready" in pyboxd.ok("logs", name))
    pyboxd.ok("kill", "-s", "HUP", name)
    assert wait_for(lambda: "got-hup" in pyboxd.ok("logs", name))
    pyboxd.ok("stop", "-t", "20", name)
    assert pyboxd.inspect(name)["State"]["ExitCode"] == 7
    assert pyboxd.ok("logs", name).endswith("got-term\n")
    # a program that sets no handler: as PID 1 it would ignore SIGTERM; under
    # tini it is not PID 1 and dies of it (143, not stop's SIGKILL 137)
    plain = names()
    pyboxd.ok("run", "-d", "--init", "--name", plain, "busybox", "sleep", "1000")
    pyboxd.ok("stop", "-t", "20", plain)
    assert pyboxd.inspect(plain)["State"]["ExitCode"] == 143


# -- healthchecks -----------------------------------------------------------------------------
def health(pyboxd, name):
    return pyboxd.inspect(name)["State"].get("Health") or {}


def test_failing_healthcheck_turns_unhealthy(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--health-cmd", "echo probing; exit 1",
              "--health-retries", "2", *FAST, "busybox", "sleep", "1000")
    assert health(pyboxd, name)["Status"] in ("starting", "unhealthy")
    assert wait_for(lambda: health(pyboxd, name).get("Status") == "unhealthy")
    h = health(pyboxd, name)
    assert h["FailingStreak"] >= 2
    assert h["Log"] and {e["ExitCode"] for e in h["Log"]} == {1}
    assert h["Log"][-1]["Output"] == "probing\n"
    assert ps_status(pyboxd, name).endswith("(unhealthy)")
    assert pyboxd.ok("ps", "-q", "--filter", "health=unhealthy", "--filter",
                     f"name={name}").strip() != ""
    assert pyboxd.ok("inspect", "-f", "{{.State.Health.Status}}", name) == "unhealthy\n"
    cfg = pyboxd.inspect(name)["Config"]["Healthcheck"]
    assert cfg["Test"] == ["CMD-SHELL", "echo probing; exit 1"]
    assert (cfg["Interval"], cfg["Retries"]) == (200_000_000, 2)


def test_passing_healthcheck_is_healthy_and_recovers(pyboxd, names):
    name = names()
    # healthy while /tmp/ok exists
    pyboxd.ok("run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ok",
              "--health-retries", "1", *FAST, "busybox", "sh", "-c",
              "touch /tmp/ok; exec sleep 1000")
    assert wait_for(lambda: health(pyboxd, name).get("Status") == "healthy")
    assert ps_status(pyboxd, name).endswith("(healthy)")
    assert health(pyboxd, name)["FailingStreak"] == 0
    pyboxd.ok("exec", name, "rm", "/tmp/ok")
    assert wait_for(lambda: health(pyboxd, name).get("Status") == "unhealthy")
    pyboxd.ok("exec", name, "touch", "/tmp/ok")
    assert wait_for(lambda: health(pyboxd, name).get("Status") == "healthy")
    assert len(health(pyboxd, name)["Log"]) <= 5  # docker keeps the last five


def test_healthcheck_start_period_does_not_count_failures(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--health-cmd", "exit 1", "--health-retries", "1",
              "--health-start-period", "60s", "--health-start-interval", "200ms", *FAST,
              "busybox", "sleep", "1000")
    # probes run (and fail) during the start period, but the status stays "starting"
    assert wait_for(lambda: len(health(pyboxd, name).get("Log") or []) >= 3)
    h = health(pyboxd, name)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    assert ps_status(pyboxd, name).endswith("(health: starting)")
    # a success in the start period makes it healthy at once
    other = names()
    pyboxd.ok("run", "-d", "--name", other, "--health-cmd", "true", "--health-start-period",
              "60s", "--health-start-interval", "200ms", *FAST, "busybox", "sleep", "1000")
    assert wait_for(lambda: health(pyboxd, other).get("Status") == "healthy")


def test_healthcheck_timeout(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--health-cmd", "sleep 5", "--health-retries", "1",
              "--health-interval", "200ms", "--health-timeout", "300ms", "busybox",
              "sleep", "1000")
    assert wait_for(lambda: health(pyboxd, name).get("Status") == "unhealthy")
    entry = health(pyboxd, name)["Log"][-1]
    assert entry["ExitCode"] == -1
    assert "Health check exceeded timeout" in entry["Output"]


def test_health_events_and_no_healthcheck(pyboxd, names, images_made):
    name = names()
    since = str(int(time.time()) - 1)
    pyboxd.ok("run", "-d", "--name", name, "--health-cmd", "true", *FAST, "busybox",
              "sleep", "1000")
    assert wait_for(lambda: health(pyboxd, name).get("Status") == "healthy")
    until = str(int(time.time()) + 1)
    out = pyboxd.ok("events", "--since", since, "--until", until, "--filter",
                    f"container={name}", "--filter", "event=health_status", "--format",
                    "{{.Action}}")
    assert out.splitlines() == ["health_status: healthy"]
    # an image's healthcheck, and --no-healthcheck turning it off
    ref = f"pybox-health-{name}:1"
    pyboxd.ok("commit", name, ref)
    images_made.append(ref)
    assert pyboxd.inspect(ref)["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    inherits, off = names(), names()
    pyboxd.ok("run", "-d", "--name", inherits, ref, "sleep", "1000")
    assert wait_for(lambda: health(pyboxd, inherits).get("Status") == "healthy")
    pyboxd.ok("run", "-d", "--name", off, "--no-healthcheck", ref, "sleep", "1000")
    assert "Health" not in state(pyboxd, off)
    assert ps_status(pyboxd, off).startswith("Up ") and "health" not in ps_status(pyboxd, off)


def test_dockerpy_healthcheck(dockerpy, names):
    name = names()
    c = dockerpy.containers.run("busybox", ["sleep", "1000"], name=name, detach=True,
                                healthcheck={"test": ["CMD", "false"], "interval": 200_000_000,
                                             "timeout": 2_000_000_000, "retries": 1})
    c.reload()
    assert c.health in ("starting", "unhealthy")
    assert wait_for(lambda: (c.reload(), c.health)[1] == "unhealthy")
    assert c.attrs["State"]["Health"]["Log"][-1]["ExitCode"] == 1
    assert json.dumps(c.attrs["Config"]["Healthcheck"]["Test"]) == '["CMD", "false"]'


def test_dockerpy_restart_policy(dockerpy, names):
    name = names()
    c = dockerpy.containers.run("busybox", ["sh", "-c", "exit 2"], name=name, detach=True,
                                restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
    assert wait_for(lambda: (c.reload(), c.attrs["RestartCount"] == 1 and
                             c.status == "exited")[1])
    assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                      "MaximumRetryCount": 1}
    c.update(restart_policy={"Name": "always"})
    c.reload()
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
