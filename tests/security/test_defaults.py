"""Container defaults as docker's (issue 13, point 5): what a process inside a
pyboxd container sees -- capabilities, seccomp, no_new_privs, masked and
read-only paths, the mount table, device nodes and device rules, sysctls, its
OOM score -- and what a write to /sys/fs/cgroup, /proc/sys or /etc/hosts gets,
for the default container and for --privileged, --read-only, --network host,
--security-opt writable-cgroups / systempaths=unconfined.

One container per configuration runs PROBE (busybox sh) and prints everything
as "key value" lines; the tests parse that.  docs/security.md has the whole
comparison with dockerd's containers and how it was made.
"""

import errno
import os
import subprocess

import pytest

# moby's daemon/pkg/oci/caps/defaults.go: CHOWN DAC_OVERRIDE FOWNER FSETID KILL
# SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
# moby's daemon/pkg/oci/defaults.go (docker 28)
DOCKER_MASKED = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                 "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                 "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"]
DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# what dockerd (20.10 and 28, runc 1.1) gives a default container in /dev
DEFAULT_DEV = {"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
               "stdin", "stdout", "tty", "urandom", "zero"}
# the device cgroup of a default docker container (devices.list, cgroup v1):
# docker's rules plus runc's own defaults; pybox may allow less, never more
DOCKER_DEVICE_RULES = {"b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                       "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",
                       "c 136:* rwm", "c 10:200 rwm"}

PROBE = r"""
st() { grep "^$1:" /proc/self/status | cut -f2; }
echo "caps $(st CapEff) $(st CapPrm) $(st CapBnd) $(st CapInh) $(st CapAmb)"
echo "nnp $(st NoNewPrivs)"
echo "seccomp $(st Seccomp)"
echo "oom $(cat /proc/self/oom_score_adj)"
while read -r id parent dev root point opts rest; do
  set -- $rest; while [ "$1" != "-" ]; do shift; done
  echo "mount $point $opts $2 $4"
done < /proc/self/mountinfo
# what a write gets: "ok" or the error's text
try() { out=$( (eval "$2") 2>&1 ) && echo "write $1 ok" || echo "write $1 ${out##*: }"; }
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo "cgroup 2"; h=/sys/fs/cgroup
else
  echo "cgroup 1"; h=/sys/fs/cgroup/pids
fi
try cgroup-top "mkdir /sys/fs/cgroup/pybox-probe && rmdir /sys/fs/cgroup/pybox-probe"
try cgroup-hierarchy "mkdir $h/pybox-probe2 && rmdir $h/pybox-probe2"
try proc-sys "echo pybox > /proc/sys/kernel/domainname"
try etc-hosts "touch /etc/hosts"
try etc-resolv "touch /etc/resolv.conf"
try dev-shm "touch /dev/shm/p && rm /dev/shm/p"
for p in $MASKED; do
  if [ -d $p ]; then echo "masked $p dir $(ls -A $p | wc -l)"
  elif [ -e $p ]; then echo "masked $p file $(head -c 64 $p 2>/dev/null | wc -c)"
  else echo "masked $p absent"; fi
done
for s in net.ipv4.ip_unprivileged_port_start net.ipv4.ping_group_range; do
  echo "sysctl $s $(tr '\t' ' ' < /proc/sys/$(echo $s | tr . /))"
done
echo "dev $(ls -A /dev | tr '\n' ' ')"
ls -ln /dev | while read -r mode links uid gid major minor rest; do
  case $mode in c*) echo "node ${rest##* } $mode $uid:$gid ${major%,}:$minor";; esac
done
d=/sys/fs/cgroup/devices/devices.list
[ -f $d ] && sed 's/^/devrule /' $d
true
"""

