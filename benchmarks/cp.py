#!/usr/bin/env python3
"""docker cp speed: pybox next to docker (Debian's dockerd), both ways.

A 100 MB tree -- 4,000 small files (1-9 KiB, in 40 directories) and 8 large
ones (10 MiB) of random bytes -- is copied with the docker 28 CLI
(/usr/local/bin/docker) into a running busybox container and back out, through
a private pyboxd (benchmarks/engine.py's) and a private dockerd
(tests/clients/dockerd.py's PrivateDockerd: private paths, no bridge, stopped
and cleaned up afterwards).  The same for a stopped container (pybox then
builds the container's mount view in a private namespace; docker mounts its
rootfs).  Each measurement is the wall time of one `docker cp`; the copy in the
container (or the host copy) is removed between runs; median of N, the two
engines alternating so the page cache and the machine's load treat them alike.

    /opt/pybox/bin/python benchmarks/cp.py [-n 5] [--keep-going]
"""

import argparse
import http.client
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.append(os.path.join(ROOT, "tests"))

from clients.dockerd import PrivateDockerd  # noqa: E402 - the tests' reference daemon
from engine import DOCKER, Pybox  # noqa: E402 - benchmarks/engine.py's private pyboxd

MIB = 1 << 20


def make_tree(root, small=4000, dirs=40, large=8, large_size=10 * MIB, seed=13):
    rng = random.Random(seed)
    total = 0
    for d in range(dirs):
        sub = os.path.join(root, f"dir{d:02d}", "sub")
        os.makedirs(sub)
        for i in range(small // dirs):
            size = rng.randint(1024, 9 * 1024)
            where = sub if i % 2 else os.path.dirname(sub)
            with open(os.path.join(where, f"f{i:03d}.txt"), "wb") as f:
                f.write(rng.randbytes(size))
            total += size
    os.makedirs(os.path.join(root, "large"))
    for i in range(large):
        with open(os.path.join(root, "large", f"blob{i}.bin"), "wb") as f:
            f.write(os.urandom(large_size))
        total += large_size
    return total


class Target:
    """One engine as the docker CLI sees it."""

    def __init__(self, name, host):
        self.name = name
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_CLI_HINTS="false")
        self.env.pop("DOCKER_CONTEXT", None)

    def docker(self, *args, check=True):
        proc = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def timed(self, *args):
        t0 = time.perf_counter()
        self.docker(*args)
        return time.perf_counter() - t0


def measure(target, tree, work, n, running):
    name = f"pybox-bench-cp-{uuid.uuid4().hex[:8]}"
    if running:
        target.docker("run", "-d", "--network", "none", "--name", name, "busybox",
                      "sleep", "100000")
    else:
        target.docker("create", "--network", "none", "--name", name, "busybox", "true")
    out = os.path.join(work, f"out-{target.name}")
    samples = {"in": [], "out": []}
    try:
        for _ in range(n):
            if running:
                target.docker("exec", name, "rm", "-rf", "/dst")
            else:  # a stopped container: a fresh one (no exec to clean it)
                target.docker("rm", "-f", name)
                target.docker("create", "--network", "none", "--name", name, "busybox", "true")
            samples["in"].append(target.timed("cp", tree, f"{name}:/dst"))
            shutil.rmtree(out, ignore_errors=True)
            samples["out"].append(target.timed("cp", f"{name}:/dst", out))
        check_same(tree, out)
    finally:
        target.docker("rm", "-f", name, check=False)
        shutil.rmtree(out, ignore_errors=True)
    return {k: statistics.median(v) for k, v in samples.items()}


