"""Every crash point of pybox (pybox.crashpoints), one case each: the process
that reaches it dies by SIGKILL there, pyboxd is started again, and then

* pyboxd started once and serves;
* ``docker ps -a`` and inspect of every container tell the truth: a container
  said to run has its init alive, its runtime state running (or paused, as
  inspect says) and its monitor; one said not to run has no runtime state, no
  cgroup, no mounted rootfs, no network namespace, no monitor; and the only
  monitors alive are those of running containers;
* stop, start and rm of every container work;
* nothing is left: no mount under the data root, cgroup named after a
  container, network namespace, veth or bridge of this daemon, nft table,
  monitor or stuck runtime process, temp file, container/rootfs/runtime/run
  directory, half-made volume, layer or blob.

A point inside pybox-runtime, a monitor or its creator kills only that
process (the variable is passed down): the live pyboxd is checked as above
too, then killed (SIGKILL) and restarted, and checked again.

Run: ``pytest tests/crash -n 2`` (about two minutes); one point:
``pytest tests/crash -k engine.rm.rootfs``.  PYBOX_CRASH_AT=NAME[:COUNT] on any
pyboxd does the same by hand (docs/architecture.md, "Crash safety").
"""

import os
import re
import uuid

import pytest

from .conftest import IMAGE, api, cgroup_dirs, mounts_under, pids_mentioning, settle

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "src", "pybox")
SLEEP = ["sleep", "1000"]


# -- the operations that reach the points ------------------------------------------------
# Each scenario: setup(d, n) runs on the unarmed daemon; op(d, n) on the armed one
# (it may fail: the daemon can die under it).  ``n`` is the case's unique name.

def _run(d, n, *extra):
    return d.cli("run", "-d", "--name", n, "-p", "80", "-v", "/sbin", *extra, IMAGE, *SLEEP)


def _must(proc):
    assert proc.returncode == 0, f"{proc.args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _started(d, n):
    """A running container for the case (set up before the daemon is armed)."""
    return _must(_run(d, n))


