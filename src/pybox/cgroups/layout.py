"""What cgroup layout this host has, read from /proc/self/mountinfo and /proc/self/cgroup.

Never assumed: v1 controllers may be mounted anywhere, co-mounted ("cpu,cpuacct"
at one mount point), bind-mounted from a sub-tree (the mount's root is then not
"/"), absent, or named-only ("name=systemd").  A cgroup2 mount may exist next to
them (hybrid, as here: /sys/fs/cgroup/unified holding no controllers or only
hugetlb) or alone (v2).  The caller's own cgroup in each hierarchy comes from
/proc/self/cgroup, because relative cgroupsPaths are resolved against it.

Tests pass the text of both files (and a ``prefix`` under which the mount points
are re-rooted, e.g. a tmp dir holding a fake cgroupfs) instead of reading /proc.
"""

from __future__ import annotations

import os

from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

V1 = "v1"
V2 = "v2"
HYBRID = "hybrid"

# Super options of a v1 cgroup mount that are not controller names.
_NON_CONTROLLER_OPTIONS = frozenset(
    ("rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode",
     "nosuid", "nodev", "noexec", "relatime", "favordynmods"))


class Hierarchy:
    """One mounted hierarchy: where it is and where the caller sits in it.

    ``mountpoint``  absolute directory (already re-rooted under the prefix)
    ``root``        the hierarchy path the mount shows at its mount point ("/"
                    unless a sub-tree is bind-mounted, as in some containers)
    ``controllers`` tuple of controller names (v1: from the mount options,
                    including "name=..." for named hierarchies; v2: from
                    cgroup.controllers of the mount root)
    ``own``         the caller's cgroup in this hierarchy, relative to ``root``
                    (always starts with "/")
    """

    __slots__ = ("mountpoint", "root", "controllers", "own", "version")

    def __init__(self, mountpoint: str, root: str, controllers: Iterable[str], own: str = "/",
                 version: int = 1) -> None:
        self.mountpoint = mountpoint
        self.root = root
        self.controllers = tuple(controllers)
        self.own = own
        self.version = version

    def directory(self, cgroup_path: str) -> str:
        """Absolute directory of ``cgroup_path`` (a path inside the hierarchy as
        seen from the mount, i.e. relative to ``root``)."""
        if cgroup_path in ("", "/"):
            return self.mountpoint
        return self.mountpoint.rstrip("/") + cgroup_path

    def __repr__(self) -> str:
        return (f"Hierarchy({self.mountpoint!r}, root={self.root!r}, "
                f"controllers={self.controllers!r}, own={self.own!r}, v{self.version})")


class Layout:
    """The host's layout.

    ``mode``         "v1", "v2" or "hybrid"
    ``v1``           dict controller -> Hierarchy (co-mounted controllers share one)
    ``unified``      the cgroup2 Hierarchy, or None
    """

    def __init__(self, mode: str, v1: dict[str, Hierarchy], unified: Hierarchy | None) -> None:
        self.mode = mode
        self.v1 = v1
        self.unified = unified

    @property
    def unified_controllers(self) -> tuple[str, ...]:
        return self.unified.controllers if self.unified else ()

    def v1_hierarchies(self) -> list[Hierarchy]:
        """Distinct v1 hierarchies (one per mount), in a stable order."""
        seen: list[Hierarchy] = []
        for name in sorted(self.v1):
            h = self.v1[name]
            if h not in seen:
                seen.append(h)
        return seen

    def __repr__(self) -> str:
        return f"Layout({self.mode}, v1={sorted(self.v1)}, unified={self.unified!r})"


