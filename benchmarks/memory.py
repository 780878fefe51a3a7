#!/usr/bin/env python3
"""The daemon's memory over many short-lived containers: pyboxd next to dockerd.

Each engine runs N containers of busybox `true` on its default bridge network,
one after another, in two ways, and its daemon's RSS is read before and after
each (after a settle: the daemon's own clean-up threads finish first):

- run-rm:   what `docker run --rm busybox true` asks of the API -- create with
            AutoRemove, start, wait until removed (raw HTTP on the unix socket);
- dockerpy: docker-py's create / start / wait / remove cycle (keep-alive
            connections, as a Python program drives a daemon).

A growth that stays is a leak: the daemon's RSS should not depend on how many
containers it has run.  Warm-up cycles come first (imports, caches, the
bounded events history filling up).

- pybox:  a private pyboxd (its own data root, exec root under /run, socket);
- docker: a private Debian dockerd (tests/clients/dockerd.py's PrivateDockerd)
          whose default network is a bridge made here for the run (no iptables,
          as the private pyboxd's rules live in its own nftables table).

Zombie processes left under each daemon (and its monitors or shims) are
counted at the end.  ``--tracemalloc DEPTH`` runs pyboxd with tracemalloc on
and writes the allocation sites that grew most during each phase to pyboxd's
log (kept, its path printed): where to look when the growth comes back (the
RSS numbers of such a run are mostly tracemalloc's own).

    /opt/pybox/bin/python benchmarks/memory.py [-n 2000] [--engines pybox,docker]
        [--cycles run-rm,dockerpy] [--warmup 30] [--settle 10] [--tracemalloc 20]

``--monitor-groups 1,3,5`` measures something else: the monitors' memory per
container (PSS, /proc/PID/smaps_rollup) when a pod's containers share one
monitor (Engine.create's ``monitor_group``, which only pyboxd's CRI sets: an
engine in a child process, tests/engine/test_monitor_crilog.py's EngineChild)
against one monitor per container, for pods of each size (busybox ``sleep``,
--network none), ``--pods`` of them at once (the monitors' shared pages are
divided among them all); ``--rounds`` times each, averaged.

    /opt/pybox/bin/python benchmarks/memory.py --monitor-groups 1,3,5 [--pods 10] [--rounds 3]
"""

import argparse
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
sys.path[:0] = [SRC, os.path.join(ROOT, "tests")]

DOCKER = "/usr/local/bin/docker"

# pyboxd under tracemalloc: SIGUSR2 writes the sites that grew since the last
# SIGUSR2 to stderr (pyboxd's log).  Only for this benchmark's private daemon.
TRACE_WRAPPER = r"""
import gc, os, signal, sys, tracemalloc
depth = int(sys.argv.pop(1))
tracemalloc.start(depth)
last = [None]
def dump(signum, frame):
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    cur, peak = tracemalloc.get_traced_memory()
    out = [f"== tracemalloc: {cur / 2**20:.1f} MiB traced (peak {peak / 2**20:.1f})"]
    if last[0] is not None:
        for stat in snap.compare_to(last[0], "traceback")[:15]:
            out.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks")
            out.extend("    " + line for line in stat.traceback.format()[-2 * depth:])
    last[0] = snap
    sys.stderr.write("\n".join(out) + "\n")
    sys.stderr.flush()
signal.signal(signal.SIGUSR2, dump)
from pybox.cli.pyboxd import main
sys.exit(main(sys.argv[1:]))
"""


# -- the API, on a unix socket ------------------------------------------------------
class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api(sock_path, method, path, body=None):
    conn = UnixHTTPConnection(sock_path)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"} if body is not None else {})
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data.strip() else None
        except ValueError:
            return resp.status, data  # /_ping's OK
    finally:
        conn.close()


