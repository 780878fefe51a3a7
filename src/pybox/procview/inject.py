"""Re-serving running containers after the server (re)starts.

When a server dies, the files bind-mounted into containers belong to its FUSE
connection, which the kernel aborted: every open of /proc/meminfo there fails
with ENOTCONN ("Transport endpoint is not connected"), lxcfs's classic failure.
A new server mounts a fresh filesystem on the host and then, in a child forked
while it is still single-threaded (setns(CLONE_NEWNS) refuses a process whose
fs_struct is shared with other threads):

1. finds every mount namespace with a file of a *previous* mount of this
   server's filesystem: /proc/*/ns/mnt, one pid per namespace, its mountinfo
   lines of type fuse.pybox-procview with this server's fsname and another
   device than the new mount's;
2. per namespace: open_tree(OPEN_TREE_CLONE) of each new file on the host (a
   detached bind mount; the lookup is served by the parent, whose loop runs by
   then), setns into the namespace, chroot to the container's root (its init's
   /proc/PID/root: a container that used pivot_root and one that did not alike),
   unmount the dead file (and any older dead ones stacked below it) and
   move_mount the clone onto the same path; setns back;
3. writes DIR/reserved.json: what it did, for logs and tests.

Between the old server's death and step 2, a read in a container fails with
ENOTCONN (a restart takes about 0.3 s here, see docs/procview.md); an open file
descriptor kept across the restart stays dead (reopen to recover), as with any
remounted file.
"""

from __future__ import annotations

import errno
import os
import time

from pybox.cgroups.layout import unescape_mountinfo
from pybox.formats import fastjson
from pybox.linux import constants as C
from pybox.linux.syscalls import real
from pybox.oci.state import write_atomic
from pybox.procview import FILES, SUBTYPE
from pybox.procview.cgroupview import read_text

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from pybox.linux.syscalls import Syscalls

    # (mount point, path in the filesystem, "major:minor")
    StaleMount = tuple[str, str, str]

AT_FDCWD = -100


def _unescape(field: str) -> str:
    return unescape_mountinfo(field)


def stale_mounts(mountinfo_text: str, source: str, new_dev: str | None) -> list[StaleMount]:
    """[(mount point, path in the filesystem, "major:minor")] of this server's
    files (``/meminfo``, ``/ID/meminfo``) that are not on the mount with device
    ``new_dev`` ("major:minor")."""
    names = {name for name, _ in FILES}
    out: list[StaleMount] = []
    for line in mountinfo_text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        after = right.split()
        if len(after) < 2 or after[0] != "fuse." + SUBTYPE or _unescape(after[1]) != source:
            continue
        fields = left.split()
        if len(fields) < 5 or fields[2] == new_dev:
            continue
        path = _unescape(fields[3])
        if path.rsplit("/", 1)[-1] in names and ".." not in path.split("/"):
            out.append((_unescape(fields[4]), path, fields[2]))
    return out


def namespaces_using(source: str, proc: str = "/proc") -> list[int]:
    """Pids (one per mount namespace, the caller's excluded) holding a file of
    the filesystem named ``source``, live or dead."""
    return sorted(find_targets(source, None, proc))


def find_targets(source: str, new_dev: str | None,
                 proc: str = "/proc") -> dict[int, list[StaleMount]]:
    """{pid: [(point, name, dev)]}: one pid per mount namespace holding stale files."""
    seen: set[int] = set()
    try:
        seen.add(os.stat(f"{proc}/self/ns/mnt").st_ino)
    except OSError:
        pass
    targets: dict[int, list[StaleMount]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            ino = os.stat(f"{proc}/{entry}/ns/mnt").st_ino
        except OSError:
            continue
        if ino in seen:
            continue
        seen.add(ino)
        try:
            text = read_text(f"{proc}/{entry}/mountinfo")
        except OSError:
            continue
        stale = stale_mounts(text, source, new_dev)
        if stale:
            targets[int(entry)] = stale
    return targets


def _clear(point: str, dead_devs: set[str], sc: Syscalls) -> None:
    """Unmount the dead procview files stacked on ``point`` (in this namespace)."""
    for _ in range(64):
        try:
            st = os.stat(point)
            dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
            if dev not in dead_devs:
                return
        except OSError as e:
            if e.errno not in (errno.ENOTCONN, errno.ECONNABORTED):
                raise
        sc.umount2(point, C.MNT_DETACH)


def reserve_namespace(pid: int, stale: list[StaleMount], mnt: str, sc: Syscalls, host_ns: int,
                      host_root: int) -> int:
    """Replace the stale files of ``pid``'s mount namespace; -> count replaced."""
    wanted: dict[str, str] = {}
    dead: set[str] = set()
    for point, name, dev in stale:
        wanted.setdefault(point, name)
        dead.add(dev)
    ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    root = os.open(f"/proc/{pid}/root", C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    clones: dict[str, int] = {}
    try:
        for point, name in wanted.items():
            clones[point] = sc.open_tree(mnt + name,
                                         C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC)
        sc.setns(ns, C.CLONE_NEWNS)
        try:
            os.fchdir(root)
            os.chroot(".")
            for point, fd in clones.items():
                _clear(point, dead, sc)
                sc.move_mount(fd, "", AT_FDCWD, point, C.MOVE_MOUNT_F_EMPTY_PATH)
        finally:
            sc.setns(host_ns, C.CLONE_NEWNS)
            os.fchdir(host_root)
            os.chroot(".")
            os.chdir("/")
    finally:
        for fd in clones.values():
            os.close(fd)
        os.close(ns)
        os.close(root)
    return len(clones)


def reserve(directory: str, mnt: str, source: str, sc: Syscalls | None = None) -> dict[str, Any]:
    """Re-serve every running container; -> the report written to reserved.json."""
    sc = sc or real()
    t0 = time.monotonic()
    st = os.stat(mnt)  # answered by the parent once its loop runs
    new_dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    errors: list[str] = []
    report: dict[str, Any] = {"server": os.getppid(), "device": new_dev, "namespaces": 0,
                              "mounts": 0, "errors": errors}
    targets = find_targets(source, new_dev)
    host_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    host_root = os.open("/", C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for pid, stale in targets.items():
            try:
                report["mounts"] += reserve_namespace(pid, stale, mnt, sc, host_ns, host_root)
                report["namespaces"] += 1
            except OSError as e:
                errors.append(f"pid {pid}: {e}")
    finally:
        os.close(host_ns)
        os.close(host_root)
    report["seconds"] = round(time.monotonic() - t0, 4)
    write_atomic(os.path.join(directory, "reserved.json"), fastjson.dumps(report), mode=0o644)
    return report


def start(directory: str, mnt: str, source: str, log: Callable[[str], object],
          close_fds: Iterable[int] = ()) -> int:
    """Fork the re-serve child (the caller must be single-threaded); -> its pid.
    ``log``: the server's log (the child's lines go where the server's do)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in close_fds:
            os.close(fd)
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == "/dev/fuse":
                    os.close(int(name))  # never hold the connection open
            except OSError:
                pass
        report = reserve(directory, mnt, source)
        if report["mounts"] or report["errors"]:
            log(f"re-served {report['mounts']} files in {report['namespaces']} containers "
                f"in {report['seconds']} s" + (f"; errors: {report['errors']}"
                                               if report["errors"] else ""))
        code = 0
    except BaseException as e:  # noqa: BLE001
        try:
            log(f"re-serve failed: {e}")
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)
