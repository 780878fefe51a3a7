"""pyboxd: the engine daemon, serving the Docker Engine API.

    pyboxd [-H unix:///run/pybox/pybox.sock | -H tcp://HOST:PORT ...]
           [--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY]
           [--config-file /etc/pybox/daemon.json] [--data-root /var/lib/pybox]
           [--exec-root /run/pybox] [--pidfile F] [--group G] [--debug]
           [--userns-remap default|USER[:GROUP]] [--log-driver D --log-opt K=V]
           [--dns IP --dns-opt O --dns-search D] [--default-address-pool base=CIDR,size=N]
           [--default-ulimit NAME=SOFT[:HARD]] [--live-restore[=false]]
           [--cri-socket PATH|""] [--cni-conf-dir D] [--cni-bin-dir D]
           [--pod-infra-container-image REF] ...

Flags and daemon.json merge as dockerd's do (pybox.engine.daemonconfig: a key
both in the file and as a flag, or a key nothing knows, stops pyboxd before it
touches anything).  TCP listeners with TLS: pybox.api.listeners.

Start-up order matters: the monitor zygote is forked first, while pyboxd is
still single-threaded (see pybox.monitor.zygote); then running containers are
re-adopted from disk; then the API threads start, and the Kubernetes CRI's gRPC server (pybox.cri) on
EXEC_ROOT/cri.sock (/run/pybox/cri.sock; --cri-socket "" turns it off).  SIGTERM/SIGINT stop the
daemon but not the containers: their monitors keep running and a restarted
pyboxd re-adopts them (containers survive engine restarts by default; with
"live-restore": false, pyboxd stops them as it goes, as dockerd does).

Before all of that, before it touches anything, pyboxd takes an exclusive lock
on DATA_ROOT/pyboxd.lock, EXEC_ROOT/pyboxd.lock and its pidfile (by default
EXEC_ROOT/pyboxd.pid; dockerd's is /var/run/docker.pid), and writes its pid in
each.  A second pyboxd on the same data root, exec root or pidfile exits at once
with status 1 and a line naming the root and the running daemon's pid, having
changed nothing: two daemons recovering, pruning and serving the same
containers would undo each other's work (the second one's exit removed the
first one's socket and zygote).  The locks are fcntl record locks: the kernel
drops them when the process dies (no stale lock after a crash; a stale pidfile
is overwritten), they are not inherited by children (a monitor that outlives
pyboxd does not keep the root locked), and F_GETLK names the holder.
"""

import argparse
import ctypes
import errno
import faulthandler
import fcntl
import grp
import os
import signal
import ssl
import sys
import threading
from types import FrameType

import pybox.crashpoints  # noqa: F401 - reads PYBOX_CRASH_AT (tests) once
from pybox import __version__
from pybox.api import build_router
from pybox.api.listeners import TLSListener, server_context
from pybox.api.server import SERVER, Server, answers, tcp_listener
from pybox.cri.options import DEFAULT_CNI_BIN_DIRS, CRIOptions
from pybox.cri.server import CRIServer
from pybox.engine import daemonconfig
from pybox.engine.daemonconfig import DEFAULT_CONFIG_FILE, DaemonConfig, tcp_address
from pybox.engine.engine import Engine
from pybox.engine.images import ImageService
from pybox.engine.remap import check_reachable, parse_option
from pybox.engine.restart import comes_back_with_daemon
from pybox.engine.spec import validate_create
from pybox.engine.store import Container
from pybox.errors import DaemonConfigError, Locked, LockError, PyboxError
from pybox.images.registry_config import RegistryOptions
from pybox.locations import (
    DEFAULT_DATA_ROOT,
    DEFAULT_EXEC_ROOT,
    DEFAULT_SOCKET,
    LOCK_NAME,
    PID_NAME,
    holder_fd,
)