def run_rm(sock_path):
    """`docker run --rm busybox true`, as API calls (without the attach): as
    the CLI does, the wait for the removal is asked (its 200 read) before the
    start -- asked after, it may find the container gone already (a 404)."""
    status, body = api(sock_path, "POST", "/containers/create",
                       {"Image": "busybox:latest", "Cmd": ["true"],
                        "HostConfig": {"AutoRemove": True}})
    if status != 201:
        raise RuntimeError(f"create: {status} {body}")
    cid = body["Id"]
    waiting = UnixHTTPConnection(sock_path)
    try:
        waiting.request("POST", f"/containers/{cid}/wait?condition=removed")
        wait = waiting.getresponse()
        if wait.status != 200:
            raise RuntimeError(f"wait: {wait.status} {wait.read()!r}")
        status, body = api(sock_path, "POST", f"/containers/{cid}/start")
        if status != 204:
            raise RuntimeError(f"start: {status} {body}")
        body = json.loads(wait.read())
        if body.get("StatusCode") != 0:
            raise RuntimeError(f"wait: {body}")
    finally:
        waiting.close()


def dockerpy_cycle(client):
    c = client.containers.create("busybox:latest", ["true"])
    c.start()
    code = c.wait()["StatusCode"]
    c.remove()
    if code != 0:
        raise RuntimeError(f"exit status {code}")


