"""The view on real kernel objects, without pyboxd: a real cgroup with limits
and a process in it read through View (the computations), then a container of
pybox-runtime with the FUSE server's files and sysinfo sent to it.  Runs on this
host (v1) and, through test_v2_vm.py, inside the cgroup v2 VM."""

import os
import subprocess
import sys
import time
import uuid

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from runtime.conftest import Bundle, Runtime  # noqa: E402  (the runtime tests' helpers)

pytestmark = [pytest.mark.procview, pytest.mark.root]

MiB = 1 << 20


@pytest.fixture
def limited_process():
    """A `sleep` in a fresh cgroup with 64 MiB, a 0.5 cpu quota and cpuset 0."""
    from pybox import cgroups

    name = f"pybox-test-pv-{uuid.uuid4().hex[:8]}"
    mgr = cgroups.new_manager(f"/{name}", name)
    mgr.create()
    child = None
    try:
        mgr.apply({"memory": {"limit": 64 * MiB},
                   "cpu": {"quota": 50000, "period": 100000, "cpus": "0"}})
        child = subprocess.Popen(["sleep", "60"])
        mgr.add(child.pid)
        yield child.pid, mgr
    finally:
        if child is not None:
            child.kill()
            child.wait()
        mgr.destroy()


def test_the_view_of_a_real_cgroup(limited_process):
    from pybox.procview import cgroupview as cgv
    from pybox.procview import sysinfo
    from pybox.procview.cgroupview import Hierarchies
    from pybox.procview.render import parse_meminfo
    from pybox.procview.view import View

    pid, mgr = limited_process
    hier = Hierarchies.detect()
    view = View(hier)
    cg = hier.lookup(pid)
    mem = cgv.memory(cg)
    assert mem.limit == 64 * MiB and 0 <= mem.usage < 64 * MiB
    cpus = cgv.cpus(cg, view.online())
    assert cpus.allowed == [0] and cpus.quota == 0.5 and cpus.visible == [0]
    assert cgv.cpu_usage(cg) is not None

    def text(name):
        return view.render(name, pid).decode()

    meminfo = parse_meminfo(text("meminfo"))
    assert meminfo["MemTotal"] == 65536 and meminfo["MemFree"] <= 65536
    assert text("cpuinfo").count("processor") == 1
    assert text("cpu-online") == "0\n"
    assert [line.split()[0] for line in text("stat").splitlines()[:2]] == ["cpu", "cpu0"]
    assert not text("stat").splitlines()[2].startswith("cpu")
    assert float(text("uptime").split()[0]) < 30
    deadline = time.monotonic() + 20  # (the VM under TCG: sleep takes a while to sleep)
    while cgv.stat_fields("/proc", pid)[0] != "S" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text("loadavg").split()[3] == "0/1"  # one task, sleeping
    info = sysinfo.unpack(view.sysinfo(pid))
    assert info["totalram"] == 64 * MiB and info["procs"] == 1 and info["uptime"] < 30
    # the same process outside: the host's files
    outside = View(hier).render("meminfo", os.getpid()).decode()
    own = cgv.memory(hier.lookup(os.getpid()))
    if own is None or own.limit is None:
        with open("/proc/meminfo") as f:
            assert parse_meminfo(outside)["MemTotal"] == parse_meminfo(f.read())["MemTotal"]


@pytest.fixture
def server(tmp_path):
    from pybox.procview.control import Server, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"the /proc view cannot run here: {reason}")
    s = Server(str(tmp_path / "pv"))
    claim = s.claim()  # supervised: the server stays while no container uses it
    try:
        s.ensure()
        yield s
    finally:
        s.stop()
        s.unclaim(claim)
        assert not s.running()
        with open("/proc/self/mountinfo") as f:
            assert s.mnt not in f.read(), "the server left its mount"


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    from pybox.images.rootfs import build_busybox_rootfs

    return build_busybox_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs"))


def test_a_runtime_container_with_the_view(server, rootfs, tmp_path):
    """pybox-runtime, binds from the server, sysinfo notified to its socket."""
    from pybox.procview import FILES
    from pybox.procview.server import SECCOMP_SOCKET

    rt = Runtime(str(tmp_path / "state"))
    try:
        b = Bundle(str(tmp_path / "bundle"), rootfs)
        cid = rt.new_id()
        b.config["mounts"] += [{"destination": dest, "type": "bind",
                                "source": server.source(cid, name),
                                "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}
                               for name, dest in FILES]
        b.linux["resources"]["memory"] = {"limit": 64 * MiB}
        b.linux["resources"]["cpu"] = {"cpus": "0", "quota": 50000, "period": 100000}
        b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}],
                              "listenerPath": os.path.join(server.dir, SECCOMP_SOCKET)}
        b.sh("head -1 /proc/meminfo; free -m | grep Mem; grep -c ^processor /proc/cpuinfo; "
             "cat /sys/devices/system/cpu/online /proc/uptime; grep -c ^cpu /proc/stat")
        b.write()
        proc = rt("run", "-b", b.path, cid, timeout=120)
        lines = proc.stdout.splitlines()
        assert lines[0].split()[1] == "65536", proc.stdout
        assert lines[1].split()[1] == "64", proc.stdout  # sysinfo, answered by the server
        assert lines[2:4] == ["1", "0"], proc.stdout
        assert float(lines[4].split()[0]) < 60, proc.stdout
        assert lines[5] == "2", proc.stdout  # "cpu" and "cpu0"
    finally:
        rt.cleanup()


def test_a_killed_server_is_re_served(server, rootfs, tmp_path):
    """A long-running container; its server dies (SIGKILL) and a new one starts:
    the new one replaces the dead files inside the container's mount namespace."""
    import json
    import signal

    from pybox.procview import FILES

    rt = Runtime(str(tmp_path / "state"))
    try:
        b = Bundle(str(tmp_path / "bundle"), rootfs)
        cid = rt.new_id()
        b.config["mounts"] += [{"destination": dest, "type": "bind",
                                "source": server.source(cid, name), "options": ["bind", "ro"]}
                               for name, dest in FILES]
        b.linux["resources"]["memory"] = {"limit": 80 * MiB}
        b.set_args("sleep", "120")
        b.write()
        rt("run", "-d", "-b", b.path, cid, timeout=120)
        pid = rt.state(cid)["pid"]
        old = server.pid()
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while server.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.process = None
        server.ensure()  # a new server: it re-serves the container
        assert server.pid() != old
        report = os.path.join(server.dir, "reserved.json")
        r = {}
        while time.monotonic() < deadline:
            try:
                with open(report) as f:
                    r = json.load(f)
                if r["server"] == server.pid():
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        assert r.get("server") == server.pid() and r["mounts"] == 8 and not r["errors"], r
        # a process of the container reads its (re-served) file
        out = rt("exec", cid, "head", "-1", "/proc/meminfo", timeout=60).stdout
        assert out.split()[1] == str(80 * 1024), out
        with open(f"/proc/{pid}/mountinfo") as f:
            devices = {line.split()[2] for line in f if "fuse.pybox-procview" in line}
        assert len(devices) == 1, devices  # all on the new mount, no dead one left
    finally:
        rt.cleanup()
