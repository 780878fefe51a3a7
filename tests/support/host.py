"""What the host shows of a test's objects, and their removal: every lookup
goes through a private directory or name of the test's own, so other daemons'
processes, mounts and cgroups on the machine are never touched."""

import os
import signal
import subprocess

CGROUP_ROOT = "/sys/fs/cgroup"


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path``."""
    return [p for p in mount_points() if p == path or p.startswith(path.rstrip("/") + "/")]


def unmount_under(path: str) -> None:
    """Lazily unmount anything still mounted at or below ``path``, deepest first."""
    for point in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def remove_tree(path: str) -> None:
    """rm -rf of a directory of ours that never descends into a mount: what is
    still mounted below it (a crashed daemon's overlay, a FUSE mount whose
    server is gone) is detached first, so nothing can hang or reach beyond."""
    for point in sorted((p for p in mounts_under(path) if p != path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True)


def cgroup_roots() -> list[str]:
    """Mount points of every cgroup hierarchy on the host."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                roots.append(fields[4])
    return roots


def remove_empty_dirs(top: str) -> None:
    """rmdir ``top`` and the directories below it, deepest first; what is not
    empty stays (a cgroup with a live process, a directory someone uses)."""
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def remove_cgroup_tree(name: str) -> None:
    """rmdir /<hierarchy>/<name> and what is left under it, deepest first
    (only empty cgroups can go: a live process keeps its cgroup)."""
    for root in cgroup_roots():
        top = os.path.join(root, name.strip("/"))
        if os.path.isdir(top):
            remove_empty_dirs(top)


def cgroup_dirs(container_ids) -> list[str]:
    """Cgroup directories named after one of ``container_ids`` (any hierarchy)."""
    out: list[str] = []
    ids = set(container_ids)
    if not ids or not os.path.isdir(CGROUP_ROOT):
        return out
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        for d in list(dirs):
            if d in ids:
                out.append(os.path.join(top, d))
        if top.count("/") > 6:
            dirs[:] = []
    return out


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line mentions ``text`` (a private directory)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(entry))
        except OSError:
            pass
    return out


def pids_named(names) -> list[int]:
    """Processes whose comm is one of ``names``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() in names:
                    out.append(int(entry))
        except OSError:
            pass
    return out


def kill_all(pids) -> None:
    """SIGKILL each of ``pids`` (gone already is fine)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))