# -- processes ----------------------------------------------------------------------
def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def process_table():
    """{pid: (ppid, state)} of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), fields[0])
    return out


def zombies_below(pid):
    """Zombie processes whose parent is ``pid`` or one of its descendants."""
    table = process_table()
    children = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo.extend(children.get(p, ()))
    return sorted(p for p, (ppid, state) in table.items() if state == "Z" and ppid in tree)


def busybox_tarball(work):
    bundle = os.path.join(work, "busybox-bundle")
    tar = os.path.join(work, "busybox.tar")
    subprocess.run([sys.executable, "-m", "pybox.images.rootfs", "busybox", bundle],
                   check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=SRC))
    subprocess.run(["tar", "-C", os.path.join(bundle, "rootfs"), "-cf", tar, "."], check=True)
    return tar


def wait_ping(sock_path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({proc.returncode})")
        try:
            if api(sock_path, "GET", "/_ping")[0] == 200:
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no daemon answers on {sock_path}")


# -- the engines --------------------------------------------------------------------
class PyboxEngine:
    name = "pybox"

    def __init__(self, work, tarball, trace_depth=0):
        self.work = work
        self.exec_root = f"/run/pbm-{uuid.uuid4().hex[:8]}"
        self.sock = os.path.join(work, "pybox.sock")
        self.log = os.path.join(work, "pyboxd.log")
        self.trace = trace_depth > 0
        head = ([sys.executable, "-c", TRACE_WRAPPER, str(trace_depth)] if self.trace
                else [sys.executable, "-m", "pybox.cli.pyboxd"])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                head + ["-H", f"unix://{self.sock}", "--data-root",
                        os.path.join(work, "pybox-data"), "--exec-root", self.exec_root],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=dict(os.environ, PYTHONPATH=SRC), start_new_session=True)
        try:
            wait_ping(self.sock, self.proc)
            subprocess.run([DOCKER, "-H", f"unix://{self.sock}", "import", "-c",
                            'CMD ["sh"]', tarball, "busybox:latest"], check=True,
                           capture_output=True)
        except BaseException:
            self.stop()
            raise

    @property
    def host(self):
        return f"unix://{self.sock}"

    def daemon_pids(self):
        return {"pyboxd": self.proc.pid}

    def mark(self):
        if self.trace:
            os.kill(self.proc.pid, signal.SIGUSR2)

    def stop(self):
        ids = subprocess.run([DOCKER, "-H", self.host, "ps", "-aq"], capture_output=True,
                             text=True).stdout.split() if self.proc.poll() is None else []
        if ids:
            subprocess.run([DOCKER, "-H", self.host, "rm", "-f", *ids], capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.exec_root, ignore_errors=True)


class DockerEngine:
    name = "docker"

    def __init__(self, work, tarball):
        from clients.dockerd import PrivateDockerd

        self.bridge = f"pbm{uuid.uuid4().hex[:8]}"
        subnet = free_subnet()
        gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.daemon = None
        try:
            run(["ip", "addr", "add", gateway, "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])
            self.daemon = PrivateDockerd()
            self.daemon.bridge = self.bridge
            self.daemon.start()
            self.daemon.docker("import", "-c", 'CMD ["sh"]', tarball, "busybox:latest")
        except BaseException:
            self.stop()
            raise

    @property
    def host(self):
        return self.daemon.host

    @property
    def sock(self):
        return self.daemon.socket

    def daemon_pids(self):
        pids = {"dockerd": self.daemon.process.pid}
        for p, (ppid, _) in process_table().items():
            if ppid == self.daemon.process.pid:
                try:
                    with open(f"/proc/{p}/comm") as f:
                        if f.read().strip() == "containerd":
                            pids["containerd"] = p
                except OSError:
                    pass
        return pids

    def mark(self):
        pass

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def free_subnet():
    """A /24 in 10.231-10.254 that no route of the host covers."""
    taken = []
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable"):
            word = line.split()[1]
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    for second in range(231, 255):
        net = ipaddress.ip_network(f"10.{second}.77.0/24")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.x.77.0/24 for dockerd's bridge")


# -- the measurement ----------------------------------------------------------------
def measure(engine, cycles, n, warmup, settle):
    import docker

    client = docker.DockerClient(base_url=engine.host, timeout=120)
    kinds = {"run-rm": lambda: run_rm(engine.sock), "dockerpy": lambda: dockerpy_cycle(client)}
    rows = []

    def cycle(kind):
        """One container; a failed one is counted and reported, not fatal (the
        measurement is the daemon's memory; the errors are printed)."""
        try:
            kinds[kind]()
            return True
        except Exception as e:  # noqa: BLE001 - an engine's error, reported
            print(f"  {engine.name} {kind}: error: {e}", flush=True)
            return False

    try:
        for kind in cycles:
            for _ in range(warmup):
                cycle(kind)
            time.sleep(settle)
            engine.mark()
            before = {name: rss_kib(pid) for name, pid in engine.daemon_pids().items()}
            t0 = time.monotonic()
            failed = 0
            for i in range(n):
                failed += not cycle(kind)
                if (i + 1) % 250 == 0:
                    now = {name: rss_kib(pid) for name, pid in engine.daemon_pids().items()}
                    print(f"  {engine.name} {kind}: {i + 1}/{n}, "
                          + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in now.items()),
                          flush=True)
            elapsed = time.monotonic() - t0
            time.sleep(settle)
            engine.mark()
            after = {name: rss_kib(pid) for name, pid in engine.daemon_pids().items()}
            for name in before:
                rows.append((engine.name, name, kind, n, before[name], after.get(name, 0),
                             elapsed, failed))
    finally:
        client.close()
    zombies = zombies_below(next(iter(engine.daemon_pids().values())))
    return rows, zombies


