#!/usr/bin/env python3
"""Registry pull speed: pybox's pull next to ``skopeo copy`` + ``umoci unpack``.

    /opt/pybox/bin/python benchmarks/registry.py [-n 5] [--tools lib,pyboxd,skopeo,tar]
                                                 [--mb 60] [--dir /var/tmp] [--profile F]

A private Debian docker-registry (distribution 2.8) listens on 127.0.0.1 (a
free port, its storage in the benchmark's own directory).  The image: an OCI
layout of five gzip layers written here -- incompressible random files next to
text that gzip shrinks about 3:1, and one layer of ~2000 small files -- about
``--mb`` MB uncompressed, copied into the registry with ``skopeo copy
--preserve-digests``.  Then, each round from a cold cache (a new empty store,
a new client: no connections, no layers), every tool does the same work --
fetch every blob over HTTP, verify its digest, decompress and unpack the
layers -- and the median of -n rounds is printed:

  pybox (library)  ``pybox.images.pull.pull`` -- the function pyboxd's
                   ``POST /images/create`` calls -- into ``Images.open(NEW)``,
                   with a fresh ``Registries`` (docker's default of 3 parallel
                   downloads), in this process;
  pybox (pyboxd)   a private pyboxd (its own data root and exec root, started
                   per round, not timed) and ``docker pull`` (the docker 28 CLI,
                   /usr/local/bin/docker) through DOCKER_HOST: the user's path,
                   including the API's JSON progress stream;
  skopeo+umoci     ``skopeo copy --src-tls-verify=false docker://REG/IMG
                   oci:DIR:bench`` then ``umoci unpack --image DIR:bench BUNDLE``.

  skopeo+tar       (with --tools ...,tar) the same skopeo copy, then GNU ``tar
                   -xzf`` of each layer blob in order into one directory: a floor
                   for reference, not a peer -- no digest or diff-id check, no
                   whiteouts, no mtree; not part of the target.

Ratios are pybox / (skopeo+umoci); target: <= 1.  ``os.sync()`` runs before
every timed step so one round's writeback does not slow the next.  ``--dir``
picks where stores, layouts and the registry's storage go: a disk (what users
get; on a busy shared disk file creation dominates and varies), or a tmpfs
such as /dev/shm to see the CPU cost alone.  ``--profile F`` cProfiles the
library pulls' calling thread only (the downloads run in worker threads; use
``py-spy record --threads`` for those).  Everything
made -- the registry process, pyboxd, directories, mounts under them -- goes
at the end, on an error, on Ctrl-C or on SIGTERM.
"""

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path.insert(0, SRC)

from pybox.images.platforms import host_platform  # noqa: E402
from pybox.images.pull import pull  # noqa: E402
from pybox.images.registry import Registries  # noqa: E402
from pybox.images.registry_config import RegistryOptions  # noqa: E402
from pybox.images.service import Images  # noqa: E402

DOCKER = "/usr/local/bin/docker"
REPO = "bench/image"
TAG = "bench"
WORDS = ("container image layer registry manifest digest blob pull push token scope "
         "overlay snapshot config platform index mirror proxy retry backoff verify "
         "unpack whiteout chain diff tar gzip zstd python linux kernel cgroup").split()