# system calls docker 28's default profile refuses or restricts (run with the
# host's python3, its /usr bound read-only into the container)
SECCOMP_PROBE = r"""
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    return "ok" if libc.syscall(nr, *args) >= 0 else errno.errorcode[ctypes.get_errno()]
print("sys personality-query", call(135, ctypes.c_ulong(0xFFFFFFFF)))
print("sys personality-addr-no-randomize", call(135, ctypes.c_ulong(0x0040000)))
print("sys io_uring_setup", call(425, 1, None))
print("sys unshare-user", call(272, 0x10000000))
print("sys ptrace-traceme", call(101, 0, 0, 0, 0))  # strace and gdb need ptrace
print("sys process_vm_readv", call(310, __import__("os").getpid(), None, 0, None, 0, 0))
print("sys adjtimex-read", call(159, ctypes.create_string_buffer(256)))  # modes 0: a read
print("sys kcmp", call(312, 1, 1, 0, 0, 0))
try:
    socket.socket(40, socket.SOCK_STREAM).close()
    print("sys socket-vsock ok")
except OSError as e:
    print("sys socket-vsock", errno.errorcode[e.errno])
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    print("sys socket-inet ok")
except OSError as e:
    print("sys socket-inet", errno.errorcode[e.errno])
"""
LD_SO = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
HOST_USR = "/pybox-host-usr"  # where the host's /usr goes (not /usr: PATH finds busybox)


def host_masked() -> list[str]:
    """docker's masked paths on this host: the list, then each possible CPU's
    thermal_throttle directory that exists."""
    paths = list(DOCKER_MASKED)
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            spec = f.read().strip()
    except OSError:
        spec = ""
    for part in filter(None, spec.split(",")):
        first, _, last = part.partition("-")
        for cpu in range(int(first), int(last or first) + 1):
            path = f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"
            if os.path.exists(path):
                paths.append(path)
    return paths


class Probe:
    """PROBE's output, parsed."""

    def __init__(self, text: str):
        self.text = text
        # point -> (per-mount options, fstype, superblock options); the last one wins
        self.mounts: dict[str, tuple[str, str, str]] = {}
        self.writes: dict[str, str] = {}
        self.masked: dict[str, tuple[str, ...]] = {}
        self.sysctl: dict[str, str] = {}
        self.nodes: dict[str, tuple[str, str, str]] = {}
        self.devrules: set[str] = set()
        self.sys: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            words = rest.split()
            if kind == "mount":
                self.mounts[words[0]] = (words[1], words[2], words[3])
            elif kind == "write":
                self.writes[words[0]] = rest.partition(" ")[2]
            elif kind == "masked":
                self.masked[words[0]] = tuple(words[1:])
            elif kind == "sysctl":
                self.sysctl[words[0]] = " ".join(words[1:])
            elif kind == "node":
                self.nodes[words[0]] = tuple(words[1:])
            elif kind == "devrule":
                self.devrules.add(rest)
            elif kind == "sys":
                self.sys[words[0]] = words[1]
            elif kind:
                self.fields[kind] = rest

    def caps(self) -> list[int]:
        return [int(x, 16) for x in self.fields["caps"].split()]

    def mount_ro(self, point: str) -> bool:
        return self.mounts[point][0].split(",")[0] == "ro"


def probe(pyboxd, *run_args: str, seccomp: bool = False) -> Probe:
    masked = " ".join(host_masked())
    script = PROBE
    args = ["run", "--rm", "-e", f"MASKED={masked}", *run_args]
    if seccomp:
        args += ["-v", f"/usr:{HOST_USR}:ro", "-e", f"PYTHONHOME={HOST_USR}"]
        script += (f"\n{HOST_USR + LD_SO[4:]} --library-path {HOST_USR}/lib/x86_64-linux-gnu "
                   f"{HOST_USR}/bin/python3 -S -s -c '{SECCOMP_PROBE}'\n")
    out = pyboxd.ok(*args, "busybox", "sh", "-c", script)
    return Probe(out)


def can_run_host_python() -> bool:
    return os.path.exists(LD_SO) and os.path.exists("/usr/bin/python3") and \
        os.uname().machine == "x86_64"


@pytest.fixture(scope="module")
def default(pyboxd):
    return probe(pyboxd, seccomp=can_run_host_python())


