"""Resource hygiene and the racy paths of issue 14: pyboxd's memory does not grow
with the number of containers it has run, nothing it or its monitors start is
left a zombie, a start answers what became of the container, and a commit of a
container that has just exited works.

Memory is a resource bound (pyboxd's RSS after ~120 short-lived containers on
the default bridge), not a timing; the speed and the growth over 2,000 are in
benchmarks/memory.py."""

import json
import os
import socket
import threading
import time

import pytest

from .conftest import UnixHTTPConnection, settle

CONTAINERS = 120
RSS_BOUND_KIB = 15 * 1024


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def processes():
    """{pid: (ppid, state, comm)} of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        comm = data[data.index("(") + 1:data.rindex(")")]
        fields = data[data.rindex(")") + 2:].split()
        out[int(entry)] = (int(fields[1]), fields[0], comm)
    return out


def zombies_under(pid):
    """Zombies whose parent is ``pid`` or one of its descendants (pyboxd, its
    zygote, the monitors the zygote forked, their creators)."""
    table = processes()
    children = {}
    for p, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(p)
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo.extend(children.get(p, ()))
    return [(p, ppid, comm) for p, (ppid, state, comm) in table.items()
            if state == "Z" and ppid in tree]


def run_rm(pyboxd, cmd=("true",)):
    """`docker run --rm busybox CMD` as the API sees it: create (AutoRemove),
    the wait for its removal (asked before the start, as the CLI does: after,
    it may find the container gone), start."""
    status, body = pyboxd.api("POST", "/containers/create",
                              {"Image": "busybox", "Cmd": list(cmd),
                               "HostConfig": {"AutoRemove": True}})
    assert status == 201, body
    cid = body["Id"]
    waiting = UnixHTTPConnection(pyboxd.socket)
    try:
        waiting.request("POST", f"/containers/{cid}/wait?condition=removed")
        wait = waiting.getresponse()
        assert wait.status == 200, wait.read()
        status, body = pyboxd.api("POST", f"/containers/{cid}/start")
        assert status == 204, body
        result = json.loads(wait.read())
        assert result["StatusCode"] == 0, result
    finally:
        waiting.close()


def test_memory_flat_and_no_zombies_over_short_lived_containers(pyboxd, names):
    for _ in range(20):  # warm: imports, the network's first use, the events history
        run_rm(pyboxd)
    before = rss_kib(pyboxd.pid)
    for _ in range(CONTAINERS):
        run_rm(pyboxd)
    after = rss_kib(pyboxd.pid)
    assert after - before < RSS_BOUND_KIB, (
        f"pyboxd grew from {before} KiB to {after} KiB over {CONTAINERS} containers")

    # running containers: the monitor's creator, and an orphan re-parented to
    # the monitor (--pid host: no init of the container's own to take it)
    pyboxd.ok("run", "-d", "--name", names(), "busybox", "sleep", "1000")
    pyboxd.ok("run", "-d", "--name", names(), "--pid", "host", "busybox", "sh", "-c",
              "(sleep 0.2 &); exec sleep 1000")
    left = settle(lambda: not zombies_under(pyboxd.pid), timeout=10)
    assert left, f"zombies under pyboxd: {zombies_under(pyboxd.pid)}"


def test_commit_of_a_container_that_has_just_exited(pyboxd, images_made):
    """docker commit pauses by default; a container whose program has just
    ended is committed as it is (1 in 8 failed: "cannot pause container: it
    is stopped")."""
    repo = f"hygiene-commit-{time.monotonic_ns()}"
    for i in range(30):
        status, body = pyboxd.api("POST", "/containers/create",
                                  {"Image": "busybox",
                                   "Cmd": ["sh", "-c", f"echo {i} > /made"]})
        assert status == 201, body
        cid = body["Id"]
        try:
            status, body = pyboxd.api("POST", f"/containers/{cid}/start")
            assert status == 204, body
            status, body = pyboxd.api("POST", f"/commit?container={cid}&repo={repo}"
                                              f"&tag=t{i}")
            assert status == 201, f"commit #{i}: {status} {body}"
            images_made.append(f"{repo}:t{i}")
        finally:
            pyboxd.api("DELETE", f"/containers/{cid}?force=1")
    assert pyboxd.ok("run", "--rm", f"{repo}:t29", "cat", "/made") == "29\n"


def test_commit_pauses_a_running_container_and_thaws_it(pyboxd, names, images_made):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "echo hi > /made; exec sleep 1000")
    settle(lambda: pyboxd.docker("exec", name, "cat", "/made").stdout == "hi\n")
    ref = f"hygiene-commit-run-{time.monotonic_ns()}"
    pyboxd.ok("commit", name, ref)
    images_made.append(ref)
    state = pyboxd.inspect(name)["State"]
    assert state["Running"] and not state["Paused"], state
    assert pyboxd.ok("run", "--rm", ref, "cat", "/made") == "hi\n"


