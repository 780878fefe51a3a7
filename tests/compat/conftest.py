"""Real container managers driving pybox-runtime exactly as they drive runc.

* podman (Debian's 4.3) with ``--runtime PATH``: conmon calls the runtime with
  runc's command line (create --bundle --pid-file [--console-socket], start,
  exec, pause, resume, kill, delete --force).
* Debian's dockerd (20.10, with the containerd and containerd-shim-runc-v2 it
  brings) started privately with ``--add-runtime pybox=PATH``; the shim calls
  the runtime with ``--root EXEC_ROOT/runtime-runc/moby --log .../log.json
  --log-format json``.  The client is whatever ``docker`` is on PATH.

Every fixture works in a private directory (/tmp/pybox-compat-*): podman's
--root/--runroot/--tmpdir, file locks instead of /dev/shm, its own network
config dir; dockerd's --data-root/--exec-root/--pidfile/socket and trust key.
Containers get a private cgroup parent (``/pybox-compat-...``) so nothing mixes
with anyone else's.  Both images are imported from the busybox root filesystem
pybox builds (no registry).  Missing packages are installed with apt-get when
running as root (service start-up suppressed); the tests skip, with the reason,
only when that is impossible.  Everything started is stopped and removed at the
end of the session.
"""

import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time
import uuid

import pytest

from clients.dockerd import pids_mentioning  # (one copy, with the private dockerd's)
from pybox.images.rootfs import build_busybox_rootfs

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
IMAGE = "localhost/pybox-compat-busybox:latest"
# root here lacks CAP_SYS_RESOURCE (nofile hard limit 20000): podman's defaults
# for root (1048576) cannot be set by any runtime, runc included.
PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
APT_LOCK = "/tmp/pybox-compat-apt.lock"
# tests/clients installs docker.io under this lock: hold it too, so that the two
# suites (possibly in two xdist workers) never run apt-get, or create and remove
# the temporary policy-rc.d, at the same time.
OTHER_APT_LOCKS = ("/tmp/pybox-clients-apt.lock",)
TIMEOUT = 120


# -- installation ---------------------------------------------------------------
def _present(binary):
    """On PATH, or (an absolute path: a CNI plugin in /usr/lib/cni) there."""
    return os.path.exists(binary) if binary.startswith("/") else shutil.which(binary)


def ensure_installed(binaries):
    """{binary: Debian package}: install what is missing, or skip saying why."""
    missing = sorted({pkg for binary, pkg in binaries.items() if not _present(binary)})
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"needs {' '.join(missing)} (apt-get install as root)")
    locks = []
    try:
        for path in OTHER_APT_LOCKS + (APT_LOCK,):  # the other xdist worker may install too
            locks.append(open(path, "a"))
            fcntl.flock(locks[-1], fcntl.LOCK_EX)
        missing = sorted({pkg for binary, pkg in binaries.items() if not _present(binary)})
        if missing:
            error = _apt_install(missing)
            if error:
                pytest.skip(f"cannot install {' '.join(missing)}: {error}")
    finally:
        for lock in reversed(locks):
            lock.close()


def _apt_install(packages):
    """apt-get install without starting services: docker.io's postinst would
    otherwise start a system dockerd (and containerd) through invoke-rc.d."""
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# pybox tests/compat: no service starts during apt-get\nexit 101\n")
        os.chmod(policy, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=600"] + packages  # wait for other apt users
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                           timeout=600)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return (proc.stderr.strip().splitlines() or ["apt-get failed"])[-1]
        return None
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    finally:
        if made_policy:
            os.unlink(policy)


