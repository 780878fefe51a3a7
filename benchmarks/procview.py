#!/usr/bin/env python3
"""The /proc view's cost: a read of /proc/meminfo inside a container with the
view on and off, and what the view adds to ``pybox run --rm``.

A private pyboxd (socket and data root under /tmp, exec root under /run, the
busybox image imported into it) is started and stopped by the script; nothing
of the host's is touched.

1. Reads: one container per mode (-m 64m), running the host's Python (bound
   read-only) which opens, reads to EOF and closes /proc/meminfo N times,
   timing each with perf_counter: read(2) in a loop, and sendfile(2) into a
   pipe (what busybox cat does).  View off = ``--proc-view=false``: the
   kernel's procfs file.
2. ``pybox run --rm busybox true``, view on and off alternating, N rounds:
   wall time of the client.
3. The same cost without the engine's noise: ``pybox-runtime run`` of a busybox
   bundle running /bin/true, with the view's 8 binds (a fresh per-container
   directory each time) and sysinfo notified to the server, and without.

    /opt/pybox/bin/python benchmarks/procview.py [-n 2000] [--runs 30]
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

PYTHON_BINDS = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro"]
READER = r"""
import os, statistics, sys, time
n = int(sys.argv[1])
def once_read():
    t = time.perf_counter()
    fd = os.open("/proc/meminfo", os.O_RDONLY)
    while os.read(fd, 65536):
        pass
    os.close(fd)
    return time.perf_counter() - t
def once_sendfile():
    r, w = os.pipe()
    t = time.perf_counter()
    fd = os.open("/proc/meminfo", os.O_RDONLY)
    while os.sendfile(w, fd, None, 65536) > 0:
        os.read(r, 65536)
    os.close(fd)
    dt = time.perf_counter() - t
    os.close(r); os.close(w)
    return dt
for name, f in (("read", once_read), ("sendfile", once_sendfile)):
    for _ in range(50):
        f()
    ts = sorted(f() for _ in range(n))
    print(name, statistics.median(ts) * 1e6, ts[int(n * 0.9)] * 1e6)