class Locks:
    """The lock files pyboxd holds for its life (see the module's docstring)."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        self._held: set[tuple[int, int]] = set()  # (st_dev, st_ino) of what we hold

    def take(self, path: str) -> None:
        """Lock ``path`` (created 0644 if missing) and write our pid in it, or
        raise Locked.  Retried if the file is replaced meanwhile (a pidfile the
        daemon that held it removed on its way out)."""
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in self._held:
                os.close(fd)  # the same file twice (--exec-root = --data-root): held
                return
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                # a record lock is the process's: closing this descriptor drops
                # nothing of ours (we do not hold this file), so it may go
                pid = holder_fd(fd)
                os.close(fd)
                if pid is None:
                    continue  # released in between: try again
                raise Locked(path, pid) from None
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == st.st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fds[path] = fd
            self._held.add((st.st_dev, st.st_ino))
            return

    def remove(self, path: str) -> None:
        """Remove ``path`` (the pidfile, as dockerd does at exit) while still
        holding it."""
        if path in self.fds:
            try:
                os.unlink(path)
            except OSError:
                pass


def take_locks(data_root: str, exec_root: str, pidfile: str) -> Locks:
    """The data root's and the exec root's lock, then the pidfile; LockError,
    whose message is the one line to show, if another daemon holds one."""
    locks = Locks()
    for path, what, flag in ((os.path.join(data_root, LOCK_NAME), f"the data root {data_root}",
                              "--data-root"),
                             (os.path.join(exec_root, LOCK_NAME), f"the exec root {exec_root}",
                              "--exec-root"),
                             (pidfile, None, "--pidfile")):
        try:
            locks.take(path)
        except Locked as e:
            who = f"another pyboxd (pid {e.pid})" if e.pid else "another pyboxd"
            if what is None:
                text = f"pid file {path} is held by {who}"
            else:
                text = f"{who} is running on {what} (it holds {path})"
            raise LockError(f"{text}; stop it first, or start this one with another "
                            f"{flag}") from None
    return locks


def _flag_bool(text: str) -> bool:
    """A boolean flag's value: ``--tlsverify``, ``--tlsverify=false`` (Go's strconv.ParseBool)."""
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _parser() -> argparse.ArgumentParser:
    """pyboxd's flags, dockerd's names.  No defaults here (argparse.SUPPRESS):
    only the flags given reach pybox.engine.daemonconfig, which tells a flag
    from a daemon.json key and a key given twice."""
    p = argparse.ArgumentParser(prog="pyboxd", description=(__doc__ or "").split("\n")[0],
                                argument_default=argparse.SUPPRESS)

    def boolean(*names: str, help: str) -> None:
        p.add_argument(*names, nargs="?", const=True, type=_flag_bool, metavar="true|false",
                       help=help)

    p.add_argument("-H", "--host", action="append",
                   help="unix://PATH or tcp://[HOST]:PORT to listen on (repeatable; "
                        f"default unix://{DEFAULT_SOCKET})")
    p.add_argument("--config-file", help="daemon configuration file, docker's daemon.json "
                   f"keys (default {DEFAULT_CONFIG_FILE})")
    p.add_argument("--data-root", help=f"containers', images' and volumes' root "
                   f"(default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", help=f"the running state's root (default {DEFAULT_EXEC_ROOT})")
    p.add_argument("--pidfile", help=f"path of the pid file (default EXEC_ROOT/{PID_NAME})")
    p.add_argument("-G", "--group", help="group allowed to use the unix sockets")
    p.add_argument("--userns-remap", metavar="default|USER[:GROUP]",
                   help="run containers in a user namespace mapped to USER's "
                        "/etc/subuid and /etc/subgid ranges ('default': dockremap)")
    boolean("-D", "--debug", help="debug mode")
    p.add_argument("--no-proc-view", nargs="?", const=True, type=_flag_bool,
                   metavar="true|false",
                   help="no /proc view (lxcfs-like /proc/meminfo, cpuinfo...) for containers")
    p.add_argument("--log-driver", help="default logging driver of containers (json-file)")
    p.add_argument("--log-opt", action="append", metavar="KEY=VALUE",
                   help="default logging driver options (repeatable)")
    p.add_argument("--default-address-pool", action="append", metavar="base=CIDR,size=N",
                   help="where networks' subnets come from (repeatable)")
    p.add_argument("--dns", action="append", metavar="IP", help="DNS server of containers")
    p.add_argument("--dns-opt", action="append", help="DNS option of containers")
    p.add_argument("--dns-search", action="append", help="DNS search domain of containers")
    p.add_argument("--default-ulimit", action="append", metavar="NAME=SOFT[:HARD]",
                   help="default ulimit of containers (repeatable)")
    boolean("--live-restore", help="keep containers running while pyboxd is down "
                                   "(pybox's default: true)")
    boolean("--tls", help="use TLS on tcp:// listeners; implied by --tlsverify")
    boolean("--tlsverify", help="use TLS and verify clients' certificates (against --tlscacert)")
    p.add_argument("--tlscacert", help="trust client certificates signed only by this CA")
    p.add_argument("--tlscert", help="path to the server's TLS certificate")
    p.add_argument("--tlskey", help="path to the server's TLS key")
    p.add_argument("--insecure-registry", action="append", metavar="HOST[:PORT]|CIDR",
                   help="registry reached over plain HTTP or unchecked TLS (repeatable)")
    p.add_argument("--registry-mirror", action="append", metavar="URL",
                   help="mirror tried before Docker Hub (repeatable)")
    for flag in ("--max-concurrent-downloads", "--max-concurrent-uploads",
                 "--max-download-attempts"):
        p.add_argument(flag, type=int)
    p.add_argument("--cri-socket", metavar="PATH",
                   help="the Kubernetes CRI's unix socket (default EXEC_ROOT/cri.sock, "
                        "/run/pybox/cri.sock; \"\" for no CRI server)")
    p.add_argument("--cni-conf-dir", help="CNI network configurations of pods "
                   "(default /etc/cni/net.d)")
    p.add_argument("--cni-bin-dir", action="append", metavar="DIR",
                   help="where CNI plugins are looked for (repeatable; default "
                        f"{', '.join(DEFAULT_CNI_BIN_DIRS)})")
    p.add_argument("--pod-infra-container-image", metavar="REF",
                   help="the pod sandbox's image (default: pybox's own pause, no image)")
    p.add_argument("--cri-registry-mirror", action="append", metavar="HOST=URL",
                   help="a mirror the CRI's pulls of HOST's images try first (repeatable)")
    p.add_argument("--cri-stream-idle-timeout", metavar="DURATION",
                   help="close CRI exec/attach/port-forward connections idle this long "
                        "(a Go duration; default 4h; 0: never)")
    return p


def parse_args(argv: list[str]) -> DaemonConfig:
    """The command line and the configuration file, merged (DaemonConfigError:
    the one line to show)."""
    given = vars(_parser().parse_args(argv))
    config_file = given.pop("config_file", None)
    return daemonconfig.load({k.replace("_", "-"): v for k, v in given.items()}, config_file)


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
        check_log_config(config)
        tls = tls_context(config)
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1
    for warning in config.warnings:
        sys.stderr.write(f"pyboxd: WARNING: {warning}\n")
    paths = [h[len("unix://"):] for h in config.hosts if h.startswith("unix://")]
    os.makedirs(config.data_root, mode=0o711, exist_ok=True)
    os.makedirs(config.exec_root, mode=0o711, exist_ok=True)
    pidfile = os.path.abspath(config.pidfile or os.path.join(config.exec_root, PID_NAME))
    try:  # first of all: a second pyboxd must leave the first one's files alone
        os.makedirs(os.path.dirname(pidfile), exist_ok=True)
        locks = take_locks(config.data_root, config.exec_root, pidfile)
    except (LockError, OSError) as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1
    try:
        return serve(config, paths, tls)
    finally:
        locks.remove(pidfile)  # as dockerd, at exit; the lock files stay (see above)


def check_log_config(config: DaemonConfig) -> None:
    """The default log driver and options, checked as a container's are (dockerd
    refuses to start with ones it cannot use)."""
    try:
        validate_create({}, {"LogConfig": config.log_config()})
    except PyboxError as e:
        raise DaemonConfigError(f"failed to set log opts: {e}") from None


def tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    """The TCP listeners' TLS, when --tls or --tlsverify is set and there is one."""
    if not config.tls_enabled or not any(h.startswith("tcp://") for h in config.hosts):
        return None
    return server_context(config.tlscert, config.tlskey, config.tlscacert,
                          verify=config.verify_clients)


