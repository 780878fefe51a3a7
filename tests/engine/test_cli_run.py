"""docker create / run with docker's flags, verified from inside the container,
in inspect and in the container's cgroup files."""

import json
import os

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]

CG = "/sys/fs/cgroup"


def test_run_prints_output_and_returns_the_status(pyboxd):
    proc = pyboxd.docker("run", "--rm", "busybox", "sh", "-c",
                         "echo out; echo err >&2; exit 7")
    assert proc.returncode == 7
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"


def test_run_identity_flags_seen_inside(pyboxd, names, tmp_path):
    name = names()
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=yes\nSPACED=a b\n")
    script = 'hostname; echo "$FOO|$FROM_FILE|$SPACED|${UNSET-none}"; pwd; id -u; id -g'
    out = pyboxd.ok("run", "--name", name, "-h", "myhost", "-e", "FOO=bar",
                    "-e", "UNSET", "--env-file", str(env_file), "-w", "/tmp",
                    "-u", "1000:1001", "-l", "team=engine", "--label", "tier=test",
                    "busybox", "sh", "-c", script,
                    env=dict(pyboxd.cli_env, UNSET="")  # present but empty -> UNSET=
                    )
    assert out.split("\n")[:5] == ["myhost", "bar|yes|a b|", "/tmp", "1000", "1001"]
    info = pyboxd.inspect(name)
    assert info["Config"]["Labels"] == {"team": "engine", "tier": "test"}
    assert info["Config"]["Hostname"] == "myhost"
    assert info["Config"]["User"] == "1000:1001"
    assert info["Config"]["WorkingDir"] == "/tmp"
    assert "FOO=bar" in info["Config"]["Env"]
    assert info["Name"] == "/" + name
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 0


def test_env_name_without_value_unset_in_the_client_is_not_set(pyboxd):
    """`-e NAME` with NAME not in the client's environment: the CLI sends the bare
    name; docker leaves the variable unset in the container."""
    env = {k: v for k, v in pyboxd.cli_env.items() if k != "NOT_IN_CLIENT_ENV"}
    proc = pyboxd.docker("run", "--rm", "-e", "NOT_IN_CLIENT_ENV", "-e", "SET=1", "busybox",
                         "sh", "-c", 'echo "${NOT_IN_CLIENT_ENV-unset} $SET"', env=env)
    assert (proc.returncode, proc.stdout) == (0, "unset 1\n"), proc.stderr


def test_entrypoint_replaces_the_image_command(pyboxd, names):
    name = names()
    out = pyboxd.ok("run", "--name", name, "--entrypoint", "echo", "busybox", "a", "b")
    assert out == "a b\n"
    info = pyboxd.inspect(name)
    assert info["Path"] == "echo"
    assert info["Args"] == ["a", "b"]
    assert info["Config"]["Entrypoint"] == ["echo"]
    # without a command, the image's CMD (["sh"]) runs: an sh with no stdin ends at once
    assert pyboxd.docker("run", "--rm", "busybox").returncode == 0


def test_default_hostname_is_the_short_id(pyboxd, names):
    name = names()
    cid = pyboxd.ok("create", "--name", name, "busybox", "hostname").strip()
    assert len(cid) == 64
    assert pyboxd.ok("start", "-a", name) == cid[:12] + "\n"


def test_stop_signal_and_stop_timeout(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--stop-signal", "USR1", "--stop-timeout", "30",
              "busybox", "sh", "-c",
              'trap "echo got USR1; exit 3" USR1; echo ready; while :; do sleep 0.1; done')
    assert _wait_log(pyboxd, name, "ready")
    info = pyboxd.inspect(name)
    assert info["Config"]["StopSignal"] == "USR1"
    assert info["Config"]["StopTimeout"] == 30
    pyboxd.ok("stop", name)
    info = pyboxd.inspect(name)
    assert info["State"]["ExitCode"] == 3  # the trap ran: USR1 was the stop signal
    assert "got USR1" in pyboxd.ok("logs", name)


