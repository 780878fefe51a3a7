"""Security and devices as docker's defaults, through the docker CLI: the 14
default capabilities, --cap-add/--cap-drop, the default seccomp profile and
--security-opt, --privileged, --device and --device-cgroup-rule, --ipc/--pid/
--uts host and container:NAME, --group-add, --sysctl, --oom-score-adj,
--shm-size, masked and read-only /proc paths; and a second pyboxd with
--userns-remap (a user made for the test, with its own subordinate ids)."""

import grp
import json
import os
import pwd
import secrets
import socket
import subprocess
import time
import uuid

import pytest

from .conftest import Pyboxd, mounts_under

pytestmark = [pytest.mark.root, pytest.mark.engine]

# CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE
# NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP: docker's default set
DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
CAP_CHOWN, CAP_NET_ADMIN, CAP_SYS_ADMIN = 0, 12, 21


def status_field(pyboxd, field, *run_args):
    """A field of /proc/self/status in a new container run with ``run_args``."""
    out = pyboxd.ok("run", "--rm", *run_args, "busybox", "grep", f"^{field}:",
                    "/proc/self/status")
    return out.split(":", 1)[1].strip()


def own_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(field)


# -- capabilities ------------------------------------------------------------------------
def test_default_capabilities_are_dockers_14(pyboxd):
    out = pyboxd.ok("run", "--rm", "busybox", "grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert int(caps["CapEff"], 16) == DOCKER_DEFAULT_CAPS
    assert int(caps["CapPrm"], 16) == DOCKER_DEFAULT_CAPS
    assert int(caps["CapBnd"], 16) == DOCKER_DEFAULT_CAPS
    assert bin(DOCKER_DEFAULT_CAPS).count("1") == 14
    # what the defaults allow and refuse
    assert pyboxd.ok("run", "--rm", "busybox", "sh", "-c",
                     "touch /f && chown 1:1 /f && stat -c %u /f") == "1\n"
    proc = pyboxd.docker("run", "--rm", "busybox", "ip", "link", "set", "lo", "mtu", "1400")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr


def test_cap_add_and_cap_drop(pyboxd):
    eff = int(status_field(pyboxd, "CapEff", "--cap-add", "NET_ADMIN", "--cap-drop", "chown"),
              16)
    assert eff == (DOCKER_DEFAULT_CAPS | 1 << CAP_NET_ADMIN) & ~(1 << CAP_CHOWN)
    out = pyboxd.ok("run", "--rm", "--cap-add", "CAP_NET_ADMIN", "busybox", "sh", "-c",
                    "ip link set lo mtu 1400 && cat /sys/class/net/lo/mtu")
    assert out == "1400\n"
    proc = pyboxd.docker("run", "--rm", "--cap-drop", "CHOWN", "busybox", "sh", "-c",
                         "touch /f && chown 1:1 /f")
    assert proc.returncode == 1 and "Operation not permitted" in proc.stderr
    # ALL: everything pyboxd itself holds; drop ALL then add one back
    assert int(status_field(pyboxd, "CapEff", "--cap-add", "ALL"), 16) == \
        int(own_status("CapBnd"), 16)
    assert int(status_field(pyboxd, "CapEff", "--cap-drop", "ALL", "--cap-add", "KILL"),
               16) == 1 << 5
    proc = pyboxd.docker("run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true")
    assert proc.returncode == 125 and "NOT_A_CAP" in proc.stderr


# -- seccomp and no-new-privileges --------------------------------------------------------
def test_default_seccomp_profile(pyboxd, tmp_path):
    assert status_field(pyboxd, "Seccomp") == "2"  # filter mode
    # a new user namespace needs no capability: only seccomp refuses it
    proc = pyboxd.docker("run", "--rm", "busybox", "unshare", "-U", "true")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    assert pyboxd.ok("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox",
                     "unshare", "-U", "echo", "in a userns") == "in a userns\n"
    assert status_field(pyboxd, "Seccomp", "--security-opt", "seccomp=unconfined") == "0"
    # CAP_SYS_ADMIN brings back what it makes safe (docker's rule)
    assert pyboxd.ok("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                     "mount -t tmpfs none /tmp && echo mounted") == "mounted\n"
    # a profile file: the CLI sends its content
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}))
    proc = pyboxd.docker("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
                         "sh", "-c", "touch /file-ok && mkdir /dir")
    assert proc.returncode == 1 and "Permission denied" in proc.stderr  # errno 13
    # a broken profile
    profile.write_text("{not json")
    proc = pyboxd.docker("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
                         "true")
    assert proc.returncode == 125


