#!/usr/bin/env python3
"""Networking speed: pybox next to docker (Debian's dockerd, its default bridge).

Every daemon runs inside a network namespace of its own (the "benchmark host":
lo plus a dummy interface with 198.18.200.1/24), so docker's docker0, its
iptables chains and pybox's bridge and nftables table all live and die with
that namespace: the machine's own network is never touched, nothing leaves it.

Measured:
  setup/teardown    NetworkManager.setup()/teardown() of one container on the
                    default bridge, in process (namespace, veth, address, route,
                    a published port), median of N after a warm-up;
  run --rm          `docker run --rm busybox true` with --network none and with
                    the default bridge (wall time of the docker 28 CLI), median;
  TCP throughput    a client in the benchmark host sends S MiB to a published
                    port (-p 5001:5001) whose listener is in the container's
                    namespace, via 127.0.0.1 (pybox: DNAT + route_localnet;
                    docker: docker-proxy, its default) and via the host's own
                    address (both: DNAT), best of R.

    /opt/pybox/bin/python benchmarks/network.py [-n 30] [--mib 2048] [--engines pybox,docker]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path.insert(0, SRC)

DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
HOST_IP = "198.18.200.1"
PORT = 5001


# -- the benchmark host ------------------------------------------------------------
class BenchHost:
    def __init__(self, base):
        from pybox.network import netns

        self.path = os.path.join(base, "benchhost")
        netns.create(self.path)[0].close()
        try:
            self._configure()
        except BaseException:
            self.remove()
            raise

    def _configure(self):
        # eth0: one end of a veth pair whose both ends stay in the namespace
        # (no dummy module here), the host's "LAN" address
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"],
                    ["ip", "link", "set", "eth0p", "up"],
                    ["ip", "addr", "add", f"{HOST_IP}/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "route", "add", "default", "dev", "eth0"],
                    ["sysctl", "-qw", "net.ipv4.ip_forward=1"]):
            subprocess.run(["nsenter", f"--net={self.path}"] + cmd, check=True)

    def argv(self, argv):
        return ["nsenter", f"--net={self.path}"] + list(argv)

    def call(self, fn):
        from pybox.network import netns

        return netns.run_in(self.path, fn)

    def remove(self):
        from pybox.network import netns

        netns.remove(self.path)


def timed(argv, env):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv}: {proc.stderr.decode().strip()}")
    return dt


def wait_ready(env, proc, log, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited:\n{open(log).read()[-2000:]}")
        if subprocess.run([DOCKER, "version"], env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"daemon did not answer:\n{open(log).read()[-2000:]}")


# -- daemons -------------------------------------------------------------------------
class Daemon:
    def __init__(self, name, host, work, argv, sock):
        self.name = name
        self.host = host
        self.sock = sock
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{sock}",
                        DOCKER_CONFIG=os.path.join(work, "cli"), PYTHONPATH=SRC)
        self.env.pop("DOCKER_CONTEXT", None)
        self.log = os.path.join(work, f"{name}.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(host.argv(argv), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)
        wait_ready(self.env, self.proc, self.log)

    def cli(self, *args):
        return [DOCKER, *args]

    def docker(self, *args):
        proc = subprocess.run(self.cli(*args), env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self):
        ids = subprocess.run(self.cli("ps", "-aq"), env=self.env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run(self.cli("rm", "-f", *ids), env=self.env, capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_pybox(host, work):
    run_root = tempfile.mkdtemp(prefix="pbx-nb-", dir="/run")
    sock = os.path.join(run_root, "pybox.sock")
    d = Daemon("pybox", host, work, [sys.executable, "-m", "pybox.cli.pyboxd", "-H",
                                     f"unix://{sock}", "--data-root",
                                     os.path.join(work, "pybox-data"), "--exec-root",
                                     os.path.join(run_root, "exec")], sock)
    d.cleanup_dirs = [run_root]
    return d


def start_docker(host, work):
    exec_root = tempfile.mkdtemp(prefix="dk-nb-", dir="/run")
    sock = os.path.join(exec_root, "docker.sock")
    with open(os.path.join(work, "daemon.json"), "w") as f:
        json.dump({}, f)
    d = Daemon("docker", host, work, [
        "dockerd", "--config-file", os.path.join(work, "daemon.json"), "--data-root",
        os.path.join(work, "docker-data"), "--exec-root", exec_root, "-H", f"unix://{sock}",
        "--pidfile", os.path.join(exec_root, "docker.pid"), "--cgroup-parent",
        "/pybox-bench-docker", "--storage-driver", "overlay2", "--log-level", "warn"], sock)
    d.cleanup_dirs = [exec_root]
    return d


# -- measurements ------------------------------------------------------------------------
def sink_in(netns_path, port):
    """A listener in the container's namespace that reads and discards."""
    from pybox.network import netns

    def open_it():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(4)
        return s
    server = netns.run_in(netns_path, open_it)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                buf = bytearray(1 << 20)
                while conn.recv_into(buf):
                    pass
                conn.sendall(b"k")
    threading.Thread(target=serve, daemon=True).start()
    return server


