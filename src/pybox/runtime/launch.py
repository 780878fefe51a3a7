"""Process model of ``create``: how a bundle becomes an init process blocked
before the user's program.

    pybox-runtime create (parent)
      |  fork
      +-- stage1: joins the cgroup, joins namespaces given by path, creates the
      |   |       user namespace (the parent writes its id maps), unshares the
      |   |       rest; a new pid namespace applies to children only, so:
      |   |  fork
      |   +-- init (pid 1 in the new pid namespace): rootfs, pivot_root, hostname,
      |           sysctls, masked/read-only paths, rlimits, user, capabilities;
      |           reports "ready", then blocks in accept() on ROOT/ID/start.sock.
      |           ``start`` connects -> startContainer hooks -> execve(args).
      +-- stage1 exits after reporting init's pid; init is re-parented to the
          nearest subreaper (containerd-shim, conmon, or ``run``'s own process).

Both children are forks of the already-warm runtime: no second interpreter start.
Every error in a child travels to the parent over the sync channel with its errno.
"""

from __future__ import annotations

import os

from pybox import errors
from pybox.crashpoints import crashpoint
from pybox.errors import ProcessSetupError, PyboxError, SyscallError
from pybox.linux import constants as C
from pybox.linux import syscalls
from pybox.runtime.sync import Channel, ChannelClosed

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import _socket
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    from pybox.cgroups.base import Manager
    from pybox.linux.syscalls import Syscalls
    from pybox.runtime.log import Log
    from pybox.runtime.records import CgroupMount, HookState, Message
    from pybox.runtime.seccomp import Filter

    Ref = TypeVar("Ref", str, int)  # a namespace by path, or by an open fd

# the order namespaces are joined by path (user first: it owns the others; mount
# last so that the other paths resolve in the caller's mount namespace)
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")


class LaunchPlan:
    """Everything the children need, prepared by the parent before fork."""

    def __init__(self, *, cid: str, config: dict[str, Any], rootfs: str, state_dir: str,
                 start_sock: _socket.socket, cgroup: Manager | None = None,
                 cgroup_mounts: dict[str, CgroupMount] | None = None, cgroup_v2: bool = False,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 hook_state: HookState | None = None, log: Log | None = None,
                 seccomp: Filter | None = None, console_sock: _socket.socket | None = None,
                 ) -> None:
        self.cid = cid
        self.config = config
        self.rootfs = rootfs
        self.state_dir = state_dir
        self.start_sock = start_sock  # a listening _socket.socket, inherited by init
        self.cgroup = cgroup
        self.cgroup_mounts = cgroup_mounts or {}
        self.cgroup_v2 = cgroup_v2
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.hook_state: HookState = hook_state or {}  # what hooks get (pid filled in later)
        self.log = log
        self.seccomp = seccomp  # a compiled pybox.runtime.seccomp.Filter, or None
        self.console_sock = console_sock  # where init sends the pty master, or None
        linux = config.get("linux") or {}
        self.namespaces: dict[str, str | None] = {ns["type"]: ns.get("path") or None
                           for ns in linux.get("namespaces") or ()}
        # join the cgroup in stage1 after the parent made it (see spawn)
        self.cgroup_late = cgroup is not None and "user" not in self.namespaces


def error_from_message(msg: Message) -> PyboxError:
    """Rebuild the child's exception on the parent's side."""
    cls = getattr(errors, msg.get("kind") or "", None)
    text = msg.get("message") or "unknown error in container init"
    errno = msg.get("errno")
    if isinstance(cls, type) and issubclass(cls, PyboxError) and cls not in (
            errors.SyscallError, errors.ConfigError, errors.ContainerNotFound,
            errors.ContainerExists):
        return cls(text, errno=errno)
    return ProcessSetupError(text, errno=errno)


