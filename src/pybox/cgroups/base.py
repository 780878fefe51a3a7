"""The manager contract every driver (v1, v2, hybrid) fulfils, and what they share.

Method contract (all raise pybox.errors.CgroupError with the path, the file and
the errno when the kernel refuses):

create()             make the cgroup directories (v1: one per mounted hierarchy;
                     v2: one directory, with the available controllers enabled in
                     cgroup.subtree_control of every ancestor).  cpuset cpus/mems
                     are initialised from the parent on v1.  Idempotent.  On
                     failure the directories made by this call are removed again.
apply(resources)     write every field of a runtime-spec linux.resources dict.  A
                     limit whose controller is absent or not delegated is an error
                     naming the field (not silently skipped), except in rootless
                     mode where it is a warning (see ``warnings``).  Values are
                     checked before anything is written; if the kernel refuses a
                     value while no process has joined yet, the directories this
                     manager created are removed before the error propagates, so
                     a failed apply leaves no cgroup behind.
update(resources)    like apply, for a live cgroup (runc update): only the fields
                     given are touched; memory limit and swap are ordered so that the
                     kernel accepts the change whether it grows or shrinks.  Never
                     removes anything.
add(pid)             move a process (and, for v1, into every hierarchy).
enter_self()         move the calling process, which must be single-threaded (the
                     runtime's stage1 before it forks init).  On v1 this writes "0"
                     to each hierarchy's ``tasks`` file: the kernel then moves just
                     the caller and skips the global threadgroup rwsem, whose
                     write-lock waits for an RCU grace period (~12 ms here) on
                     every first attach after an idle moment.
pids()               pids of every process in the cgroup (recursive).
freeze() / thaw()    freezer (v1 freezer.state, v2 cgroup.freeze); wait until done.
is_frozen()          bool.
stats()              dict in the shape runc's events --stats prints ("cpu", "memory",
                     "pids", "blkio", "hugetlb"), see stats.py.
oom_kill_count()     number of OOM kills in this cgroup so far (v2 memory.events
                     oom_kill; v1 memory.oom_control oom_kill).
kill_all(sig)        signal every process (freeze, signal, thaw: no fork races).
destroy()            SIGKILL leftovers, wait for them to go, remove the directories
                     (deepest first; retry while the kernel still counts exiting
                     tasks).  Idempotent; never touches cgroups it did not create.
to_state()           JSON-able dict that load_manager() turns back into a manager.
paths                dict controller -> absolute directory (v2: {"": dir}).
warnings             list of strings: what rootless mode skipped or the kernel
                     ignores (e.g. memory.kernel), for the runtime to log.
"""

from __future__ import annotations

import errno
import os
import time

from pybox.cgroups.fs import REAL, CgroupFs, Files, cgroup_error
from pybox.cgroups.resources import get, validate
from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

SIGKILL = 9
# Generous bounds: a cgroup whose tasks are exiting may need a moment before
# rmdir succeeds; a process stuck in D state may need longer.
EMPTY_TIMEOUT = 10.0
RMDIR_TIMEOUT = 5.0
FREEZE_TIMEOUT = 10.0
# the linux.resources.cpu keys set_cpu writes (cpus and mems are set_cpuset's)
CPU_KEYS = ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "idle")