def test_no_new_privileges(pyboxd):
    assert status_field(pyboxd, "NoNewPrivs") == "0"
    assert status_field(pyboxd, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert status_field(pyboxd, "NoNewPrivs", "--security-opt",
                        "no-new-privileges:true") == "1"
    assert status_field(pyboxd, "NoNewPrivs", "--security-opt",
                        "no-new-privileges=false") == "0"
    # options dockerd knows but that mean nothing here are accepted; others refused
    for opt in ("apparmor=unconfined", "label=disable"):
        assert pyboxd.docker("run", "--rm", "--security-opt", opt, "busybox",
                             "true").returncode == 0
    for opt, message in (("nonsense=1", 'invalid --security-opt 2: "nonsense=1"'),
                         ("no-new-privileges=maybe",
                          'invalid --security-opt 2: "no-new-privileges=maybe"')):
        proc = pyboxd.docker("run", "--rm", "--security-opt", opt, "busybox", "true")
        assert proc.returncode == 125 and message in proc.stderr, proc.stderr


def test_privileged(pyboxd, names):
    out = pyboxd.ok("run", "--rm", "--privileged", "busybox", "sh", "-c",
                    "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
                    "mount -t tmpfs none /tmp && echo mounted; "
                    "ls /dev/fuse /dev/loop-control 2>/dev/null | wc -l; "
                    "ls /sys/firmware | wc -l; grep ' /proc/sys ' /proc/mounts | wc -l")
    lines = out.splitlines()
    assert int(lines[0].split()[1], 16) == int(own_status("CapBnd"), 16)
    assert lines[1].split() == ["Seccomp:", "0"]
    assert lines[2] == "mounted"
    host_devices = sum(os.path.exists(p) for p in ("/dev/fuse", "/dev/loop-control"))
    assert lines[3] == str(host_devices)  # the host's devices are there
    assert lines[4] == str(len(os.listdir("/sys/firmware")))  # not masked
    assert lines[5] == "0"  # /proc/sys not made read-only
    name = names()
    pyboxd.ok("create", "--name", name, "--privileged", "busybox", "true")
    assert pyboxd.inspect(name)["HostConfig"]["Privileged"] is True


# -- devices -----------------------------------------------------------------------------------
def test_device_mapping_and_permissions(pyboxd):
    out = pyboxd.ok("run", "--rm", "--device", "/dev/null:/dev/xnull", "busybox", "sh", "-c",
                    "stat -c '%t:%T %F' /dev/xnull; echo data > /dev/xnull && echo wrote")
    assert out == "1:3 character special file\nwrote\n"
    # read-only permission in the device cgroup (of a device not in docker's
    # default allow list, as /dev/null is)
    if os.path.exists("/dev/fuse"):
        proc = pyboxd.docker("run", "--rm", "--device", "/dev/fuse:/dev/xfuse:r", "busybox",
                             "sh", "-c", "exec 3</dev/xfuse && echo opened; exec 4>/dev/xfuse")
        assert proc.stdout == "opened\n"
        assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    proc = pyboxd.docker("run", "--rm", "--device", "/dev/pybox-no-such-device", "busybox",
                         "true")
    # the CLI's rule: a start error saying "no such file or directory" is 127
    assert proc.returncode == 127
    assert ("error gathering device information while adding custom device "
            "'/dev/pybox-no-such-device': no such file or directory") in proc.stderr


def test_device_cgroup_rule(pyboxd):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse (10:229) on the host")
    script = "mknod /tmp/fuse c 10 229 && exec 3<>/tmp/fuse && echo opened"
    proc = pyboxd.docker("run", "--rm", "busybox", "sh", "-c", script)
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    assert pyboxd.ok("run", "--rm", "--device-cgroup-rule", "c 10:229 rw", "busybox", "sh",
                     "-c", script) == "opened\n"
    assert pyboxd.ok("run", "--rm", "--device-cgroup-rule", "c 10:* rwm", "busybox", "sh",
                     "-c", script) == "opened\n"
    proc = pyboxd.docker("run", "--rm", "--device-cgroup-rule", "x 1:2 q", "busybox", "true")
    assert proc.returncode == 125 and "invalid device cgroup format" in proc.stderr


# -- namespaces --------------------------------------------------------------------------------
def ns_inside(pyboxd, kind, *run_args):
    return pyboxd.ok("run", "--rm", *run_args, "busybox", "readlink",
                     f"/proc/self/ns/{kind}").strip()


def test_host_namespaces(pyboxd):
    for kind, flag in (("ipc", "--ipc"), ("pid", "--pid"), ("uts", "--uts")):
        host = os.readlink(f"/proc/self/ns/{kind}")
        assert ns_inside(pyboxd, kind) != host
        assert ns_inside(pyboxd, kind, flag, "host") == host
    assert pyboxd.ok("run", "--rm", "--uts", "host", "busybox", "hostname") == \
        socket.gethostname() + "\n"
    # --userns=host is the default of a pyboxd without --userns-remap: no user
    # namespace (the full identity map)
    assert pyboxd.ok("run", "--rm", "--userns", "host", "busybox", "cat",
                     "/proc/self/uid_map").split() == ["0", "0", "4294967295"]
    proc = pyboxd.docker("run", "--rm", "--userns", "private", "busybox", "true")
    assert proc.returncode == 125 and "invalid USER mode" in proc.stderr
    # --pid host: the host's processes are visible (this test's own pid)
    out = pyboxd.ok("run", "--rm", "--pid", "host", "busybox", "cat",
                    f"/proc/{os.getpid()}/comm")
    assert out.strip() == open(f"/proc/{os.getpid()}/comm").read().strip()


def test_container_namespaces(pyboxd, names):
    first = names()
    pyboxd.ok("run", "-d", "--name", first, "--ipc", "shareable", "busybox", "sh", "-c",
              "echo shared > /dev/shm/note; exec sleep 1000")
    pid = pyboxd.inspect(first)["State"]["Pid"]
    for kind, flag in (("ipc", "--ipc"), ("pid", "--pid")):
        assert ns_inside(pyboxd, kind, flag, f"container:{first}") == \
            os.readlink(f"/proc/{pid}/ns/{kind}")
    # the shared IPC namespace has the same /dev/shm; the pid namespace the same processes
    assert pyboxd.ok("run", "--rm", "--ipc", f"container:{first}", "busybox", "cat",
                     "/dev/shm/note") == "shared\n"
    out = pyboxd.ok("run", "--rm", "--pid", f"container:{first}", "busybox", "ps", "-o",
                    "pid,args")
    assert "1 sleep 1000" in " ".join(out.split())
    # --ipc host: the host's /dev/shm
    note = f"/dev/shm/pybox-test-{uuid.uuid4().hex[:8]}"
    with open(note, "w") as f:
        f.write("from the host\n")
    try:
        assert pyboxd.ok("run", "--rm", "--ipc", "host", "busybox", "cat", note) == \
            "from the host\n"
    finally:
        os.unlink(note)
    # the donor's /dev/shm goes with it when it stops
    pyboxd.ok("stop", "-t", "0", first)
    assert not mounts_under(os.path.join(pyboxd.data_root, "containers"))
    # a donor that is not shareable (docker's default, private)
    private = names()
    pyboxd.ok("run", "-d", "--name", private, "busybox", "sleep", "1000")
    proc = pyboxd.docker("run", "--rm", "--ipc", f"container:{private}", "busybox", "true")
    assert proc.returncode == 125 and "non-shareable IPC" in proc.stderr
    # joining a container that is not running
    stopped = names()
    pyboxd.ok("create", "--name", stopped, "busybox", "true")
    proc = pyboxd.docker("run", "--rm", "--ipc", f"container:{stopped}", "busybox", "true")
    assert proc.returncode != 0
    assert "non running container" in proc.stderr or "not running" in proc.stderr


# -- process settings ----------------------------------------------------------------------------
def test_group_add_sysctl_oom_score_adj_shm_size(pyboxd):
    group_name, _, gid = pyboxd.ok("run", "--rm", "busybox", "sh", "-c",
                                   "tail -1 /etc/group").strip().split(":")[:3]
    out = pyboxd.ok("run", "--rm", "--group-add", "1234", "--group-add", group_name,
                    "busybox", "id", "-G")
    assert set(out.split()) == {"0", "1234", gid}
    proc = pyboxd.docker("run", "--rm", "--group-add", "pybox-no-such-group", "busybox", "true")
    assert proc.returncode == 125 and "Unable to find group pybox-no-such-group" in proc.stderr
    out = pyboxd.ok("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl",
                    "kernel.shmmax=123456789", "busybox", "cat",
                    "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax")
    assert out == "1\n123456789\n"
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789"  # the container's own namespace
    out = pyboxd.ok("run", "--rm", "--oom-score-adj", "500", "busybox", "cat",
                    "/proc/self/oom_score_adj")
    assert out == "500\n"
    out = pyboxd.ok("run", "--rm", "--shm-size", "16m", "busybox", "df", "-k", "/dev/shm")
    assert out.splitlines()[-1].split()[1] == "16384"
    default = pyboxd.ok("run", "--rm", "busybox", "df", "-k", "/dev/shm")
    assert default.splitlines()[-1].split()[1] == "65536"  # docker's 64 MiB


def test_masked_and_read_only_proc_paths(pyboxd):
    # docker's masked files read as empty (/dev/null over them), its masked
    # directories are empty (a read-only tmpfs); those this kernel has
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list",
                         "/proc/sched_debug", "/proc/latency_stats") if os.path.exists(p)]
    dirs = [p for p in ("/proc/acpi", "/proc/scsi", "/sys/firmware") if os.path.isdir(p)]
    assert files and dirs
    script = "; ".join([f"wc -c < {p}" for p in files] + [f"ls -A {p} | wc -l" for p in dirs])
    out = pyboxd.ok("run", "--rm", "busybox", "sh", "-c", script)
    assert [x.strip() for x in out.splitlines()] == ["0"] * (len(files) + len(dirs))
    assert any(os.listdir(p) for p in dirs)  # (the host's are not empty)
    out = pyboxd.ok("run", "--rm", "busybox", "sh", "-c",
                    "echo x > /proc/sys/kernel/domainname; echo $?; "
                    "echo h > /proc/sysrq-trigger; echo $?; "
                    "grep -E ' /proc/(sys|bus|fs|irq) ' /proc/mounts | awk '{print $2, $4}'")
    lines = out.splitlines()
    assert lines[0] != "0" and lines[1] != "0"  # writes refused
    ro = dict(line.split() for line in lines[2:])
    assert set(ro) == {p for p in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq")
                       if os.path.exists(p)}
    assert all(opts.split(",")[0] == "ro" for opts in ro.values())
    # /proc/sys stays readable
    assert pyboxd.ok("run", "--rm", "busybox", "cat", "/proc/sys/kernel/ostype") == "Linux\n"