def _tar(d, n):
    """A one-file tarball of its own (a new layer for every case)."""
    import io
    import tarfile

    path = os.path.join(d.base, f"{n}.tar")
    with tarfile.open(path, "w") as tar:
        data = n.encode()
        info = tarfile.TarInfo(f"crash-{n}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _remote(d, n):
    return f"{d.registry_host()}/crash/{n}:1"


def _pushed(d, n):
    """An image of its own in the private registry, and not in the store."""
    _must(d.cli("import", _tar(d, n), f"crash/{n}:1"))
    _must(d.cli("tag", f"crash/{n}:1", _remote(d, n)))
    _must(d.cli("push", _remote(d, n)))
    _must(d.cli("rmi", f"crash/{n}:1", _remote(d, n)))


SCENARIOS = {
    "create": (None, lambda d, n: d.cli("create", "--name", n, "-v", "/sbin", IMAGE, *SLEEP)),
    "run": (None, _run),
    "run_fail": (None, lambda d, n: d.cli("run", "-d", "--name", n, IMAGE, "/nonexistent")),
    "run_stop": (None, lambda d, n: (_run(d, n), d.cli("stop", "-t", "1", n))),
    "stop": (_started, lambda d, n: d.cli("stop", "-t", "1", n)),
    "kill": (_started, lambda d, n: d.cli("kill", n)),
    "restart": (_started, lambda d, n: d.cli("restart", "-t", "1", n)),
    "policy": (None, lambda d, n: d.cli("run", "-d", "--name", n, "--restart", "on-failure:3",
                                        IMAGE, "sh", "-c", "sleep 0.2; exit 3")),
    "pause": (_started, lambda d, n: d.cli("pause", n)),
    "unpause": (lambda d, n: (_started(d, n), _must(d.cli("pause", n))),
                lambda d, n: d.cli("unpause", n)),
    "rm": (_started, lambda d, n: d.cli("rm", "-f", "-v", n)),
    "exec": (_started, lambda d, n: d.cli("exec", n, "true")),
    "exec_detached": (_started, lambda d, n: d.cli("exec", "-d", n, "sleep", "30")),
    "connect": (lambda d, n: (_must(d.cli("network", "create", n)), _started(d, n)),
                lambda d, n: d.cli("network", "connect", n, n)),
    "disconnect": (lambda d, n: (_must(d.cli("network", "create", n)), _started(d, n),
                                 _must(d.cli("network", "connect", n, n))),
                   lambda d, n: d.cli("network", "disconnect", n, n)),
    "commit": (_started, lambda d, n: d.cli("commit", n, f"crash/{n}:1")),
    "import": (None, lambda d, n: d.cli("import", _tar(d, n), f"crash/{n}:1")),
    "load": (None, lambda d, n: d.cli("load", "-i", os.path.join(d.base, "busybox-saved.tar"))),
    "rmi": (lambda d, n: _must(d.cli("import", _tar(d, n), f"crash/{n}:1")),
            lambda d, n: d.cli("rmi", f"crash/{n}:1")),
    "pull": (lambda d, n: _pushed(d, n), lambda d, n: d.cli("pull", _remote(d, n))),
    "volume_create": (None, lambda d, n: d.cli("volume", "create", n)),
    "volume_rm": (lambda d, n: _must(d.cli("volume", "create", n)),
                  lambda d, n: d.cli("volume", "rm", n)),
    # the armed start itself dies in its recovery: the setup gives it work
    "boot": (lambda d, n: (_started(d, n),
                           _must(d.cli("create", "--name", n + "-c", IMAGE, *SLEEP))),
             None),
}

# point -> scenario; every point in the source must be here (test_every_point_has_a_case)
POINTS = {
    # engine: create
    "engine.create.dir": "create", "engine.create.volume_listed": "create",
    "engine.create.mounts": "create", "engine.create.rootfs": "create",
    "engine.create.etc": "create", "engine.create.saved": "create",
    "images.rootfs.dir": "create", "images.rootfs.recorded": "create",
    # engine: start (and the network, volumes on the way)
    "engine.start.cleaned": "run", "engine.start.mounted": "run",
    "engine.start.network": "run", "engine.start.bundle": "run",
    "engine.start.spawned": "run", "engine.start.started": "run", "engine.start.saved": "run",
    "engine.network.setup": "run", "network.setup.netns": "run",
    "network.setup.attached": "run", "network.setup.published": "run",
    "network.attach.allocated": "run", "network.activate.bridge": "run",
    "network.activate.rules": "run", "volumes.populate.copied": "run",
    "engine.start_failed.cleaned": "run_fail", "engine.start_failed.saved": "run_fail",
    # the monitor zygote, the monitor, its creator
    "zygote.forked": "run", "monitor.listening": "run", "monitor.creator_forked": "run",
    "monitor.created": "run", "monitor.pid_file": "run", "monitor.reported": "run",
    "monitor.go_sent": "run", "monitor.started": "run",
    "monitor.reaped": "run_stop", "monitor.before_exit_file": "run_stop",
    "monitor.exit_file": "run_stop",
    "creator.before_create": "run", "creator.created": "run",
    "creator.before_start": "run", "creator.started": "run",
    # pybox-runtime create / start (in the creator), rollback, exec, delete
    "runtime.create.claimed": "run", "runtime.create.config": "run",
    "runtime.create.cgroup_named": "run", "runtime.create.socket": "run",
    "runtime.create.cgroup_made": "run", "runtime.create.limits": "run",
    "runtime.create.forked": "run", "runtime.stage1.unshared": "run",
    "runtime.stage1.reported": "run", "runtime.create.init_pid": "run",
    "runtime.create.ready": "run", "runtime.create.recorded": "run",
    "runtime.start.sent": "run", "runtime.start.recorded": "run",
    "runtime.rollback.killed": "run_fail", "runtime.exec.spawned": "exec",
    "runtime.delete.killed": "stop", "runtime.delete.destroyed": "stop",
    # stop, kill, exit, restart, policies, pause
    "engine.stop.signalled": "stop", "engine.stop.killed": "stop",
    "engine.exit.runtime": "stop", "engine.exit.network": "stop",
    "engine.exit.saved": "stop", "engine.exit.policy": "stop",
    "network.teardown.ports": "stop", "network.teardown.netns": "stop",
    "network.teardown.released": "stop", "network.deactivate.rules": "stop",
    "engine.kill.saved": "kill", "engine.kill.signalled": "kill",
    "engine.restart.stopped": "restart", "engine.restart.started": "restart",
    "engine.restart_policy.counted": "policy",
    "engine.pause.frozen": "pause", "engine.unpause.thawed": "unpause",
    # rm
    "engine.rm.killed": "rm", "engine.rm.marked": "rm", "engine.rm.runtime": "rm",
    "engine.rm.network": "rm", "engine.rm.rootfs": "rm", "engine.rm.volumes": "rm",
    "engine.rm.dir": "rm", "images.release.unmounted": "rm",
    "images.release.unrecorded": "rm",
    # exec
    "engine.exec.prepared": "exec", "engine.exec.detached": "exec_detached",
    # network connect / disconnect
    "engine.connect.attached": "connect", "network.connect.attached": "connect",
    "engine.disconnect.detached": "disconnect", "network.disconnect.unlinked": "disconnect",
    "network.disconnect.released": "disconnect",
    # images: commit, import, load, rmi, pull
    "images.commit.blob": "commit", "images.commit.layer": "commit",
    "images.import.blob": "import", "images.blob.written": "import",
    "images.blob.stored": "import", "images.layer.unpacked": "import",
    "images.layer.placed": "import", "images.add.recorded": "import",
    "images.add.unpacked": "load",
    "images.remove.deleted": "rmi", "images.gc.layer": "rmi",
    "images.pull.fetched": "pull",
    # volumes
    "volumes.create.written": "volume_create", "volumes.remove.renamed": "volume_rm",
    # recovery itself
    "recovery.loaded": "boot", "recovery.half_made": "boot", "recovery.containers": "boot",
    "recovery.orphans": "boot", "recovery.networking": "boot",
}
# points not reached by pyboxd itself: the live daemon is checked before its kill
OTHER_PROCESS = ("zygote.", "monitor.", "creator.", "runtime.")
# points pybox-runtime's exec reaches in a process of its own, or pyboxd reaches
# in the runtime library (its delete at a container's exit)
IN_PYBOXD = ("runtime.delete.",)


def source_points():
    """Every crashpoint("NAME") in the source (f-strings: recovery's steps)."""
    names = set()
    for top, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".py") and f != "crashpoints.py":
                with open(os.path.join(top, f)) as fh:
                    text = fh.read()
                names.update(re.findall(r'crashpoint\("([a-z0-9_.]+)"\)', text))
                for _step in re.findall(r'crashpoint\(f"recovery\.\{step\.__name__\}"\)', text):
                    names.update(f"recovery.{s}" for s in
                                 ("half_made", "containers", "orphans", "networking"))
    return names