def test_stop_timeout_then_sigkill(pyboxd, names):
    """A program that ignores the stop signal is killed after the timeout: 137."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--stop-timeout", "1", "busybox", "sleep", "1000")
    pyboxd.ok("stop", name)
    info = pyboxd.inspect(name)
    assert info["State"]["ExitCode"] == 137
    assert info["State"]["Running"] is False
    assert info["State"]["OOMKilled"] is False


def _cgroup_file(controller, cid, name):
    with open(os.path.join(CG, controller, "pybox", cid, name)) as f:
        return f.read().strip()


def test_resource_flags_reach_the_cgroup(pyboxd, names):
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, "-m", "64m", "--memory-swap", "128m",
                    "--memory-reservation", "32m", "-c", "512", "--cpu-period", "50000",
                    "--cpu-quota", "25000", "--cpuset-cpus", "0", "--cpuset-mems", "0",
                    "--pids-limit", "50", "busybox", "sleep", "1000").strip()
    host = {
        ("memory", "memory.limit_in_bytes"): str(64 << 20),
        ("memory", "memory.memsw.limit_in_bytes"): str(128 << 20),
        ("memory", "memory.soft_limit_in_bytes"): str(32 << 20),
        ("cpu", "cpu.shares"): "512",
        ("cpu", "cpu.cfs_period_us"): "50000",
        ("cpu", "cpu.cfs_quota_us"): "25000",
        ("cpuset", "cpuset.cpus"): "0",
        ("cpuset", "cpuset.mems"): "0",
        ("pids", "pids.max"): "50",
    }
    if not os.path.exists(os.path.join(CG, "memory", "pybox", cid, "memory.memsw.limit_in_bytes")):
        host.pop(("memory", "memory.memsw.limit_in_bytes"))  # no swap accounting
    for (controller, file), value in host.items():
        assert _cgroup_file(controller, cid, file) == value, file
    # the same from inside (cgroup v1: the container sees its own cgroup at the top)
    files = " ".join(f"/sys/fs/cgroup/{c}/{f}" for c, f in host)
    inside = pyboxd.ok("exec", name, "cat", *files.split()).split()
    assert inside == list(host.values())
    info = pyboxd.inspect(name)
    hc = info["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]) == (
        64 << 20, 128 << 20, 32 << 20)
    assert (hc["CpuShares"], hc["CpuPeriod"], hc["CpuQuota"]) == (512, 50000, 25000)
    assert (hc["CpusetCpus"], hc["CpusetMems"], hc["PidsLimit"]) == ("0", "0", 50)


def test_cpus_and_oom_kill_disable(pyboxd, names):
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, "--cpus", "0.5", "-m", "32m",
                    "--oom-kill-disable", "busybox", "sleep", "1000").strip()
    assert _cgroup_file("cpu", cid, "cpu.cfs_period_us") == "100000"
    assert _cgroup_file("cpu", cid, "cpu.cfs_quota_us") == "50000"
    assert "oom_kill_disable 1" in _cgroup_file("memory", cid, "memory.oom_control")
    assert pyboxd.inspect(name)["HostConfig"]["NanoCpus"] == 500_000_000


def _block_device():
    for dev in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"):
        if os.path.exists(dev):
            st = os.stat(dev)
            return dev, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    pytest.skip("no block device to throttle")


def test_device_throttle_flags(pyboxd, names):
    dev, numbers = _block_device()
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, "--device-read-bps", f"{dev}:1mb",
                    "--device-write-bps", f"{dev}:2mb", "--device-read-iops", f"{dev}:100",
                    "--device-write-iops", f"{dev}:200", "busybox", "sleep", "1000").strip()
    expect = {"blkio.throttle.read_bps_device": f"{numbers} {1 << 20}",
              "blkio.throttle.write_bps_device": f"{numbers} {2 << 20}",
              "blkio.throttle.read_iops_device": f"{numbers} 100",
              "blkio.throttle.write_iops_device": f"{numbers} 200"}
    for file, value in expect.items():
        assert _cgroup_file("blkio", cid, file) == value


def test_blkio_weight(pyboxd, names):
    """Where the kernel has a proportional io scheduler the weight is written;
    where it has none docker discards it with a warning (and runs)."""
    name = names()
    proc = pyboxd.docker("run", "-d", "--name", name, "--blkio-weight", "300", "busybox",
                         "sleep", "1000")
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    d = os.path.join(CG, "blkio", "pybox", cid)
    files = [f for f in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(os.path.join(d, f))]
    if files:
        assert "300" in _cgroup_file("blkio", cid, files[0])
    else:
        assert "Weight discarded" in proc.stderr


def test_ulimit(pyboxd):
    out = pyboxd.ok("run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=300",
                    "busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -u")
    assert out.split() == ["1024", "2048", "300"]


def test_network_none_has_only_loopback(pyboxd):
    out = pyboxd.ok("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
    assert out.split() == ["lo"]


def test_network_host_shares_the_host_network(pyboxd, names):
    name = names()
    out = pyboxd.ok("run", "--name", name, "--network", "host", "busybox", "sh", "-c",
                    "readlink /proc/self/ns/net; hostname; ls /sys/class/net")
    netns, hostname, interfaces = out.split("\n", 2)
    assert netns == os.readlink("/proc/self/ns/net")
    assert hostname == os.uname().nodename
    assert "lo" in interfaces.split()
    assert pyboxd.inspect(name)["HostConfig"]["NetworkMode"] == "host"


def test_oom_kill_is_137_with_oomkilled(pyboxd, names):
    name = names()
    proc = pyboxd.docker("run", "--name", name, "-m", "16m", "--memory-swap", "16m",
                         "busybox", "sh", "-c", "x=0123456789; while :; do x=$x$x; done",
                         timeout=120)
    assert proc.returncode == 137, proc.stderr
    info = pyboxd.inspect(name)
    assert info["State"]["OOMKilled"] is True
    assert info["State"]["ExitCode"] == 137


def test_create_then_start_and_inspect_format(pyboxd, names):
    name = names()
    cid = pyboxd.ok("create", "--name", name, "-l", "k=v", "busybox", "sleep", "1000").strip()
    fmt = "{{.State.Status}} {{.Name}} {{index .Config.Labels \"k\"}} {{.Config.Image}}"
    assert pyboxd.ok("inspect", "-f", fmt, name) == f"created /{name} v busybox\n"
    assert pyboxd.ok("start", name) == name + "\n"
    out = pyboxd.ok("inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.Id}}", name)
    running, pid, full = out.split()
    assert (running, full) == ("true", cid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"1000"]
    # Go template functions and nested paths
    assert pyboxd.ok("inspect", "-f", "{{json .Config.Cmd}}", name) == '["sleep","1000"]\n'
    assert pyboxd.ok("inspect", "-f", "{{.HostConfig.NetworkMode}}", name) == "default\n"
    assert json.loads(pyboxd.ok("inspect", "-f", "{{json .State}}", name))["Running"] is True


def _wait_log(pyboxd, name, text, timeout=20):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in pyboxd.docker("logs", name).stdout:
            return True
        time.sleep(0.05)
    return False
