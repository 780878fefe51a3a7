"""create/run flags -> the Docker API body, as the docker CLI builds it (units,
field names, zero values, what is sent only when given).  tests/clients checks
the same bodies against the real docker CLI's through a proxy."""

import pytest

from pybox.cli.pybox.container_opts import build_create_body, parse_mount, parse_port_specs
from pybox.cli.pybox.containers import _create_flagset
from pybox.errors import FlagError

pytestmark = pytest.mark.unit


def body(*argv, api="1.44", environ=None, console=None, detach=False):
    opts = _create_flagset("pybox run", run=True).parse(list(argv))
    return build_create_body(opts, api, environ=environ or {}, console_size=console,
                             detach=detach)


def test_defaults_match_dockers_zero_body():
    query, b = body("busybox")
    assert query == {"name": None}
    assert list(b)[:6] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                           "AttachStderr"]
    assert (b["AttachStdout"], b["AttachStderr"], b["AttachStdin"]) == (True, True, False)
    assert b["Env"] is None and b["Cmd"] is None and b["Entrypoint"] is None
    assert b["Volumes"] == {} and b["Labels"] == {}
    h = b["HostConfig"]
    assert h["NetworkMode"] == "default" and h["MemorySwappiness"] == -1
    assert h["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert h["Dns"] == [] and h["Devices"] == [] and h["Ulimits"] == []
    assert h["PidsLimit"] == 0 and h["OomKillDisable"] is False and h["ConsoleSize"] == [0, 0]
    assert "Init" not in h and "StopTimeout" not in b and "Mounts" not in h
    assert list(b["NetworkingConfig"]["EndpointsConfig"]) == ["default"]


def test_resources_in_dockers_units():
    _, b = body("-m", "64m", "--memory-swap", "-1", "--memory-reservation", "1.5g", "-c", "512",
                "--cpus", "1.5", "--cpu-period", "100000", "--cpu-quota", "50000",
                "--cpuset-cpus", "0-1", "--pids-limit", "100", "--blkio-weight", "300",
                "--device-read-bps", "/dev/sda:1mb", "--device-write-iops", "/dev/sda:100",
                "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=50", "--oom-kill-disable",
                "--shm-size", "128m", "busybox")
    h = b["HostConfig"]
    assert h["Memory"] == 67108864 and h["MemorySwap"] == -1
    assert h["MemoryReservation"] == int(1.5 * (1 << 30))
    assert h["NanoCpus"] == 1500000000 and h["CpuShares"] == 512
    assert (h["CpuPeriod"], h["CpuQuota"], h["CpusetCpus"]) == (100000, 50000, "0-1")
    assert h["PidsLimit"] == 100 and h["BlkioWeight"] == 300 and h["OomKillDisable"] is True
    assert h["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": 1048576}]
    assert h["BlkioDeviceWriteIOps"] == [{"Path": "/dev/sda", "Rate": 100}]
    assert h["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024},
                            {"Name": "nproc", "Hard": 50, "Soft": 50}]
    assert h["ShmSize"] == 134217728


def test_process_and_identity_flags():
    _, b = body("-e", "A=1", "-e", "HOME", "-e", "UNSET", "-w", "/w", "-u", "1:2", "-h", "hn",
                "-l", "a=b", "-l", "c", "--stop-signal", "USR1", "--stop-timeout", "0",
                "--entrypoint", "/bin/sh", "--name", "n", "-it", "--rm", "busybox", "-c", "x",
                environ={"HOME": "/root"})
    assert b["Env"] == ["A=1", "HOME=/root", "UNSET"]
    assert (b["WorkingDir"], b["User"], b["Hostname"]) == ("/w", "1:2", "hn")
    assert b["Labels"] == {"a": "b", "c": ""}
    assert b["StopSignal"] == "USR1" and b["StopTimeout"] == 0
    assert b["Entrypoint"] == ["/bin/sh"] and b["Cmd"] == ["-c", "x"]
    assert (b["Tty"], b["OpenStdin"], b["StdinOnce"], b["AttachStdin"]) == (True,) * 4
    assert b["HostConfig"]["AutoRemove"] is True
    _, b = body("--entrypoint=", "busybox")
    assert b["Entrypoint"] == [""]


def test_detach_attaches_nothing_and_console_size():
    _, b = body("-dit", "busybox", detach=True)
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"], b["StdinOnce"]) == \
        (False, False, False, False)
    _, b = body("-it", "busybox", console=(24, 80))
    assert b["HostConfig"]["ConsoleSize"] == [24, 80]
    with pytest.raises(FlagError, match="Conflicting options: -a and -d"):
        body("-a", "stdout", "busybox", detach=True)


