"""pyboxd: the engine daemon, serving the Docker Engine API.

    pyboxd [-H unix:///run/pybox/pybox.sock ...] [--data-root /var/lib/pybox]
           [--exec-root /run/pybox] [--pidfile F] [--group G] [--debug]
           [--userns-remap default|USER[:GROUP]]

Start-up order matters: the monitor zygote is forked first, while pyboxd is
still single-threaded (see pybox.monitor.zygote); then running containers are
re-adopted from disk; then the API threads start.  SIGTERM/SIGINT stop the
daemon but not the containers: their monitors keep running and a restarted
pyboxd re-adopts them (containers survive engine restarts by default).

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
import sys
from types import FrameType

import pybox.crashpoints  # noqa: F401 - reads PYBOX_CRASH_AT (tests) once
from pybox import __version__
from pybox.api import build_router
from pybox.api.server import SERVER, Server, answers
from pybox.engine.engine import Engine
from pybox.engine.images import ImageService
from pybox.engine.remap import check_reachable, parse_option
from pybox.errors import Locked, LockError, PyboxError
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pyboxd", description=(__doc__ or "").split("\n")[0])
    p.add_argument("-H", "--host", action="append", default=[],
                   help="unix://PATH to listen on (repeatable)")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT)
    p.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT)
    p.add_argument("--pidfile", default=None,
                   help=f"path of the pid file (default EXEC_ROOT/{PID_NAME})")
    p.add_argument("--group", default=None, help="group allowed to use the socket")
    p.add_argument("--userns-remap", default="", metavar="default|USER[:GROUP]",
                   help="run containers in a user namespace mapped to USER's "
                        "/etc/subuid and /etc/subgid ranges ('default': dockremap)")
    p.add_argument("--debug", action="store_true")
    # the registries' (dockerd's names); they add to daemon.json's lists
    p.add_argument("--config-file", default="/etc/pybox/daemon.json",
                   help="daemon configuration file (docker's daemon.json keys: "
                        "insecure-registries, registry-mirrors, max-concurrent-*)")
    p.add_argument("--insecure-registry", action="append", default=[],
                   metavar="HOST[:PORT]|CIDR", help="registry reached over plain HTTP "
                   "or unchecked TLS (repeatable)")
    p.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                   help="mirror tried before Docker Hub (repeatable)")
    p.add_argument("--no-proc-view", dest="proc_view", action="store_false",
                   help="no /proc view (lxcfs-like /proc/meminfo, cpuinfo...) for containers")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    hosts = args.host or ["unix://" + DEFAULT_SOCKET]
    paths = []
    for h in hosts:
        if not h.startswith("unix://"):
            sys.stderr.write(f"pyboxd: only unix:// sockets are supported, not {h!r}\n")
            return 2
        paths.append(h[len("unix://"):])
    os.makedirs(args.data_root, mode=0o711, exist_ok=True)
    os.makedirs(args.exec_root, mode=0o711, exist_ok=True)
    pidfile = os.path.abspath(args.pidfile or os.path.join(args.exec_root, PID_NAME))
    try:  # first of all: a second pyboxd must leave the first one's files alone
        os.makedirs(os.path.dirname(pidfile), exist_ok=True)
        locks = take_locks(args.data_root, args.exec_root, pidfile)
    except (LockError, OSError) as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1
    try:
        return serve(args, paths)
    finally:
        locks.remove(pidfile)  # as dockerd, at exit; the lock files stay (see above)


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


def serve(args: argparse.Namespace, paths: list[str]) -> int:
    """Everything after the locks: the engine, its recovery, the API."""
    pin_mmap_threshold()
    for path in paths:  # a socket another daemon (on other roots) serves
        if answers(path):
            sys.stderr.write(f"pyboxd: {path}: another process is listening on this socket "
                             "(is another pyboxd running with other roots?)\n")
            return 1

    try:
        remap = parse_option(args.userns_remap)
        check_reachable(remap, args.data_root)
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1
    images = ImageService(args.data_root)
    engine = Engine(args.data_root, args.exec_root, images=images, userns_remap=remap)
    try:  # insecure registries, mirrors (RegistryError: the file is unreadable or wrong)
        engine.distribution.configure(RegistryOptions.from_daemon_config(
            args.config_file, insecure_registries=args.insecure_registry,
            mirrors=args.registry_mirror))
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1

    def container_running(cid: str) -> bool:
        c = engine.store.by_id.get(cid)
        return bool(c and c.state.running)

    images.images.container_running = container_running
    engine.start_zygote()  # before any thread exists
    engine.procview.enabled = args.proc_view
    engine.procview.start()  # the /proc view's server, supervised (a thread)
    engine.recover()
    engine.supervise_zygote()
    server = Server(build_router(engine), SERVER.format(version=__version__))
    gid = None
    if args.group:
        gid = grp.getgrnam(args.group).gr_gid

    def stop(signum: int, frame: FrameType | None) -> None:
        engine.stopping = True
        server.shutdown()

    try:
        try:
            for path in paths:
                server.listen_unix(path, group=gid)
        except PyboxError as e:  # a daemon on other roots took the socket meanwhile
            sys.stderr.write(f"pyboxd: {e}\n")
            return 1
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # as dockerd's SIGUSR1: every thread's stack into the log, for a daemon that hangs
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        sys.stderr.write(f"pyboxd {__version__}: serving {', '.join(paths)}\n")
        sys.stderr.flush()
        server.serve_forever()
    finally:
        server.close()
        engine.network.shutdown()  # running containers keep their networking
        engine.procview.shutdown()  # kept while running containers use it
        engine.stop_zygote()
        engine.release_cgroup_parent()
    return 0


if __name__ == "__main__":
    sys.exit(main())