@pytest.fixture(scope="module")
def privileged(pyboxd):
    return probe(pyboxd, "--privileged")


EROFS = os.strerror(errno.EROFS)


def own_bounding_set() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    raise AssertionError("no CapBnd")


# -- the default container ---------------------------------------------------------------------
def test_cgroupfs_read_only_by_default(default):
    # nothing under /sys/fs/cgroup can be written: on cgroup v1 neither the
    # hierarchies nor the tmpfs holding them; on v2 the cgroup2 mount
    assert default.writes["cgroup-top"] == EROFS
    assert default.writes["cgroup-hierarchy"] == EROFS
    cgroup_mounts = {p: m for p, m in default.mounts.items()
                     if p == "/sys/fs/cgroup" or p.startswith("/sys/fs/cgroup/")}
    assert cgroup_mounts and all(m[0].startswith("ro,") for m in cgroup_mounts.values())
    if default.fields["cgroup"] == "1":
        assert default.mounts["/sys/fs/cgroup"][1] == "tmpfs"
        assert len(cgroup_mounts) > 1
    else:
        assert default.mounts["/sys/fs/cgroup"][1] == "cgroup2"


def test_capabilities_are_dockers_14(default):
    eff, prm, bnd, inh, amb = default.caps()
    assert eff == prm == bnd == DOCKER_DEFAULT_CAPS
    assert inh == amb == 0
    assert default.fields["nnp"] == "0"  # docker sets it only when asked
    assert default.fields["seccomp"] == "2"


def test_masked_paths(default):
    for path in host_masked():
        seen = default.masked[path]
        if os.path.isdir(path):
            assert seen == ("dir", "0"), path  # an empty read-only tmpfs
        elif os.path.exists(path):
            assert seen == ("file", "0"), path  # /dev/null over it
    # the test means something: this host has some of them, with content
    assert any(os.path.isdir(p) and os.listdir(p) for p in host_masked())
    assert any(os.path.isfile(p) and _readable(p) for p in host_masked())