def test_storage_security_lifecycle():
    _, b = body("-v", "/h:/c:ro", "-v", "/anon", "-v", "named:/n", "--tmpfs", "/run:size=1m",
                "--read-only", "--mount", "type=volume,src=v,dst=/v,volume-nocopy",
                "--restart", "on-failure:3", "--init", "--health-cmd", "true",
                "--health-interval", "5s", "--health-retries", "2", "--cap-add", "net_admin",
                "--cap-add", "CAP_SYS_TIME", "--cap-drop", "ALL", "--security-opt",
                "no-new-privileges", "--privileged", "--device", "/dev/fuse",
                "--ipc", "host", "--pid", "container:x", "--uts", "host", "--group-add", "10",
                "--sysctl", "net.core.somaxconn=1024", "--oom-score-adj", "-500", "busybox")
    h = b["HostConfig"]
    assert h["Binds"] == ["/h:/c:ro", "named:/n"] and b["Volumes"] == {"/anon": {}}
    assert h["Tmpfs"] == {"/run": "size=1m"} and h["ReadonlyRootfs"] is True
    assert h["Mounts"] == [{"Type": "volume", "Source": "v", "Target": "/v",
                            "VolumeOptions": {"NoCopy": True}}]
    assert h["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert h["Init"] is True
    assert b["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9,
                                "Retries": 2}
    assert h["CapAdd"] == ["CAP_NET_ADMIN", "CAP_SYS_TIME"] and h["CapDrop"] == ["ALL"]
    assert h["SecurityOpt"] == ["no-new-privileges"] and h["Privileged"] is True
    assert h["Devices"] == [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                             "CgroupPermissions": "rwm"}]
    assert (h["IpcMode"], h["PidMode"], h["UTSMode"]) == ("host", "container:x", "host")
    assert h["GroupAdd"] == ["10"] and h["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert h["OomScoreAdj"] == -500


def test_network_flags_and_the_api_version():
    _, b = body("--network", "none", "busybox")
    assert b["HostConfig"]["NetworkMode"] == "none"
    assert b["NetworkingConfig"] == {"EndpointsConfig": {}}
    _, b = body("--network", "mynet", "--network-alias", "web", "--ip", "10.0.0.5",
                "--mac-address", "02:42:ac:11:00:02", "busybox")
    ep = b["NetworkingConfig"]["EndpointsConfig"]["mynet"]
    assert ep["Aliases"] == ["web"] and ep["IPAMConfig"] == {"IPv4Address": "10.0.0.5"}
    assert ep["MacAddress"] == "02:42:ac:11:00:02" and "MacAddress" not in b
    _, b = body("--mac-address", "02:42:ac:11:00:02", "busybox", api="1.41")
    assert b["MacAddress"] == "02:42:ac:11:00:02"
    _, b = body("-p", "8080:80", "-p", "127.0.0.1::53/udp", "-p", "9000-9001:90-91", "-P",
                "--expose", "7", "--dns", "1.1.1.1", "--add-host", "h=1.2.3.4", "busybox")
    assert b["ExposedPorts"] == {"53/udp": {}, "7/tcp": {}, "80/tcp": {}, "90/tcp": {},
                                 "91/tcp": {}}
    h = b["HostConfig"]
    assert h["PortBindings"]["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert h["PortBindings"]["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert h["PortBindings"]["91/tcp"] == [{"HostIp": "", "HostPort": "9001"}]
    assert h["PublishAllPorts"] is True and h["Dns"] == ["1.1.1.1"]
    assert h["ExtraHosts"] == ["h:1.2.3.4"]
    with pytest.raises(FlagError, match="only supported for user-defined networks"):
        body("--network-alias", "x", "busybox")


@pytest.mark.parametrize("argv,message", [
    (["--restart", "always", "--rm"], "cannot specify both --restart and --rm"),
    (["--pid", "foo"], "--pid: invalid PID mode"),
    (["--memory-swappiness", "200"], "Valid memory swappiness range is 0-100"),
    (["--oom-score-adj", "2000"], "range for oom score adj is"),
    (["--restart", "sometimes"], "invalid restart policy format"),
    (["--no-healthcheck", "--health-cmd", "x"], "conflicts with --health-"),
])
def test_bad_values(argv, message):
    with pytest.raises(FlagError, match=message.replace("(", r"\(")) as e:
        body(*argv, "busybox")
    assert e.value.exit_status == 125


@pytest.mark.parametrize("argv", [["--ulimit", "nofile=10:5"], ["--ulimit", "bogus=1"],
                                  ["--cpus", "1.0000000001"], ["--health-interval", "5x"],
                                  ["--device-read-bps", "sda:1m"]])
def test_bad_flag_values_are_flag_errors(argv):
    with pytest.raises(FlagError) as e:
        body(*argv, "busybox")
    assert str(e.value).startswith("invalid argument")


def test_mount_and_port_parsers():
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=1k,tmpfs-mode=1770") == \
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1770}}
    assert parse_mount("type=bind,source=/a,target=/b,readonly,bind-propagation=rshared") == \
        {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True,
         "BindOptions": {"Propagation": "rshared"}}
    with pytest.raises(ValueError, match="target is required"):
        parse_mount("type=bind,src=/a")
    exposed, bindings = parse_port_specs(["[::1]:8080:80", "target=81,published=8081"])
    assert bindings == {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}],
                        "81/tcp": [{"HostIp": "", "HostPort": "8081"}]}