# -- the image --------------------------------------------------------------------------
def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _text_pool(rng, size=512 * 1024):
    """Text of random words and numbers (gzip: about 3:1); files are slices of it
    at random offsets, so gzip's 32 KiB window finds no long repeats."""
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        line += f" {rng.randint(0, 1 << 30)}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def _text(rng, pool, size):
    parts, n = [], 0
    while n < size:
        start = rng.randrange(0, len(pool) - 40000)
        piece = pool[start:start + min(size - n, rng.randint(8000, 40000))]
        parts.append(piece)
        n += len(piece)
    return b"".join(parts)


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path, data in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_layers(total_mb, seed=9):
    """Five layer tars of about ``total_mb`` MB together."""
    rng = random.Random(seed)
    pool = _text_pool(rng)
    unit = total_mb * 1_000_000 / 60   # the shares below add up to 60 units
    layers = []
    # (random units, text units) per big layer, split into a few files each
    for index, (rand_units, text_units) in enumerate(((12, 4), (8, 8), (6, 6), (2, 4))):
        files = []
        for j in range(3):
            files.append((f"opt/layer{index}/blob{j}.bin",
                          rng.randbytes(int(rand_units * unit / 3))))
            files.append((f"opt/layer{index}/text{j}.txt",
                          _text(rng, pool, int(text_units * unit / 3))))
        layers.append(_tar(files))
    # many small files (a package tree's shape): 1-8 KB each, ~10 units
    files, n, i = [], 0, 0
    while n < 10 * unit:
        size = rng.randint(1000, 8000)
        data = _text(rng, pool, size) if i % 4 else rng.randbytes(size)
        files.append((f"usr/lib/bench/pkg{i // 50:03d}/mod{i:05d}.py", data))
        n += size
        i += 1
    layers.insert(1, _tar(files))
    return layers