def _readable(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return bool(f.read(1))
    except OSError:
        return False


def test_read_only_paths_and_sys(default):
    for path in DOCKER_READONLY:
        if os.path.exists(path):
            assert default.mount_ro(path), path
    assert default.mount_ro("/sys")
    assert default.writes["proc-sys"] == EROFS


def test_mount_options(default):
    opts = {p: set(o.split(",")) for p, (o, _, _) in default.mounts.items()}
    sb = {p: set(o.split(",")) for p, (_, _, o) in default.mounts.items()}
    assert {"rw", "nosuid", "nodev", "noexec"} <= opts["/proc"]
    assert {"rw", "nosuid"} <= opts["/dev"] and "noexec" not in opts["/dev"]
    assert {"nosuid", "noexec"} <= opts["/dev/pts"]
    assert {"nosuid", "nodev", "noexec"} <= opts["/dev/shm"]
    assert {"nosuid", "nodev", "noexec"} <= opts["/dev/mqueue"]
    assert {"ro", "nosuid", "nodev", "noexec"} <= opts["/sys"]
    assert default.mounts["/dev/mqueue"][1] == "mqueue"
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= sb["/dev/pts"]
    assert {"size=65536k", "mode=755"} <= sb["/dev"]
    assert "size=65536k" in sb["/dev/shm"]  # docker's 64 MiB
    assert default.writes["dev-shm"] == "ok"
    assert default.writes["etc-hosts"] == "ok"  # writable without --read-only


def test_devices(default):
    names = set(default.fields["dev"].split())
    expected = set(DEFAULT_DEV)
    if os.path.exists("/proc/kcore"):
        expected.add("core")  # the /dev/core -> /proc/kcore link
    assert names == expected
    assert default.nodes == {
        "null": ("crw-rw-rw-", "0:0", "1:3"), "zero": ("crw-rw-rw-", "0:0", "1:5"),
        "full": ("crw-rw-rw-", "0:0", "1:7"), "random": ("crw-rw-rw-", "0:0", "1:8"),
        "urandom": ("crw-rw-rw-", "0:0", "1:9"), "tty": ("crw-rw-rw-", "0:0", "5:0")}
    if default.fields["cgroup"] == "1":
        assert default.devrules and default.devrules <= DOCKER_DEVICE_RULES


def test_sysctls_and_oom_score(default):
    # docker's: ports below 1024 and ping for everyone, in a network namespace
    # of the container's own
    assert default.sysctl == {"net.ipv4.ip_unprivileged_port_start": "0",
                              "net.ipv4.ping_group_range": "0 2147483647"}
    assert default.fields["oom"] == "0"


def test_seccomp_as_dockers(default):
    if not default.sys:
        pytest.skip("no host python3 to bind into the container (x86_64 Debian layout)")
    assert default.sys == {
        "personality-query": "ok",  # personality(0xffffffff) reads it
        "personality-addr-no-randomize": "EPERM",
        "io_uring_setup": "EPERM",  # refused since docker 25
        "unshare-user": "EPERM",
        "ptrace-traceme": "ok",  # allowed on kernels >= 4.8, as docker's profile
        "process_vm_readv": "EINVAL",  # the kernel's answer to the probe's empty call, not EPERM
        "adjtimex-read": "ok",
        "kcmp": "EPERM",  # only with CAP_SYS_PTRACE
        "socket-vsock": "EPERM",
        "socket-inet": "ok",
    }


# -- other configurations ------------------------------------------------------------------------
def test_privileged_gets_writable_cgroupfs_and_no_masks(privileged):
    assert privileged.writes["cgroup-hierarchy"] == "ok"
    cgroup_mounts = [o for p, (o, _, _) in privileged.mounts.items()
                     if p.startswith("/sys/fs/cgroup/") or
                     (p == "/sys/fs/cgroup" and privileged.fields["cgroup"] == "2")]
    assert cgroup_mounts and all(o.startswith("rw,") for o in cgroup_mounts)
    assert not privileged.mount_ro("/sys")
    assert "/proc/sys" not in privileged.mounts  # not made read-only
    for path in host_masked():
        if os.path.isdir(path):
            assert privileged.masked[path] == ("dir", str(len(os.listdir(path)))), path
    eff, prm, bnd, _, _ = privileged.caps()
    assert eff == prm == bnd == own_bounding_set()
    assert privileged.fields["seccomp"] == "0"
    # the host's devices, but not its console (containerd's HostDevices)
    assert "console" not in privileged.fields["dev"].split()
    assert "loop-control" in privileged.fields["dev"].split() or \
        not os.path.exists("/dev/loop-control")


def test_writable_cgroups_option(pyboxd):
    # --security-opt writable-cgroups=BOOL (docker 28) overrides the default
    # of --privileged both ways
    out = probe(pyboxd, "--security-opt", "writable-cgroups=true")
    assert out.writes["cgroup-hierarchy"] == "ok"
    assert out.caps()[0] == DOCKER_DEFAULT_CAPS
    out = probe(pyboxd, "--privileged", "--security-opt", "writable-cgroups=false")
    assert out.writes["cgroup-hierarchy"] == EROFS
    assert out.writes["cgroup-top"] == EROFS


def test_read_only_root(pyboxd):
    # (an anonymous volume: --rm removes it with the container)
    out = probe(pyboxd, "--read-only", "--tmpfs", "/run", "-v", "/data")
    assert out.mount_ro("/")
    # docker makes every mount but the user's and /proc, /dev* read-only
    for path in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/sys"):
        assert out.mount_ro(path), path
    assert out.writes["etc-hosts"] == EROFS
    assert out.writes["etc-resolv"] == EROFS
    for path in ("/run", "/data", "/dev/shm", "/dev/mqueue", "/dev", "/proc"):
        assert not out.mount_ro(path), path
    assert out.writes["dev-shm"] == "ok"


def test_host_network(pyboxd):
    out = probe(pyboxd, "--network", "host")
    # no default sysctls in the host's namespace: its own values show
    for key, value in out.sysctl.items():
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            assert value == " ".join(f.read().split()), key
    # /proc/sys stays read-only (docker's rule too: the namespace is the host's)
    assert out.mount_ro("/proc/sys")
    assert out.writes["proc-sys"] == EROFS


def test_systempaths_unconfined(pyboxd):
    # docker's CLI sends MaskedPaths and ReadonlyPaths empty for this option
    out = probe(pyboxd, "--security-opt", "systempaths=unconfined")
    for path in host_masked():
        if os.path.isdir(path):
            assert out.masked[path] == ("dir", str(len(os.listdir(path)))), path
    assert "/proc/sys" not in out.mounts
    assert out.caps()[0] == DOCKER_DEFAULT_CAPS  # nothing else changes
    assert out.writes["cgroup-hierarchy"] == EROFS


def test_oom_score_not_inherited_from_the_daemon(pyboxd):
    # contrib/pyboxd.service runs pyboxd at -500; a container must not inherit
    # that shield from the OOM killer (docker writes 0 for every container).
    # Raising the score of pyboxd's monitor zygote (what every container is
    # forked from) needs no privilege and stands in for it here.
    zygote = pyboxd.zygote_pid()
    assert zygote, "pyboxd's monitor zygote not found"
    path = f"/proc/{zygote}/oom_score_adj"
    with open(path) as f:
        before = f.read().strip()
    with open(path, "w") as f:
        f.write("300")
    try:
        out = pyboxd.ok("run", "--rm", "busybox", "cat", "/proc/self/oom_score_adj")
        asked = pyboxd.ok("run", "--rm", "--oom-score-adj", "200", "busybox", "cat",
                          "/proc/self/oom_score_adj")
    finally:
        with open(path, "w") as f:
            f.write(before)
    assert out.strip() == "0"
    assert asked.strip() == "200"



# -- pybox-runtime's "rro" (what pyboxd's cgroup mount uses; docker 25+ sends it for
# read-only binds when `pybox-runtime features` lists it, as it now does) ------------------
import runtime.conftest  # noqa: E402
from runtime.conftest import Bundle  # noqa: E402

rt, busybox_rootfs = runtime.conftest.rt, runtime.conftest.busybox_rootfs  # its fixtures


def test_rro_makes_the_mounts_below_read_only_too(rt, busybox_rootfs, tmp_path):
    # a host directory with a tmpfs mounted inside it, bound into the container
    # twice: "ro" leaves the tmpfs writable, "rro" does not
    src = tmp_path / "src"
    inner = src / "inner"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pybox-rro-test", str(inner)],
                   check=True)
    try:
        bundle = Bundle(str(tmp_path / "bundle"), busybox_rootfs)
        bundle.config["mounts"] += [
            {"destination": "/ro", "type": "bind", "source": str(src),
             "options": ["rbind", "ro"]},
            {"destination": "/rro", "type": "bind", "source": str(src),
             "options": ["rbind", "rro"]},
        ]
        bundle.sh("for d in /ro /ro/inner /rro /rro/inner; do "
                  "touch $d/f 2>/dev/null && echo $d rw || echo $d ro; done")
        proc = rt("run", "-b", bundle.write(), rt.new_id(), check=False)
    finally:
        subprocess.run(["umount", "-l", str(inner)], check=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == ["/ro ro", "/ro/inner rw", "/rro ro", "/rro/inner ro"]


@pytest.mark.parametrize("user", ["4294967295", "65534:4294967295", "2147483648"])
def test_ids_out_of_runcs_range_refused(pyboxd, user):
    """`-u 4294967295` is (uid_t)-1, which setresuid reads as "unchanged": the
    program ran as root with every default capability.  Refused as runc's user
    lookup refuses it, for run and exec."""
    proc = pyboxd.docker("run", "--rm", "-u", user, "busybox", "id")
    assert proc.returncode == 125 and proc.stdout == ""
    assert "uids and gids must be in range 0-2147483647" in proc.stderr
