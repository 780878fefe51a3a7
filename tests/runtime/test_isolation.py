"""What a user checks from inside a container: pid 1, hostname, namespaces,
mounts, masked and read-only paths, capabilities, rlimits, user, devices."""

import os

import pytest

pytestmark = pytest.mark.root


def run_sh(rt, bundle, script, *extra):
    bundle.sh(script)
    proc = rt("run", *extra, "-b", bundle.write(), rt.new_id(), check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_pid_namespace_and_hostname(rt, bundle):
    bundle.config["hostname"] = "box1"
    bundle.config["domainname"] = "example.test"
    out = run_sh(rt, bundle, "echo $$; hostname; cat /proc/sys/kernel/domainname; ps -o pid | wc -l")
    pid, host, domain, nprocs = out.split()
    assert (pid, host, domain) == ("1", "box1", "example.test")
    assert int(nprocs) <= 4  # header, sh, ps, wc: no host processes visible


def test_namespaces_differ_from_host(rt, bundle):
    out = run_sh(rt, bundle, "for n in pid net ipc uts mnt cgroup; do readlink /proc/1/ns/$n; done")
    inside = out.split()
    for ns, link in zip(("pid", "net", "ipc", "uts", "mnt", "cgroup"), inside, strict=True):
        assert link != os.readlink(f"/proc/self/ns/{ns}"), ns


def test_shared_namespace_when_not_listed(rt, bundle):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "network"]
    out = run_sh(rt, bundle, "readlink /proc/self/ns/net")
    assert out.strip() == os.readlink("/proc/self/ns/net")


def test_join_namespace_by_path(rt, bundle, tmp_path):
    bundle.config["hostname"] = "owner"
    a = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), a)
    pid = rt.state(a)["pid"]
    bundle.config.pop("hostname")
    bundle.linux["namespaces"] = [
        {"type": "pid"}, {"type": "mount"},
        {"type": "uts", "path": f"/proc/{pid}/ns/uts"},
        {"type": "network", "path": f"/proc/{pid}/ns/net"},
    ]
    out = run_sh(rt, bundle, "hostname; readlink /proc/self/ns/net")
    host, net = out.split()
    assert host == "owner"
    assert net == os.readlink(f"/proc/{pid}/ns/net")


def test_mounts_inside(rt, bundle):
    out = run_sh(rt, bundle, "cat /proc/self/mounts")
    mounts = {line.split()[1]: line.split() for line in out.splitlines()}
    assert mounts["/proc"][2] == "proc"
    assert mounts["/dev"][2] == "tmpfs" and "nosuid" in mounts["/dev"][3]
    assert mounts["/dev/pts"][2] == "devpts"
    assert mounts["/dev/shm"][2] == "tmpfs" and "size=65536k" in mounts["/dev/shm"][3]
    assert mounts["/dev/mqueue"][2] == "mqueue"
    assert mounts["/sys"][2] == "sysfs" and mounts["/sys"][3].startswith("ro,")
    cgroup = mounts["/sys/fs/cgroup"]
    if cgroup[2] == "tmpfs":
        # cgroup v1: the hierarchies are read-only, the tmpfs holding them is
        # writable, as runc leaves it (docker and podman users see this)
        hierarchies = [m for p, m in mounts.items() if p.startswith("/sys/fs/cgroup/")]
        assert hierarchies and all(m[3].startswith("ro,") for m in hierarchies)
        assert cgroup[3].startswith("rw,")
    else:
        assert cgroup[3].startswith("ro,")


def test_bind_mount_ro_and_tmpfs_options(rt, bundle, tmp_path):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "file").write_text("from host\n")
    bundle.config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(host_dir),
         "options": ["rbind", "ro"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "mode=700", "noexec"]},
    ]
    out = run_sh(rt, bundle, "cat /data/file; touch /data/new 2>&1 | grep -o 'Read-only'; "
                             "stat -c %a /scratch; grep ' /scratch ' /proc/mounts")
    lines = out.splitlines()
    assert lines[0] == "from host"
    assert lines[1] == "Read-only"
    assert lines[2] == "700"
    assert "noexec" in lines[3] and "size=1024k" in lines[3]


def test_default_devices(rt, bundle):
    out = run_sh(rt, bundle, "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom "
                             "/dev/tty /dev/fd /dev/stdin /dev/ptmx; echo x > /dev/null && "
                             "head -c 4 /dev/zero | wc -c")
    for dev in ("null", "zero", "full", "random", "urandom", "tty"):
        assert any(line.startswith("crw-rw-rw-") and line.endswith(f"/dev/{dev}")
                   for line in out.splitlines()), dev
    assert "/dev/fd -> /proc/self/fd" in out
    assert "/dev/ptmx -> pts/ptmx" in out
    assert out.splitlines()[-1].strip() == "4"