# -- the runtime the clients call -------------------------------------------------
@pytest.fixture(scope="session")
def pybox_runtime_path(tmp_path_factory):
    """The installed fast launcher when it runs this checkout (install.sh --dev),
    else a launcher for this checkout written to a private directory."""
    launcher = shutil.which("pybox-runtime")
    if launcher:
        with open(launcher, errors="replace") as f:
            if SRC in f.read():
                return launcher
    from pybox.launchers import write_launchers

    bindir = tmp_path_factory.mktemp("bin")
    return write_launchers(str(bindir))[0]


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory):
    """The busybox root filesystem as a tarball for `podman/docker import`."""
    base = tmp_path_factory.mktemp("image")
    rootfs = build_busybox_rootfs(str(base / "rootfs"))
    tar = str(base / "busybox.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    return tar


# -- shared helpers ----------------------------------------------------------------
class Client:
    """A container manager's command line with private settings."""

    name = "?"

    def __init__(self, argv, env, runtime_args):
        self.argv = argv
        self.env = env
        self.runtime_args = runtime_args  # what selects pybox-runtime on run/create

    def __call__(self, *args, check=True, timeout=TIMEOUT, input=None):
        # in the private directory: conmon inherits podman's cwd and writes an
        # "oom" file there after an OOM kill (one kept turning up in the repo)
        proc = subprocess.run(self.argv + [str(a) for a in args], env=self.env,
                              cwd=getattr(self, "base", None),
                              capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else
                              subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(map(str, args))} failed "
                                 f"({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def run(self, *args, runtime_args=None, **kw):
        """`run` with pybox-runtime (or ``runtime_args``) and no network."""
        rt = self.runtime_args if runtime_args is None else runtime_args
        return self("run", *rt, "--network", "none", *args, **kw)

    def status(self, name):
        return self("inspect", "-f", "{{.State.Status}}", name).stdout.strip()

    def exists(self, name):
        return self("inspect", name, check=False).returncode == 0

    def pid(self, name):
        return int(self("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())

    def remove(self, name):
        """rm -f: kill (no grace period) and remove."""
        self("rm", "-f", name, check=False)


def unique_name(prefix="pybox-compat"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate, what, timeout=30.0):
    """Poll until predicate() is true; fail naming ``what`` after ``timeout``
    (a safety net against hangs, not an assertion on speed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class PtySession:
    """A client started on a real pseudo-terminal as its controlling terminal,
    as in an interactive shell: type, read the screen, get the exit status."""

    def __init__(self, argv, env, rows=30, cols=100):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            argv, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.output = b""
        self.pos = 0  # where the next expect() starts looking

    def send(self, text):
        os.write(self.master, text.encode())

    def expect(self, needle, timeout=60.0):
        """Read until ``needle`` appears after the previous match; the text
        between the two."""
        raw = needle.encode()
        deadline = time.monotonic() + timeout
        while raw not in self.output[self.pos:]:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{needle!r} never appeared; the terminal showed:\n"
                                     + self.output.decode(errors="replace"))
        end = self.output.index(raw, self.pos) + len(raw)
        text, self.pos = self.output[self.pos:end], end
        return text.decode(errors="replace")

    def _read(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        self.output += data
        return bool(data)

    def wait(self, timeout=60.0):
        """Drain the terminal until the client exits; its exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        try:
            return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


# -- cgroups and /run leftovers ---------------------------------------------------------
def cgroup_roots():
    """Mount points of every cgroup hierarchy on the host."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                roots.append(fields[4])
    return roots


def remove_cgroup_tree(name):
    """rmdir /<hierarchy>/<name> and what is left under it, deepest first
    (only empty cgroups can go: a live process keeps its cgroup)."""
    for root in cgroup_roots():
        top = os.path.join(root, name.strip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def unmount_under(path):
    """Lazily unmount anything still mounted below ``path`` (deepest first)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == path or p.startswith(path + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


class SharedDirs:
    """Directories the managers insist on creating at fixed places (the shim's
    /run/containerd/s, dockerd's /run/docker/plugins, podman's
    /run/containers).  The last compat fixture to finish (xdist runs one per
    worker) removes those that some fixture saw missing at its start, if empty."""

    REGISTRY = "/tmp/pybox-compat-active"

    def __init__(self, paths):
        with open(APT_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.makedirs(self.REGISTRY, exist_ok=True)
            with open(os.path.join(self.REGISTRY, "paths"), "a") as f:
                f.writelines(p + "\n" for p in paths if not os.path.lexists(p))
            self.token = os.path.join(self.REGISTRY,
                                      f"active-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            open(self.token, "w").close()

    def release(self):
        with open(APT_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.unlink(self.token)
            if any(t.startswith("active-") and _alive(int(t.split("-")[1]))
                   for t in os.listdir(self.REGISTRY)):
                return
            with open(os.path.join(self.REGISTRY, "paths")) as f:
                paths = set(f.read().split())
            for path in sorted(paths, key=len, reverse=True):
                for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
            shutil.rmtree(self.REGISTRY, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# -- podman ----------------------------------------------------------------------------
class Podman(Client):
    name = "podman"

    def remove(self, name):
        self("rm", "-f", "-t", "0", name, check=False)  # podman's rm -f waits 10 s

    def run(self, *args, runtime_args=None, **kw):
        rt = self.runtime_args if runtime_args is None else runtime_args
        return self("run", *rt, *PODMAN_ULIMITS, "--network", "none",
                    "--cgroup-parent", self.cgroup_parent, *args, **kw)


@pytest.fixture(scope="session")
def podman(tmp_path_factory, pybox_runtime_path, busybox_tar):
    ensure_installed({"podman": "podman", "conmon": "conmon"})
    shared = SharedDirs(["/run/containers"])
    base = tempfile.mkdtemp(prefix="pybox-compat-podman-")
    conf = os.path.join(base, "containers.conf")
    with open(conf, "w") as f:
        f.write('[engine]\n'
                'cgroup_manager = "cgroupfs"\n'   # no systemd here
                'events_logger = "file"\n'        # no journald
                'lock_type = "file"\n'            # not /dev/shm/libpod_lock (shared)
                f'tmp_dir = "{base}/tmp"\n')
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "HOME": os.environ.get("HOME", "/root"), "CONTAINERS_CONF": conf,
           "LANG": "C.UTF-8"}
    argv = ["podman", "--root", f"{base}/root", "--runroot", f"{base}/runroot",
            "--tmpdir", f"{base}/tmp", "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--network-config-dir", f"{base}/networks"]
    client = Podman(argv, env, ["--runtime", pybox_runtime_path])
    client.base = base
    client.cgroup_parent = f"/pybox-compat-podman-{uuid.uuid4().hex[:8]}"
    client.runtime_path = pybox_runtime_path
    try:
        client("import", busybox_tar, IMAGE)
        yield client
    finally:
        client("rm", "--all", "--force", "--time", "0", check=False)
        client("rmi", "--all", "--force", check=False)
        remove_cgroup_tree(client.cgroup_parent)
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        shared.release()


# -- docker --------------------------------------------------------------------------
class Docker(Client):
    name = "docker"


@pytest.fixture(scope="session")
def docker(tmp_path_factory, pybox_runtime_path, busybox_tar):
    ensure_installed({"dockerd": "docker.io", "containerd": "containerd"})
    if not shutil.which("docker"):
        pytest.skip("no docker client on PATH")
    shared = SharedDirs(["/run/docker", "/run/containerd"])
    base = tempfile.mkdtemp(prefix="pybox-compat-docker-")
    sock = f"{base}/docker.sock"
    cgroup_parent = f"/pybox-compat-docker-{uuid.uuid4().hex[:8]}"
    with open(f"{base}/daemon.json", "w") as f:
        # the trust key would otherwise go to /etc/docker/key.json
        json.dump({"deprecated-key-path": f"{base}/key.json"}, f)
    argv = ["dockerd", "--config-file", f"{base}/daemon.json",
            "--data-root", f"{base}/data", "--exec-root", f"{base}/exec",
            "-H", f"unix://{sock}", "--pidfile", f"{base}/docker.pid",
            "--add-runtime", f"pybox={pybox_runtime_path}",
            "--cgroup-parent", cgroup_parent, "--storage-driver", "overlay2",
            "--bridge", "none", "--iptables=false", "--ip6tables=false",
            "--ip-masq=false", "--log-level", "warn"]
    log = open(f"{base}/dockerd.log", "w")
    daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                              start_new_session=True, cwd=base)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "HOME": base, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": f"{base}/cli",
           "LANG": "C.UTF-8"}
    client = Docker(["docker"], env, ["--runtime", "pybox"])
    client.base = base
    client.daemon = daemon
    client.cgroup_parent = cgroup_parent
    client.runtime_path = pybox_runtime_path
    try:
        def up():
            if daemon.poll() is not None:
                with open(f"{base}/dockerd.log") as f:
                    raise AssertionError(f"dockerd exited ({daemon.returncode}):\n"
                                         + f.read()[-3000:])
            return client("version", check=False, timeout=10).returncode == 0
        wait_for(up, "dockerd to answer on its socket", timeout=60)
        with open(busybox_tar, "rb") as tar:
            subprocess.run(["docker", "import", "-", IMAGE], stdin=tar, env=env,
                           check=True, capture_output=True, timeout=TIMEOUT)
        yield client
    finally:
        ids = client("ps", "-aq", check=False).stdout.split()
        if ids:
            client("rm", "-f", *ids, check=False)
        _stop_dockerd(daemon, base)
        log.close()
        remove_cgroup_tree(cgroup_parent)
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        shared.release()


def _stop_dockerd(daemon, base):
    """SIGTERM dockerd (it stops the containerd it started and waits for it);
    SIGKILL whatever of ours is left after a grace period: the daemon, its
    containerd, shims."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    for pid in pids_mentioning(base):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# -- what the host sees of a container ------------------------------------------------------
def host_cgroup_dir(pid, controller):
    """The host directory of ``pid``'s cgroup for a v1 controller ("" = cgroup2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        paths = {}
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if hid != "0" else [""]:
                paths[c] = path
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            tail = fields[fields.index("-") + 1:]
            if controller == "" and tail[0] == "cgroup2" or \
                    tail[0] == "cgroup" and controller in tail[2].split(","):
                return fields[4] + paths[controller]
    raise AssertionError(f"no {controller or 'cgroup2'} hierarchy for pid {pid}")


def is_frozen(pid):
    """What the freezer says about the container of ``pid``."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # cgroup v2
        with open(host_cgroup_dir(pid, "") + "/cgroup.events") as f:
            return "frozen 1" in f.read()
    with open(host_cgroup_dir(pid, "freezer") + "/freezer.state") as f:
        return f.read().strip() == "FROZEN"


def read_in_container(pid, path):
    """A file in the container's filesystem, read from the host (works while
    the container is paused)."""
    with open(f"/proc/{pid}/root{path}") as f:
        return f.read()


# Limits as the container sees them, on cgroup v1 or v2.
CGROUP_LIMITS_SH = r"""
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo "memory=$(cat /sys/fs/cgroup/memory.max)"
  echo "cpu=$(cat /sys/fs/cgroup/cpu.max)"
  echo "pids=$(cat /sys/fs/cgroup/pids.max)"
else
  echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
  echo "pids=$(cat /sys/fs/cgroup/pids/pids.max)"
fi
"""

# Start more processes than --pids-limit allows (in a subshell: a shell that
# cannot fork gives up), then report how many there are (read: no fork needed).
PIDS_SH = r"""
(for i in $(seq 40); do sleep 60 & done)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then f=/sys/fs/cgroup/pids.current
else f=/sys/fs/cgroup/pids/pids.current; fi
read current < $f
echo "current=$current"
"""

# What a process sees of its container, normalised (ids, inode numbers, dates)
# so that the same configuration gives the same text under runc and pybox.
PROBE_SH = r"""
echo "## mounts"
while read -r id parent dev root point opts rest; do
  set -- $rest; while [ "$1" != "-" ]; do shift; done
  echo "$point $opts $2 $4"
done < /proc/self/mountinfo | sed -E 's/lowerdir=[^ ]*/LAYERS/' | sort
echo "## status"; grep -E '^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)' /proc/self/status
echo "## limits"; cat /proc/self/limits
echo "## cgroup"; cat /proc/self/cgroup
echo "## identity"; id; pwd; umask; cat /proc/self/oom_score_adj; hostname
echo "## env"; env | sort
echo "## dev"; ls -ln /dev /dev/pts /dev/mqueue /dev/shm | sed -E 's/ [A-Z][a-z]{2} +[0-9]+ +[0-9:]+ / DATE /'
echo "## fds"; ls -l /proc/self/fd/ 2>/dev/null | sed -nE 's/.* ([0-9]+) -> ([a-z]+:)?.*/\1 \2/p'
echo "## writable"
mkdir /sys/fs/cgroup/probe 2>&1 && echo "mkdir /sys/fs/cgroup/probe: ok"
echo 1 2>&1 > /proc/sysrq-trigger || echo "sysrq-trigger: refused"
touch /sys/probe 2>&1; touch /probe && echo "touch /probe: ok"
echo "## end"
"""


def normalise_probe(text):
    """Container ids (64 and 12 hex digits) and the cgroup2 line are not
    comparable between two containers: the unified (cgroup2) membership on a
    hybrid host is a known difference, see docs/compat.md."""
    import re

    text = re.sub(r"[0-9a-f]{64}", "ID", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "SHORTID", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("0::"))


# Configurations whose container is compared, as a whole, with runc's.
RUN_VARIANTS = {
    "default": [],
    "tty": ["-t"],
    "user": ["-u", "1000:1000", "-w", "/tmp", "--group-add", "5", "-e", "EXTRA=1"],
    "read-only": ["--read-only", "--tmpfs", "/run:mode=700", "--tmpfs", "/data"],
    "caps": ["--cap-drop", "CHOWN", "--cap-add", "SYS_ADMIN",
             "--security-opt", "no-new-privileges"],
    "host-ipc-uts": ["--ipc", "host", "--uts", "host"],
    "limits": ["--ulimit", "nofile=100:200", "--oom-score-adj", "300", "--shm-size", "1m",
               "--sysctl", "kernel.shmmax=12345"],
}
EXEC_VARIANTS = {"default": [], "user": ["-u", "1000", "-w", "/tmp"], "tty": ["-t"]}


def diff_from_runc(client, runtimes, flags, exec_flags=None):
    """Run the probe under runc and under pybox-runtime (``runtimes``: the two
    --runtime values), in a new container or, with ``exec_flags``, through exec
    in a running one; the unified diff of what each saw ("" when the same)."""
    import difflib

    seen = []
    for runtime in runtimes:
        if exec_flags is None:
            proc = client.run("--rm", "--runtime", runtime, *flags,
                              IMAGE, "sh", "-c", PROBE_SH, runtime_args=[], check=False)
        else:
            name = unique_name()
            client.run("-d", "--name", name, "--runtime", runtime,
                       *flags, IMAGE, "sleep", "600", runtime_args=[])
            try:
                proc = client("exec", *exec_flags, name, "sh", "-c", PROBE_SH, check=False)
            finally:
                client.remove(name)
        seen.append(normalise_probe(f"exit status {proc.returncode}\n"
                                    + proc.stdout + proc.stderr))
    assert "## end" in seen[0], seen[0]
    return "\n".join(difflib.unified_diff(seen[0].splitlines(), seen[1].splitlines(),
                                          "runc", "pybox-runtime", lineterm=""))