def pin_mmap_threshold() -> None:
    """Keep glibc's mmap threshold at its default 128 KiB for the daemon's life.

    glibc raises the threshold to the size of every mmap'd block freed (up to
    32 MiB), after which blocks that size come from the heap instead.  asyncio
    receives each datagram into a fresh 256 KiB buffer and shrinks it to the
    message (pyroute2's netlink replies, several per container start and
    exit): once the threshold had risen, every such buffer was carved from
    the heap and the small messages kept from them split its free space, so
    pyboxd's heap grew by a few KiB per container for good.  Setting the
    threshold explicitly turns the adjustment off: big transient buffers are
    mmap'd and given back.  Left alone when MALLOC_MMAP_THRESHOLD_ is set
    (glibc's own knob) or the libc has no mallopt."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def serve(config: DaemonConfig, paths: list[str], tls: ssl.SSLContext | None) -> int:
    """Everything after the locks: the engine, its recovery, the API."""
    pin_mmap_threshold()
    for path in paths:  # a socket another daemon (on other roots) serves
        if answers(path):
            sys.stderr.write(f"pyboxd: {path}: another process is listening on this socket "
                             "(is another pyboxd running with other roots?)\n")
            return 1

    try:
        remap = parse_option(config.userns_remap)
        check_reachable(remap, config.data_root)
        gid = grp.getgrnam(config.group).gr_gid if config.group else None
    except KeyError:
        sys.stderr.write(f"pyboxd: group {config.group} not found\n")
        return 1
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1
    images = ImageService(config.data_root)
    engine = Engine(config.data_root, config.exec_root, images=images, userns_remap=remap,
                    config=config)
    try:  # insecure registries, mirrors (RegistryError: a value is wrong)
        engine.distribution.configure(registry_options(config))
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1

    def container_running(cid: str) -> bool:
        c = engine.store.by_id.get(cid)
        return bool(c and c.state.running)

    images.images.container_running = container_running
    engine.start_zygote()  # before any thread exists
    engine.procview.enabled = config.proc_view
    engine.procview.start()  # the /proc view's server, supervised (a thread)
    engine.recover()
    if not config.live_restore:  # containers a killed pyboxd left running
        stop_survivors(engine)
    engine.supervise_zygote()
    server = Server(build_router(engine), SERVER.format(version=__version__))
    tls_listeners: list[TLSListener] = []
    cri = cri_server(engine, config, gid)

    def stop(signum: int, frame: FrameType | None) -> None:
        engine.stopping = True
        server.shutdown()

    try:
        try:
            for host in config.hosts:
                if host.startswith("unix://"):
                    server.listen_unix(host[len("unix://"):], group=gid)
                    continue
                address, port = tcp_address(host)
                if not (tls is not None and config.verify_clients):
                    warn_insecure(host, config)
                if tls is None:
                    server.listen_tcp(address, port)
                else:
                    listener = TLSListener(server, tcp_listener(address, port), tls)
                    listener.start()
                    tls_listeners.append(listener)
            if cri is not None:
                cri.start()
        except PyboxError as e:  # a daemon on other roots took the socket meanwhile
            sys.stderr.write(f"pyboxd: {e}\n")
            return 1
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # as dockerd's SIGUSR1: every thread's stack into the log, for a daemon that hangs
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        served = config.hosts + ([f"unix://{config.cri_socket_path} (CRI)"] if cri else [])
        sys.stderr.write(f"pyboxd {__version__}: serving {', '.join(served)}\n")
        sys.stderr.flush()
        server.serve_forever()
    finally:
        for listener in tls_listeners:
            listener.close()
        if cri is not None:
            cri.stop()
        server.close()
        if not config.live_restore:
            stop_containers(engine)
        engine.network.shutdown()  # running containers keep their networking
        engine.procview.shutdown()  # kept while running containers use it
        engine.stop_zygote()
        engine.release_cgroup_parent()
    return 0


def cri_server(engine: Engine, config: DaemonConfig, gid: int | None) -> CRIServer | None:
    """The CRI's gRPC server (not yet listening), None when --cri-socket is ""."""
    path = config.cri_socket_path
    if not path:
        return None
    return CRIServer(engine, CRIOptions(
        socket=os.path.abspath(path), cni_cache_dir=os.path.join(config.data_root, "cni"),
        cni_conf_dir=config.cni_conf_dir,
        cni_bin_dirs=tuple(config.cni_bin_dirs) or DEFAULT_CNI_BIN_DIRS,
        pod_infra_image=config.pod_infra_container_image, group=gid,
        stream_idle_timeout=config.cri_stream_idle_timeout))


