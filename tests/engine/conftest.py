"""pyboxd driven by the real clients: the docker 28 CLI and docker-py.

One private pyboxd per test session (per xdist worker): its own socket and data
root under /tmp/pybox-engine-*, its own exec root under /run (short: the
monitors' unix sockets live there), a busybox image imported with `docker
import`.  Every event stream create is recorded, so at the end the fixture can
check, after removing every container and stopping pyboxd with SIGTERM, that
nothing is left: no monitor process, no mount under the data root, no cgroup
named after one of its containers, no container directory.

Tests name what they make with the ``names`` fixture (unique names, removed
with `docker rm -f` when the test ends, whatever happened).  Helpers:

* ``pyboxd.docker(*args)``: the docker CLI against our pyboxd (a
  CompletedProcess with text output); ``pyboxd.cli_env`` for Popen.
* ``PtyProcess``: the docker CLI on a real pseudo-terminal (its controlling
  terminal), to type into, read the screen of, and resize.
* ``dockerd`` (only where asked for): a private Debian dockerd for comparing
  output shapes, started once, stopped at the end.
"""

import fcntl
import http.client
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid

import pytest

from clients.dockerd import PrivateDockerd, pids_mentioning  # noqa: F401 (one copy)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
PYTHON = "/opt/pybox/bin/python" if os.path.exists("/opt/pybox/bin/python") else sys.executable
DOCKER = "/usr/local/bin/docker"
IMAGE = "busybox:latest"
CGROUP_ROOT = "/sys/fs/cgroup"
TIMEOUT = 60


# -- a unix-socket HTTP client (for the fixture's own needs) -----------------------
class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(sock_path, method, path, body=None, timeout=TIMEOUT):
    """One request -> (status, parsed JSON or raw bytes)."""
    conn = UnixHTTPConnection(sock_path, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data
    finally:
        conn.close()


# -- host state, for the leak checks ----------------------------------------------------
def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path.rstrip("/") + "/")]


