"""A private dockerd for testing clients (the pybox CLI) against the real thing.

Debian's ``docker.io`` daemon (20.10) is started on private paths only: its own
--data-root, --exec-root, socket, --pidfile, daemon.json (so /etc/docker is never
read), a cgroup parent named after this run, no bridge and no iptables.  Without
--containerd it starts its own containerd below --exec-root and stops it again on
SIGTERM.  Every process, mount and cgroup this module cleans up is found through
the private base directory or the cgroup name, so other daemons on the machine
(another test suite's, a system one) are never touched.

Also usable by hand while developing:

    python tests/clients/dockerd.py start      # prints BASE; socket is BASE/docker.sock
    python tests/clients/dockerd.py stop BASE
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PREFIX = "pybox-clients-docker-"
IMAGE = "busybox:latest"
SHARED_DIRS = ("/run/docker", "/run/containerd")


class DockerdError(Exception):
    pass


class PrivateDockerd:
    """One dockerd on private paths.  ``start()`` returns once the socket answers
    and the busybox image is imported; ``stop()`` is idempotent."""

    def __init__(self, base=None):
        self.base = base or tempfile.mkdtemp(prefix=PREFIX)
        self.socket = os.path.join(self.base, "docker.sock")
        self.host = f"unix://{self.socket}"
        self.cgroup_parent = "/" + os.path.basename(self.base)
        self.bridge = "none"  # or an existing bridge of the caller's (its default network)
        self.process = None
        self.pre_existing = {p for p in SHARED_DIRS if os.path.lexists(p)}

    # -- lifecycle --------------------------------------------------------------
    def start(self, timeout=60):
        with open(os.path.join(self.base, "daemon.json"), "w") as f:
            json.dump({"deprecated-key-path": os.path.join(self.base, "key.json")}, f)
        argv = ["dockerd", "--config-file", f"{self.base}/daemon.json",
                "--data-root", f"{self.base}/data", "--exec-root", f"{self.base}/exec",
                "-H", self.host, "--pidfile", f"{self.base}/docker.pid",
                "--cgroup-parent", self.cgroup_parent, "--storage-driver", "overlay2",
                "--bridge", self.bridge, "--iptables=false", "--ip6tables=false",
                "--ip-masq=false", "--log-level", "warn"]
        log = open(os.path.join(self.base, "dockerd.log"), "w")
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._ping():
            if self.process.poll() is not None:
                raise DockerdError(f"dockerd exited ({self.process.returncode}):\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                raise DockerdError("dockerd did not answer in time:\n" + self.log_tail())
            time.sleep(0.1)
        return self

    def log_tail(self, size=3000):
        try:
            with open(os.path.join(self.base, "dockerd.log")) as f:
                return f.read()[-size:]
        except OSError:
            return ""

    def _ping(self):
        import socket
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
        """The real docker CLI against this daemon."""
        env = dict(os.environ, DOCKER_HOST=self.host,
                   DOCKER_CONFIG=os.path.join(self.base, "cli"))
        proc = subprocess.run(["docker", *args], input=input, env=env,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise DockerdError(f"docker {' '.join(args)}: {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace')}")
        return proc

    def import_busybox(self, image=IMAGE):
        """docker import of a busybox rootfs tarball pybox builds (no registry)."""
        tar = os.path.join(self.base, "busybox.tar")
        rootfs = os.path.join(self.base, "busybox-bundle")
        subprocess.run([sys.executable, "-m", "pybox.images.rootfs", "busybox", rootfs],
                       check=True, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=_src_dir()))
        subprocess.run(["tar", "-C", os.path.join(rootfs, "rootfs"), "-cf", tar, "."],
                       check=True)
        self.docker("import", "-c", 'CMD ["sh"]', tar, image)
        return tar

    def stop(self):
        """Remove our containers, SIGTERM dockerd (it stops its containerd), then
        SIGKILL what is left that mentions our base directory, unmount below it,
        remove our cgroups and the directory."""
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
            if ids:
                self.docker("rm", "-f", *[i.decode() if isinstance(i, bytes) else i
                                          for i in ids], check=False, timeout=60)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self.process is None:
            _signal_pidfile(os.path.join(self.base, "docker.pid"))
        for pid in pids_mentioning(self.base):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        unmount_under(self.base)
        remove_cgroup_tree(self.cgroup_parent)
        shutil.rmtree(self.base, ignore_errors=True)
        self._remove_shared_dirs()

    def _remove_shared_dirs(self):
        """dockerd insists on /run/docker and the shim on /run/containerd/s.  Remove
        them only if they were absent when we started, are empty now, and no other
        dockerd or containerd is alive that might use them."""
        if pids_named(("dockerd", "containerd")):
            return
        for top in SHARED_DIRS:
            if top in self.pre_existing or not os.path.isdir(top):
                continue
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def _src_dir():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "src")


def _signal_pidfile(path):
    try:
        with open(path) as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
        for _ in range(300):
            if not os.path.exists(path):
                break
            time.sleep(0.1)
    except (OSError, ValueError):
        pass


def pids_mentioning(text):
    """Processes whose command line mentions ``text`` (our private directory)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(entry))
        except OSError:
            pass
    return out


def pids_named(names):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() in names:
                    out.append(int(entry))
        except OSError:
            pass
    return out


def unmount_under(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == path or p.startswith(path + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def remove_cgroup_tree(name):
    with open("/proc/self/mountinfo") as f:
        roots = [line.split()[4] for line in f
                 if line.split(" - ")[-1].split()[0] in ("cgroup", "cgroup2")]
    for root in roots:
        top = os.path.join(root, name.strip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def main(argv):
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