def send_mib(ip, port, mib):
    data = b"\0" * (1 << 20)
    with socket.create_connection((ip, port), timeout=30) as s:
        t0 = time.perf_counter()
        for _ in range(mib):
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        return mib / (time.perf_counter() - t0)


def bench_engine(d, host, n, mib, reps):
    res = {}
    res["run --rm (none)"] = statistics.median(
        timed(d.cli("run", "--rm", "--network", "none", "busybox", "true"), d.env)
        for _ in range(n))
    timed(d.cli("run", "--rm", "busybox", "true"), d.env)  # warm (bridge made)
    res["run --rm (bridge)"] = statistics.median(
        timed(d.cli("run", "--rm", "busybox", "true"), d.env) for _ in range(n))
    cid = d.docker("run", "-d", "-p", f"{PORT}:{PORT}", "busybox", "sleep", "1000").strip()
    key = json.loads(d.docker("inspect", cid))[0]["NetworkSettings"]["SandboxKey"]
    server = sink_in(key, PORT)
    try:
        for label, ip in (("TCP via 127.0.0.1", "127.0.0.1"), ("TCP via host address", HOST_IP)):
            res[label] = max(host.call(lambda ip=ip: send_mib(ip, PORT, mib)) for _ in range(reps))
    finally:
        server.close()
        d.docker("rm", "-f", cid)
    return res


def bench_setup(n):
    """In process, in the benchmark host: NetworkManager setup/teardown."""
    from pybox.network.manager import NetworkManager

    data = tempfile.mkdtemp(prefix="pbx-nb-data-")
    run_root = tempfile.mkdtemp(prefix="pbx-nb-m-", dir="/run")
    m = NetworkManager(data, run_root)
    setup, teardown = [], []
    try:
        for i in range(n + 3):
            cid = f"{i:064x}"
            t0 = time.perf_counter()
            m.setup(cid, [("bridge", {})], wanted_ports=[("0.0.0.0", 0, 0, "tcp", 80)])
            t1 = time.perf_counter()
            if i >= 3:
                setup.append(t1 - t0)
            # the next container keeps the bridge up, as a busy host would
            if i:
                t2 = time.perf_counter()
                m.teardown(f"{i - 1:064x}")
                if i >= 3:
                    teardown.append(time.perf_counter() - t2)
        first = time.perf_counter()
        m.teardown(f"{n + 2:064x}")
        last = time.perf_counter() - first
    finally:
        m.cleanup()
        m.shutdown()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(run_root, ignore_errors=True)
    return {"setup": statistics.median(setup), "teardown": statistics.median(teardown),
            "teardown (last user)": last}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--engines", default="pybox,docker")
    ap.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup_only:
        print(json.dumps(bench_setup(args.n)))
        return
    from pybox.images.rootfs import build_busybox_rootfs

    work = tempfile.mkdtemp(prefix="pybox-bench-net-")
    rootfs = build_busybox_rootfs(os.path.join(work, "rootfs"))
    tarball = os.path.join(work, "busybox.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
    results = {}
    # dockerd/containerd create these if absent; remove them again then
    shared = [p for p in ("/run/docker", "/run/containerd") if not os.path.lexists(p)]
    try:
        host = BenchHost(work)
        try:
            out = subprocess.run(host.argv([sys.executable, os.path.abspath(__file__),
                                            "--setup-only", "-n", str(args.n)]),
                                 capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=SRC))
            if out.returncode == 0:
                setup = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault("pybox", {}).update(
                    {f"network {k}": v for k, v in setup.items()})
            else:
                print("setup benchmark failed:", out.stderr[-2000:])
        finally:
            host.remove()
        for name in args.engines.split(","):
            host = BenchHost(work)
            d = None
            try:
                d = {"pybox": start_pybox, "docker": start_docker}[name](host, work)
                d.docker("import", "-c", 'CMD ["sh"]', tarball, "busybox:latest")
                results.setdefault(name, {}).update(bench_engine(d, host, args.n, args.mib,
                                                                 args.reps))
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{name}: failed: {e}")
            finally:
                if d is not None:
                    d.stop()
                    for p in d.cleanup_dirs:
                        shutil.rmtree(p, ignore_errors=True)
                host.remove()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for p in shared:
            shutil.rmtree(p, ignore_errors=True)
    ops = []
    for r in results.values():
        ops += [o for o in r if o not in ops]
    print(f"\n{'':<28}" + "".join(f"{n:>14}" for n in results))
    for op in ops:
        row = f"{op:<28}"
        for r in results.values():
            v = r.get(op)
            if v is None:
                row += f"{'-':>14}"
            elif op.startswith("TCP"):
                row += f"{v:>9.0f} MiB/s"
            elif op.startswith("network"):
                row += f"{v * 1000:>11.2f} ms"
            else:
                row += f"{v:>12.3f} s"
        print(row)


if __name__ == "__main__":
    main()
