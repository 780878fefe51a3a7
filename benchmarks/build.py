#!/usr/bin/env python3
"""Image build speed: pyboxd next to dockerd's classic builder and buildah (Debian's).

Three builders, each on private storage, each with the same busybox image
(imported from the same tarball pybox builds, no registry):

  pybox    a private pyboxd (benchmarks/engine.py's), the docker 28 CLI with
           DOCKER_BUILDKIT=0 (the legacy builder's client, as against dockerd);
  docker   a private Debian dockerd 20.10 (tests/support/dockerd.py's:
           private paths, no bridge), its classic builder, the same CLI;
  buildah  Debian's buildah with its own --root/--runroot (overlay, runc),
           ``buildah build --layers --pull=never --runtime runc`` (crun refuses
           this hybrid-cgroup host).

Every build runs with --network none; after the first round each builder's
image is run to check its result.  Measured (wall time of the client
command, median of N, the builders taking turns so the machine's load treats
them alike):

  cold multi-stage   a two-stage build of 12 steps on busybox (WORKDIR, COPY,
                     RUN x4, ENV, LABEL, COPY --from, USER, CMD) with --no-cache
  cached rebuild     the same build again, every step from the cache
  100 MB context     a context of 100 MiB (8 files of random bytes and 2,000
                     small ones) sent for a two-step build (FROM, LABEL),
                     --no-cache; buildah reads the directory where it is

Targets (issue 17 point 6): cold faster than both, the cached rebuild at most
half of dockerd's time, the context no slower than dockerd.

    /opt/pybox/bin/python benchmarks/build.py [-n 5] [--builders pybox,docker,buildah]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.append(os.path.join(ROOT, "tests"))

from engine import DOCKER, Pybox  # noqa: E402 - benchmarks/engine.py's private pyboxd
from support.dockerd import PrivateDockerd  # noqa: E402 - the tests' reference daemon

MIB = 1 << 20

MULTI_STAGE = """FROM busybox AS build
WORKDIR /src
COPY app/ ./
RUN mkdir -p out && for i in $(seq 1 200); do echo "item $i" > out/f$i; done
RUN sh build.sh out
ENV MODE=release
RUN tar -cf /out.tar out && rm -rf out
FROM busybox
LABEL org.example.bench=build
COPY --from=build /out.tar /opt/
RUN mkdir -p /opt/app && tar -xf /opt/out.tar -C /opt/app && rm /opt/out.tar
USER daemon
CMD ["sh"]
"""

BUILD_SH = """#!/bin/sh
# the "compiler": concatenates the inputs, counts them
cat "$1"/f* > "$1"/all.txt
wc -l < "$1"/all.txt > "$1"/count.txt
"""

BIG_CONTEXT = """FROM busybox
LABEL org.example.bench=context
"""


def make_multi_stage(path: str) -> str:
    os.makedirs(os.path.join(path, "app", "src"))
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(MULTI_STAGE)
    with open(os.path.join(path, "app", "build.sh"), "w") as f:
        f.write(BUILD_SH)
    for i in range(50):
        with open(os.path.join(path, "app", "src", f"mod{i}.c"), "w") as f:
            f.write(f"int mod{i}(void) {{ return {i}; }}\n" * 20)
    return path


def make_big_context(path: str, large: int = 8, small: int = 2000) -> int:
    """100 MiB: ``large`` files of random bytes and ``small`` 2-KiB files."""
    os.makedirs(os.path.join(path, "small"))
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(BIG_CONTEXT)
    small_total = small * 2048
    large_size = (100 * MIB - small_total) // large
    for i in range(large):
        with open(os.path.join(path, f"blob{i}.bin"), "wb") as f:
            f.write(os.urandom(large_size))
    for i in range(small):
        with open(os.path.join(path, "small", f"s{i:04d}.txt"), "wb") as f:
            f.write(os.urandom(2048))
    return large * large_size + small_total


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return dt


class Builder:
    name = "?"

    def build(self, context: str, tag: str, no_cache: bool) -> float:
        raise NotImplementedError

    def check(self, tag: str) -> str:
        """What the built image's /opt/app/out/count.txt holds (the multi-stage build's result)."""
        raise NotImplementedError

    def stop(self) -> None:
        pass


class DockerCLI(Builder):
    """A daemon the docker CLI builds on with the legacy builder."""

    def __init__(self, name: str, host: str, config_dir: str):
        self.name = name
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false",
                        DOCKER_CONFIG=config_dir)
        self.env.pop("DOCKER_CONTEXT", None)

    def build(self, context: str, tag: str, no_cache: bool) -> float:
        return timed([DOCKER, "build", "-q", "--network", "none", "-t", tag,
                      *(["--no-cache"] if no_cache else []), context], self.env)

    def check(self, tag: str) -> str:
        proc = subprocess.run([DOCKER, "run", "--rm", "--network", "none", tag, "cat",
                               "/opt/app/out/count.txt"], env=self.env, capture_output=True, text=True)
        return proc.stdout + proc.stderr


class PyboxBuilder(DockerCLI):
    def __init__(self, work: str, tarball: str):
        self.daemon = Pybox(work, tarball)
        super().__init__("pybox", f"unix://{self.daemon.sock}", os.path.join(work, "pybox-cli"))

    def stop(self) -> None:
        self.daemon.stop()


class DockerBuilder(DockerCLI):
    def __init__(self, work: str, tarball: str):
        self.daemon = PrivateDockerd().start()
        try:
            self.daemon.docker("import", "-c", 'CMD ["sh"]', tarball, "busybox:latest")
        except BaseException:
            self.daemon.stop()
            raise
        super().__init__("docker", self.daemon.host, os.path.join(self.daemon.base, "cli"))

    def stop(self) -> None:
        self.daemon.stop()


class Buildah(Builder):
    name = "buildah"

    def __init__(self, work: str, tarball: str):
        if not shutil.which("buildah"):
            raise RuntimeError("buildah is not installed (apt-get install buildah)")
        self.root = os.path.join(work, "buildah-root")
        self.runroot = tempfile.mkdtemp(prefix="bh-bench-", dir="/run")
        self.base = ["buildah", "--root", self.root, "--runroot", self.runroot, "--storage-driver", "overlay"]
        ctr = self._run("from", "scratch").strip()
        self._run("add", ctr, tarball, "/")
        self._run("config", "--cmd", "sh", ctr)
        self._run("commit", "-q", ctr, "busybox:latest")
        self._run("rm", ctr)

    def _run(self, *args: str) -> str:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"buildah {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def build(self, context: str, tag: str, no_cache: bool) -> float:
        return timed([*self.base, "build", "-q", "--layers", "--pull=never", "--network", "none",
                      "--runtime", shutil.which("runc") or "runc",
                      "-t", tag, *(["--no-cache"] if no_cache else []), context])

    def check(self, tag: str) -> str:
        ctr = self._run("from", "--pull-never", tag).strip()
        try:
            return self._run("run", "--network", "none", "--runtime", shutil.which("runc") or "runc", ctr,
                             "cat", "/opt/app/out/count.txt")
        finally:
            self._run("rm", ctr)

    def stop(self) -> None:
        subprocess.run([*self.base, "rm", "-a"], capture_output=True)
        subprocess.run([*self.base, "rmi", "-a", "-f"], capture_output=True)
        # containers/storage leaves its overlay directory mounted (a private bind)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith((self.root + "/", self.runroot + "/"))
                             or p in (self.root, self.runroot)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


BUILDERS = {"pybox": PyboxBuilder, "docker": DockerBuilder, "buildah": Buildah}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--builders", default="pybox,docker,buildah", help="pybox, docker, buildah")
    args = ap.parse_args()
    from pybox.images.rootfs import build_busybox_rootfs  # noqa: PLC0415 - after sys.path is set

    work = tempfile.mkdtemp(prefix="pybox-bench-build-")
    builders: list[Builder] = []
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        rootfs = build_busybox_rootfs(os.path.join(work, "rootfs"))
        tarball = os.path.join(work, "busybox.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
        multi = make_multi_stage(os.path.join(work, "multi"))
        big = os.path.join(work, "big")
        size = make_big_context(big)
        for name in args.builders.split(","):
            try:
                builders.append(BUILDERS[name](work, tarball))
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{name}: not available: {e}")
        ops = ("cold multi-stage", "cached rebuild", "100 MB context")
        samples = {b.name: {op: [] for op in ops} for b in builders}
        print(f"context: {size / MIB:.0f} MiB; multi-stage: {MULTI_STAGE.count(chr(10))} lines; "
              f"median of {args.n}")
        failed: set[str] = set()
        for i in range(args.n + 1):  # round 0 warms up (and fills the cache)
            for b in builders:
                if b.name in failed:
                    continue
                try:
                    cold = b.build(multi, "bench-multi", no_cache=True)
                    cached = b.build(multi, "bench-multi", no_cache=False)
                    context = b.build(big, "bench-context", no_cache=True)
                    if not i and b.check("bench-multi").strip() != "200":
                        raise RuntimeError(f"the image is not right: {b.check('bench-multi')!r}")
                except RuntimeError as e:
                    print(f"{b.name}: failed: {e}")
                    failed.add(b.name)
                    continue
                if i:
                    for op, value in zip(ops, (cold, cached, context), strict=True):
                        samples[b.name][op].append(value)
    finally:
        for b in builders:
            b.stop()
        shutil.rmtree(work, ignore_errors=True)
    names = [n for n in samples if all(samples[n].values())]
    if not names:
        return
    ref = "docker" if "docker" in names else names[0]
    print(f"\n{'build (median)':<20}" + "".join(f"{n:>12}" for n in names)
          + "".join(f"{n + '/' + ref:>18}" for n in names if n != ref))
    for op in ("cold multi-stage", "cached rebuild", "100 MB context"):
        med = {n: statistics.median(samples[n][op]) for n in names}
        print(f"{op:<20}" + "".join(f"{med[n]:>11.3f}s" for n in names)
              + "".join(f"{med[n] / med[ref]:>17.2f}x" for n in names if n != ref))


if __name__ == "__main__":
    main()