def test_linux_devices(rt, bundle):
    bundle.linux["devices"] = [{"type": "c", "path": "/dev/mynull", "major": 1, "minor": 3,
                                "fileMode": 0o620, "uid": 0, "gid": 5}]
    bundle.linux["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    out = run_sh(rt, bundle, "stat -c '%A %g %t:%T' /dev/mynull; echo hi > /dev/mynull && echo ok")
    assert out.split("\n")[:2] == ["crw--w---- 5 1:3", "ok"]


def test_masked_paths(rt, bundle):
    out = run_sh(rt, bundle, "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                             "grep ' /proc/keys ' /proc/mounts | cut -d' ' -f3")
    assert out.split() == ["0", "0", "tmpfs"]


def test_readonly_paths(rt, bundle):
    out = run_sh(rt, bundle, "echo 1 > /proc/sys/kernel/ns_last_pid 2>&1 || echo refused; "
                             "grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4")
    lines = out.splitlines()
    assert lines[-2].endswith("refused") or "Read-only" in lines[0]
    assert lines[-1].startswith("ro")


def test_readonly_root(rt, bundle):
    bundle.config["root"]["readonly"] = True
    out = run_sh(rt, bundle, "touch /x 2>&1; echo tmpfs-ok > /dev/shm/y && cat /dev/shm/y")
    assert "Read-only file system" in out and "tmpfs-ok" in out


def test_capabilities(rt, bundle):
    caps = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"]
    bundle.process["capabilities"] = {"bounding": caps, "effective": caps,
                                      "permitted": caps, "inheritable": [], "ambient": []}
    bundle.process["noNewPrivileges"] = True
    out = run_sh(rt, bundle, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status")
    fields = dict(line.split(":\t") for line in out.splitlines())
    want = f"{(1 << 0) | (1 << 10) | (1 << 5):016x}"
    assert fields["CapBnd"] == want and fields["CapEff"] == want and fields["CapPrm"] == want
    assert fields["CapInh"] == "0" * 16 and fields["NoNewPrivs"] == "1"


def test_user_groups_and_umask(rt, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 1002],
                              "umask": 0o077}
    bundle.process["cwd"] = "/tmp"
    out = run_sh(rt, bundle, "id -u; id -g; id -G; umask; pwd; grep CapEff /proc/self/status")
    lines = out.splitlines()
    assert lines[:5] == ["1000", "1001", "1001 5 1002", "0077", "/tmp"]
    # a non-root user keeps no effective capabilities after exec (no ambient set)
    assert lines[5].split()[1] == "0" * 16


def test_cwd_is_created(rt, bundle):
    bundle.process["cwd"] = "/work/dir"
    assert run_sh(rt, bundle, "pwd").strip() == "/work/dir"


def test_rlimits_and_oom_score_adj(rt, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                 {"type": "RLIMIT_NPROC", "soft": 300, "hard": 300}]
    bundle.process["oomScoreAdj"] = 500
    out = run_sh(rt, bundle, "ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj")
    assert out.split() == ["512", "1024", "300", "500"]


def test_env_and_args(rt, bundle):
    bundle.process["env"] = ["PATH=/bin", "GREETING=hello world", "EMPTY="]
    bundle.set_args("/bin/sh", "-c", 'echo "$GREETING|$EMPTY|$0|$1"', "zero", "one")
    out = rt("run", "-b", bundle.write(), rt.new_id()).stdout
    assert out == "hello world||zero|one\n"


def test_home_from_container_passwd_when_env_has_none(rt, bundle):
    # docker's config.json has no HOME; runc fills it from the container's
    # /etc/passwd (the busybox rootfs: root -> /root, daemon -> /usr/sbin)
    bundle.process["env"] = ["PATH=/bin"]
    assert run_sh(rt, bundle, 'echo "$HOME"') == "/root\n"
    bundle.process["user"] = {"uid": 1, "gid": 1}
    assert run_sh(rt, bundle, 'echo "$HOME"') == "/usr/sbin\n"
    bundle.process["user"] = {"uid": 4242, "gid": 4242}
    assert run_sh(rt, bundle, 'echo "$HOME"') == "/\n"
    bundle.process["env"] = ["PATH=/bin", "HOME=/mine"]
    assert run_sh(rt, bundle, 'echo "$HOME"') == "/mine\n"


def test_stdio_is_given_to_the_user(rt, bundle):
    # runc chowns stdio (pipes under docker, files here) to the process's uid, so
    # a non-root process can reopen /dev/stdout; /dev/null is left alone
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    null_before = os.stat("/dev/null")
    assert run_sh(rt, bundle, "echo reopened >> /dev/stdout") == "reopened\n"
    # untouched: any chown, even to the same owner, would move its ctime (its
    # owner alone proves nothing: a crun run of the OCI suite left it 1000's here)
    null_after = os.stat("/dev/null")
    assert (null_after.st_uid, null_after.st_ctime_ns) == (null_before.st_uid,
                                                           null_before.st_ctime_ns)
    bundle.process["user"] = {"uid": 0, "gid": 0}
    bundle.set_args("sleep", "30")
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.write(), cid)
    out = rt("exec", "-u", "1000:1000", cid, "sh", "-c", "echo from-exec >> /dev/stderr",
             check=False)
    assert (out.returncode, out.stderr) == (0, "from-exec\n")


def test_stdio_on_dev_null_is_the_containers_dev_null(rt, bundle):
    # stdin is the host's /dev/null (rt passes DEVNULL): as runc does, init
    # swaps it for the container's own /dev/null, opened read-write
    out = run_sh(rt, bundle, '[ "$(stat -L -c %d:%i /proc/self/fd/0)" = '
                             '"$(stat -c %d:%i /dev/null)" ] && echo same; echo x >&0 && echo rw')
    assert out == "same\nrw\n"


def test_sysctl(rt, bundle):
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
    out = run_sh(rt, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    assert out.split() == ["1", "123456789"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789"  # the host's is untouched


def test_session_keyring_is_private(rt, bundle):
    out = run_sh(rt, bundle, "grep _ses /proc/keys 2>/dev/null; cat /proc/self/stat | cut -d' ' -f6")
    # the container is its own session leader (setsid)
    assert out.split()[-1] == "1"


def test_cgroup_namespace_root(rt, bundle):
    out = run_sh(rt, bundle, "cat /proc/self/cgroup")
    for line in out.splitlines():
        assert line.split(":", 2)[2] == "/", line


def test_container_cgroup_visible_at_sys_fs_cgroup(rt, bundle):
    bundle.linux["resources"]["pids"] = {"limit": 77}
    out = run_sh(rt, bundle, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || "
                             "cat /sys/fs/cgroup/pids.max")
    assert out.strip() == "77"
