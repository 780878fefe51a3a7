"""The /proc view as users meet it: containers started through a private pyboxd
with the pybox CLI (and the docker CLI, which gets the default), what busybox's
tools and Python see inside, the off switches, SIGKILL of the server while
containers read, and ``pybox explain``."""

import json
import os
import signal

import pytest

from conftest import HOST_PYTHON_BINDS
from support.wait import wait_for

pytestmark = [pytest.mark.procview, pytest.mark.root]

IMAGE = "busybox:latest"


def host_meminfo_kb(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def host_online_count():
    from pybox.procview.render import parse_cpu_list

    with open("/sys/devices/system/cpu/online") as f:
        return len(parse_cpu_list(f.read()))


def meminfo_kb(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def free_total_mb(text):
    for line in text.splitlines():
        if line.startswith("Mem:"):
            return int(line.split()[1])
    raise AssertionError(f"no Mem: line in {text!r}")


def test_a_64m_one_cpu_container_sees_its_limits(pybox):
    script = ("free -m; echo ==; grep -c ^processor /proc/cpuinfo; nproc; echo ==; "
              "cat /proc/uptime; cat /sys/devices/system/cpu/online; echo ==; "
              "grep ^cpu /proc/stat; echo ==; cat /proc/meminfo; echo ==; top -bn1")
    out = pybox.out("run", "--rm", "-m", "64m", "--cpuset-cpus", "0", IMAGE, "sh", "-c", script)
    free, cpus, times, stat, meminfo, top = out.split("==\n")
    assert 60 <= free_total_mb(free) <= 64, free  # busybox free: sysinfo(2), intercepted
    assert cpus.split() == ["1", "1"]  # /proc/cpuinfo and nproc (sched_getaffinity)
    uptime, online = times.splitlines()
    assert float(uptime.split()[0]) < 30, uptime  # counted from the container's start
    assert online == "0"
    assert [line.split()[0] for line in stat.splitlines()] == ["cpu", "cpu0"]
    assert meminfo_kb(meminfo, "MemTotal") == 65536
    assert meminfo_kb(meminfo, "MemFree") <= 65536
    assert meminfo_kb(meminfo, "MemAvailable") <= 65536
    # top's header: "Mem: 1488K used, 64048K free, ..." -- the container's 64 MiB
    mem = next(line for line in top.splitlines() if line.startswith("Mem:")).split()
    used, free_k = int(mem[1].rstrip("K")), int(mem[3].rstrip("K"))
    assert used + free_k == 65536, top


def test_a_cpu_quota_rounds_up_to_whole_cpus(pybox):
    out = pybox.out("run", "--rm", "--cpus", "0.5", IMAGE, "sh", "-c",
                    "grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; "
                    "grep -c '^cpu[0-9]' /proc/stat; nproc")
    cpuinfo, online, stat_cpus, nproc = out.split()
    assert (cpuinfo, online, stat_cpus) == ("1", "0", "1")
    # nproc asks sched_getaffinity(): a quota does not change the cpus a task
    # may run on (lxcfs cannot change that either), only a cpuset does
    assert int(nproc) == len(os.sched_getaffinity(0))


def test_python_in_the_container_sizes_itself_by_the_limits(pybox):
    code = ("import os; print(os.cpu_count(), "
            "os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 20)")
    out = pybox.out("run", "--rm", "-m", "64m", "--cpus", "0.5", *HOST_PYTHON_BINDS, IMAGE,
                    "/usr/bin/python3", "-I", "-c", code)
    # os.cpu_count(): glibc reads /sys/devices/system/cpu/online;
    # SC_PHYS_PAGES: glibc calls sysinfo(2)
    assert out.split() == ["1", "64"]


def test_without_limits_the_hosts_values_show(pybox):
    out = pybox.out("run", "--rm", IMAGE, "sh", "-c",
                    "head -1 /proc/meminfo; grep -c ^processor /proc/cpuinfo; free -m; "
                    "cat /proc/uptime")
    lines = out.splitlines()
    assert meminfo_kb(lines[0], "MemTotal") == host_meminfo_kb("MemTotal")
    assert int(lines[1]) == host_online_count()
    assert abs(free_total_mb(out) - host_meminfo_kb("MemTotal") // 1024) <= 1
    assert float(lines[-1].split()[0]) < 30  # uptime is always the container's


def test_proc_view_false_gives_the_hosts_files(pybox):
    out = pybox.out("run", "--rm", "--proc-view=false", "-m", "64m", "--cpuset-cpus", "0",
                    IMAGE, "sh", "-c",
                    "head -1 /proc/meminfo; free -m; grep -c pybox-procview "
                    "/proc/self/mountinfo || true")
    lines = out.splitlines()
    assert meminfo_kb(lines[0], "MemTotal") == host_meminfo_kb("MemTotal")
    assert free_total_mb(out) > 64
    assert lines[-1] == "0"


def test_the_docker_cli_gets_the_view_and_its_label_turns_it_off(pvd):
    out = pvd.ok("run", "--rm", "-m", "64m", IMAGE, "head", "-1", "/proc/meminfo")
    assert meminfo_kb(out, "MemTotal") == 65536
    out = pvd.ok("run", "--rm", "-m", "64m", "-l", "org.pybox.proc-view=false", IMAGE,
                 "head", "-1", "/proc/meminfo")
    assert meminfo_kb(out, "MemTotal") == host_meminfo_kb("MemTotal")


def test_exec_sees_the_limits_too(pybox, names):
    name = names()
    pybox("run", "-d", "--name", name, "-m", "96m", IMAGE, "sleep", "300")
    out = pybox.out("exec", name, "sh", "-c", "free -m; head -1 /proc/meminfo")
    assert 90 <= free_total_mb(out) <= 96
    assert meminfo_kb(out.splitlines()[-1], "MemTotal") == 96 * 1024


LOOP = ("while true; do "
        "if m=$(head -1 /proc/meminfo 2>&1) && f=$(free -m 2>&1); then "
        "echo \"ok $m | $(echo \"$f\" | grep Mem)\"; "
        "else echo \"ERR $(echo $m $f | tr '\\n' ' ')\"; fi; "
        "sleep 0.02; done")


def test_sigkill_of_the_server_while_containers_read(pvd, pybox, names):
    """Two containers read /proc/meminfo and call sysinfo (free) in a loop; the
    server is SIGKILLed; pyboxd restarts it, it re-serves both containers, and
    the reads recover with the right values."""
    from pybox.procview.control import Server

    server = Server(os.path.join(pvd.exec_root, "procview"))
    readers = [names(), names()]
    for name in readers:
        pybox("run", "-d", "--name", name, "-m", "64m", IMAGE, "sh", "-c", LOOP)

    def lines(name):
        return pybox.out("logs", name).splitlines()

    assert wait_for(lambda: all(len(lines(n)) >= 10 for n in readers)), \
        [lines(n)[-3:] for n in readers]
    old = server.pid()
    assert old and server.ready()
    os.kill(old, signal.SIGKILL)
    # pyboxd's supervisor starts a new server, which re-serves both containers
    report = os.path.join(server.dir, "reserved.json")

    def reserved():
        try:
            with open(report) as f:
                r = json.load(f)
        except (OSError, ValueError):
            return None
        return r if r.get("server") not in (None, old) and r["namespaces"] >= 2 else None

    done = wait_for(reserved, timeout=60)
    assert done, f"no re-serve report of a new server:\n{server.log_tail()}"
    assert not done["errors"] and done["mounts"] >= 16, done
    counts = {n: len(lines(n)) for n in readers}
    assert wait_for(lambda: all(len(lines(n)) >= counts[n] + 20 for n in readers), timeout=60)
    for name in readers:
        out = lines(name)
        tail = out[-20:]
        assert all(line.startswith("ok ") for line in tail), tail
        for line in tail:
            assert "MemTotal:          65536 kB" in line and "Mem:" in line
            assert 60 <= int(line.split("Mem:")[1].split()[0]) <= 64
        errors = [line for line in out if not line.startswith("ok ")]
        for e in errors:  # only a dead connection's errors, only around the kill
            assert ("not connected" in e or "abort" in e), e
    # each container has its 8 files, all on the new server's mount, no dead one
    pid = pvd.inspect(readers[0])["State"]["Pid"]
    with open(f"/proc/{pid}/mountinfo") as f:
        ours = [line.split() for line in f if "fuse.pybox-procview" in line]
    assert len(ours) == 8 and len({fields[2] for fields in ours}) == 1
    assert server.pid() != old


def test_explain(pybox, names):
    name = names()
    pybox("run", "-d", "--name", name, "-m", "64m", "--cpuset-cpus", "0", IMAGE,
          "sh", "-c", "sleep 300 & sleep 301")

    def explained_with_both_sleeps():
        d = json.loads(pybox.out("explain", "--json", name))
        return d if len(d["processes"]) >= 2 else None
    # run -d returns once sh runs, maybe before it has forked its background sleep
    d = wait_for(explained_with_both_sleeps, "sh's background sleep")
    assert d["name"] == name and d["running"]
    ns = {n["type"]: n for n in d["namespaces"]}
    assert not ns["mnt"]["host_shares"] and not ns["pid"]["host_shares"]
    assert ns["mnt"]["inode"] == os.stat(f"/proc/{d['pid']}/ns/mnt").st_ino
    assert ns["user"]["host_shares"]  # no user namespace
    limits = {(lim["file"]): lim for directory in d["cgroups"]["directories"]
              for lim in directory["limits"]}
    mem = limits.get("memory.limit_in_bytes") or limits["memory.max"]
    assert mem["value"] == str(64 << 20) and mem["set_by"]["flag"] == "-m, --memory"
    assert mem["set_by"]["oci"] == "linux.resources.memory.limit"
    assert limits["cpuset.cpus"]["set_by"]["docker"] == "HostConfig.CpusetCpus"
    assert any(directory["created_by_pybox"] for directory in d["cgroups"]["directories"])
    procs = d["processes"]
    assert {p["container_pid"] for p in procs} == {1, 2}
    init = next(p for p in procs if p["container_pid"] == 1)
    assert init["pid"] == d["pid"]
    assert next(p for p in procs if p["container_pid"] == 2)["ppid"] == d["pid"]
    caps = d["security"]["capabilities"]["effective"]["names"]
    assert "CAP_CHOWN" in caps and "CAP_SYS_ADMIN" not in caps
    assert d["security"]["seccomp"]["mode"] == "filter"
    mounts = {m["mount_point"]: m for m in d["mounts"]}
    assert mounts["/"]["fstype"] == "overlay"
    assert mounts["/proc/meminfo"]["fstype"] == "fuse.pybox-procview"
    assert d["proc_view"]["on"] and len(d["proc_view"]["files"]) == 8
    lower = d["rootfs"]["lower"]
    assert lower and lower[0]["layer"] and lower[0]["layer"]["diff_id"].startswith("sha256:")
    assert os.path.exists(d["files"]["config"])
    text = pybox.out("explain", name)
    for heading in ("Namespaces", "Cgroups", "Root filesystem", "Mounts", "Processes",
                    "Security", "The /proc view: on"):
        assert heading in text, text
    assert "-m, --memory -> linux.resources.memory.limit" in text
    assert "└─ sleep 300" in text


def test_explain_of_a_stopped_container_and_of_no_container(pybox, names):
    name = names()
    pybox("create", "--name", name, IMAGE, "true")
    d = json.loads(pybox.out("explain", "--json", name))
    assert not d["running"] and "not running" in d["note"] and d["rootfs"]["merged"]
    proc = pybox("explain", "nosuchcontainer-x", check=False)
    assert proc.returncode == 1 and "No such container" in proc.stderr


def test_a_pyboxd_restart_keeps_the_view_and_no_proc_view_turns_it_off(pvd, pybox, names):
    """pyboxd stops (a container with the view runs: the server stays), starts
    again with --no-proc-view: new containers get the host's files, the old one
    keeps its view, still supervised."""
    import subprocess

    from conftest import PYTHON, SRC
    from pybox.procview.control import Server

    server = Server(os.path.join(pvd.exec_root, "procview"))
    old = names()
    pybox("run", "-d", "--name", old, "-m", "64m", IMAGE, "sleep", "300")
    before = server.pid()
    pvd.process.send_signal(signal.SIGTERM)
    assert pvd.process.wait(timeout=30) == 0
    assert server.running() and server.pid() == before  # it serves a running container
    argv = [PYTHON, "-m", "pybox.cli.pyboxd", "-H", pvd.host, "--data-root", pvd.data_root,
            "--exec-root", pvd.exec_root, "--no-proc-view"]
    with open(pvd.log_path, "ab") as log:
        pvd.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       env=dict(os.environ, PYTHONPATH=SRC),
                                       start_new_session=True)
    assert wait_for(pvd.ping), pvd.log_tail()
    try:
        new = pybox.out("run", "--rm", "-m", "64m", IMAGE, "head", "-1", "/proc/meminfo")
        assert meminfo_kb(new, "MemTotal") == host_meminfo_kb("MemTotal")
        kept = pybox.out("exec", old, "head", "-1", "/proc/meminfo")
        assert meminfo_kb(kept, "MemTotal") == 65536
        os.kill(server.pid(), signal.SIGKILL)  # still supervised: restarted, re-served
        assert wait_for(lambda: server.ready() and server.pid() != before, timeout=60)
        assert wait_for(lambda: "65536" in pybox("exec", old, "head", "-1", "/proc/meminfo",
                                               check=False).stdout, timeout=30)
    finally:
        # back to the default for the rest of the session
        pybox("rm", "-f", old)
        pvd.process.send_signal(signal.SIGTERM)
        pvd.process.wait(timeout=30)
        argv.remove("--no-proc-view")
        with open(pvd.log_path, "ab") as log:
            pvd.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=log, env=dict(os.environ, PYTHONPATH=SRC),
                                           start_new_session=True)
        assert wait_for(pvd.ping), pvd.log_tail()