# -- pyboxd --userns-remap ---------------------------------------------------------------------------
def _used_ranges():
    used = []
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        used.append((int(parts[1]), int(parts[1]) + int(parts[2])))
        except FileNotFoundError:
            pass
    return used


def _free_range(size=65536):
    used = _used_ranges()
    for _ in range(200):
        start = 400000 + secrets.randbelow(4000) * size
        if all(start + size <= lo or start >= hi for lo, hi in used):
            return start
    raise RuntimeError("no free subordinate id range found")


def _drop_lines(path, user):
    """Remove ``user``'s lines (the test's own) from /etc/subuid or /etc/subgid."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    keep = [line for line in lines if line.split(":", 1)[0] != user]
    if keep != lines:
        with open(path + ".pybox-tmp", "w") as f:
            f.writelines(keep)
        os.chmod(path + ".pybox-tmp", os.stat(path).st_mode & 0o7777)
        os.replace(path + ".pybox-tmp", path)


@pytest.fixture
def remapped(pyboxd):
    """A second private pyboxd with --userns-remap USER, USER made here (a system
    user with 65536 subordinate uids and gids); everything removed at the end."""
    for tool in ("useradd", "usermod", "userdel"):
        if not subprocess.run(["which", tool], capture_output=True).returncode == 0:
            pytest.skip(f"needs {tool} (passwd)")
    user = f"pbxt{uuid.uuid4().hex[:8]}"
    start = _free_range()
    end = start + 65535
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", user], check=True, capture_output=True)
    daemon = None
    try:
        subprocess.run(["usermod", "--add-subuids", f"{start}-{end}", "--add-subgids",
                        f"{start}-{end}", user], check=True, capture_output=True)
        daemon = Pyboxd(extra_args=["--userns-remap", user])
        # its base directory (mkdtemp's 0700) keeps the remapped root out:
        # pyboxd says so at start, as dockerd does, rather than fail each start
        with pytest.raises(RuntimeError) as refused:
            daemon.start()
        assert "restricts access to the remapped root" in str(refused.value)
        os.chmod(daemon.base, 0o711)
        daemon.start()
        daemon.import_busybox()
        daemon.remap_start = start
        daemon.remap_user = user
        yield daemon
    finally:
        problems = daemon.stop() if daemon is not None else []
        if daemon is not None and not mounts_under(daemon.base):
            import shutil

            shutil.rmtree(daemon.base, ignore_errors=True)
        subprocess.run(["userdel", user], capture_output=True)
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, user)
        try:
            grp.getgrnam(user)
            subprocess.run(["groupdel", user], capture_output=True)
        except KeyError:
            pass
    assert not problems, "\n".join(problems)


def test_userns_remap(remapped, tmp_path):
    d, start = remapped, remapped.remap_start
    assert pwd.getpwnam(d.remap_user)
    info = json.loads(d.ok("info", "--format", "{{json .SecurityOptions}}"))
    assert "name=userns" in info
    name = "remapped-" + uuid.uuid4().hex[:8]
    d.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
         "echo mine > /owned; mkdir /data; exec sleep 1000")
    # the maps, seen from inside: root is the first subordinate id
    assert d.ok("exec", name, "cat", "/proc/self/uid_map").split() == ["0", str(start), "65536"]
    assert d.ok("exec", name, "cat", "/proc/self/gid_map").split() == ["0", str(start), "65536"]
    assert d.ok("exec", name, "id", "-u") == "0\n"
    # the container's root owns its files as the subordinate id on the host
    merged = d.inspect(name)["GraphDriver"]["Data"]["MergedDir"]
    upper = d.inspect(name)["GraphDriver"]["Data"]["UpperDir"]
    st = os.stat(os.path.join(upper, "owned"))
    assert (st.st_uid, st.st_gid) == (start, start)
    assert os.stat(os.path.join(merged, "owned")).st_uid == start
    # from the host, the container's processes run as that id too
    pid = d.inspect(name)["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(start)}
    # cp both ways: the container's ids inside, the host's outside
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    os.chown(src, 0, 0)
    d.ok("cp", str(src), f"{name}:/data/")
    assert d.ok("exec", name, "stat", "-c", "%u:%g %n", "/data/in.txt") == \
        "0:0 /data/in.txt\n"
    assert os.stat(os.path.join(upper, "data", "in.txt")).st_uid == start
    d.ok("exec", name, "sh", "-c", "echo back > /data/out.txt && chown 123:45 /data/out.txt")
    proc = d.docker("cp", f"{name}:/data/out.txt", "-", raw=True)
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        member = tar.getmember("out.txt")
        assert (member.uid, member.gid) == (123, 45)
        assert tar.extractfile(member).read() == b"back\n"
    # a named volume belongs to the remapped root
    vol = "remapvol-" + uuid.uuid4().hex[:8]
    out = d.ok("run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c",
               "echo v > /v/f && stat -c %u /v/f")
    assert out == "0\n"
    mountpoint = json.loads(d.ok("volume", "inspect", vol))[0]["Mountpoint"]
    assert os.stat(os.path.join(mountpoint, "f")).st_uid == start
    d.ok("volume", "rm", vol)
    # an image's VOLUME content is copied into a new volume with its owners,
    # which are the container's ids shifted (a service user's 1000 -> start+1000)
    src = "remapsrc-" + uuid.uuid4().hex[:8]
    ref = f"remap-vol-{uuid.uuid4().hex[:8]}:1"
    d.ok("run", "--name", src, "busybox", "sh", "-c",
         "mkdir /data && echo seed > /data/seed && chown 1000:1000 /data/seed")
    d.ok("commit", "--change", "VOLUME /data", src, ref)
    out = d.ok("run", "--rm", "-v", f"{vol}:/data", ref, "stat", "-c", "%u:%g", "/data/seed")
    assert out == "1000:1000\n"
    mountpoint = json.loads(d.ok("volume", "inspect", vol))[0]["Mountpoint"]
    st = os.stat(os.path.join(mountpoint, "seed"))
    assert (st.st_uid, st.st_gid) == (start + 1000, start + 1000)
    d.ok("rm", src)
    d.ok("volume", "rm", vol)
    d.ok("rmi", ref)
    # --userns=host opts a container out: no user namespace
    out = d.ok("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]
    # --privileged needs that opt-out
    proc = d.docker("run", "--rm", "--privileged", "busybox", "true")
    assert proc.returncode == 125
    assert "privileged mode is incompatible with user namespaces" in proc.stderr
    assert d.ok("run", "--rm", "--privileged", "--userns", "host", "busybox", "id", "-u") == \
        "0\n"
    # a healthcheck runs in the remapped container too
    d.ok("run", "-d", "--name", name + "-h", "--health-cmd", "test $(id -u) = 0",
         "--health-interval", "200ms", "busybox", "sleep", "1000")
    deadline = time.monotonic() + 20
    while d.inspect(name + "-h")["State"]["Health"]["Status"] != "healthy":
        assert time.monotonic() < deadline, d.inspect(name + "-h")["State"]["Health"]
        time.sleep(0.1)
    d.ok("rm", "-f", name, name + "-h")