def registry_options(config: DaemonConfig) -> RegistryOptions:
    """The registries' settings (pybox.images.registry_config) from the merged
    configuration."""
    defaults = RegistryOptions(insecure_registries=(), mirrors=())
    return RegistryOptions(
        insecure_registries=config.insecure_registries, mirrors=config.registry_mirrors,
        max_concurrent_downloads=config.max_concurrent_downloads
        or defaults.max_concurrent_downloads,
        max_concurrent_uploads=config.max_concurrent_uploads or defaults.max_concurrent_uploads,
        max_attempts=config.max_download_attempts or defaults.max_attempts)


def warn_insecure(host: str, config: DaemonConfig) -> None:
    """dockerd's warnings for a TCP listener without client verification (its
    start-up delay left out: the words are the point)."""
    for line in (
            "Binding to IP address without --tlsverify is insecure and gives root access on "
            "this machine to everyone who has access to your network.",
            "Binding to an IP address, even on localhost, can also give access to scripts run "
            "in a browser. Be safe out there!",
            "[DEPRECATION NOTICE] In future versions this will be a hard failure preventing the "
            "daemon from starting! Learn more at: https://docs.docker.com/go/api-security/"):
        sys.stderr.write(f'pyboxd: WARNING: {line} host="{host}"\n')
    sys.stderr.flush()