class _Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api_round(target, sock, tar_path):
    """PUT the tree's tar into a running container, GET it back: the seconds
    of each, the daemon alone."""
    name = f"pybox-bench-cp-{uuid.uuid4().hex[:8]}"
    target.docker("run", "-d", "--network", "none", "--name", name, "busybox", "sleep",
                  "100000")
    try:
        target.docker("exec", name, "mkdir", "/dst")

        def body():
            with open(tar_path, "rb") as f:
                while chunk := f.read(32 << 10):
                    yield chunk

        conn = _Unix(sock)
        t0 = time.perf_counter()
        conn.request("PUT", f"/containers/{name}/archive?path=/dst", body=body(),
                     headers={"Content-Type": "application/x-tar"}, encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        put = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"{target.name}: PUT {resp.status}")
        conn.close()
        conn = _Unix(sock)
        t0 = time.perf_counter()
        conn.request("GET", f"/containers/{name}/archive?path=/dst")
        resp = conn.getresponse()
        while resp.read(1 << 20):
            pass
        get = time.perf_counter() - t0
        conn.close()
        return put, get
    finally:
        target.docker("rm", "-f", name, check=False)


def check_same(a, b):
    """The tree came back whole (names and sizes)."""
    def listing(root):
        out = {}
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = os.path.join(dirpath, f)
                out[os.path.relpath(p, root)] = os.path.getsize(p)
        return out

    if listing(a) != listing(b):
        raise RuntimeError(f"the copy out of the container differs from {a}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args()
    from pybox.images.rootfs import build_busybox_rootfs

    work = tempfile.mkdtemp(prefix="pybox-bench-cp-")
    pybox = dockerd = None
    results = {}
    try:
        tree = os.path.join(work, "tree")
        size = make_tree(tree)
        rootfs = build_busybox_rootfs(os.path.join(work, "rootfs"))
        tarball = os.path.join(work, "busybox.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
        tree_tar = os.path.join(work, "tree.tar")
        subprocess.run(["tar", "-C", work, "-cf", tree_tar, "tree"], check=True)
        pybox = Pybox(work, tarball)
        dockerd = PrivateDockerd().start()
        dockerd.docker("import", "-c", 'CMD ["sh"]', tarball, "busybox:latest")
        targets = [Target("pybox", f"unix://{pybox.sock}"), Target("docker", dockerd.host)]
        sockets = {"pybox": pybox.sock, "docker": dockerd.socket}
        print(f"tree: {size / MIB:.1f} MiB in {sum(len(f) for _, _, f in os.walk(tree))} files")
        api = {t.name: {"in": [], "out": []} for t in targets}
        for i in range(args.n + 1):
            for t in targets:
                put, get = api_round(t, sockets[t.name], tree_tar)
                if i:  # the first round warms up
                    api[t.name]["in"].append(put)
                    api[t.name]["out"].append(get)
        for t in targets:
            for way in ("in", "out"):
                results[("API", way, t.name)] = statistics.median(api[t.name][way])
        for running in (True, False):
            label = "running" if running else "stopped"
            for t in targets:  # warm-up, then the measured runs alternate
                measure(t, tree, work, 1, running)
            rows = {t.name: {"in": [], "out": []} for t in targets}
            for _ in range(args.n):
                for t in targets:
                    r = measure(t, tree, work, 1, running)
                    rows[t.name]["in"].append(r["in"])
                    rows[t.name]["out"].append(r["out"])
            for t in targets:
                for way in ("in", "out"):
                    results[(label, way, t.name)] = statistics.median(rows[t.name][way])
    finally:
        if pybox is not None:
            pybox.stop()
        if dockerd is not None:
            dockerd.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'docker cp (median of ' + str(args.n) + ')':<34}{'pybox':>10}{'docker':>10}"
          f"{'pybox/docker':>14}")
    for label in ("running", "stopped", "API"):
        for way, text in (("in", "host -> container"), ("out", "container -> host")):
            if (label, way, "pybox") not in results:
                continue
            p, d = results[(label, way, "pybox")], results[(label, way, "docker")]
            what = f"API {'PUT' if way == 'in' else 'GET'}, running" if label == "API" \
                else f"{text}, {label}"
            print(f"{what:<34}{p:>9.3f}s{d:>9.3f}s{p / d:>14.2f}")


if __name__ == "__main__":
    main()