def unescape_mountinfo(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    n = len(field)
    while i < n:
        ch = field[i]
        if ch == "\\" and i + 3 < n + 1 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str, str, list[str]]]:
    """Cgroup mounts as (mountpoint, root, fstype, super_options) tuples, in order."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        after = right.split()
        if not after or after[0] not in ("cgroup", "cgroup2"):
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        root = unescape_mountinfo(fields[3])
        mountpoint = unescape_mountinfo(fields[4])
        options = after[2].split(",") if len(after) > 2 else []
        mounts.append((mountpoint, root, after[0], options))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> dict: controller -> path.

    v1 lines "4:memory:/a" give "memory"; co-mounted "2:cpu,cpuacct:/a" gives
    both names; named "1:name=systemd:/a" gives "name=systemd"; the v2 line
    "0::/a" gives "".
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
            continue
        for name in controllers.split(","):
            out[name] = path
    return out


def _relative_to_root(own: str, root: str) -> str:
    """The caller's path as seen below a mount whose root is ``root``."""
    if root in ("", "/"):
        return own or "/"
    if own == root:
        return "/"
    if own.startswith(root.rstrip("/") + "/"):
        return own[len(root.rstrip("/")):]
    # The caller's cgroup is outside the mounted sub-tree (or the mount comes
    # from another cgroup namespace): the best we can do is the mount's root.
    return "/"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def detect(mountinfo: str | None = None, proc_cgroup: str | None = None, *, prefix: str = "",
           read_controllers: Callable[[str], str] | None = None) -> Layout:
    """Detect the layout.  Arguments default to the running process's view.

    ``prefix`` re-roots every mount point (tests: a tmp dir holding a fake tree).
    ``read_controllers(mountpoint)`` returns the text of cgroup.controllers of a
    cgroup2 mount (defaults to reading the file; an unreadable file means none).
    """
    if mountinfo is None:
        mountinfo = _read("/proc/self/mountinfo")
    if proc_cgroup is None:
        proc_cgroup = _read("/proc/self/cgroup")
    own = parse_proc_cgroup(proc_cgroup)

    v1: dict[str, Hierarchy] = {}
    unified: Hierarchy | None = None
    for mountpoint, root, fstype, options in parse_mountinfo(mountinfo):
        mountpoint = prefix.rstrip("/") + mountpoint if prefix else mountpoint
        if fstype == "cgroup2":
            if unified is not None and not _prefer_unified(mountpoint, unified):
                continue
            controllers = _unified_controllers(mountpoint, read_controllers)
            unified = Hierarchy(mountpoint, root, controllers,
                                _relative_to_root(own.get("", "/"), root), version=2)
            continue
        names = [o for o in options
                 if o not in _NON_CONTROLLER_OPTIONS and ("=" not in o or o.startswith("name="))]
        if not names:
            continue
        if any(n in v1 for n in names):
            # The same hierarchy mounted twice (bind mounts): keep the first.
            continue
        path = "/"
        for n in names:
            if n in own:
                path = own[n]
                break
        h = Hierarchy(mountpoint, root, names, _relative_to_root(path, root), version=1)
        for n in names:
            v1[n] = h

    real_v1 = [n for n in v1 if not n.startswith("name=")]
    if real_v1:
        mode = HYBRID if unified is not None else V1
    elif unified is not None:
        mode = V2
    else:
        raise CgroupError("no cgroup filesystem is mounted (neither cgroup v1 controllers "
                          "nor cgroup2 found in /proc/self/mountinfo)", errno=2)
    return Layout(mode, v1, unified)


def _prefer_unified(candidate: str, current: Hierarchy) -> bool:
    """Of two cgroup2 mounts, the canonical /sys/fs/cgroup wins."""
    return candidate.endswith("/sys/fs/cgroup") and not current.mountpoint.endswith("/sys/fs/cgroup")


def _unified_controllers(mountpoint: str,
                         read_controllers: Callable[[str], str] | None) -> tuple[str, ...]:
    try:
        if read_controllers is not None:
            text = read_controllers(mountpoint)
        else:
            text = _read(os.path.join(mountpoint, "cgroup.controllers"))
    except OSError:
        return ()
    return tuple(text.split())