class Manager:
    """Abstract base; see the module docstring for the contract.

    apply() and update() are written here once: check the values (the one rule
    set, pybox.oci.resources), then hand each section of linux.resources to the
    driver that writes it (``_writer``: the manager itself for v1 and v2, the
    v1 or the cgroup2 half on a hybrid host) in one fixed order -- cpuset
    before the rest, devices, memory (limit and swap ordered by the driver)...
    """

    version: int | None = None  # 1 or 2
    driver = ""

    @property
    def paths(self) -> dict[str, str]:
        """controller -> absolute directory (v2: {"": dir})."""
        raise NotImplementedError

    @property
    def warnings(self) -> list[str]:
        """What rootless mode skipped or the kernel ignores, for the runtime to log."""
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def apply(self, resources: dict[str, Any] | None) -> None:
        try:
            validate(resources)
            self._apply_sections(resources or {}, update=False)
        except BaseException:
            self._rollback_unjoined()
            raise

    def update(self, resources: dict[str, Any] | None) -> None:
        validate(resources)
        self._apply_sections(resources or {}, update=True)

    def _apply_sections(self, r: dict[str, Any], update: bool) -> None:
        """The one section dispatch, for every driver."""
        self._begin_apply()
        cpu = get(r, "cpu")
        if cpu.get("cpus") or cpu.get("mems"):
            self._writer("cpuset").set_cpuset(cpu)
        if r.get("devices") is not None:
            self._writer("devices").set_devices(r["devices"])
        mem = get(r, "memory")
        if mem:
            self._writer("memory").set_memory(mem, update)
        if any(cpu.get(k) is not None for k in CPU_KEYS):
            self._writer("cpu").set_cpu(cpu)
        pids = get(r, "pids")
        if pids.get("limit") is not None:
            self._writer("pids").set_pids(pids)
        blk = get(r, "blockIO")
        if blk:
            self._writer("blockIO").set_blockio(blk)
        if r.get("hugepageLimits"):
            self._writer("hugetlb").set_hugetlb(r["hugepageLimits"])
        net = get(r, "network")
        if net:
            self._writer("network").set_network(net)
        if r.get("rdma"):
            self._writer("rdma").set_rdma(r["rdma"])
        if r.get("unified"):
            self._writer("unified").set_unified(r["unified"])

    def _begin_apply(self) -> None:
        """Forget what a previous apply cached (v2: the controllers offered)."""

    def _writer(self, section: str) -> Manager:
        """The manager whose set_<section> writes ``section`` (one of
        cpuset, devices, memory, cpu, pids, blockIO, hugetlb, network, rdma,
        unified)."""
        return self

    def _rollback_unjoined(self) -> None:
        """After a failed apply: remove what this manager created if no process
        has joined yet (a failed apply leaves no cgroup behind)."""
        raise NotImplementedError

    # -- the section writers (v1, v2; hybrid routes to them) -------------------
    def set_cpuset(self, cpu: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_devices(self, rules: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def set_memory(self, mem: dict[str, Any], update: bool) -> None:
        raise NotImplementedError

    def set_cpu(self, cpu: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_pids(self, pids: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_blockio(self, blk: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_hugetlb(self, limits: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def set_network(self, net: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_rdma(self, rdma: dict[str, dict[str, int]]) -> None:
        raise NotImplementedError

    def set_unified(self, unified: dict[str, str]) -> None:
        raise NotImplementedError

    # -- processes, freezer, state -----------------------------------------------
    def add(self, pid: int) -> None:
        raise NotImplementedError

    def enter_self(self) -> None:
        raise NotImplementedError

    def join_info(self) -> dict[str, Any]:
        """What apply() decided that a copy of this manager forked before it
        (the runtime's stage1, which joins once the parent has written the
        limits) needs to join the right cgroups.  Nothing but on hybrid hosts."""
        return {}

    def adopt_join_info(self, info: dict[str, Any]) -> None:
        """Take join_info() from the manager that applied the limits."""

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def oom_kill_count(self) -> int:
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError


def backoff(timeout: float) -> Iterator[None]:
    """Sleeps of 1 ms doubling to 50 ms until ``timeout`` seconds have passed;
    yields before each try (the first immediately)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        yield
        if time.monotonic() >= deadline:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class Driver(Manager, Files):
    """What v1 and v2 share: directory bookkeeping, process listing, killing and
    removal.  Subclasses set ``self.paths``, ``self.created``, ``self.fs``."""

    rootless = False
    # plain attributes here (the drivers set them; hybrid computes them)
    paths: dict[str, str] = {}
    warnings: list[str] = []  # each driver's own list, from _init_common
    created: list[str]
    _rmdir_error: CgroupError | None = None

    def _init_common(self, created: Iterable[str] | None, rootless: bool, fs: CgroupFs | None) -> None:
        self.created = list(created or ())
        self.rootless = rootless
        self.fs = fs or REAL
        self.warnings = []
        self._joined = False

    # -- warnings and unsupported fields ----------------------------------
    def _warn(self, text: str) -> None:
        self.warnings.append(text)

    def _unsupported(self, field: str, why: str, errno: int = 95) -> None:
        """A field this host or driver cannot honour: an error, or in rootless
        mode (where cgroups are best effort, as in runc) a warning."""
        if self.rootless:
            self._warn(f"{field}: ignored: {why}")
            return
        raise CgroupError(f"{field}: {why}", errno=errno)

    # -- directories --------------------------------------------------------
    def _make_path(self, mountpoint: str, cgroup_path: str,
                   before_mkdir: Callable[[str], None] | None = None,
                   made: list[str] | None = None) -> list[str]:
        """mkdir every missing component of ``cgroup_path`` below ``mountpoint``.

        Returns the list of directories made (top-down).  ``before_mkdir(parent)``
        runs before each new child (v2 enables controllers there); ``made`` is
        appended to as we go so a caller can roll back after a failure.
        """
        made = [] if made is None else made
        # A parent seen present may be removed before its child is made (another
        # container's delete, or pyboxd's, rmdirs a parent it made once it is
        # empty): the walk starts again from the top, a few times.
        for attempt in range(5):
            current = mountpoint.rstrip("/")
            for part in cgroup_path.strip("/").split("/"):
                if not part:
                    continue
                parent = current
                current = f"{current}/{part}"
                if self.fs.isdir(current):
                    continue
                if before_mkdir is not None:
                    before_mkdir(parent)
                try:
                    self.fs.mkdir(current, 0o755)
                except FileExistsError:
                    continue
                except FileNotFoundError:
                    if attempt < 4:
                        break
                    raise cgroup_error("create cgroup", current, errno.ENOENT) from None
                except OSError as e:
                    raise cgroup_error("create cgroup", current, e.errno) from None
                if current not in made:
                    made.append(current)
            else:
                return made
        return made

    def _remove_dirs(self, dirs: Iterable[str]) -> list[str]:
        """rmdir deepest first, retrying EBUSY; returns the ones still present."""
        left = []
        for d in sorted(set(dirs), key=lambda p: p.count("/"), reverse=True):
            if not self._rmdir_retry(d):
                left.append(d)
        return left

    def _rmdir_retry(self, path: str) -> bool:
        last = None
        for _ in backoff(RMDIR_TIMEOUT):
            try:
                self.fs.rmdir(path)
                return True
            except FileNotFoundError:
                return True
            except OSError as e:
                last = e.errno
                if e.errno != 16:  # EBUSY: tasks still exiting, retry
                    break
        self._rmdir_error = cgroup_error("remove cgroup", path, last,
                                         hint="processes are still inside" if last == 16 else None)
        return False

    def _descendants(self, directory: str) -> list[str]:
        """Sub-cgroups below ``directory`` (made by the container itself), deepest
        first.  They belong to the container, so destroy removes them too."""
        out: list[str] = []
        try:
            names = self.fs.subdirs(directory)
        except OSError:
            return out
        for name in names:
            sub = f"{directory}/{name}"
            out.extend(self._descendants(sub))
            out.append(sub)
        return out

    @property
    def joined(self) -> bool:
        """Has a process joined this container's cgroup through this manager?"""
        return self._joined

    def _rollback_unjoined(self) -> None:
        if not self._joined and self.created:
            self.rollback()

    def rollback(self) -> None:
        """Remove what this manager created (used when apply fails on a cgroup no
        process has joined yet)."""
        left = self._remove_dirs(self.created)
        self.created = [d for d in self.created if d in left]

    # -- processes ----------------------------------------------------------
    def _procs_in(self, directory: str) -> list[int]:
        pids: list[int] = []
        text = self._read_or_none(directory, "cgroup.procs")
        if text is None:
            return pids
        pids.extend(int(x) for x in text.split())
        for sub in self._descendants(directory):
            text = self._read_or_none(sub, "cgroup.procs")
            if text:
                pids.extend(int(x) for x in text.split())
        return pids

    def _signal_pids(self, sig: int) -> int:
        sent = 0
        for pid in self.pids():
            try:
                os.kill(pid, sig)
                sent += 1
            except ProcessLookupError:
                pass
        return sent

    def kill_all(self, sig: int) -> None:
        """Freeze, signal every process, thaw: a process cannot fork a child that
        escapes the signal while the cgroup is frozen."""
        can_freeze = self._can_freeze()
        was_frozen = can_freeze and self.is_frozen()
        if can_freeze and not was_frozen:
            try:
                self.freeze()
            except CgroupError:
                can_freeze = False
        try:
            self._signal_pids(sig)
        finally:
            if can_freeze and not was_frozen:
                self.thaw()

    def _can_freeze(self) -> bool:
        return True

    def owned_leaves(self) -> list[str]:
        """Leaf directories of this container that this manager created."""
        return [d for d in set(self.paths.values()) if d in self.created]

    def wait_empty(self, timeout: float = EMPTY_TIMEOUT) -> bool:
        for _ in backoff(timeout):
            if not self.pids():
                return True
        return False

    def destroy(self) -> None:
        """Kill what is left, wait until empty, remove our directories.

        Only cgroups this manager made are touched: if the leaf existed before
        (a cgroupsPath shared with something else), its processes are left alone
        and it is not removed.
        """
        if not self.created:
            return
        leaves = [d for d in self.owned_leaves() if self.fs.isdir(d)]
        if leaves and self._leaf_pids(leaves):
            for _ in range(3):
                self._kill_for_destroy()
                if self.wait_empty():
                    break
        owned = set(self.owned_leaves())
        dirs = [d for d in self.created if d in owned]
        for leaf in leaves:
            dirs.extend(self._descendants(leaf))
        self._rmdir_error = None
        left = self._remove_dirs(dirs)
        # Parents we created may since hold another container's cgroup (two
        # cgroupsPaths under one new parent): one try each, and a parent that is
        # still in use stays, without error.
        shared = []
        for d in sorted((d for d in self.created if d not in owned),
                        key=lambda p: p.count("/"), reverse=True):
            try:
                self.fs.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                shared.append(d)
        self.created = [d for d in self.created if d in left or d in shared]
        if left:
            raise self._rmdir_error or CgroupError(f"cannot remove {left}")

    def _leaf_pids(self, leaves: Iterable[str]) -> bool:
        return any(self._procs_in(d) for d in leaves)

    def _kill_for_destroy(self) -> None:
        self.kill_all(SIGKILL)
        # A paused container stays frozen through kill_all; frozen tasks cannot
        # die, so thaw unconditionally.
        if self._can_freeze():
            try:
                self.thaw()
            except CgroupError:
                pass
