"""A private Debian dockerd (docker.io 20.10): the reference the pybox CLI and
pyboxd are compared with (tests/clients, tests/engine's ``dockerd``,
benchmarks/) and, with ``--add-runtime``, the manager that drives
pybox-runtime in tests/compat.

It runs on private paths only: its own --data-root, --exec-root, socket,
--pidfile, daemon.json (so /etc/docker is never read), a cgroup parent named
after its directory, no bridge and no iptables unless told.  Without
--containerd it starts its own containerd below --exec-root and stops it again
on SIGTERM.  Every process, mount and cgroup ``stop()`` cleans up is found
through the private base directory or the cgroup name, so other daemons on the
machine (another test suite's, a system one) are never touched.

Also usable by hand while developing (tests/clients/dockerd.py runs this):

    python tests/clients/dockerd.py start      # prints BASE; socket is BASE/docker.sock
    python tests/clients/dockerd.py stop BASE
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from support.host import (
    kill_all,
    pids_mentioning,
    pids_named,
    remove_cgroup_tree,
    remove_empty_dirs,
    unmount_under,
)
from support.paths import IMAGE, busybox_tar

PREFIX = "pybox-clients-docker-"
SHARED_DIRS = ("/run/docker", "/run/containerd")


class DockerdError(Exception):
    pass


class PrivateDockerd:
    """One dockerd on private paths.  ``start()`` returns once the socket
    answers; ``stop()`` is idempotent.  ``prefix``: its directory's name (and
    so its cgroup parent's); ``extra_args``: more dockerd options
    (``--add-runtime pybox=PATH``)."""

    def __init__(self, base=None, prefix: str = PREFIX, extra_args=()):
        self.base = base or tempfile.mkdtemp(prefix=prefix)
        self.socket = os.path.join(self.base, "docker.sock")
        self.host = f"unix://{self.socket}"
        self.cgroup_parent = "/" + os.path.basename(self.base)
        self.bridge = "none"  # or an existing bridge of the caller's (its default network)
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None
        self.pre_existing = {p for p in SHARED_DIRS if os.path.lexists(p)}

    # -- lifecycle --------------------------------------------------------------
    def start(self, timeout: float = 60):
        with open(os.path.join(self.base, "daemon.json"), "w") as f:
            # the trust key would otherwise go to /etc/docker/key.json
            json.dump({"deprecated-key-path": os.path.join(self.base, "key.json")}, f)
        argv = ["dockerd", "--config-file", f"{self.base}/daemon.json",
                "--data-root", f"{self.base}/data", "--exec-root", f"{self.base}/exec",
                "-H", self.host, "--pidfile", f"{self.base}/docker.pid",
                "--cgroup-parent", self.cgroup_parent, "--storage-driver", "overlay2",
                "--bridge", self.bridge, "--iptables=false", "--ip6tables=false",
                "--ip-masq=false", "--log-level", "warn", *self.extra_args]
        # cwd: its children (containerd, the shims, the runtime) write nothing into ours
        with open(os.path.join(self.base, "dockerd.log"), "w") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, start_new_session=True, cwd=self.base)
        deadline = time.monotonic() + timeout
        while not self._ping():
            if self.process.poll() is not None:
                raise DockerdError(f"dockerd exited ({self.process.returncode}):\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                raise DockerdError("dockerd did not answer in time:\n" + self.log_tail())
            time.sleep(0.1)
        return self

    def log_tail(self, size: int = 3000) -> str:
        try:
            with open(os.path.join(self.base, "dockerd.log")) as f:
                return f.read()[-size:]
        except OSError:
            return ""

    def _ping(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(self.socket)
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def docker(self, *args, input=None, check=True, timeout=120):
        """The real docker CLI against this daemon (bytes out)."""
        env = dict(os.environ, DOCKER_HOST=self.host,
                   DOCKER_CONFIG=os.path.join(self.base, "cli"))
        proc = subprocess.run(["docker", *args], input=input, env=env,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise DockerdError(f"docker {' '.join(args)}: {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace')}")
        return proc

    def import_busybox(self, image=IMAGE) -> str:
        """docker import of a busybox rootfs tarball pybox builds (no registry)."""
        tar = busybox_tar(self.base)
        self.docker("import", "-c", 'CMD ["sh"]', tar, image)
        return tar

    def stop(self) -> None:
        """Remove our containers, SIGTERM dockerd (it stops its containerd), then
        SIGKILL what is left that mentions our base directory, unmount below it,
        remove our cgroups and the directory."""
        if self.process is not None and self.process.poll() is None:
            out = self.docker("ps", "-aq", check=False, timeout=30).stdout
            # bytes here; text from subclasses that decode (tests/engine's)
            ids = (out.decode() if isinstance(out, bytes) else out).split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=60)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self.process is None:
            _signal_pidfile(os.path.join(self.base, "docker.pid"))
        kill_all(pids_mentioning(self.base))
        unmount_under(self.base)
        remove_cgroup_tree(self.cgroup_parent)
        shutil.rmtree(self.base, ignore_errors=True)
        self._remove_shared_dirs()

    def _remove_shared_dirs(self) -> None:
        """dockerd insists on /run/docker and the shim on /run/containerd/s.  Remove
        them only if they were absent when we started, are empty now, and no other
        dockerd or containerd is alive that might use them."""
        if pids_named(("dockerd", "containerd")):
            return
        for top in SHARED_DIRS:
            if top not in self.pre_existing and os.path.isdir(top):
                remove_empty_dirs(top)


def _signal_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
        for _ in range(300):
            if not os.path.exists(path):
                break
            time.sleep(0.1)
    except (OSError, ValueError):
        pass


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        d = PrivateDockerd().start()
        d.import_busybox()
        print(d.base)
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        if not os.path.basename(argv[1].rstrip("/")).startswith(PREFIX):
            print("not one of ours", file=sys.stderr)
            return 2
        PrivateDockerd(argv[1].rstrip("/")).stop()
        return 0
    print(__doc__, file=sys.stderr)
    return 2
