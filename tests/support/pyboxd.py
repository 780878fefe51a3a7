"""The private pyboxd of the tests: one implementation for every directory
that drives the daemon (tests/engine, network, procview, security, crash).

Its own socket and data root in a fresh directory (/tmp/pybox-engine-* unless
told otherwise), its own exec root under /run (short: the monitors' unix
sockets live there), a busybox image imported with `docker import`.  Every
create on the event stream is recorded, so that ``stop()``, after removing
every container and stopping pyboxd with SIGTERM, can check that nothing is
left: no process mentioning the exec root (monitors, zygote, the /proc view
server), no mount under the data root, no cgroup named after one of its
containers, no container record or runtime state.
"""

import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from support.host import cgroup_dirs, kill_all, mounts_under, pids_mentioning, remove_tree
from support.paths import DOCKER, IMAGE, PYTHON, SRC, busybox_tar
from support.unixhttp import TIMEOUT, UnixHTTPConnection, api
from support.wait import settle

# how long a starting pyboxd may take to answer: a safety net, not a speed
# check -- under the v2 VM's TCG (tests/v2vm), while a full run keeps the host's
# cores busy, Python's first start there reads every module over 9p
START_TIMEOUT = 180 if os.environ.get("PYBOX_V2VM") else 30

class Pyboxd:
    """One private pyboxd.  ``extra_args``: more pyboxd options (--userns-remap
    USER); ``parent``: where its directory is made (default: the temporary
    directory); ``env``: more of the daemon's environment (the network tests'
    PYBOX_HOST_RESOLV_CONF); ``exec_prefix``: its exec root's name under /run."""

    def __init__(self, extra_args=(), parent: str | None = None, env: dict | None = None,
                 exec_prefix: str = "pbe"):
        self.extra_args = list(extra_args)
        self.daemon_env = dict(env or {})
        self.base = tempfile.mkdtemp(prefix="pybox-engine-", dir=parent)
        self.socket = os.path.join(self.base, "pybox.sock")
        self.host = "unix://" + self.socket
        self.data_root = os.path.join(self.base, "data")
        # monitor sockets: EXEC_ROOT/containers/<64 hex>/monitor.sock < 108 bytes
        self.exec_root = f"/run/{exec_prefix}-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(self.base, "pyboxd.log")
        self.cli_env = dict(os.environ, DOCKER_HOST=self.host,
                            DOCKER_CONFIG=os.path.join(self.base, "cli"),
                            DOCKER_CLI_HINTS="false")
        self.cli_env.pop("DOCKER_CONTEXT", None)
        self.created: set[str] = set()  # every container id pyboxd reported a create for
        self._events: threading.Thread | None = None

    # -- life -----------------------------------------------------------------
    def start(self):
        argv = [PYTHON, "-m", "pybox.cli.pyboxd", "-H", self.host, "--data-root",
                self.data_root, "--exec-root", self.exec_root, *self.extra_args]
        env = dict(os.environ, PYTHONPATH=SRC, **self.daemon_env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"pyboxd exited ({self.process.returncode}):\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                raise RuntimeError("pyboxd did not answer /_ping:\n" + self.log_tail())
            time.sleep(0.05)
        self._watch_events()
        return self

    def ping(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        try:
            status, body = api(self.socket, "GET", "/_ping", timeout=2)
        except OSError:
            return False
        return status == 200 and body == b"OK"

    def _watch_events(self) -> None:
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

    def log_tail(self, size: int = 4000) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def terminate(self) -> int | None:
        """SIGTERM pyboxd (its containers keep running) and wait -> its exit
        status (None if it was not running); SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def restart(self, between=None) -> None:
        """SIGTERM pyboxd (its containers keep running), call ``between()`` while
        it is down, start it again on the same paths."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        assert code == 0, f"pyboxd exited with {code} on SIGTERM:\n{self.log_tail()}"
        if between is not None:
            between()
        self.start()

    def stop(self) -> list[str]:
        """Remove every container, SIGTERM pyboxd; -> list of leftovers found
        (each also removed, so that the next run starts clean)."""
        problems = []
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", "--no-trunc", timeout=30, check=False).stdout.split()
            self.created.update(ids)
            if ids:
                rm = self.docker("rm", "-f", *ids, timeout=120, check=False)
                if rm.returncode != 0:
                    problems.append(f"docker rm -f at the end failed: {rm.stderr}")
            try:
                code = self.terminate()
                if code != 0:
                    problems.append(f"pyboxd exited with {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append("pyboxd did not stop on SIGTERM")
        # what is left of ours
        if not settle(lambda: not pids_mentioning(self.exec_root), timeout=10):
            pids = pids_mentioning(self.exec_root)
            problems.append(f"processes left (monitors, zygote): {pids}")
            kill_all(pids)
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
        problems.extend(self.more_leftovers())
        if problems:
            problems.append("pyboxd log:\n" + self.log_tail())
        remove_tree(self.exec_root)
        if not mounts_under(self.base):
            remove_tree(self.base)  # at any depth (shutil.rmtree recurses)
        return problems

    def more_leftovers(self) -> list[str]:
        """What a subclass also checks for at the end, while the daemon's
        directories are still there (the network tests: links, nft, netns)."""
        return []

    # -- clients ------------------------------------------------------------------------
    def docker(self, *args, input=None, timeout=TIMEOUT, env=None, raw=False, check=False):
        """The docker CLI against pyboxd -> CompletedProcess (text, or bytes if raw);
        with ``check``, a failure raises AssertionError with pyboxd's log.  A
        command that hangs fails with what pyboxd and its children were doing."""
        try:
            proc = subprocess.run([DOCKER, *args], input=input, env=env or self.cli_env,
                                  capture_output=True, text=not raw, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            try:
                os.kill(self.process.pid, signal.SIGUSR1)  # its threads' stacks, to the log
                time.sleep(1)
            except (OSError, AttributeError):
                pass
            raise AssertionError(f"docker {' '.join(args)}: no answer in {timeout} s\n"
                                 f"pyboxd's log:\n{self.log_tail(6000)}\n"
                                 f"its processes:\n{self._process_tree()}") from e
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: exit {proc.returncode}: "
                                 f"{proc.stderr}\n--- pyboxd log ---\n{self.log_tail(1500)}")
        return proc

    def _process_tree(self) -> str:
        ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,wchan:32,etime,args", "--forest"],
                            capture_output=True, text=True).stdout
        return "\n".join(line[:240] for line in ps.splitlines()
                         if self.exec_root in line or self.base in line or "pybox" in line)

    def ok(self, *args, **kw) -> str:
        """docker ... that must succeed; -> its stdout."""
        proc = self.docker(*args, **kw)
        assert proc.returncode == 0, (f"docker {' '.join(args)} -> {proc.returncode}\n"
                                      f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc.stdout

    def api(self, method, path, body=None, timeout=TIMEOUT):
        return api(self.socket, method, path, body, timeout)

    def inspect(self, ref):
        return json.loads(self.ok("inspect", ref))[0]

    def import_busybox(self, ref=IMAGE) -> str:
        tar = busybox_tar(self.base)
        self.ok("import", "-c", 'CMD ["sh"]', tar, ref)
        return tar

    def zygote_pid(self) -> int | None:
        """pyboxd's monitor zygote (what every container's monitor is forked
        from): its child running pybox.monitor.zygote on this exec root."""
        marker = os.path.join(self.exec_root, "zygote.sock").encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{entry}/status") as f:
                    ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
            except (OSError, StopIteration):
                continue
            if b"pybox.monitor.zygote" in cmdline and marker in cmdline and ppid == self.pid:
                return int(entry)
        return None

    def monitor_pid(self, cid) -> int:
        with open(os.path.join(self.exec_root, "containers", cid, "monitor.pid")) as f:
            return int(f.read().strip())