# -- the monitors' memory: a monitor per pod against one per container ------------------
def pss_kib(pid):
    """Proportional set size of ``pid`` (shared pages divided among their users)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def monitor_groups(sizes, pods, rounds, settle):
    """-> rows (size, mode, monitors, PSS KiB per container): ``pods`` pods of
    ``size`` containers each running at once, mode "group" (one monitor per
    pod) or "each" (one monitor per container)."""
    from engine.test_monitor_crilog import EngineChild

    child = EngineChild()
    rows = []
    try:
        for size in sizes:
            for mode in ("each", "group"):
                per_container, monitors = [], 0
                for r in range(rounds):
                    ids = []
                    try:
                        for pod in range(pods):
                            group = f"pod-{size}-{r}-{pod}" if mode == "group" else None
                            for _ in range(size):
                                cid, _ = child.call("create", {
                                    "Image": "busybox", "Cmd": ["sleep", "1000"],
                                    "HostConfig": {"NetworkMode": "none"}},
                                    f"pss-{uuid.uuid4().hex[:8]}", monitor_group=group)
                                ids.append(cid)
                                child.call("start", cid)
                        time.sleep(settle)
                        pids = set()
                        for cid in ids:
                            with open(os.path.join(child.exec_root, "containers", cid,
                                                   "monitor.pid")) as f:
                                pids.add(int(f.read()))
                        monitors = len(pids)
                        per_container.append(sum(pss_kib(p) for p in pids) / len(ids))
                    finally:
                        for cid in ids:
                            child.call("remove", cid, force=True)
                rows.append((size, mode, monitors, sum(per_container) / len(per_container)))
                print(f"  {pods} pod(s) of {size}, {mode}: {monitors} monitor(s), "
                      f"{rows[-1][3] / 1024:.2f} MiB PSS per container", flush=True)
    finally:
        child.close()
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="containers per cycle kind")
    parser.add_argument("--engines", default="pybox,docker")
    parser.add_argument("--cycles", default="run-rm,dockerpy")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to wait before each RSS reading")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="DEPTH",
                        help="pyboxd under tracemalloc; growth sites into its log")
    parser.add_argument("--monitor-groups", default="", metavar="SIZES",
                        help="instead: monitor PSS per container, pods of these sizes "
                             "(e.g. 1,3,5), one monitor per pod against one per container")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--monitor-groups: rounds per pod size, averaged")
    parser.add_argument("--pods", type=int, default=1,
                        help="--monitor-groups: pods running at once (their monitors share "
                             "the interpreter's pages: PSS divides them)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("needs root")
    if args.monitor_groups:
        sizes = [int(n) for n in args.monitor_groups.split(",") if n]
        rows = monitor_groups(sizes, args.pods, args.rounds, min(args.settle, 2.0))
        print()
        print(f"{'pod size':>8} {'one monitor per container':>26} {'one monitor per pod':>20} "
              f"{'ratio':>6}")
        table = {(size, mode): pss for size, mode, _, pss in rows}
        for size in sizes:
            each, group = table[size, "each"], table[size, "group"]
            print(f"{size:8d} {each / 1024:22.2f} MiB {group / 1024:16.2f} MiB "
                  f"{group / each:6.2f}")
        return 0
    cycles = [c for c in args.cycles.split(",") if c]
    work = tempfile.mkdtemp(prefix="pybox-bench-memory-")
    keep_work = False
    tarball = busybox_tarball(work)
    results, zombies = [], {}
    try:
        for name in args.engines.split(","):
            engine_work = os.path.join(work, name)
            os.makedirs(engine_work)
            if name == "pybox":
                engine = PyboxEngine(engine_work, tarball, args.tracemalloc)
            elif name == "docker":
                if not shutil.which("dockerd"):
                    print("docker: no dockerd (apt-get install docker.io): skipped")
                    continue
                engine = DockerEngine(engine_work, tarball)
            else:
                sys.exit(f"unknown engine {name!r}")
            try:
                rows, zombies[name] = measure(engine, cycles, args.n, args.warmup, args.settle)
                results.extend(rows)
            finally:
                engine.stop()
            if name == "pybox" and args.tracemalloc:
                keep_work = True
                print(f"pyboxd's tracemalloc report: {engine.log}")
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'engine':8} {'process':11} {'cycle':9} {'n':>6} {'before':>10} {'after':>10} "
          f"{'growth':>10} {'per ctr':>9} {'ctr/s':>6} {'failed':>6}")
    for engine, process, kind, n, before, after, elapsed, failed in results:
        growth = after - before
        print(f"{engine:8} {process:11} {kind:9} {n:6d} {before / 1024:8.1f}MB "
              f"{after / 1024:8.1f}MB {growth / 1024:+8.1f}MB {growth / n:+7.1f}KB "
              f"{n / elapsed:6.1f} {failed:6d}")
    for name, pids in zombies.items():
        print(f"{name}: zombie processes under the daemon at the end: {len(pids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