def cgroup_dirs(container_ids):
    """Cgroup directories named after one of ``container_ids`` (any hierarchy)."""
    out = []
    ids = set(container_ids)
    if not ids or not os.path.isdir(CGROUP_ROOT):
        return out
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        for d in list(dirs):
            if d in ids:
                out.append(os.path.join(top, d))
        if top.count("/") > 6:
            dirs[:] = []
    return out


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def settle(predicate, timeout=10.0, interval=0.05):
    """Poll until ``predicate()`` is true (the daemon cleans up on its threads);
    returns the last value.  A bounded wait, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- the daemon under test ----------------------------------------------------------------
class Pyboxd:
    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)  # more pyboxd options (--userns-remap USER)
        self.base = tempfile.mkdtemp(prefix="pybox-engine-")
        self.socket = os.path.join(self.base, "pybox.sock")
        self.host = "unix://" + self.socket
        self.data_root = os.path.join(self.base, "data")
        # monitor sockets: EXEC_ROOT/containers/<64 hex>/monitor.sock < 108 bytes
        self.exec_root = f"/run/pbe-{uuid.uuid4().hex[:8]}"
        self.process = None
        self.log_path = os.path.join(self.base, "pyboxd.log")
        self.cli_env = dict(os.environ, DOCKER_HOST=self.host,
                            DOCKER_CONFIG=os.path.join(self.base, "cli"),
                            DOCKER_CLI_HINTS="false")
        self.cli_env.pop("DOCKER_CONTEXT", None)
        self.created = set()  # every container id pyboxd reported a create for
        self._events = None

    # -- life -----------------------------------------------------------------
    def start(self):
        argv = [PYTHON, "-m", "pybox.cli.pyboxd", "-H", self.host, "--data-root",
                self.data_root, "--exec-root", self.exec_root, *self.extra_args]
        env = dict(os.environ, PYTHONPATH=SRC)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"pyboxd exited ({self.process.returncode}):\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                raise RuntimeError("pyboxd did not answer /_ping:\n" + self.log_tail())
            time.sleep(0.05)
        self._watch_events()
        return self

    def ping(self):
        if not os.path.exists(self.socket):
            return False
        try:
            status, body = api(self.socket, "GET", "/_ping", timeout=2)
        except OSError:
            return False
        return status == 200 and body == b"OK"

    def _watch_events(self):
        """Record the id of every container created, from the event stream (so
        the final check can look for leftovers of containers already removed)."""
        ready = threading.Event()

        def run():
            conn = UnixHTTPConnection(self.socket, timeout=None)
            try:
                conn.request("GET", '/events?filters={"type":{"container":true}}')
                resp = conn.getresponse()
                ready.set()
                for line in resp:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("Action") == "create":
                        self.created.add(event["Actor"]["ID"])
            except (OSError, http.client.HTTPException):
                pass
            finally:
                ready.set()
                conn.close()

        self._events = threading.Thread(target=run, daemon=True, name="pyboxd-events")
        self._events.start()
        ready.wait(10)

    def log_tail(self, size=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    @property
    def pid(self):
        return self.process.pid

    def restart(self, between=None):
        """SIGTERM pyboxd (its containers keep running), call ``between()`` while
        it is down, start it again on the same paths."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        assert code == 0, f"pyboxd exited with {code} on SIGTERM:\n{self.log_tail()}"
        if between is not None:
            between()
        self.start()

    def stop(self):
        """Remove every container, SIGTERM pyboxd; -> list of leftovers found."""
        problems = []
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", "--no-trunc", timeout=30).stdout.split()
            self.created.update(ids)
            if ids:
                rm = self.docker("rm", "-f", *ids, timeout=120)
                if rm.returncode != 0:
                    problems.append(f"docker rm -f at the end failed: {rm.stderr}")
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=30)
                if code != 0:
                    problems.append(f"pyboxd exited with {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append("pyboxd did not stop on SIGTERM")
                self.process.kill()
                self.process.wait()
        # what is left of ours
        left = settle(lambda: not pids_mentioning(self.exec_root), timeout=10)
        if not left:
            pids = pids_mentioning(self.exec_root)
            problems.append(f"processes left (monitors, zygote): {pids}")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        mounts = mounts_under(self.data_root)
        if mounts:
            problems.append(f"mounts left under the data root: {mounts}")
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
        cgroups = cgroup_dirs(self.created)
        if cgroups:
            problems.append(f"cgroups left: {cgroups}")
            for d in sorted(cgroups, key=len, reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        containers_dir = os.path.join(self.data_root, "containers")
        if os.path.isdir(containers_dir) and os.listdir(containers_dir):
            problems.append(f"container records left: {os.listdir(containers_dir)}")
        runtime_dir = os.path.join(self.exec_root, "runtime")
        if os.path.isdir(runtime_dir) and os.listdir(runtime_dir):
            problems.append(f"runtime state left: {os.listdir(runtime_dir)}")
        if problems:
            problems.append("pyboxd log:\n" + self.log_tail())
        shutil.rmtree(self.exec_root, ignore_errors=True)
        if not mounts_under(self.base):
            shutil.rmtree(self.base, ignore_errors=True)
        return problems

    # -- clients ------------------------------------------------------------------------
    def docker(self, *args, input=None, timeout=TIMEOUT, env=None, raw=False):
        """The docker CLI against pyboxd -> CompletedProcess (text, or bytes if raw).
        A command that hangs fails with what pyboxd and its children were doing."""
        try:
            return subprocess.run([DOCKER, *args], input=input, env=env or self.cli_env,
                                  capture_output=True, text=not raw, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            try:
                os.kill(self.process.pid, signal.SIGUSR1)  # its threads' stacks, to the log
                time.sleep(1)
            except OSError:
                pass
            raise AssertionError(f"docker {' '.join(args)}: no answer in {timeout} s\n"
                                 f"pyboxd's log:\n{self.log_tail(6000)}\n"
                                 f"its processes:\n{self._process_tree()}") from e

    def _process_tree(self):
        ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,wchan:32,etime,args", "--forest"],
                            capture_output=True, text=True).stdout
        return "\n".join(line[:240] for line in ps.splitlines()
                         if self.exec_root in line or self.base in line or "pybox" in line)

    def ok(self, *args, **kw):
        """docker ... that must succeed; -> its stdout."""
        proc = self.docker(*args, **kw)
        assert proc.returncode == 0, (f"docker {' '.join(args)} -> {proc.returncode}\n"
                                      f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc.stdout

    def api(self, method, path, body=None, timeout=TIMEOUT):
        return api(self.socket, method, path, body, timeout)

    def inspect(self, ref):
        return json.loads(self.ok("inspect", ref))[0]

    def import_busybox(self, ref=IMAGE):
        bundle = os.path.join(self.base, "busybox-bundle")
        tar = os.path.join(self.base, "busybox.tar")
        if not os.path.exists(tar):
            subprocess.run([PYTHON, "-m", "pybox.images.rootfs", "busybox", bundle],
                           check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=SRC))
            subprocess.run(["tar", "-C", os.path.join(bundle, "rootfs"), "-cf", tar, "."],
                           check=True)
        self.ok("import", "-c", 'CMD ["sh"]', tar, ref)
        return tar

    def monitor_pid(self, cid):
        with open(os.path.join(self.exec_root, "containers", cid, "monitor.pid")) as f:
            return int(f.read().strip())


@pytest.fixture(scope="session")
def pyboxd():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists(DOCKER):
        pytest.skip(f"needs the docker CLI at {DOCKER}")
    d = Pyboxd()
    try:
        d.start()
        d.import_busybox()
    except BaseException:
        d.stop()
        raise
    yield d
    problems = d.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture
def names(pyboxd):
    """names() -> a unique container name; each is `docker rm -f`'d at the end."""
    made = []

    def new(prefix="t"):
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield new
    if made:
        existing = set(pyboxd.docker("ps", "-a", "--format", "{{.Names}}").stdout.split())
        mine = [n for n in made if n in existing]
        if mine:
            pyboxd.docker("rm", "-f", *mine, timeout=120)


@pytest.fixture
def images_made(pyboxd):
    """A list to append image references to; each is `docker rmi -f`'d at the end."""
    made = []
    yield made
    for ref in reversed(made):
        pyboxd.docker("rmi", "-f", ref)


@pytest.fixture(scope="session")
def dockerpy(pyboxd):
    docker = pytest.importorskip("docker", reason="docker-py (./install.sh --dev)")
    client = docker.DockerClient(base_url=pyboxd.host, timeout=TIMEOUT)
    yield client
    client.close()


# -- the docker CLI on a real terminal ---------------------------------------------------------
class PtyProcess:
    """A command whose stdio and controlling terminal is a fresh pty (what a user
    at a terminal has): type(), expect(), resize() (the kernel sends SIGWINCH to
    the foreground process group, as a terminal emulator's resize does)."""

    def __init__(self, argv, env, rows=24, cols=80):
        self.master, slave = os.openpty()
        self.set_size(rows, cols, fd=slave)
        # setsid -c: a new session whose controlling terminal is stdin (the pty)
        self.proc = subprocess.Popen(["setsid", "-c", *argv], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.output = b""

    def set_size(self, rows, cols, fd=None):
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows, cols):
        self.set_size(rows, cols)

    def type(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.master, data)

    def read_available(self, timeout=0.1):
        while True:
            r, _, _ = select.select([self.master], [], [], timeout)
            if not r:
                return
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave is closed
                return
            if not chunk:
                return
            self.output += chunk
            timeout = 0

    def expect(self, needle, timeout=20.0, since=0):
        """Wait until ``needle`` appears in the output (after offset ``since``);
        -> the offset just after it."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.output.find(needle, since)
            if i >= 0:
                return i + len(needle)
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen on the terminal; got:\n"
                                     f"{self.output[-2000:]!r}")
            self.read_available(0.1)
            if self.proc.poll() is not None:
                self.read_available(0.2)
                if self.output.find(needle, since) < 0:
                    raise AssertionError(f"the command exited ({self.proc.returncode}) "
                                         f"before {needle!r}; got:\n{self.output[-2000:]!r}")

    def wait(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.read_available(0.1)
            if time.monotonic() > deadline:
                raise AssertionError(f"still running; terminal:\n{self.output[-2000:]!r}")
        self.read_available(0.2)
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def pty_docker(pyboxd):
    """pty_docker(*args, rows=, cols=) -> a PtyProcess running the docker CLI."""
    made = []

    def run(*args, rows=24, cols=80):
        p = PtyProcess([DOCKER, *args], pyboxd.cli_env, rows, cols)
        made.append(p)
        return p

    yield run
    for p in made:
        p.close()


# -- a real dockerd, for comparing shapes ---------------------------------------------------------
class ReferenceDockerd(PrivateDockerd):
    """tests/clients' private dockerd (private paths only, no bridge, no
    iptables), its CLI answering as ``pyboxd.docker`` does: text, unchecked."""

    def docker(self, *args, input=None, timeout=TIMEOUT, check=False):
        proc = super().docker(*args, input=None if input is None else input.encode(),
                              check=check, timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(errors="replace"),
                                           proc.stderr.decode(errors="replace"))


@pytest.fixture(scope="session")
def dockerd(pyboxd):
    if not shutil.which("dockerd"):
        pytest.skip("needs Debian's dockerd (docker.io) to compare with")
    d = ReferenceDockerd()
    try:
        d.start()
        tar = os.path.join(pyboxd.base, "busybox.tar")
        proc = d.docker("import", "-c", 'CMD ["sh"]', tar, IMAGE)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
    except BaseException:
        d.stop()
        raise
    yield d
    d.stop()
