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
import glob
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from pybox.images.rootfs import build_busybox_rootfs
from support.dockerd import PrivateDockerd
from support.host import (  # noqa: F401 (test_containerd_cri imports them from here)
    pids_mentioning,
    remove_cgroup_tree,
    remove_empty_dirs,
    unmount_under,
)
from support.install import ensure_installed  # noqa: F401 (likewise)
from support.names import unique_name as _unique_name
from support.pty import PtyProcess as PtySession  # noqa: F401 (the tests' terminal)
from support.wait import wait_for  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
IMAGE = "localhost/pybox-compat-busybox:latest"
# root here lacks CAP_SYS_RESOURCE (nofile hard limit 20000): podman's defaults
# for root (1048576) cannot be set by any runtime, runc included.
PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
# serialises SharedDirs' registry between xdist workers
APT_LOCK = "/tmp/pybox-compat-apt.lock"
TIMEOUT = 120


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


# -- the managers, behind one interface -----------------------------------------------
class Client:
    """A container manager's command line with private settings, and what the
    lifecycle scenario (test_managers.py) needs to know of it: how to pick
    pybox-runtime, where the runtime's state is, where the manager's answers
    differ (each difference named here, and asserted as the manager's own)."""

    name = "?"
    runtime_name = "?"           # what `--runtime` says to mean pybox-runtime
    exec_not_found_status = 0    # exit status of `exec NAME no-such-program`
    top_args: tuple = ()         # `top NAME ...` for the full command lines

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

    def run_options(self, runtime_args=None):
        """What `run` gets before the caller's options: pybox-runtime (or
        ``runtime_args``), no network."""
        rt = self.runtime_args if runtime_args is None else runtime_args
        return [*rt, "--network", "none"]

    def run(self, *args, runtime_args=None, **kw):
        """`run` with pybox-runtime (or ``runtime_args``) and no network."""
        return self("run", *self.run_options(runtime_args), *args, **kw)

    def status(self, name):
        return self("inspect", "-f", "{{.State.Status}}", name).stdout.strip()

    def exists(self, name):
        return self("inspect", name, check=False).returncode == 0

    def pid(self, name):
        return int(self("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())

    def full_id(self, name):
        return self("inspect", "-f", "{{.Id}}", name).stdout.strip()

    def remove(self, name):
        """rm -f: kill (no grace period) and remove."""
        self("rm", "-f", name, check=False)

    def runtime_state_root(self):
        """The --root the manager gives pybox-runtime (None: its default)."""
        return None

    def runtime_state(self, full_id):
        """`pybox-runtime state` of the container, in the manager's state root:
        its status, or None when the runtime knows no such container."""
        root = self.runtime_state_root()
        argv = [self.runtime_path, *(["--root", root] if root else []), "state", full_id]
        proc = subprocess.run(argv, capture_output=True, text=True)
        return json.loads(proc.stdout)["status"] if proc.returncode == 0 else None

    def exec_error_text(self, proc):
        """Where the manager prints a failed exec's reason."""
        return proc.stderr


def unique_name(prefix="pybox-compat"):
    return _unique_name(prefix)


# -- cgroups and /run leftovers ---------------------------------------------------------
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
                remove_empty_dirs(path)
            shutil.rmtree(self.REGISTRY, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# -- podman ----------------------------------------------------------------------------
class Podman(Client):
    """conmon calls the runtime with no --root: its default state root."""

    name = "podman"
    exec_not_found_status = 127
    top_args = ("args",)

    def remove(self, name):
        self("rm", "-f", "-t", "0", name, check=False)  # podman's rm -f waits 10 s

    def run_options(self, runtime_args=None):
        rt = self.runtime_args if runtime_args is None else runtime_args
        return [*rt, *PODMAN_ULIMITS, "--network", "none", "--cgroup-parent", self.cgroup_parent]


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
    client.runtime_name = pybox_runtime_path
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
    """The shim calls the runtime with --root EXEC_ROOT/runtime-<name>/moby."""

    name = "docker"
    runtime_name = "pybox"  # --add-runtime pybox=PATH
    exec_not_found_status = 126  # what docker gives for this with runc too

    def runtime_state_root(self):
        roots = glob.glob(f"{self.base}/exec/runtime-*/moby")
        assert roots, "the shim's --root for the runtime"
        return roots[0]

    def exec_error_text(self, proc):
        return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def docker(tmp_path_factory, pybox_runtime_path, busybox_tar):
    """tests/support's private dockerd, with pybox-runtime added as ``pybox``."""
    ensure_installed({"dockerd": "docker.io", "containerd": "containerd"})
    if not shutil.which("docker"):
        pytest.skip("no docker client on PATH")
    shared = SharedDirs(["/run/docker", "/run/containerd"])
    daemon = PrivateDockerd(prefix="pybox-compat-docker-",
                            extra_args=["--add-runtime", f"pybox={pybox_runtime_path}"])
    base = daemon.base
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "HOME": base, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": f"{base}/cli",
           "LANG": "C.UTF-8"}
    client = Docker(["docker"], env, ["--runtime", "pybox"])
    client.base = base
    client.daemon = daemon
    client.cgroup_parent = daemon.cgroup_parent
    client.runtime_path = pybox_runtime_path
    try:
        daemon.start()
        with open(busybox_tar, "rb") as tar:
            subprocess.run(["docker", "import", "-", IMAGE], stdin=tar, env=env,
                           check=True, capture_output=True, timeout=TIMEOUT)
        yield client
    finally:
        daemon.stop()
        shared.release()


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
