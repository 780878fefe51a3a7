"""The procview server: one process per pybox exec root, serving the FUSE mount.

    python -m pybox.procview --dir RUN_ROOT/procview

DIR holds ``mnt/`` (the FUSE mount), ``server.lock`` (flock'ed for the server's
whole life: "is it running?" is "is the lock taken?", with no pid to go stale),
``server.pid`` and ``reserved.json`` (what the last re-serve did).

Start-up, in order (the process is single-threaded until the FUSE loop starts):
1. take the lock (another server for DIR -> exit 0);
2. unmount what a dead predecessor left on ``mnt`` (its mounts answer
   "Transport endpoint is not connected");
3. mount the filesystem (pyfuse3.init: libfuse's mount, allow_other);
4. fork the re-serve child (inject.py): it replaces the predecessor's files in
   every running container's mount namespace with this mount's, then exits;
5. run the loop: pyfuse3.main plus the 5-second load average sampler.
SIGTERM/SIGINT unmount and exit.

Files are attributes-only on lookup (size 0, mode 0444, as procfs shows them);
open() renders the whole file for the opener's pid (``ctx.pid``, the pid in the
server's -- the host's -- pid namespace) and keeps it for that open file, so a
reader sees one consistent snapshot however it splits its reads; direct_io makes
the kernel pass every read through (no page cache, no size check).

Imports: pyfuse3 and trio (about 0.4 s, and optional: pyboxd runs without the
view) are imported where the server uses them, because pyboxd imports this
module too (``fsname``, ``SECCOMP_SOCKET``); the rest is at the top.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import signal
import socket
import stat
import sys
import time

from pybox.cgroups.layout import unescape_mountinfo
from pybox.linux import constants as C
from pybox.linux import unixsock
from pybox.linux.syscalls import real
from pybox.oci.state import write_atomic
from pybox.procview import FILES, FSNAME, SUBTYPE, inject
from pybox.procview.cgroupview import Hierarchies
from pybox.procview.control import supervised
from pybox.procview.sysinfo import Agent
from pybox.procview.view import SAMPLE_SECONDS, View

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    import queue
    from collections.abc import Callable, Sequence
    from typing import Any

    import pyfuse3
    import trio

    from pybox.linux.syscalls import Syscalls

ATTR_TIMEOUT = 3600.0
# the size open() gives a file when the splice fix is on: above any file's length
SPLICE_SIZE = 1 << 24
# a hidden file of the root (an uptime) that probe_splice reads without the fix
PROBE = ".splice-probe"


def fsname(directory: str) -> str:
    """The mount's source as mountinfo shows it: names this server's DIR, so a
    restarted server recognises (only) its predecessor's mounts."""
    return f"{FSNAME}@{os.path.abspath(directory)}"


def log(text: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} procview[{os.getpid()}]: {text}\n")
    sys.stderr.flush()


def valid_view_name(name: str) -> bool:
    """A per-container directory name: what the engine passes (a container id)."""
    return 0 < len(name) <= 128 and all(c.isalnum() or c in "_.-" for c in name) \
        and name not in (".", "..")