def spawn(plan: LaunchPlan, on_hooks: Callable[[int], None] | None = None,
          on_userns: Callable[[int], None] | None = None,
          prepare_cgroup: Callable[[], None] | None = None,
          after_fork: Callable[[], None] | None = None,
          on_seccomp: Callable[[int, int], None] | None = None) -> int:
    """Fork stage1 (which forks init) and drive the protocol until init is ready.
    Returns init's pid.  On failure init is killed and the error re-raised.

    ``prepare_cgroup`` (create the cgroup and write its limits) runs in the parent
    *while* stage1 loads ctypes and sets up namespaces; stage1 waits for "cgroup"
    before it joins it and forks init.  With a new user namespace the cgroup must
    be joined before the namespace exists (host-owned cgroup files are not
    writable from inside it), so there it runs first.  ``after_fork`` runs in the
    parent before stage1 can finish (e.g. becoming the subreaper)."""
    parent, child = Channel.pair()
    if prepare_cgroup is not None and not plan.cgroup_late:
        prepare_cgroup()
    stage1 = os.fork()
    if stage1 == 0:
        # stage1 and init: never return into the caller's code
        code = 1
        try:
            parent.close()
            _stage1(plan, child)
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            child.send_error(e)
        finally:
            os._exit(code)
    child.close()
    init_pid: int | None = None
    crashpoint("runtime.create.forked")
    try:
        if after_fork is not None:
            after_fork()
        if plan.cgroup_late:
            if prepare_cgroup is not None:
                prepare_cgroup()
            try:
                parent.send("cgroup", join=plan.cgroup.join_info() if plan.cgroup is not None else {})
            except BrokenPipeError:
                pass  # stage1 already failed: its error report is waiting below
        while True:
            try:
                msg = parent.recv()
            except ChannelClosed:
                raise ProcessSetupError("container init exited before it was ready "
                                        "(see the runtime log)") from None
            kind = msg["type"]
            if kind == "pid":
                init_pid = msg["pid"]
                crashpoint("runtime.create.init_pid")
            elif kind == "userns":
                if on_userns is None:
                    raise ProcessSetupError("user namespace requested but not supported")
                on_userns(msg["pid"])
                parent.send("mapped")
            elif kind == "hooks":
                if on_hooks is not None:
                    on_hooks(init_pid or 0)  # (stage1 reports init's pid first)
                parent.send("go")
            elif kind == "seccomp":
                _hand_over_listener(on_seccomp, init_pid or 0, msg["fds"])
            elif kind == "ready":
                if init_pid is None:
                    raise ProcessSetupError("container init was ready before its pid was "
                                            "reported")
                return init_pid
            elif kind == "error":
                raise error_from_message(msg)
            else:
                raise ProcessSetupError(f"unexpected message from init: {kind!r}")
    except BaseException:
        _kill_quietly(init_pid)
        raise
    finally:
        parent.close()
        _reap(stage1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill_quietly(pid: int | None) -> None:
    """SIGKILL a process that failed to set up (0: none was made yet)."""
    if pid:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def _hand_over_listener(on_seccomp: Callable[[int, int], None] | None, pid: int,
                        fds: list[int]) -> None:
    """The seccomp notify fd the child sent: to the caller's handler (the
    listenerPath sender), then closed here whatever happened."""
    try:
        if on_seccomp is None or not fds:
            raise ProcessSetupError("seccomp notify fd not handled")
        on_seccomp(pid, fds[0])
    finally:
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------------------
# child side


def _open_ns(path: str, kind: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ProcessSetupError(f"cannot open {kind} namespace {path}: {e.strerror}",
                                errno=e.errno) from None


def _set_oom_score_adj(process: dict) -> None:
    """process.oomScoreAdj, written before any namespace is joined (runc's nsexec
    does the same): inside a user namespace /proc/self/oom_score_adj belongs to
    the host's root and cannot be opened for writing.  Children inherit it."""
    if "oomScoreAdj" in process:
        from pybox.runtime.process import set_oom_score_adj  # noqa: PLC0415 -- init.py loads it later


        set_oom_score_adj(process["oomScoreAdj"])


def _stage1(plan: LaunchPlan, chan: Channel) -> None:
    sc = syscalls.real()
    # Nothing of ours may be reachable through /proc/PID from a container process
    # while we are still the runtime (the CVE-2019-5736 class).
    sc.prctl(C.PR_SET_DUMPABLE, 0)
    _set_oom_score_adj(plan.config["process"])
    ns = plan.namespaces
    if plan.cgroup is not None and not plan.cgroup_late:
        plan.cgroup.enter_self()
    # Namespaces given by path, around the user namespace as runc's nsexec
    # joins them: first every one we can while still privileged here (a network
    # namespace the engine made belongs to the host's user namespace, which
    # the container's root has no power over), then the user namespace, then
    # the rest (a rootless caller may join those only from inside it).
    paths = [(kind, where) for kind in JOIN_ORDER[1:] if (where := ns.get(kind))]
    joined = _join_each(sc, paths, lambda kind, path: _open_ns(path, kind),
                        allow_eperm="user" in ns) if paths else set()
    if "user" in ns:
        if ns["user"]:
            _join(sc, "user", ns["user"])
        else:
            sc.unshare(C.CLONE_NEWUSER)
            # A non-dumpable process's /proc files belong to root: an unprivileged
            # parent could not write our maps.  Dumpable just for that moment.
            sc.prctl(C.PR_SET_DUMPABLE, 1)
            chan.send("userns", pid=os.getpid())
            chan.expect("mapped")
            sc.prctl(C.PR_SET_DUMPABLE, 0)
        try:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        except OSError as e:
            raise ProcessSetupError(f"cannot become root in the user namespace "
                                    f"(is uid/gid 0 mapped?): {e.strerror}",
                                    errno=e.errno) from None
    _join_each(sc, [(k, p) for k, p in paths if k not in joined],
               lambda kind, path: _open_ns(path, kind), allow_eperm=False)
    flags = 0
    for kind, path in ns.items():
        if not path and kind != "user":
            flags |= C.NAMESPACE_FLAGS[kind]
    if plan.cgroup_late:
        # a cgroup namespace's root is the cgroup its creator is in: join first
        new_cgroup_ns = flags & C.CLONE_NEWCGROUP
        flags &= ~C.CLONE_NEWCGROUP
        if flags:
            sc.unshare(flags)
        joins = chan.expect("cgroup").get("join")
        assert plan.cgroup is not None  # cgroup_late
        plan.cgroup.adopt_join_info(joins if isinstance(joins, dict) else {})
        plan.cgroup.enter_self()
        if new_cgroup_ns:
            sc.unshare(C.CLONE_NEWCGROUP)
    elif flags:
        sc.unshare(flags)
    if "time" in ns and not ns["time"]:
        _write_time_offsets(plan.config)
    crashpoint("runtime.stage1.unshared")
    if _fork_reporting_pid(chan) == 0:
        code = 1
        try:
            from pybox.runtime.init import init_main  # noqa: PLC0415 -- only the forked init

            init_main(plan, chan, sc)  # execs the program, or raises
        except BaseException as e:  # noqa: BLE001
            chan.send_error(e)
        finally:
            os._exit(code)
    crashpoint("runtime.stage1.reported")


def _fork_reporting_pid(chan: Channel) -> int:
    """Fork the container's process (0 in the child, as fork).  stage1 reports
    the child's pid on the channel, and only then lets the child go on: the
    parent reads "pid" as the identity of the process whose hooks, seccomp fd
    and "ready" follow on the same channel, and a child quicker than stage1 on
    a loaded machine sent "ready" first ("container init was ready before its
    pid was reported", seen in a full test run).  If stage1 dies before
    reporting, the child reads end of file and exits: nobody knows its pid."""
    gate_r, gate_w = os.pipe()  # close-on-exec: nothing of it reaches the program
    pid = os.fork()
    if pid == 0:
        os.close(gate_w)
        go = os.read(gate_r, 1)
        os.close(gate_r)
        if not go:
            os._exit(1)
        return 0
    os.close(gate_r)
    try:
        chan.send("pid", pid=pid)
        os.write(gate_w, b"g")
    finally:
        os.close(gate_w)
    return pid


def _join_each(sc: Syscalls, items: Sequence[tuple[str, Ref]], open_fd: Callable[[str, Ref], int],
               allow_eperm: bool, context: str = "") -> set[str]:
    """setns into each (kind, path-or-fd) in order; with ``allow_eperm`` a
    namespace we may not join yet is skipped.  Returns the kinds joined."""
    joined: set[str] = set()
    for kind, ref in items:
        fd = open_fd(kind, ref)
        try:
            sc.setns(fd, C.NAMESPACE_FLAGS[kind])
            joined.add(kind)
        except SyscallError as e:
            if allow_eperm and e.errno == 1:
                continue
            where = ref if isinstance(ref, str) else "of the container"
            raise ProcessSetupError(f"{context}cannot join {kind} namespace {where}: "
                                    f"{e.strerror}", errno=e.errno) from None
        finally:
            if isinstance(ref, str):
                os.close(fd)
    return joined


def _join(sc: Syscalls, kind: str, path: str) -> None:
    fd = _open_ns(path, kind)
    try:
        sc.setns(fd, C.NAMESPACE_FLAGS[kind])
    except SyscallError as e:
        raise ProcessSetupError(f"cannot join {kind} namespace {path}: {e.strerror}",
                                errno=e.errno) from None
    finally:
        os.close(fd)


def _write_time_offsets(config: dict[str, Any]) -> None:
    offsets = (config.get("linux") or {}).get("timeOffsets") or {}
    lines = []
    for clock, value in offsets.items():
        lines.append(f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# exec: a new process in a running container


class ExecPlan:
    """What the exec'd process needs.  ``ns_fds`` are open /proc/PID/ns/* fds of
    the container's init, opened (and checked against init's start time) by the
    parent, so a recycled pid cannot redirect the join."""

    def __init__(self, *, cid: str, process: dict[str, Any], ns_fds: list[tuple[str, int]],
                 cgroup: Manager | None = None, seccomp: Filter | None = None,
                 console_sock: _socket.socket | None = None, preserve_fds: int = 0) -> None:
        self.cid = cid
        self.process = process
        self.ns_fds = ns_fds  # [(type, fd)] in JOIN_ORDER
        self.cgroup = cgroup
        self.seccomp = seccomp
        self.console_sock = console_sock
        self.preserve_fds = preserve_fds


def spawn_exec(plan: ExecPlan, after_fork: Callable[[], None] | None = None,
               on_seccomp: Callable[[int, int], None] | None = None) -> int:
    """Fork a stage1 that joins the container's cgroup and namespaces and forks
    the process (a pid namespace applies to children).  Returns the process's
    pid once it has exec'd: its end of the channel is close-on-exec, so end of
    file after its pid means success, an "error" message failure."""
    parent, child = Channel.pair()
    stage1 = os.fork()
    if stage1 == 0:
        code = 1
        try:
            parent.close()
            _exec_stage1(plan, child)
            code = 0
        except BaseException as e:  # noqa: BLE001
            child.send_error(e)
        finally:
            os._exit(code)
    child.close()
    pid: int | None = None
    try:
        if after_fork is not None:
            after_fork()
        while True:
            try:
                msg = parent.recv()
            except ChannelClosed:
                if pid is None:
                    raise ProcessSetupError("exec: the process died before it started") from None
                return pid
            kind = msg["type"]
            if kind == "pid":
                pid = msg["pid"]
            elif kind == "seccomp":
                _hand_over_listener(on_seccomp, pid or 0, msg["fds"])  # (pid comes first)
            elif kind == "error":
                raise error_from_message(msg)
            else:
                raise ProcessSetupError(f"unexpected message from exec: {kind!r}")
    except BaseException:
        _kill_quietly(pid)
        raise
    finally:
        parent.close()
        _reap(stage1)


def _exec_stage1(plan: ExecPlan, chan: Channel) -> None:
    # everything the process needs is imported before setns(mnt) hides our files;
    # in the forked stage1 only: the parent never needs them
    import _signal  # type: ignore[import-not-found]  # no stub # noqa: F401, PLC0415 -- a preload
    import fcntl  # noqa: F401, PLC0415 -- a preload

    from pybox.runtime.init import exec_main  # noqa: PLC0415 -- the forked stage1 only

    if plan.process.get("terminal"):
        from pybox.runtime import terminal  # noqa: F401, PLC0415 -- a preload for a terminal
    sc = syscalls.real()
    sc.prctl(C.PR_SET_DUMPABLE, 0)
    _set_oom_score_adj(plan.process)
    if plan.cgroup is not None:
        plan.cgroup.enter_self()  # before a user namespace: host-owned files
    # the order of _stage1: what we can before the user namespace, then it, then
    # the rest (the container's network namespace may be the host userns's)
    items = list(plan.ns_fds)
    others = [(k, fd) for k, fd in items if k != "user"]
    user = [(k, fd) for k, fd in items if k == "user"]
    joined = _join_each(sc, others, lambda kind, fd: fd, allow_eperm=bool(user),
                        context="exec: ") if user else set()
    _join_each(sc, user + [(k, fd) for k, fd in others if k not in joined],
               lambda kind, fd: fd, allow_eperm=False, context="exec: ")
    for _kind, fd in items:
        os.close(fd)
    if _fork_reporting_pid(chan) == 0:
        code = 1
        try:
            exec_main(plan, chan, sc)
        except BaseException as e:  # noqa: BLE001
            chan.send_error(e)
        finally:
            os._exit(code)