print("MemTotal", open("/proc/meminfo").readline().split()[1])
"""


class Daemon:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="pybox-bench-pv-")
        self.sock = os.path.join(self.base, "pybox.sock")
        self.exec_root = f"/run/pbb-{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ, PYTHONPATH=SRC)
        launcher = shutil.which("pybox")
        use_launcher = launcher and SRC in open(launcher).read()
        self.cli = ([launcher] if use_launcher else [sys.executable, "-m", "pybox.cli.pybox"]) \
            + ["-H", f"unix://{self.sock}"]
        self.proc = None

    def start(self):
        log = open(os.path.join(self.base, "pyboxd.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybox.cli.pyboxd", "-H", f"unix://{self.sock}",
             "--data-root", os.path.join(self.base, "data"), "--exec-root", self.exec_root],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(self.cli + ["version"], capture_output=True,
                             env=self.env).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("pyboxd did not start")
            time.sleep(0.1)
        bundle = os.path.join(self.base, "bb")
        subprocess.run([sys.executable, "-m", "pybox.images.rootfs", "busybox", bundle],
                       check=True, capture_output=True, env=self.env)
        tar = os.path.join(self.base, "bb.tar")
        subprocess.run(["tar", "-C", os.path.join(bundle, "rootfs"), "-cf", tar, "."], check=True)
        self.run("import", tar, "busybox:latest")

    def run(self, *args):
        proc = subprocess.run(self.cli + list(args), capture_output=True, text=True,
                              env=self.env, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"pybox {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            ids = self.run("ps", "-aq").split()
            if ids:
                self.run("rm", "-f", *ids)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


def reads(d, n, view):
    flags = [] if view else ["--proc-view=false"]
    out = d.run("run", "--rm", "-m", "64m", *flags, *PYTHON_BINDS, "busybox:latest",
                "/usr/bin/python3", "-I", "-c", READER, str(n))
    res = {}
    for line in out.splitlines():
        fields = line.split()
        if fields[0] == "MemTotal":
            res["MemTotal"] = int(fields[1])
        else:
            res[fields[0]] = (float(fields[1]), float(fields[2]))
    return res


def run_rm(d, runs):
    on, off = [], []
    for _ in range(runs):
        for times, flags in ((on, []), (off, ["--proc-view=false"])):
            t = time.perf_counter()
            d.run("run", "--rm", *flags, "busybox:latest", "true")
            times.append(time.perf_counter() - t)
    return on, off


def runtime_run(d, runs):
    """pybox-runtime run of one bundle, with and without the view's binds."""
    import json

    from pybox.images.rootfs import build_busybox_rootfs
    from pybox.oci.defaults import default_spec
    from pybox.procview import FILES
    from pybox.procview.control import Server
    from pybox.procview.server import SECCOMP_SOCKET

    server = Server(os.path.join(d.exec_root, "procview"))
    rootfs = build_busybox_rootfs(os.path.join(d.base, "rt-rootfs"))
    root = os.path.join(d.exec_root, "rt-bench")
    runtime = shutil.which("pybox-runtime") or "pybox-runtime"
    on, off = [], []
    for _ in range(runs):
        for times, view in ((on, True), (off, False)):
            cid = f"pvbench-{uuid.uuid4().hex[:12]}"
            bundle = os.path.join(d.base, "rt-bundle")
            os.makedirs(bundle, exist_ok=True)
            spec = default_spec()
            spec["process"]["terminal"] = False
            spec["process"]["args"] = ["/bin/true"]
            spec["root"] = {"path": rootfs, "readonly": True}
            spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["sysinfo"], "action": "SCMP_ACT_ALLOW"}]}
            if view:
                spec["mounts"] += [{"destination": dest, "type": "bind",
                                    "source": server.source(cid, name),
                                    "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}
                                   for name, dest in FILES]
                spec["linux"]["seccomp"] = {
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}],
                    "listenerPath": os.path.join(server.dir, SECCOMP_SOCKET)}
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(spec, f)
            t = time.perf_counter()
            subprocess.run([runtime, "--root", root, "run", "-b", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
    shutil.rmtree(root, ignore_errors=True)
    return on, off


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=2000, help="reads per mode")
    p.add_argument("--runs", type=int, default=30, help="run --rm rounds")
    args = p.parse_args()
    d = Daemon()
    try:
        d.start()
        d.run("run", "--rm", "busybox:latest", "true")  # warm: the server, page cache
        on = reads(d, args.n, True)
        off = reads(d, args.n, False)
        print(f"\n/proc/meminfo in a -m 64m container, {args.n} reads each (µs)\n")
        print("| view | MemTotal seen | read median | read p90 | sendfile median | "
              "sendfile p90 |")
        print("|---|---|---|---|---|---|")
        for name, r in (("on", on), ("off", off)):
            print(f"| {name} | {r['MemTotal']} kB | {r['read'][0]:.0f} | {r['read'][1]:.0f} | "
                  f"{r['sendfile'][0]:.0f} | {r['sendfile'][1]:.0f} |")
        t_on, t_off = run_rm(d, args.runs)
        m_on, m_off = statistics.median(t_on), statistics.median(t_off)
        print(f"\npybox run --rm busybox true, {args.runs} rounds alternating (ms)\n")
        print("| view | median | p90 |")
        print("|---|---|---|")
        for name, ts in (("on", t_on), ("off", t_off)):
            ts = sorted(ts)
            print(f"| {name} | {statistics.median(ts) * 1e3:.1f} | "
                  f"{ts[int(len(ts) * 0.9)] * 1e3:.1f} |")
        print(f"\nadded by the view: {(m_on - m_off) * 1e3:+.1f} ms "
              f"({(m_on / m_off - 1) * 100:+.0f}%)")
        r_on, r_off = runtime_run(d, args.runs)
        print(f"\npybox-runtime run (busybox /bin/true), {args.runs} rounds alternating (ms)\n")
        print("| view | median | p90 |")
        print("|---|---|---|")
        for name, ts in (("on: 8 binds + sysinfo notify", r_on), ("off", r_off)):
            ts = sorted(ts)
            print(f"| {name} | {statistics.median(ts) * 1e3:.1f} | "
                  f"{ts[int(len(ts) * 0.9)] * 1e3:.1f} |")
        print(f"\nadded by the view: "
              f"{(statistics.median(r_on) - statistics.median(r_off)) * 1e3:+.1f} ms")
    finally:
        d.stop()


if __name__ == "__main__":
    main()