def write_layout(path, layers):
    """An OCI layout (gzip level 6 layers, as docker and buildkit write them)
    tagged ``TAG``; -> (uncompressed bytes, compressed bytes)."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        with open(os.path.join(blobs, _sha(data)[7:]), "wb") as f:
            f.write(data)
        return {"digest": _sha(data), "size": len(data)}

    descs = [dict(put(gzip.compress(layer, 6, mtime=0)),
                  mediaType="application/vnd.oci.image.layer.v1.tar+gzip") for layer in layers]
    host = host_platform()
    config = {"architecture": host.architecture, "os": "linux",
              "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]}}
    if host.variant:
        config["variant"] = host.variant
    config_bytes = json.dumps(config).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": dict(put(config_bytes),
                                          mediaType="application/vnd.oci.image.config.v1+json"),
                           "layers": descs}).encode()
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [dict(
            put(manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
            annotations={"org.opencontainers.image.ref.name": TAG})]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    return sum(len(layer) for layer in layers), sum(d["size"] for d in descs)


# -- processes ------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def stop_process(process, timeout=30):
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Registry:
    """docker-registry on 127.0.0.1 with its storage under ``base``."""

    def __init__(self, base):
        self.dir = os.path.join(base, "registry")
        os.makedirs(self.dir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "version: 0.1", "log:", "  level: error", "  accesslog:",
                "    disabled: true", "storage:", "  filesystem:",
                f"    rootdirectory: {self.dir}/data", "http:",
                f"  addr: 127.0.0.1:{self.port}"]) + "\n")
        self.process = None

    def start(self):
        with open(os.path.join(self.dir, "registry.log"), "ab") as log:
            # its own session: a Ctrl-C reaches only us, and we stop it in order
            self.process = subprocess.Popen(["docker-registry", "serve", self.config],
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        wait_port(self.port, self.process)

    def stop(self):
        stop_process(self.process)


class Pyboxd:
    """A private pyboxd: data root under ``work``, exec root under /run."""

    def __init__(self, work, name):
        self.base = os.path.join(work, name)
        os.makedirs(self.base)
        self.exec_root = tempfile.mkdtemp(prefix="pbx-regbench-", dir="/run")
        self.sock = os.path.join(self.exec_root, "pybox.sock")
        self.config = os.path.join(self.base, "daemon.json")
        with open(self.config, "w") as f:
            f.write("{}\n")  # not /etc/pybox/daemon.json: defaults only
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock,
                        DOCKER_CONFIG=os.path.join(self.base, "cli"),
                        DOCKER_CLI_HINTS="false")
        self.env.pop("DOCKER_CONTEXT", None)
        self.process = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=SRC)
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(key, None)
        with open(os.path.join(self.base, "pyboxd.log"), "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pybox.cli.pyboxd", "-H", "unix://" + self.sock,
                 "--data-root", os.path.join(self.base, "data"),
                 "--exec-root", os.path.join(self.exec_root, "exec"),
                 "--config-file", self.config, "--no-proc-view"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            proc = subprocess.run([DOCKER, "version"], env=self.env, capture_output=True)
            if proc.returncode == 0:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pyboxd did not start; see "
                                   + os.path.join(self.base, "pyboxd.log"))
            time.sleep(0.1)

    def pull(self, ref):
        t0 = time.perf_counter()
        proc = subprocess.run([DOCKER, "pull", ref], env=self.env, capture_output=True,
                              text=True)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"docker pull {ref}: {proc.stdout}{proc.stderr}")
        return dt

    def stop(self):
        stop_process(self.process)
        umount_all_under(self.exec_root)
        umount_all_under(self.base)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


def umount_all_under(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(path.rstrip("/") + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def remove(path):
    umount_all_under(path)
    shutil.rmtree(path, ignore_errors=True)


# -- the measurements -------------------------------------------------------------------
def pull_library(work, ref, round_no, profile=None):
    root = os.path.join(work, f"lib-{round_no}")
    os.sync()
    registries = Registries(RegistryOptions(proxies={}))
    t0 = time.perf_counter()
    try:
        if profile is not None:
            profile.enable()
        pull(Images.open(root), registries, ref)
        if profile is not None:
            profile.disable()
        return time.perf_counter() - t0
    finally:
        registries.close()
        remove(root)


def pull_pyboxd(work, ref, round_no):
    daemon = Pyboxd(work, f"pyboxd-{round_no}")
    try:
        daemon.start()
        os.sync()
        return daemon.pull(ref)
    finally:
        daemon.stop()


def skopeo_umoci(work, ref, round_no, with_tar=False):
    """-> (skopeo copy s, umoci unpack s, tar -xzf s or None)."""
    layout = os.path.join(work, f"skopeo-{round_no}")
    bundle = os.path.join(work, f"umoci-{round_no}")
    plain = os.path.join(work, f"tar-{round_no}")
    try:
        os.sync()
        t0 = time.perf_counter()
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                        "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:{TAG}"],
                       check=True, stdout=subprocess.DEVNULL)
        t1 = time.perf_counter()
        subprocess.run(["umoci", "unpack", "--image", f"{layout}:{TAG}", bundle],
                       check=True, stdout=subprocess.DEVNULL)
        t2 = time.perf_counter()
        untar = None
        if with_tar:
            os.sync()
            untar = _untar_layers(layout, plain)
        return t1 - t0, t2 - t1, untar
    finally:
        remove(layout)
        remove(bundle)
        remove(plain)


def _untar_layers(layout, dest):
    """GNU tar -xzf of each layer of the layout, in order, into one directory:
    a floor, not a peer -- no digest or diff-id check, whiteouts left as files."""
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)["manifests"][0]["digest"]

    def blob(digest):
        return os.path.join(layout, "blobs", *digest.split(":"))

    with open(blob(top)) as f:
        manifest = json.load(f)
    os.makedirs(dest)
    t0 = time.perf_counter()
    for layer in manifest["layers"]:
        subprocess.run(["tar", "-xzf", blob(layer["digest"]), "-C", dest, "--numeric-owner"],
                       check=True)
    return time.perf_counter() - t0


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5, help="rounds per tool (median shown)")
    parser.add_argument("--mb", type=int, default=60,
                        help="the image's uncompressed size in MB (about)")
    parser.add_argument("--tools", default="lib,pyboxd,skopeo,tar",
                        help="comma-separated: lib (pybox's pull in this process), pyboxd "
                             "(docker pull through a private pyboxd), skopeo (skopeo copy "
                             "+ umoci unpack), tar (with skopeo: also tar -xzf of the "
                             "copied layers)")
    parser.add_argument("--dir", default="/var/tmp",
                        help="where the stores, layouts and bundles go")
    parser.add_argument("--profile", metavar="FILE",
                        help="cProfile the library pulls into FILE (pstats format)")
    args = parser.parse_args()
    tools = set(args.tools.split(","))
    if os.geteuid() != 0:
        sys.exit("run as root (pyboxd, ownership of unpacked files)")
    needed = ["docker-registry", "skopeo"] + (["umoci"] if "skopeo" in tools else [])
    missing = [t for t in needed if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing {missing}: apt-get install docker-registry skopeo umoci")
    if "pyboxd" in tools and not os.path.exists(DOCKER):
        sys.exit(f"the pyboxd measurement needs the docker CLI at {DOCKER}")
    # Ctrl-C and SIGTERM unwind through the finally below (SIGINT too when a
    # shell started us in the background with it ignored)
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGTERM, _terminate)
    work = tempfile.mkdtemp(prefix="pybox-bench-registry-", dir=args.dir)
    registry = None
    profile = None
    if args.profile:
        import cProfile
        profile = cProfile.Profile()
    try:
        layers = make_layers(args.mb)
        layout = os.path.join(work, "layout")
        plain, compressed = write_layout(layout, layers)
        del layers
        registry = Registry(work)
        registry.start()
        ref = f"{registry.host}/{REPO}:{TAG}"
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
                        "--dest-tls-verify=false", f"oci:{layout}:{TAG}", f"docker://{ref}"],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"image: 5 gzip layers, {plain / 1e6:.1f} MB uncompressed, "
              f"{compressed / 1e6:.1f} MB compressed, at docker-registry {registry.host}")
        print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
              f"{args.n} rounds, each from an empty store")
        times = {"lib": [], "pyboxd": [], "skopeo": [], "umoci": [], "skopeo+umoci": [],
                 "skopeo+tar": []}
        for i in range(args.n):
            if "lib" in tools:
                times["lib"].append(pull_library(work, ref, i, profile))
            if "pyboxd" in tools:
                times["pyboxd"].append(pull_pyboxd(work, ref, i))
            if "skopeo" in tools:
                copy, unpack, untar = skopeo_umoci(work, ref, i, "tar" in tools)
                times["skopeo"].append(copy)
                times["umoci"].append(unpack)
                times["skopeo+umoci"].append(copy + unpack)
                if untar is not None:
                    times["skopeo+tar"].append(copy + untar)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        base = statistics.median(times["skopeo+umoci"]) if times["skopeo+umoci"] else None
        rows = (("pybox pull (library: pybox.images.pull.pull)", "lib"),
                ("pybox pull (docker pull via private pyboxd)", "pyboxd"),
                ("skopeo copy (fetch + verify, to an OCI layout)", "skopeo"),
                ("umoci unpack (of that layout)", "umoci"),
                ("skopeo copy + umoci unpack", "skopeo+umoci"),
                ("skopeo copy + tar -xzf per layer (a floor, see above)", "skopeo+tar"))
        print("\n| tool | median | min | max | throughput (compressed) | vs skopeo+umoci |")
        print("|---|---|---|---|---|---|")
        for label, key in rows:
            samples = times[key]
            if not samples:
                continue
            med = statistics.median(samples)
            ratio = f"{med / base:.2f}x" if base and key in ("lib", "pyboxd",
                                                              "skopeo+umoci") else ""
            print(f"| {label} | {med:.2f} s | {min(samples):.2f} s | {max(samples):.2f} s | "
                  f"{compressed / 1e6 / med:.0f} MB/s | {ratio} |")
        if base:
            for key in ("lib", "pyboxd"):
                if times[key]:
                    ratio = statistics.median(times[key]) / base
                    verdict = "meets" if ratio <= 1 else "MISSES"
                    print(f"{key}: pybox/(skopeo+umoci) = {ratio:.2f} -> {verdict} the "
                          "target (<= 1)")
        if profile is not None:
            profile.dump_stats(args.profile)
            print(f"profile of the library pulls: {args.profile}")
    finally:
        if registry is not None:
            registry.stop()
        remove(work)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        sys.exit(f"interrupted ({e or 'Ctrl-C'}); everything the benchmark made is removed")