def build_operations(view: View) -> Any:
    """pyfuse3 Operations over ``view``.

    Layout: the root holds the files (FILES) and, on demand, one directory per
    name looked up in it (the engine uses the container id): ``mnt/ID/meminfo``.
    Every file renders for the pid that opens it, wherever it sits; the
    per-container directories only give each container its own inodes, so that
    the page cache the kernel may keep for a file (below) is never shared
    between containers.

    ``splice_fix`` (set by ``probe_splice``): kernels 6.5 and later until the
    fix "fuse: use copy_splice_read for FOPEN_DIRECT_IO" splice direct_io files
    through the page cache and stop at i_size, so sendfile (busybox cat) reads
    nothing from a file of size 0.  With the fix on, open() first raises the
    inode's size (notify_store of one byte far out) in a worker thread: the
    page-cache read then gets this open's data, comes up short, and the kernel
    cuts i_size back to the data's end, so the reader stops there.
    """
    import pyfuse3  # noqa: PLC0415 -- heavy and optional (see the module's docstring)

    root_ino = pyfuse3.ROOT_INODE
    names = [name for name, _ in FILES]
    width = len(names) + 1  # a directory's inode, then one per file
    probe_ino = root_ino + width  # PROBE; per-container directories come after
    started = time.time_ns()

    def attributes(ino: int, is_dir: bool) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.entry_timeout = ATTR_TIMEOUT
        a.attr_timeout = ATTR_TIMEOUT
        if is_dir:
            a.st_mode = stat.S_IFDIR | 0o555
            a.st_nlink = 2
        else:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_nlink = 1
        a.st_uid = a.st_gid = 0
        a.st_size = 0
        a.st_blksize = 4096
        a.st_blocks = 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = started
        return a

    class Operations(pyfuse3.Operations):
        """The filesystem's requests (pyfuse3 calls these from its trio loop)."""

        def __init__(self) -> None:
            super().__init__()
            self.handles: dict[int, bytes] = {}
            self.next_fh = 1
            # on until probe_splice (which reads PROBE, never fixed) says otherwise
            self.splice_fix = True
            # directory inode -> its name ("" for the root); inodes of files are
            # the directory's + 1 + their index in FILES
            self.dirs: dict[int, str] = {root_ino: ""}
            self.by_name: dict[str, int] = {"": root_ino}
            self.lookups: dict[int, int] = {}  # directory inode -> kernel lookup count
            self.next_dir = probe_ino + 1

        def _file(self, ino: int) -> tuple[int, str] | None:
            """-> (directory inode, file name) or None."""
            if ino == probe_ino:
                return root_ino, "uptime"
            for base in (ino - 1 - i for i in range(len(names))):
                if base in self.dirs:
                    return base, names[ino - 1 - base]
            return None

        async def lookup(self, parent_inode: int, name: bytes,
                         ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
            if parent_inode not in self.dirs:
                raise pyfuse3.FUSEError(errno.ENOENT)
            text = name.decode("utf-8", "surrogateescape")
            if text in names:
                return attributes(parent_inode + 1 + names.index(text), False)
            if text == PROBE and parent_inode == root_ino:
                return attributes(probe_ino, False)
            if parent_inode != root_ino or not valid_view_name(text):
                raise pyfuse3.FUSEError(errno.ENOENT)
            ino = self.by_name.get(text)
            if ino is None:
                ino = self.next_dir
                self.next_dir += width
                self.dirs[ino] = text
                self.by_name[text] = ino
            self.lookups[ino] = self.lookups.get(ino, 0) + 1
            return attributes(ino, True)

        async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
            for ino, count in inode_list:
                if ino in self.lookups:
                    left = self.lookups[ino] - count
                    if left > 0:
                        self.lookups[ino] = left
                    else:
                        del self.lookups[ino]
                        gone = self.dirs.pop(ino, None)
                        if gone is not None:
                            self.by_name.pop(gone, None)

        async def getattr(self, inode: int,
                          ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
            if inode in self.dirs:
                return attributes(inode, True)
            if self._file(inode) is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attributes(inode, False)

        async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                          fields: pyfuse3.SetattrFields, fh: int | None,
                          ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
            raise pyfuse3.FUSEError(errno.EPERM)

        async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
            if inode not in self.dirs:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            return inode

        async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
            for i, name in enumerate(names):
                if i < start_id:
                    continue
                if not pyfuse3.readdir_reply(token, name.encode(),
                                             attributes(fh + 1 + i, False), i + 1):
                    break

        async def releasedir(self, fh: int) -> None:
            pass

        async def open(self, inode: int, flags: int,
                       ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
            found = self._file(inode)
            if found is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise pyfuse3.FUSEError(errno.EACCES)
            try:
                data = view.render(found[1], ctx.pid)
            except Exception as e:  # noqa: BLE001
                log(f"open {found[1]} for pid {ctx.pid}: {e.__class__.__name__}: {e}")
                raise pyfuse3.FUSEError(errno.EIO) from None
            if self.splice_fix and inode != probe_ino:
                # in a thread: the store waits for the page's lock, which a
                # reader's pending page read holds until this loop answers it
                await storer.store(inode)
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = data
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            data = self.handles.get(fh)
            if data is None:
                raise pyfuse3.FUSEError(errno.EBADF)
            return data[off:off + size]

        async def release(self, fh: int) -> None:
            self.handles.pop(fh, None)

        async def flush(self, fh: int) -> None:
            pass

        async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
            s = pyfuse3.StatvfsData()
            s.f_bsize = s.f_frsize = 4096
            s.f_namemax = 255
            return s

    storer = Storer(lambda inode: pyfuse3.notify_store(inode, SPLICE_SIZE - 1, b"\n"))
    return Operations()


class Storer:
    """One long-lived thread doing the notify_store calls of the splice fix (a
    store may wait for a page lock that a pending page read holds until the
    FUSE loop answers it: never in the loop's thread).  Lighter than
    trio.to_thread per call: a queue in, trio's run_sync_soon out."""

    def __init__(self, store: Callable[[int], object]) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[tuple[int, trio.Event]] | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    def _run(self) -> None:
        jobs, token = self._queue, self._token
        assert jobs is not None and token is not None  # (store() set both first)
        while True:
            inode, event = jobs.get()
            try:
                self._store(inode)
            except OSError:
                pass
            token.run_sync_soon(event.set)

    async def store(self, inode: int) -> None:
        import trio  # noqa: PLC0415 -- heavy and optional (see the module's docstring)

        if self._queue is None:
            import queue  # noqa: PLC0415 -- with the thread, on the first store only
            import threading  # noqa: PLC0415 -- idem

            self._token = trio.lowlevel.current_trio_token()
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._run, name="procview-store", daemon=True).start()
        event = trio.Event()
        self._queue.put((inode, event))
        await event.wait()


def probe_splice(path: str) -> bool:
    """True if sendfile from a file of this mount reads nothing while read()
    does (the kernel splices direct_io files through the page cache)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        sent = os.sendfile(w, fd, None, 65536)
    except OSError:
        sent = -1
    finally:
        os.close(fd)
        os.close(r)
        os.close(w)
    return sent == 0


def mount_device(mnt: str) -> int | None:
    """st_dev of the mount on ``mnt``, from mountinfo: a stat() of our own mount
    would wait for an answer from this very process, before its loop runs."""
    dev = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and unescape_mountinfo(fields[4]) == mnt:
                major, _, minor = fields[2].partition(":")
                dev = os.makedev(int(major), int(minor))  # the last one is on top
    return dev


def _is_mountpoint(path: str) -> bool:
    try:
        st = os.lstat(path)
        parent = os.lstat(os.path.dirname(path.rstrip("/")) or "/")
    except OSError as e:
        # a dead FUSE mount: stat fails with ENOTCONN (107)
        return e.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return st.st_dev != parent.st_dev


def clear_mountpoint(mnt: str, sc: Syscalls) -> None:
    """Unmount whatever is stacked on ``mnt`` (a dead predecessor's mounts)."""
    for _ in range(64):
        if not _is_mountpoint(mnt):
            return
        try:
            sc.umount2(mnt, C.MNT_DETACH)
        except OSError as e:
            log(f"cannot unmount the old {mnt}: {e}")
            return


def take_lock(directory: str) -> int | None:
    """The server lock (fd) or None when another server holds it."""
    fd = os.open(os.path.join(directory, "server.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


SECCOMP_SOCKET = "seccomp.sock"
IDLE_CHECK_SECONDS = 2.0
CMSG_SPACE_FDS = 64  # room for a few fds


def seccomp_listener(path: str) -> socket.socket:
    """The socket monitors send sysinfo listener fds to (SCM_RIGHTS)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unixsock.call(sock.bind, path)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The fds an SCM_RIGHTS message carried."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i:i + 4], sys.byteorder)
                       for i in range(0, usable, 4))
    return fds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pybox-procview", description="pybox's /proc view server")
    p.add_argument("--dir", required=True, help="state directory (mnt/ is mounted there)")
    p.add_argument("--no-reserve", action="store_true",
                   help="do not re-serve running containers at start-up")
    p.add_argument("--containers", default=None,
                   help="the engine's RUN_ROOT/containers (monitors keep the sysinfo "
                        "listeners; default: DIR/../containers)")
    args = p.parse_args(argv)
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, mode=0o711, exist_ok=True)
    lock = take_lock(directory)
    if lock is None:
        log(f"another server serves {directory}")
        return 0
    mnt = os.path.join(directory, "mnt")
    os.makedirs(mnt, mode=0o755, exist_ok=True)
    try:
        os.unlink(os.path.join(directory, "server.pid"))  # a dead predecessor's
    except FileNotFoundError:
        pass

    import pyfuse3  # noqa: PLC0415 -- heavy and optional (see the module's docstring)
    import trio  # noqa: PLC0415 -- idem

    sc = real()
    clear_mountpoint(mnt, sc)
    view = View(Hierarchies.detect(), log=log)
    ops = build_operations(view)
    options = {f"fsname={fsname(directory)}", f"subtype={SUBTYPE}", "allow_other", "ro",
               "default_permissions", "nosuid", "nodev", "noexec"}
    pyfuse3.init(ops, mnt, options)
    # "pid device": Server.ready() checks both (a dead predecessor's mount and
    # pid file must never pass for this server)
    write_atomic(os.path.join(directory, "server.pid"),
                 f"{os.getpid()} {mount_device(mnt)}\n", mode=0o644)
    log(f"serving {mnt}")

    agent = Agent(view.sysinfo, log, sc)
    containers = args.containers or os.path.join(os.path.dirname(directory), "containers")
    listener = seccomp_listener(os.path.join(directory, SECCOMP_SOCKET))

    child = None
    if not args.no_reserve:
        child = inject.start(directory, mnt, fsname(directory), log,
                             close_fds=[lock, listener.fileno()])

    stopping: list[int] = []

    async def sampler() -> None:
        while True:
            await trio.sleep(SAMPLE_SECONDS)
            try:
                view.sample()
            except Exception as e:  # noqa: BLE001
                log(f"sampling load averages: {e}")

    async def signals(nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
            async for signum in received:
                log(f"signal {signum}: unmounting")
                stopping.append(signum)
                nursery.cancel_scope.cancel()
                return

    async def reap() -> None:
        # the re-serve child: collect it so it does not stay a zombie
        while child is not None:
            try:
                pid, _ = os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            await trio.sleep(0.05)

    async def probe() -> None:
        try:
            ops.splice_fix = await trio.to_thread.run_sync(probe_splice,
                                                            os.path.join(mnt, PROBE))
        except OSError as e:
            log(f"splice probe: {e}")
            return
        if ops.splice_fix:
            log("this kernel splices direct_io FUSE files through the page cache: "
                "open() raises the file size for sendfile readers")

    async def idle(nursery: trio.Nursery) -> None:
        # Nobody supervises (pyboxd is gone: its lock on supervisor.lock went with
        # it) and no container has our files: nothing left to serve, so exit
        # rather than stay behind with a mount.  Twice in a row, 2 s apart: a
        # pyboxd restarting takes the lock again at once.
        strikes = 0
        while True:
            await trio.sleep(IDLE_CHECK_SECONDS)
            if supervised(directory) or inject.namespaces_using(fsname(directory)):
                strikes = 0
                continue
            strikes += 1
            if strikes >= 2:
                log("no supervisor and no container uses the view: exiting")
                nursery.cancel_scope.cancel()
                return

    async def sysinfo(nursery: trio.Nursery) -> None:
        # copies of the listeners the monitors keep (after a restart), then new ones
        for fd in agent.collect(containers):
            nursery.start_soon(agent.serve, fd)
        sock = trio.socket.from_stdlib_socket(listener)
        while True:
            conn, _ = await sock.accept()
            with conn:
                try:
                    with trio.move_on_after(2):
                        _, anc, _, _ = await conn.recvmsg(4096, CMSG_SPACE_FDS)
                except OSError:
                    continue
            for fd in received_fds(anc):
                if agent.adopt(fd):
                    nursery.start_soon(agent.serve, fd)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(signals, nursery)
            nursery.start_soon(sysinfo, nursery)
            nursery.start_soon(idle, nursery)
            nursery.start_soon(sampler)
            nursery.start_soon(reap)
            nursery.start_soon(probe)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()

    try:
        trio.run(serve)
    finally:
        pyfuse3.close(unmount=True)
        try:
            os.unlink(os.path.join(directory, "server.pid"))
        except OSError:
            pass
        log("stopped")
    return 0