def test_every_point_has_a_case():
    """A new crash point without a case here would never be tested."""
    points = source_points()
    assert len(points) >= 100
    assert points - set(POINTS) == set(), "crash points without a case"
    assert set(POINTS) - points == set(), "cases for points the source no longer has"


# -- the checks ------------------------------------------------------------------------------
def _proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _listening(path):
    """Does a process serve the unix socket at ``path``?  (A monitor killed by
    SIGKILL leaves its socket file: a dead name, not a monitor.)"""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _runtime_status(d, cid):
    from pybox.errors import PyboxError
    from pybox.runtime.container import Container

    try:
        rc = Container.load(os.path.join(d.exec_root, "runtime"), cid)
    except PyboxError:
        return None, 0
    return rc.status(), rc.pid


def monitors(d):
    """Processes forked from the monitor zygote other than the zygote itself:
    monitors, creators, and inits not yet started (same command line)."""
    zygote_ppid = d.pid if d.alive() else -1
    out = []
    for pid in pids_mentioning(d.exec_root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pybox.monitor.zygote" not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] in ("Z", "X") or int(fields[1]) == zygote_ppid:
            continue
        out.append(pid)
    return out


def check_truth(d):
    """-> problems: what ps/inspect say against /proc, the runtime, the kernel."""
    problems = []
    status, listed = api(d.socket, "GET", "/containers/json?all=1")
    if status != 200:
        return [f"GET /containers/json -> {status} {listed}"]
    running = 0
    for summary in listed:
        cid = summary["Id"]
        status, doc = api(d.socket, "GET", f"/containers/{cid}/json")
        if status != 200:
            problems.append(f"inspect {cid[:12]} -> {status} {doc}")
            continue
        st = doc["State"]
        name = doc["Name"]
        rt_status, rt_pid = _runtime_status(d, cid)
        rundir = os.path.join(d.exec_root, "containers", cid)
        if st.get("Restarting"):
            continue  # between two runs: the follow-up stops it
        if st["Running"]:
            running += 1
            if _proc_state(st["Pid"]) in (None, "Z", "X"):
                problems.append(f"{name}: inspect says running with pid {st['Pid']}, "
                                "which is gone")
            if rt_status not in ("running", "paused") or rt_pid != st["Pid"]:
                problems.append(f"{name}: inspect says running (pid {st['Pid']}), the "
                                f"runtime says {rt_status} (pid {rt_pid})")
            if bool(st["Paused"]) != (rt_status == "paused"):
                problems.append(f"{name}: Paused={st['Paused']} but the runtime says "
                                f"{rt_status}")
            if not _listening(os.path.join(rundir, "monitor.sock")):
                problems.append(f"{name}: running without a monitor")
            if summary["State"] not in ("running", "paused"):
                problems.append(f"{name}: ps says {summary['State']}, inspect running")
        else:
            if rt_status is not None:
                problems.append(f"{name}: inspect says {st['Status']}, the runtime still "
                                f"has it {rt_status} (pid {rt_pid})")
            if cgroup_dirs([cid]):
                problems.append(f"{name}: {st['Status']} but its cgroup is left: "
                                f"{cgroup_dirs([cid])}")
            merged = os.path.join(d.data_root, "images", "containers", cid, "merged")
            if os.path.ismount(merged):
                problems.append(f"{name}: {st['Status']} with its rootfs mounted")
            if os.path.exists(os.path.join(d.exec_root, "netns", cid)):
                problems.append(f"{name}: {st['Status']} with a network namespace")
            if _listening(os.path.join(rundir, "monitor.sock")):
                problems.append(f"{name}: {st['Status']} with a monitor serving it")
            if summary["State"] not in ("created", "exited", "dead"):
                problems.append(f"{name}: ps says {summary['State']}, inspect "
                                f"{st['Status']}")
            if (st["StartedAt"].startswith("0001-")) != (st["Status"] == "created"):
                problems.append(f"{name}: {st['Status']} with StartedAt {st['StartedAt']}")
    left = settle(lambda: len(monitors(d)) == running, timeout=10)
    if not left:
        problems.append(f"{len(monitors(d))} monitor/creator/init processes for {running} "
                        f"running containers: {monitors(d)}")
    return problems


def settled_truth(d, timeout=10.0):
    """check_truth once the daemon has acted on what it saw (a watcher
    recording an exit it just learnt of): bounded, the last answer counts."""
    last = []

    def ok():
        last[:] = check_truth(d)
        return not last
    settle(ok, timeout=timeout, interval=0.2)
    return last


def follow_up(d):
    """stop, start and rm of every container work (the next API call after a
    crash); -> problems."""
    problems = []
    for cid in d.ok("ps", "-aq", "--no-trunc").split():
        doc = d.inspect(cid)
        name = doc["Name"].lstrip("/")
        st = doc["State"]
        fails_to_start = doc["Path"] == "/nonexistent"
        if not st["Dead"]:
            if st["Running"] or st["Restarting"]:
                proc = d.cli("stop", "-t", "1", cid)
                if proc.returncode != 0:
                    problems.append(f"stop {name}: {proc.stderr}")
                after = d.inspect(cid)["State"]
                if after["Running"] or _proc_state(st["Pid"]) not in (None, "Z", "X"):
                    problems.append(f"stop {name} said done but it runs: {after}")
            proc = d.cli("start", cid)
            if fails_to_start:
                if proc.returncode == 0:
                    problems.append(f"start {name} ran /nonexistent")
            elif proc.returncode != 0:
                problems.append(f"start {name}: {proc.stderr}")
            elif not d.inspect(cid)["State"]["Running"]:
                problems.append(f"start {name} said done but it does not run")
        proc = d.cli("rm", "-f", "-v", cid)
        if proc.returncode != 0:
            problems.append(f"rm -f {name}: {proc.stderr}")
    return problems


def cleanup(d):
    """Everything a case made, whatever the checks found."""
    ids = d.cli("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        d.cli("rm", "-f", "-v", *ids)
    for ref in d.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split():
        if "crash/" in ref:
            d.cli("rmi", "-f", ref)
    dangling = d.cli("images", "-qf", "dangling=true").stdout.split()
    if dangling:
        d.cli("rmi", "-f", *dangling)
    for vol in d.cli("volume", "ls", "-q").stdout.split():
        d.cli("volume", "rm", "-f", vol)
    for net in d.cli("network", "ls", "--format", "{{.Name}}").stdout.split():
        if net not in ("bridge", "host", "none"):
            d.cli("network", "rm", net)


def _walk_names(root, skip=("diff", "upper", "merged", "work", "_data", "blobs", "rootfs")):
    for top, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in skip and not os.path.ismount(os.path.join(top, x))]
        for name in dirs + files:
            yield os.path.join(top, name)


def leaks(d, baseline_layers):
    """-> what is left once every container, volume, network and case image is
    gone (the daemon still running)."""
    from pybox.network import Names

    problems = []
    mounts = mounts_under(d.data_root)
    if mounts:
        problems.append(f"mounts under the data root: {mounts}")
    for what, path in (("container dirs", os.path.join(d.data_root, "containers")),
                       ("run dirs", os.path.join(d.exec_root, "containers")),
                       ("runtime state", os.path.join(d.exec_root, "runtime")),
                       ("rootfs dirs", os.path.join(d.data_root, "images", "containers")),
                       ("volumes", os.path.join(d.data_root, "volumes")),
                       ("network namespaces", os.path.join(d.exec_root, "netns")),
                       ("sandboxes", os.path.join(d.exec_root, "network", "sandboxes")),
                       ("ingest", os.path.join(d.data_root, "images", "ingest"))):
        try:
            left = os.listdir(path)
        except FileNotFoundError:
            left = []
        if left:
            problems.append(f"{what} left: {left}")
    layers = set(os.listdir(os.path.join(d.data_root, "images", "layers")))
    if layers != baseline_layers:
        problems.append(f"layers: {sorted(layers - baseline_layers)} more, "
                        f"{sorted(baseline_layers - layers)} missing")
    links = os.path.join(d.data_root, "images", "l")
    for link in os.listdir(links):
        if not os.path.exists(os.path.join(links, link)):
            problems.append(f"a dangling layer link: {link}")
    temps = [p for root in (d.data_root, d.exec_root) for p in _walk_names(root)
             if re.search(r"\.tmp-\d+(\.\d+)?$", p) or ".creating" in p or ".removing" in p]
    if temps:
        problems.append(f"temp files left: {temps}")
    cgroups = cgroup_dirs(d.created)
    if cgroups:
        problems.append(f"cgroups left: {cgroups}")
    names = Names(d.exec_root)

    def links():
        # (a veth goes with its namespace, which the kernel destroys a moment
        # after the last reference: bounded wait)
        return [n for n in os.listdir("/sys/class/net") if names.is_ours(n)]
    settle(lambda: not links(), timeout=10)
    links_left = links()
    if links_left:
        problems.append(f"veths/bridges left: {links_left}")
    import subprocess

    table = subprocess.run(["nft", "list", "table", "inet", names.table],
                           capture_output=True, text=True)
    if table.returncode == 0:
        problems.append(f"nft table {names.table} left:\n{table.stdout[:1500]}")
    procs = monitors(d)
    if procs:
        problems.append(f"monitor/runtime processes left: {procs}")
    return problems


# -- the cases -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(crashd):
    return set(os.listdir(os.path.join(crashd.data_root, "images", "layers")))


@pytest.mark.parametrize("point", sorted(POINTS))
def test_crash_at(crashd, baseline, point):
    d = crashd
    scenario = POINTS[point]
    setup, op = SCENARIOS[scenario]
    n = f"crash-{uuid.uuid4().hex[:10]}"
    report = []
    try:
        if not d.alive():
            d.start()
        if setup is not None:
            setup(d, n)
        d.stop_graceful()
        serving = d.start_armed(point)
        result = op(d, n) if serving and op is not None else None
        assert d.wait_reached(point), (
            f"{point} was not reached by {scenario!r}: {result}\n{d.log_tail()}")
        pids = d.reached(point)
        if d.pid in pids:
            d.process.wait(timeout=30)  # (it reports, then dies)
        if d.alive():
            # the point killed a monitor, a creator or pybox-runtime: the live
            # daemon must tell the truth too, then it crashes as well
            assert point.startswith(OTHER_PROCESS) and not point.startswith(IN_PYBOXD), \
                f"{point}: pyboxd survived its own crash point"
            report += [f"live: {p}" for p in settled_truth(d)]
            d.kill9()
        else:
            assert pids == [d.pid] or not point.startswith(OTHER_PROCESS) or \
                point.startswith(IN_PYBOXD), f"{point}: pyboxd died, not the process at it"
            d.process.wait()
        d.start()  # once: it must serve
        report += settled_truth(d)
        report += follow_up(d)
    finally:
        if not d.alive():
            d.start()
        cleanup(d)
    report += leaks(d, baseline)
    assert not report, "\n".join([f"after a crash at {point} ({scenario}):", *report,
                                  "pyboxd's log:", d.log_tail(3000)])


def test_crash_point_unset_costs_nothing():
    """Without PYBOX_CRASH_AT the hook is a function that returns at once."""
    import subprocess
    import sys

    code = ("import os; os.environ.pop('PYBOX_CRASH_AT', None)\n"
            "from pybox.crashpoints import crashpoint\n"
            "crashpoint('engine.rm.rootfs'); print(crashpoint.__doc__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(SRC)))
    assert out.returncode == 0 and "No crash point armed" in out.stdout, out


def test_crash_point_count():
    """NAME:COUNT dies at the COUNT-th time, not before."""
    import subprocess
    import sys

    code = ("from pybox.crashpoints import crashpoint\n"
            "for i in range(5):\n"
            "    print(i, flush=True); crashpoint('x.y')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(SRC),
                                  PYBOX_CRASH_AT="x.y:3"))
    assert out.returncode == -9 and out.stdout.split() == ["0", "1", "2"], out



# -- kill -9 at a moment of its own choosing, under load -----------------------------------------
def _kill9_under(d, baseline, commands, when):
    """Run ``commands`` (docker argv lists) at once, SIGKILL pyboxd as soon as
    ``when()`` holds, start it again, check as after a crash point."""
    import subprocess

    procs = [subprocess.Popen(["docker", *argv], env=d.cli_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for argv in commands]
    report = []
    try:
        settle(when, timeout=60, interval=0.01)
        d.kill9()
        for p in procs:
            p.wait(timeout=60)
        d.start()
        report += settled_truth(d)
        report += follow_up(d)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not d.alive():
            d.start()
        cleanup(d)
    report += leaks(d, baseline)
    return report


def test_kill9_during_a_burst_of_runs(crashd, baseline):
    """Issue 14's burst: 20 parallel `docker run -d`, pyboxd killed while they
    are half-way (some running, some being created or started)."""
    d = crashd
    if not d.alive():
        d.start()
    n = f"burst-{uuid.uuid4().hex[:8]}"
    records = os.path.join(d.data_root, "containers")
    report = _kill9_under(
        d, baseline, [["run", "-d", "--name", f"{n}-{i}", "-p", "80", IMAGE, *SLEEP]
                      for i in range(20)],
        lambda: len(os.listdir(records)) >= 8)
    assert not report, "\n".join(["after a kill -9 during 20 runs:", *report,
                                  "pyboxd's log:", d.log_tail(3000)])


def test_kill9_during_parallel_removals(crashd, baseline):
    """Issue 14's rm: pyboxd killed while several `docker rm -f` are under way
    starts again (once) and finishes every removal."""
    d = crashd
    if not d.alive():
        d.start()
    n = f"rm-{uuid.uuid4().hex[:8]}"
    for i in range(6):
        _started(d, f"{n}-{i}")
    records = os.path.join(d.data_root, "containers")
    report = _kill9_under(d, baseline, [["rm", "-f", "-v", f"{n}-{i}"] for i in range(6)],
                          lambda: len(os.listdir(records)) <= 4)
    assert not report, "\n".join(["after a kill -9 during 6 removals:", *report,
                                  "pyboxd's log:", d.log_tail(3000)])


def test_stale_temp_files_go_live_ones_stay(tmp_path):
    """Recovery's first step: a temp file whose writer is dead goes, one whose
    writer lives (a monitor writing its exit file) stays, and file trees that
    are not pybox's state (a volume's _data) are not entered."""
    import subprocess
    import sys

    from pybox.engine.recovery import remove_stale_temp

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "c").mkdir()
        (tmp_path / "v" / "_data").mkdir(parents=True)
        gone = tmp_path / "c" / f"config.v2.json.tmp-{dead}.{dead}"
        kept = tmp_path / "c" / f"exit.json.tmp-{live.pid}"
        user = tmp_path / "v" / "_data" / f"notes.tmp-{dead}"
        for f in (gone, kept, user):
            f.write_text("x")
        removed = remove_stale_temp(str(tmp_path))
        assert removed == [str(gone)]
        assert kept.exists() and user.exists() and not gone.exists()
    finally:
        live.kill()
        live.wait()
