#!/usr/bin/env python3
"""Engine speed and monitor memory: pybox next to docker and podman (Debian's).

Each engine gets the same busybox image (imported from the same tarball) and a
private daemon/storage, so nothing of the host's is touched:

- pybox:  a private pyboxd (unix socket under /run), driven by the docker 28 CLI
          (/usr/local/bin/docker) and, when installed, by pybox's own CLI;
- docker: a private dockerd (Debian's docker.io, runc) with --bridge none;
- podman: Debian's podman with private --root/--runroot, cgroupfs, runc (crun
          refuses this hybrid-cgroup host), the ulimits root needs here.

Measured (median of N, wall time of the client command):
  run --rm --network none IMAGE true,   run -d --network none IMAGE sleep,
  exec CONTAINER true,   50 detached starts one after another (total),
  and the PSS of pybox's per-container monitors (and of conmon / containerd-shim).

    /opt/pybox/bin/python benchmarks/engine.py [-n 20] [--engines pybox,docker,podman]
    # before/after a change: an older checkout's pyboxd beside this one's
    /opt/pybox/bin/python benchmarks/engine.py -n 10 --engines pybox,pybox-base \
        --base-src /var/tmp/pybox-base/src
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path.insert(0, SRC)

DOCKER = "/usr/local/bin/docker"


def wait_socket(path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            proc = subprocess.run([DOCKER, "-H", f"unix://{path}", "version"],
                                  capture_output=True)
            if proc.returncode == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"daemon at {path} did not come up")


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(argv, env=None):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode().strip()}")
    return dt


class Engine:
    name = "?"

    def cli(self, *args):
        raise NotImplementedError

    def stop(self):
        pass

    def monitors(self):
        return []


class Pybox(Engine):
    def __init__(self, work, tarball, client="docker", src=SRC):
        """``src``: the source tree pyboxd runs from (another checkout's, with
        --base-src); its own pybox-runtime launcher goes first on pyboxd's PATH."""
        self.name = "pybox" if client == "docker" else "pybox(cli)"
        if src != SRC:
            self.name = "pybox(base)"
        self.run_root = tempfile.mkdtemp(prefix="pbx-bench-", dir="/run")
        self.sock = os.path.join(self.run_root, "pybox.sock")
        env = dict(os.environ, PYTHONPATH=src)
        if src != SRC:
            bindir = os.path.join(self.run_root, "bin")
            os.makedirs(bindir)  # older trees' launchers module expects it
            subprocess.run([sys.executable, "-m", "pybox.launchers", bindir], env=env,
                           check=True, capture_output=True)
            env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybox.cli.pyboxd", "-H", f"unix://{self.sock}",
             "--data-root", os.path.join(work, f"pybox-data-{uuid.uuid4().hex[:6]}"),
             "--exec-root", os.path.join(self.run_root, "exec")],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "pyboxd.log"), "w"),
            env=env)
        wait_socket(self.sock)
        self.client = client
        subprocess.run([DOCKER, "-H", f"unix://{self.sock}", "import", "-c", 'CMD ["sh"]',
                        tarball, "busybox:latest"], check=True, capture_output=True)

    def cli(self, *args):
        if self.client == "pybox":
            return [shutil.which("pybox"), "-H", f"unix://{self.sock}", *args]
        return [DOCKER, "-H", f"unix://{self.sock}", *args]

    def monitors(self):
        out = []
        base = os.path.join(self.run_root, "exec", "containers")
        for cid in os.listdir(base) if os.path.isdir(base) else ():
            try:
                with open(os.path.join(base, cid, "monitor.pid")) as f:
                    out.append(int(f.read()))
            except OSError:
                pass
        return out

    def stop(self):
        subprocess.run(self.cli("rm", "-f", *self.ids()), capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        shutil.rmtree(self.run_root, ignore_errors=True)

    def ids(self):
        return subprocess.run(self.cli("ps", "-aq"), capture_output=True,
                              text=True).stdout.split()


class Docker(Engine):
    name = "docker"

    def __init__(self, work, tarball):
        self.root = os.path.join(work, "docker")
        self.exec_root = tempfile.mkdtemp(prefix="dk-bench-", dir="/run")
        self.sock = os.path.join(self.exec_root, "docker.sock")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", self.root, "--exec-root", self.exec_root,
             "-H", f"unix://{self.sock}", "--pidfile", os.path.join(self.exec_root, "pid"),
             "--bridge", "none", "--iptables=false", "--ip-masq=false",
             "--cgroup-parent", "/pybox-bench-docker"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "dockerd.log"), "w"))
        wait_socket(self.sock, 60)
        subprocess.run(self.cli("import", "-c", 'CMD ["sh"]', tarball, "busybox:latest"),
                       check=True, capture_output=True)

    def cli(self, *args):
        return [DOCKER, "-H", f"unix://{self.sock}", *args]

    def monitors(self):
        out = subprocess.run(["pgrep", "-f", "containerd-shim"], capture_output=True,
                             text=True).stdout.split()
        return [int(p) for p in out]

    def stop(self):
        ids = subprocess.run(self.cli("ps", "-aq"), capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(self.cli("rm", "-f", *ids), capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        remove_empty_cgroups("pybox-bench-docker")  # dockerd leaves its --cgroup-parent


def remove_empty_cgroups(name):
    """rmdir NAME (and anything empty below it) in every cgroup hierarchy."""
    for mount in {line.split()[4] for line in open("/proc/self/mountinfo")
                  if line.split(" - ")[-1].split()[0] in ("cgroup", "cgroup2")}:
        top = os.path.join(mount, name)
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


class Podman(Engine):
    name = "podman"

    def __init__(self, work, tarball):
        self.root = os.path.join(work, "podman")
        self.runroot = tempfile.mkdtemp(prefix="pm-bench-", dir="/run")
        self.base = ["podman", "--root", self.root, "--runroot", self.runroot,
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--runtime", shutil.which("runc") or "runc"]
        subprocess.run(self.base + ["import", "--change", 'CMD ["sh"]', tarball,
                                    "busybox:latest"], check=True, capture_output=True)

    def cli(self, *args):
        args = list(args)
        if args[:1] in (["run"], ["create"]):
            args[1:1] = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
        return self.base + args

    def monitors(self):
        out = subprocess.run(["pgrep", "-f", f"conmon.*{self.runroot}"], capture_output=True,
                             text=True).stdout.split()
        return [int(p) for p in out]

    def stop(self):
        subprocess.run(self.base + ["rm", "-af", "-t", "0"], capture_output=True)
        subprocess.run(self.base + ["system", "reset", "-f"], capture_output=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


def bench(engine, n, batch):
    res = {}
    res["run --rm"] = statistics.median(
        timed(engine.cli("run", "--rm", "--network", "none", "busybox", "true"))
        for _ in range(n))
    names = []
    samples = []
    for _ in range(n):
        name = f"pybox-bench-{uuid.uuid4().hex[:8]}"
        samples.append(timed(engine.cli("run", "-d", "--network", "none", "--name", name,
                                        "busybox", "sleep", "1000")))
        names.append(name)
    res["run -d"] = statistics.median(samples)
    res["exec true"] = statistics.median(
        timed(engine.cli("exec", names[0], "true")) for _ in range(n))
    subprocess.run(engine.cli("rm", "-f", *names), capture_output=True)
    t0 = time.perf_counter()
    names = []
    for _ in range(batch):
        name = f"pybox-bench-{uuid.uuid4().hex[:8]}"
        timed(engine.cli("run", "-d", "--network", "none", "--name", name, "busybox", "sleep",
                         "1000"))
        names.append(name)
    res[f"{batch} x run -d"] = time.perf_counter() - t0
    pids = engine.monitors()
    if pids:
        res["monitor PSS"] = statistics.mean(pss_kib(p) for p in pids) / 1024
    subprocess.run(engine.cli("rm", "-f", *names), capture_output=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--engines", default="pybox,docker,podman",
                    help="pybox, pybox-cli, pybox-base (needs --base-src), docker, podman")
    ap.add_argument("--base-src", help="another checkout's src/ for pybox-base (before/after)")
    args = ap.parse_args()
    from pybox.images.rootfs import build_busybox_rootfs

    work = tempfile.mkdtemp(prefix="pybox-bench-engine-")
    rootfs = build_busybox_rootfs(os.path.join(work, "rootfs"))
    tarball = os.path.join(work, "busybox.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
    results = {}
    try:
        for name in args.engines.split(","):
            cls = {"pybox": Pybox, "docker": Docker, "podman": Podman,
                   "pybox-cli": lambda w, t: Pybox(w, t, client="pybox"),
                   "pybox-base": lambda w, t: Pybox(w, t, src=args.base_src)}[name]
            try:
                engine = cls(work, tarball)
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{name}: not available: {e}")
                continue
            try:
                results[engine.name] = bench(engine, args.n, args.batch)
            except Exception as e:  # noqa: BLE001
                log = os.path.join(work, f"{name}d.log")
                tail = open(log).read()[-3000:] if os.path.exists(log) else ""
                print(f"{name}: failed: {e}\n{tail}")
            finally:
                engine.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ops = []
    for r in results.values():
        ops += [o for o in r if o not in ops]
    print(f"\n{'operation':<16}" + "".join(f"{n:>14}" for n in results))
    for op in ops:
        row = f"{op:<16}"
        for r in results.values():
            v = r.get(op)
            if v is None:
                row += f"{'-':>14}"
            elif op == "monitor PSS":
                row += f"{v:>10.2f} MiB"
            else:
                row += f"{v:>12.3f} s"
        print(row)


if __name__ == "__main__":
    main()