def stop_survivors(engine: Engine) -> None:
    """live-restore off, at start: containers still running (their pyboxd was
    killed, or ran with live restore) are stopped, then those whose restart
    policy brings them back with the daemon started again, as dockerd's
    restore does without live restore."""
    survivors = stop_containers(engine)
    for c in survivors:
        if not c.removed and comes_back_with_daemon(c):
            try:
                engine.start(c.id)
            except PyboxError as e:
                sys.stderr.write(f"pyboxd: failed to restart container {c.id[:12]}: {e}\n")


def stop_containers(engine: Engine) -> list[Container]:
    """live-restore off: stop every running container as pyboxd goes, all at
    once, each with its own stop signal and timeout (dockerd's Shutdown).  As
    in dockerd, a stop at shutdown is not the user's: a container whose
    restart policy brings it back with the daemon still comes back.  -> the
    containers stopped."""

    def stop_one(c: Container) -> None:
        with c.lock:
            if not c.state.running:
                return
            manual = c.manual_stop
            try:
                engine.lifecycle.stop_locked(c, None)
            except PyboxError as e:
                sys.stderr.write(f"pyboxd: failed to shut down container {c.id[:12]}: {e}\n")
            c.manual_stop = manual
            c.save()

    running = [c for c in engine.store.all() if c.state.running]
    threads = [threading.Thread(target=stop_one, args=(c,), name="shutdown") for c in running]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return running


if __name__ == "__main__":
    sys.exit(main())