def _stalled_attach(pyboxd, cid):
    """An attach client that never reads: the monitor's last frames to it take
    up to a second after the program's exit."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(pyboxd.socket)
    s.sendall(f"POST /containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              "Host: pybox\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 101"), "no hijack"
    return s


@pytest.mark.parametrize("how", ["start", "restart-policy"])
def test_a_start_right_after_an_exit_keeps_its_monitor_reachable(pyboxd, names, how):
    """The first run writes 3 MB to an attach client that does not read and
    exits; the second run (a docker start at once, or the restart policy)
    sleeps.  The first run's monitor used to remove monitor.sock at its very
    end -- the second run's by then: a running container nobody could reach
    (resize, attach, a restarted pyboxd's recovery)."""
    name = names()
    policy = ["--restart", "always"] if how == "restart-policy" else []
    pyboxd.ok("create", "--name", name, *policy, "busybox", "sh", "-c",
              "if [ -f /ran ]; then exec sleep 1000; fi; touch /ran; "
              "head -c 3000000 /dev/zero")
    cid = pyboxd.inspect(name)["Id"]
    client = _stalled_attach(pyboxd, cid)
    try:
        pyboxd.ok("start", name)
        if how == "start":
            assert settle(lambda: pyboxd.inspect(name)["State"]["Status"] == "exited",
                          timeout=30), pyboxd.inspect(name)["State"]
            pyboxd.ok("start", name)
        else:
            assert settle(lambda: pyboxd.inspect(name)["RestartCount"] == 1, timeout=30), \
                pyboxd.inspect(name)["State"]
        time.sleep(2)  # past the first monitor's last frames (it gives them 1 s)
        state = pyboxd.inspect(name)["State"]
        assert state["Running"], state
        status, body = pyboxd.api("POST", f"/containers/{cid}/resize?h=30&w=100")
        assert status == 200, f"a running container's monitor is unreachable: {body}"
    finally:
        client.close()


def test_parallel_starts_answer_what_happened(pyboxd, names):
    """Starts in parallel on the default bridge, a few rounds: each start of a
    stopped container is a 204 and a program that ran (it ends with its own
    exit status, not as a container whose monitor "died")."""
    made = []
    for _ in range(8):
        name = names()
        pyboxd.ok("create", "--name", name, "busybox", "sh", "-c", "sleep 0.2; exit 3")
        made.append(name)

    def stopped(name):
        state = pyboxd.inspect(name)["State"]
        return None if state["Running"] else state

    for round_ in range(3):
        answers = {}

        def start(name, answers=answers):
            answers[name] = pyboxd.api("POST", f"/containers/{name}/start")

        threads = [threading.Thread(target=start, args=(n,)) for n in made]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name in made:
            status, body = answers[name]
            state = settle(lambda name=name: stopped(name), timeout=30)
            assert status == 204, f"round {round_}: {status} {body}; now {state}"
            assert state, f"round {round_}: {name} still running"
            assert state["ExitCode"] == 3 and not state["Error"], state
