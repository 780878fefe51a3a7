#!/usr/bin/env python3
"""Container lifecycle speed and memory: pybox-runtime next to runc and crun.

Runs the same busybox bundle (process /bin/true, runc's default spec otherwise)
through each runtime and reports, per operation, the median and 90th percentile
wall time, the ratio to runc, and the peak RSS of the runtime process (ru_maxrss
from wait4, i.e. the process the caller starts, as /usr/bin/time reports it).

    /opt/pybox/bin/python benchmarks/runtime_lifecycle.py [-n 30] [--runtimes pybox-runtime,runc,crun]

Operations: ``run`` (create+start+wait+delete in one foreground command),
and ``create``, ``start``, ``delete`` timed separately.  crun 1.8 refuses to run
on a hybrid host whose cgroup2 mount holds a controller (hugetlb here); it is
reported as unavailable rather than silently skipped.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from pybox.images.rootfs import build_busybox_rootfs  # noqa: E402
from pybox.oci.defaults import default_spec  # noqa: E402

OPS = ("run", "create", "start", "delete", "exec", "delete -f")


def make_bundle(path, args=("/bin/true",)):
    if not os.path.exists(os.path.join(path, "rootfs")):
        build_busybox_rootfs(os.path.join(path, "rootfs"))
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f)
    return path


def timed(argv, peak=False):
    """(seconds, peak RSS in KiB or 0) of one command.  posix_spawn keeps the
    timing free of fork cost; with ``peak`` the command runs under GNU time,
    whose own small image is what the child is forked from (a child of this
    Python process would report this process's RSS as its peak: ru_maxrss
    keeps the pre-exec high-water mark)."""
    rss_file = None
    if peak:
        rss_file = tempfile.NamedTemporaryFile("r", suffix=".rss")
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + argv
    with tempfile.TemporaryFile() as errf:
        # stderr goes to a file: a created container's init inherits it, and a
        # pipe would not reach EOF while the container lives.
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_DUP2, errf.fileno(), 2)]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        _, status, _ = os.wait4(pid, 0)
        elapsed = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            errf.seek(0)
            err = errf.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} failed ({code}): {err.strip()}")
    rss = 0
    if rss_file is not None:
        rss = int(rss_file.read().split()[-1])
        rss_file.close()
    return elapsed, rss


def wait_stopped(rt, root, cid):
    for _ in range(500):
        out = subprocess.run([rt, "--root", root, "state", cid], capture_output=True,
                             text=True).stdout
        if '"stopped"' in out:
            return
        time.sleep(0.002)
    raise RuntimeError(f"{cid} never stopped")


def one_round(rt, root, bundle, measure_peak):
    """One ``run``, then one create/start/delete: {op: (seconds, peak KiB)}."""
    out = {}
    cid = f"pybox-bench-{uuid.uuid4().hex[:10]}"
    out["run"] = timed([rt, "--root", root, "run", "-b", bundle, cid], measure_peak)
    cid = f"pybox-bench-{uuid.uuid4().hex[:10]}"
    out["create"] = timed([rt, "--root", root, "create", "-b", bundle, cid], measure_peak)
    out["start"] = timed([rt, "--root", root, "start", cid], measure_peak)
    wait_stopped(rt, root, cid)
    out["delete"] = timed([rt, "--root", root, "delete", cid], measure_peak)
    # a long-running container: exec latency, then a forced delete of it running
    cid = f"pybox-bench-{uuid.uuid4().hex[:10]}"
    timed([rt, "--root", root, "run", "-d", "-b", bundle + "-sleep", cid])
    out["exec"] = timed([rt, "--root", root, "exec", cid, "/bin/true"], measure_peak)
    out["delete -f"] = timed([rt, "--root", root, "delete", "-f", cid], measure_peak)
    return out


def bench(runtimes, bundle, n, warmup, peak_runs=5):
    """Rounds interleave the runtimes (A, B, C, A, B, C, ...) so that drift in
    the machine's load affects them alike."""
    # state where runtimes keep it in real use (/run), not on /tmp
    os.makedirs("/run/pybox-bench", exist_ok=True)
    roots = {name: tempfile.mkdtemp(prefix="root-", dir="/run/pybox-bench")
             for name in runtimes}
    results = {name: {op: [] for op in OPS} for name in runtimes}
    peak = {name: {op: 0 for op in OPS} for name in runtimes}
    try:
        for i in range(warmup + n + peak_runs):
            measure_peak = i >= warmup + n  # separate runs: GNU time adds a fork
            for name, rt in runtimes.items():
                for op, (t, rss) in one_round(rt, roots[name], bundle, measure_peak).items():
                    if measure_peak:
                        peak[name][op] = max(peak[name][op], rss)
                    elif i >= warmup:
                        results[name][op].append(t)
    finally:
        for name, root in roots.items():
            for cid in os.listdir(root):  # only what this run created
                subprocess.run([runtimes[name], "--root", root, "delete", "-f", cid],
                               capture_output=True)
            shutil.rmtree(root, ignore_errors=True)
    return {name: (results[name], peak[name]) for name in runtimes}


def runtime_works(rt, bundle):
    root = tempfile.mkdtemp(prefix="pybox-bench-probe-")
    try:
        proc = subprocess.run([rt, "--root", root, "run", "-b", bundle,
                               f"pybox-bench-probe-{uuid.uuid4().hex[:8]}"],
                              capture_output=True, text=True, timeout=30)
        return proc.returncode == 0, (proc.stderr or proc.stdout).strip()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=30, help="measured iterations per runtime")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runtimes", default="pybox-runtime,runc,crun",
                    help="comma-separated NAME or NAME=PATH")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pybox-bench-")
    try:
        bundle = make_bundle(os.path.join(work, "bundle"))
        sleeper = os.path.join(work, "bundle-sleep")
        os.makedirs(sleeper)
        make_bundle(sleeper, ("/bin/sleep", "1000"))
        runtimes = {}
        for entry in args.runtimes.split(","):
            # NAME or NAME=PATH (e.g. base=/var/tmp/base/pybox-runtime: an older tree's
            # launcher measured beside the current one)
            name, _, path = entry.partition("=")
            rt = shutil.which(path or name)
            if not rt:
                print(f"{name}: not installed, skipped")
                continue
            ok, why = runtime_works(rt, bundle)
            if not ok:
                print(f"{name}: cannot run on this host ({why}), skipped")
                continue
            runtimes[name] = rt
        table = bench(runtimes, bundle, args.n, args.warmup)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ref = table.get("runc")
    print(f"\n{'runtime':<15}{'op':<10}{'median':>10}{'p90':>10}{'vs runc':>9}"
          f"{'peak RSS':>12}")
    for name, (results, peak) in table.items():
        for op, samples in results.items():
            med = statistics.median(samples)
            p90 = sorted(samples)[int(len(samples) * 0.9) - 1]
            ratio = ""
            if ref:
                ratio = f"{med / statistics.median(ref[0][op]):.2f}x"
            print(f"{name:<15}{op:<10}{med * 1000:>8.1f}ms{p90 * 1000:>8.1f}ms{ratio:>9}"
                  f"{peak[op] / 1024:>9.1f}MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {"samples": v[0], "peak_kib": v[1]} for k, v in table.items()}, f)


if __name__ == "__main__":
    main()
