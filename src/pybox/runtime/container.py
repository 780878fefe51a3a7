"""Container lifecycle: create, start, state, kill, delete, run.

A library API (the engine calls it directly; the CLI in runtime/commands is a thin
front end).  No runtime process stays around between commands: each operation
loads ROOT/ID/state.json, asks the kernel what is true now (is the init still the
process we started, i.e. same pid *and* start time; is its cgroup frozen), acts,
and writes the state back atomically.

Status, as the runtime-spec defines it:
  creating  state dir exists, create still running (no pid recorded yet)
  created   init alive, blocked before the user program (start.sock present)
  running   init alive and started
  paused    init alive, cgroup frozen
  stopped   init gone (or a zombie), or a create that died half-way

Every command imports this module: what only some commands need (the cgroup
package, the spec checks, the launcher, hooks, seccomp, terminals) is imported
where it is used, so ``state`` or ``kill`` never pay for it.
"""

from __future__ import annotations

import os

from pybox import OCI_VERSION
from pybox.crashpoints import crashpoint
from pybox.errors import (
    CgroupError,
    ContainerError,
    InvalidState,
    ProcessSetupError,
    PyboxError,
    RootfsError,
)
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano
from pybox.linux import proc
from pybox.oci import state as st
from pybox.runtime import log as logmod

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import _socket
    import signal as _signal
    from collections.abc import Callable, Iterable
    from types import FrameType
    from typing import Any, TypeVar, Unpack, cast

    from pybox.cgroups.base import Manager
    from pybox.runtime.records import (
        CgroupMount,
        ContainerRecord,
        CreateOptions,
        HookState,
        StateDocument,
    )

    T = TypeVar("T")
else:
    import _signal  # the C module: signal.py's enums cost start-up time

    def cast(_type: object, value: object) -> object:
        """typing.cast (a no-op) without importing typing: start-up time."""
        return value

DEFAULT_ROOT = "/run/pybox-runtime"


def default_root() -> str:
    """/run/pybox-runtime for root; for anyone else $XDG_RUNTIME_DIR/pybox-runtime
    (runc's rule), or a per-user directory under /tmp."""
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "pybox-runtime")
    return f"/tmp/pybox-runtime-{os.geteuid()}"


class Container:
    """One container under a runtime root: its state file, and the kernel's
    view of it (is init alive, is its cgroup frozen) on every question."""

    def __init__(self, root: str, cid: str, record: ContainerRecord | None) -> None:
        self.root = root
        self.id = cid
        self.dir = st.StateDir(root, cid)
        self.record: ContainerRecord = record or {}
        self._config: dict[str, Any] | None = None

    # -- loading -----------------------------------------------------------
    @classmethod
    def load(cls, root: str, cid: str) -> Container:
        st.validate_id(cid)
        sdir = st.StateDir(root, cid)
        return cls(root, cid, cast("ContainerRecord | None", sdir.read()))

    def reload(self) -> None:
        self.record = cast("ContainerRecord", self.dir.read() or {})

    # -- derived facts -----------------------------------------------------
    @property
    def pid(self) -> int:
        return self.record.get("pid") or 0

    @property
    def config(self) -> dict[str, Any]:
        """The config.json snapshot taken at create time (read on first use)."""
        if self._config is None:
            config: dict[str, Any] = self.dir.read_config()
            self._config = config
            return config
        return self._config

    def init_alive(self) -> bool:
        pid = self.pid
        return bool(pid) and proc.is_alive(pid, self.record.get("pid_start"))

    def cgroup_manager(self) -> Manager | None:
        saved = self.record.get("cgroup")
        if not saved:
            return None
        from pybox import cgroups  # noqa: PLC0415 -- only for commands that touch the cgroup

        return cgroups.load_manager(saved)

    def status(self) -> str:
        rec = self.record
        if not rec.get("pid"):
            creator = rec.get("creator_pid")
            if creator and proc.is_alive(creator, rec.get("creator_start")):
                return "creating"
            return "stopped"
        if not self.init_alive():
            return "stopped"
        if rec.get("paused") and self._frozen():
            return "paused"
        if not rec.get("started") and os.path.exists(f"{self.dir.path}/{st.START_SOCKET}"):
            return "created"
        return "running"

    def _frozen(self) -> bool:
        mgr = self.cgroup_manager()
        try:
            return bool(mgr and mgr.is_frozen())
        except PyboxError:
            return False

    def state(self) -> StateDocument:
        """The runtime-spec state document (plus runc's rootfs/created/owner)."""
        status = self.status()
        rec = self.record
        out: StateDocument = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": rec.get("bundle", ""),
            "rootfs": rec.get("rootfs", ""),
            "created": rec.get("created", ""),
            "owner": "",
        }
        annotations = rec.get("annotations")
        if annotations:
            out["annotations"] = annotations
        return out

    def hook_state(self, status: str) -> HookState:
        s: HookState = {"ociVersion": OCI_VERSION, "id": self.id, "status": status, "pid": self.pid,
             "bundle": self.record.get("bundle", "")}
        if self.record.get("annotations"):
            s["annotations"] = self.record["annotations"]
        return s

    # -- start -------------------------------------------------------------
    def start(self) -> None:
        import _socket  # noqa: PLC0415 -- a C module; commands without sockets skip it

        with self.dir:
            self.reload()
            status = self.status()
            if status != "created":
                raise InvalidState(f"cannot start a container that is {status} "
                                   f"(only a created container can be started)")
            path = f"{self.dir.path}/{st.START_SOCKET}"
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                try:
                    _unix_call(sock.connect, path)
                except OSError as e:
                    raise InvalidState(f"container {self.id}: init is not waiting for "
                                       f"start: {e.strerror}", errno=e.errno) from None
                sock.sendall(b"start")
                crashpoint("runtime.start.sent")
                os.unlink(path)
                # init closes its end on exec (close-on-exec); anything before EOF
                # is an error report (a startContainer hook or execve failed).
                reply = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            finally:
                sock.close()
            self.record["started"] = True
            self.dir.write(self.record)
            crashpoint("runtime.start.recorded")
            if reply.startswith(b"error "):
                raise ProcessSetupError(reply[6:].decode(errors="replace"))
        hooks = (self.config.get("hooks") or {}).get("poststart")
        if hooks:
            from pybox.runtime.hooks import run_hooks  # noqa: PLC0415 -- most containers have none

            run_hooks(hooks, self.hook_state("running"), "poststart",
                      warn=logmod.current.warning)

    # -- exec --------------------------------------------------------------
    def exec(self, process: dict[str, Any], *, detach: bool = False, pid_file: str | None = None,
             console_socket: str | None = None, preserve_fds: int = 0) -> int:
        """Run one more process in the container (runc exec).  Foreground: wait
        for it (relaying its terminal) and return its exit status; detached:
        return 0 once it runs."""
        from pybox.oci.spec import PROCESS_SCHEMA, check_process, check_schema  # noqa: PLC0415 -- exec only
        from pybox.runtime.launch import JOIN_ORDER, ExecPlan, spawn_exec  # noqa: PLC0415 -- exec only

        check_schema(process, PROCESS_SCHEMA, "process")
        check_process(process)
        status = self.status()
        if status == "paused":
            raise InvalidState(f"cannot exec in paused container {self.id}")
        if status not in ("created", "running"):
            raise InvalidState(f"cannot exec in container {self.id}: it is {status}")
        terminal = bool(process.get("terminal"))
        if terminal and detach and not console_socket:
            raise ContainerError("process.terminal is true but no --console-socket was "
                                 "given: use --console-socket, or run in the foreground")
        if console_socket and not terminal:
            raise ContainerError("cannot use --console-socket without a terminal (-t)")
        linux = self.config.get("linux") or {}
        seccomp_filter = None
        if linux.get("seccomp"):
            from pybox.runtime import seccomp as seccomp_mod  # noqa: PLC0415 -- libseccomp: costly

            seccomp_filter = seccomp_mod.compile_filter(linux["seccomp"])
        ns_fds = self._namespace_fds(JOIN_ORDER)
        console: _socket.socket | None = None
        theirs: _socket.socket | None = None
        master: int | None = None
        try:
            if console_socket:
                theirs = connect_console(console_socket)
            elif terminal:
                import _socket  # noqa: PLC0415 -- a C module; only for a terminal

                console, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            plan = ExecPlan(cid=self.id, process=process, ns_fds=ns_fds,
                            cgroup=self.cgroup_manager(), seccomp=seccomp_filter,
                            console_sock=theirs, preserve_fds=preserve_fds)
            if not detach:
                # before fork: exec's stage1 waits for nothing, and may exit (and
                # its child be re-parented) at once
                from pybox.linux.wait import become_subreaper  # noqa: PLC0415 -- foreground only

                become_subreaper()
                forwarder = SignalForwarder()
            pid = spawn_exec(plan, on_seccomp=self._seccomp_listener(linux.get("seccomp")))
            crashpoint("runtime.exec.spawned")
            if pid_file:
                st.write_atomic(os.path.abspath(pid_file), str(pid), mode=0o644)
            if console is not None:
                from pybox.runtime.terminal import receive_master  # noqa: PLC0415 -- only with a tty

                assert theirs is not None  # made with console, above
                theirs.close()
                theirs = None
                master = receive_master(console)
        finally:
            for _, fd in ns_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            for sock in (console, theirs):
                if sock is not None:
                    sock.close()
        if detach:
            return 0
        return _foreground(self, pid, master, lambda: None, delete=False,
                           forwarder=forwarder)

    def _namespace_fds(self, order: Iterable[str]) -> list[tuple[str, int]]:
        """Open init's /proc/PID/ns/* for each namespace the container has, then
        check init is still the process we started (pid reuse)."""
        from pybox.linux.constants import NAMESPACE_PROC_NAMES  # noqa: PLC0415 -- exec only

        kinds = {ns["type"] for ns in (self.config.get("linux") or {}).get("namespaces") or ()}
        fds: list[tuple[str, int]] = []
        pid = self.pid
        try:
            for kind in order:
                if kind in kinds:
                    path = f"/proc/{pid}/ns/{NAMESPACE_PROC_NAMES[kind]}"
                    fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            if not self.init_alive():
                raise InvalidState(f"container {self.id} is not running")
        except OSError as e:
            for _, fd in fds:
                os.close(fd)
            raise InvalidState(f"container {self.id}: cannot open its namespaces: "
                               f"{e.strerror}") from None
        except BaseException:
            for _, fd in fds:
                os.close(fd)
            raise
        return fds

    def _seccomp_listener(self, seccomp_spec: dict[str, Any] | None,
                          ) -> Callable[[int, int], None] | None:
        if not seccomp_spec or not seccomp_spec.get("listenerPath"):
            return None

        def on_seccomp(pid: int, fd: int) -> None:
            from pybox.runtime import seccomp as seccomp_mod  # noqa: PLC0415 -- libseccomp: costly

            seccomp_mod.send_to_listener(seccomp_spec["listenerPath"], fd, pid=pid,
                                         metadata=seccomp_spec.get("listenerMetadata") or "",
                                         state=self.state())
        return on_seccomp

    # -- pause / resume / update --------------------------------------------
    def pause(self) -> None:
        with self.dir:
            self.reload()
            status = self.status()
            if status not in ("running", "created"):
                raise InvalidState(f"cannot pause container {self.id}: it is {status}")
            self.require_cgroup().freeze()
            self.record["paused"] = True
            self.dir.write(self.record)

    def resume(self) -> None:
        with self.dir:
            self.reload()
            status = self.status()
            if status != "paused":
                raise InvalidState(f"cannot resume container {self.id}: it is {status}, "
                                   "not paused")
            self.require_cgroup().thaw()
            self.record["paused"] = False
            self.dir.write(self.record)

    def update(self, resources: dict[str, Any]) -> None:
        """Change limits live; the new values also replace those in the
        container's config snapshot, so later commands see them.

        Device rules are left as they are, as runc's update does (it sets
        SkipDevices): containerd's CRI (UpdateContainerResources, kubelet's CPU
        manager and in-place resize) sends the spec's whole linux.resources,
        whose device list is only "deny all" -- the runtime adds the default
        devices at create -- and applying it stripped /dev/null, /dev/ptmx and
        the rest from a running container."""
        # only update needs the spec checks
        from pybox.oci.spec import (  # noqa: PLC0415 -- update only
            RESOURCES_SCHEMA,
            check_resources,
            check_schema,
        )

        check_schema(resources, RESOURCES_SCHEMA, "resources")
        check_resources(resources, "resources")
        if "devices" in resources:
            resources = {k: v for k, v in resources.items() if k != "devices"}
            logmod.current.debug(f"update {self.id}: linux.resources.devices ignored "
                                 "(device rules are fixed at create, as in runc)")
        with self.dir:
            self.reload()
            status = self.status()
            if status == "stopped":
                raise InvalidState(f"cannot update container {self.id}: it is stopped")
            mgr = self.require_cgroup()
            mgr.update(resources)
            _log_cgroup_warnings(mgr)
            config = self.config
            merged = (config.setdefault("linux", {})).setdefault("resources", {})
            for key, value in resources.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key].update(value)
                else:
                    merged[key] = value
            self.dir.write_config(fastjson.dumps(config))

    def require_cgroup(self) -> Manager:
        """The container's cgroup manager; an error when it has none."""
        mgr = self.cgroup_manager()
        if mgr is None:
            raise ContainerError(f"container {self.id} has no cgroup")
        return mgr

    def processes(self) -> list[int]:
        """Host pids of every process in the container's cgroup."""
        if self.status() == "stopped":
            return []
        return self.require_cgroup().pids()

    # -- kill --------------------------------------------------------------
    def kill(self, sig: int, all_processes: bool = False) -> None:
        """Signal init or, with ``all_processes``, every process in the
        container's cgroup.

        --all works whatever the state, as runc's: containerd deletes every
        exited task with "kill --all ID KILL" (WithProcessKill) to reach what
        init left behind -- a container sharing a pid namespace keeps its other
        processes when init exits -- and counts a failure as an error.  A
        stopped container with nothing left in its cgroup, or no cgroup any
        more, has nothing to signal: success, as runc 1.1 (Debian's) answers.
        Without --all only a live init is signalled: the pid of a stopped
        container may belong to someone else by now."""
        status = self.status()
        if all_processes:
            mgr = self.cgroup_manager()
            if mgr is not None:
                self._kill_cgroup(mgr, sig, status)
                return
            if status in ("stopped", "creating"):
                return
            try:
                signal_process(self.pid, self.record.get("pid_start"), sig)
            except InvalidState:
                pass  # init is gone: nothing left to signal, which --all accepts
            return
        if status not in ("created", "running", "paused"):
            raise InvalidState(f"container {self.id} is {status}: cannot send a signal "
                               "(container not running)")
        signal_process(self.pid, self.record.get("pid_start"), sig)
        if status == "paused" and sig == SIGKILL:
            self._thaw_for_kill(self.cgroup_manager())

    def _kill_cgroup(self, mgr: Manager, sig: int, status: str) -> None:
        """kill --all: freeze, signal everything in the cgroup, thaw (the
        manager's kill_all).  An empty or vanished cgroup is not an error."""
        try:
            if status in ("stopped", "creating") and not mgr.pids():
                return
            mgr.kill_all(sig)
        except CgroupError:
            # the last process left and the cgroup went while we froze it
            if not _pids_or_none(mgr):
                return
            raise
        if status == "paused" and sig == SIGKILL:
            self._thaw_for_kill(mgr)

    @staticmethod
    def _thaw_for_kill(mgr: Manager | None) -> None:
        """A frozen (v1) task cannot act on SIGKILL: thaw, as runc does for a
        paused container's SIGKILL, so that it dies now."""
        if mgr is None:
            return
        try:
            mgr.thaw()
        except PyboxError as e:
            logmod.current.warning(f"kill: cannot thaw the cgroup: {e}")

    # -- delete ------------------------------------------------------------
    def delete(self, force: bool = False) -> None:
        with self.dir:
            self.reload()
            status = self.status()
            if status != "stopped":
                if not force:
                    raise InvalidState(f"cannot delete container {self.id} that is "
                                       f"{status}: stop it first or use --force")
                self._force_stop(status)
            crashpoint("runtime.delete.killed")
            hooks = (self.config.get("hooks") or {}).get("poststop")  # before removal
            self.destroy_resources()
            crashpoint("runtime.delete.destroyed")
            self.dir.remove()
        if hooks:
            from pybox.runtime.hooks import run_hooks  # noqa: PLC0415 -- most containers have none

            run_hooks(hooks, self.hook_state("stopped"), "poststop",
                      warn=logmod.current.warning)

    def _force_stop(self, status: str) -> None:
        mgr = self.cgroup_manager()
        if mgr is not None:
            mgr.kill_all(9)  # thaws a paused cgroup as part of kill_all
        pid = self.pid
        if pid and self.init_alive():
            try:
                signal_process(pid, self.record.get("pid_start"), 9)
            except InvalidState:
                return  # gone meanwhile (the cgroup's kill reached it first): the goal
            wait_for_exit(pid, self.record.get("pid_start"), timeout=10)

    def destroy_resources(self) -> None:
        """Everything the container made on the host, in reverse order of creation:
        its processes (the cgroup's destroy kills leftovers), its mounts (only made
        on the host when it had no mount namespace), its cgroup."""
        errors: list[str] = []
        mgr = self.cgroup_manager()
        if mgr is not None:
            try:
                mgr.destroy()
            except PyboxError as e:
                errors.append(str(e))
        if self.record.get("host_mounts"):
            # only a container without a mount namespace left mounts on the host
            from pybox.linux import syscalls  # noqa: PLC0415 -- host mounts only
            from pybox.runtime.rootfs import mounts_under  # noqa: PLC0415 -- host mounts only

            sc = syscalls.real()
            rootfs = self.record.get("rootfs")
            if rootfs:
                for mnt in mounts_under(rootfs):
                    try:
                        sc.umount2(mnt, 2)  # MNT_DETACH
                    except OSError as e:
                        errors.append(f"umount {mnt}: {e}")
        if errors:
            raise ContainerError(f"container {self.id}: cleanup incomplete: "
                                 + "; ".join(errors))


# ---------------------------------------------------------------------------
SIGKILL = 9


def _pids_or_none(mgr: Manager) -> list[int]:
    """The cgroup's pids, or [] when it cannot be read (gone)."""
    try:
        return mgr.pids()
    except PyboxError:
        return []


def signal_process(pid: int, start_time: int | None, sig: int) -> None:
    """Signal exactly the process we recorded: through a pidfd opened and then
    checked against the recorded start time, so a recycled pid is never hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise InvalidState(f"process {pid} does not exist (container not running)") from None
    try:
        if start_time is not None and proc.start_time(pid) != start_time:
            raise InvalidState(f"process {pid} is not the container's init any more "
                               "(container not running)")
        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise InvalidState(f"process {pid} has exited (container not running)") from None
    finally:
        os.close(pidfd)


def wait_for_exit(pid: int, start_time: int | None, timeout: float) -> bool:
    """Wait until the process is gone or a zombie (it need not be our child)."""
    import select  # noqa: PLC0415 -- a C module; only delete --force waits

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if start_time is not None and proc.start_time(pid) != start_time:
            return True
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))
    finally:
        os.close(pidfd)


def _unix_call(fn: Callable[[str], T], path: str) -> T:
    """unixsock.call, loaded only by the commands that use a socket."""
    from pybox.linux.unixsock import call  # noqa: PLC0415 -- create, start and exec only

    return call(fn, path)


def _resolve_rootfs(bundle: str, config: dict[str, Any]) -> str:
    root = config["root"]["path"]
    path = root if root.startswith("/") else os.path.join(bundle, root)
    path = os.path.realpath(path)
    if not os.path.isdir(path):
        raise RootfsError(f"rootfs {path} does not exist or is not a directory "
                          f"(root.path {root!r} in {bundle}/config.json)", errno=2)
    return path


def create(root: str, cid: str, bundle: str, *, pid_file: str | None = None,
           no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
           systemd_cgroup: bool = False, console_socket: str | None = None,
           config: dict[str, Any] | None = None, after_fork: Callable[[], None] | None = None,
           console_sock: _socket.socket | None = None, raw_config: bytes | None = None,
           listen_fds: int = 0) -> Container:
    """Create a container and leave its init blocked before the user's program.
    On any failure everything made so far is undone and the error re-raised."""
    from pybox.oci.spec import load_bundle_config  # noqa: PLC0415 -- only create reads a bundle

    st.validate_id(cid)
    bundle = os.path.abspath(bundle)
    raw = raw_config
    if config is None:
        config, raw = load_bundle_config(bundle, with_raw=True)
    rootfs = _resolve_rootfs(bundle, config)
    if listen_fds and config.get("process"):
        # systemd socket activation passes through (runc does the same): the fds
        # after the preserved ones, and LISTEN_FDS/LISTEN_PID for the program
        env = [e for e in config["process"].get("env") or ()
               if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
        config["process"]["env"] = env + [f"LISTEN_FDS={listen_fds}", "LISTEN_PID=1"]
        preserve_fds += listen_fds
        raw = None
    seccomp_filter = None
    seccomp_spec: dict[str, Any] = (config.get("linux") or {}).get("seccomp") or {}
    if seccomp_spec:
        # compiled here, before anything exists: a bad profile fails cleanly,
        # and the children inherit the compiled filter through fork
        from pybox.runtime import seccomp as seccomp_mod  # noqa: PLC0415 -- libseccomp: costly

        seccomp_filter = seccomp_mod.compile_filter(seccomp_spec)
    terminal = bool((config.get("process") or {}).get("terminal"))
    if terminal and not console_socket and console_sock is None:
        raise ContainerError("process.terminal is true but no --console-socket was given: "
                             "use --console-socket, or run in the foreground")
    if console_socket and not terminal:
        raise ContainerError("cannot use --console-socket when process.terminal is false")
    sdir = st.StateDir(root, cid)
    sdir.claim()
    crashpoint("runtime.create.claimed")
    container = Container(root, cid, None)
    record = container.record
    record.update({
        "id": cid, "bundle": bundle, "rootfs": rootfs, "created": rfc3339_nano(),
        "creator_pid": os.getpid(), "creator_start": proc.start_time(os.getpid()),
        "annotations": config.get("annotations") or {}, "started": False,
        "host_mounts": not any(ns["type"] == "mount" for ns in
                               (config.get("linux") or {}).get("namespaces") or ()),
    })
    container._config = config
    sock = None
    try:
        if console_socket:
            console_sock = connect_console(console_socket)
        sdir.write_config(raw if raw is not None else fastjson.dumps(config))
        crashpoint("runtime.create.config")
        sdir.write(record)
        mgr = _new_cgroup(config, cid, systemd_cgroup, record, sdir)
        crashpoint("runtime.create.cgroup_named")
        import _socket  # noqa: PLC0415 -- a C module; commands without sockets skip it

        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        spath = f"{sdir.path}/{st.START_SOCKET}"
        _unix_call(sock.bind, spath)
        os.chmod(spath, 0o600)
        sock.listen(4)
        crashpoint("runtime.create.socket")

        from pybox.runtime.launch import LaunchPlan, spawn  # noqa: PLC0415 -- create and run only

        plan = LaunchPlan(cid=cid, config=config, rootfs=rootfs, state_dir=sdir.path,
                          start_sock=sock, cgroup=mgr, cgroup_mounts=_cgroup_mounts(mgr),
                          cgroup_v2=getattr(mgr, "version", 1) == 2, no_pivot=no_pivot,
                          no_new_keyring=no_new_keyring,
                          preserve_fds=preserve_fds, seccomp=seccomp_filter,
                          console_sock=console_sock,
                          hook_state=container.hook_state("creating"))

        def on_hooks(init_pid: int) -> None:
            hooks = config.get("hooks") or {}
            from pybox.runtime.hooks import run_hooks  # noqa: PLC0415 -- most containers have none

            record["pid"] = init_pid
            # prestart hooks see "created", as runtime-spec 1.0 (which defined
            # them) and crun have it; createRuntime ones see "creating".
            run_hooks(hooks.get("prestart"), container.hook_state("created"), "prestart")
            run_hooks(hooks.get("createRuntime"), container.hook_state("creating"),
                      "createRuntime")

        def on_userns(pid: int) -> None:
            from pybox.runtime.userns import write_id_maps  # noqa: PLC0415 -- user namespaces only

            write_id_maps(pid, config["linux"])

        def on_seccomp(init_pid: int, fd: int) -> None:
            from pybox.runtime import seccomp as seccomp_mod  # noqa: PLC0415 -- libseccomp: costly

            record["pid"] = init_pid
            seccomp_mod.send_to_listener(
                seccomp_spec.get("listenerPath") or "", fd, pid=init_pid,
                metadata=seccomp_spec.get("listenerMetadata") or "",
                state=container.hook_state("creating"))

        def prepare_cgroup() -> None:
            _setup_cgroup(mgr, config, record, sdir)

        pid = spawn(plan, on_hooks=on_hooks, on_userns=on_userns,
                    prepare_cgroup=prepare_cgroup, after_fork=after_fork,
                    on_seccomp=on_seccomp)
        record["pid"] = pid
        record["pid_start"] = proc.start_time(pid)
        del record["creator_pid"], record["creator_start"]
        crashpoint("runtime.create.ready")
        sdir.write(record)
        crashpoint("runtime.create.recorded")
        if pid_file:
            st.write_atomic(os.path.abspath(pid_file), str(pid), mode=0o644)
    except BaseException:
        _rollback(container, sdir)
        raise
    finally:
        if sock is not None:
            sock.close()
        if console_socket and console_sock is not None:
            console_sock.close()
    return container


def connect_console(path: str) -> _socket.socket:
    """Connect to a --console-socket (before fork, while its path is visible)."""
    import _socket  # noqa: PLC0415 -- a C module; commands without sockets skip it

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        _unix_call(sock.connect, os.path.abspath(path))
    except OSError as e:
        sock.close()
        raise ContainerError(f"cannot connect to console socket {path}: {e.strerror}",
                             errno=e.errno) from None
    return sock


def _new_cgroup(config: dict[str, Any], cid: str, systemd: bool, record: ContainerRecord,
                sdir: st.StateDir) -> Manager:
    """The container's cgroup manager (nothing created yet).  Its description is
    written to the state file *before* any directory exists, so a crash at any
    point leaves enough on disk for delete to find and remove it."""
    from pybox import cgroups  # noqa: PLC0415 -- only for commands that touch the cgroup

    linux = config.get("linux") or {}
    # unprivileged: limits the caller may not set (an undelegated cgroup) are
    # skipped with a warning, as runc does for rootless containers
    mgr = cgroups.new_manager(linux.get("cgroupsPath", ""), cid, systemd=systemd,
                              rootless=os.geteuid() != 0)
    record["cgroup"] = mgr.to_state()
    sdir.write(record)
    return mgr


def _setup_cgroup(mgr: Manager, config: dict[str, Any], record: ContainerRecord,
                  sdir: st.StateDir) -> None:
    """Create the cgroup and write every limit (runs while stage1 starts up)."""
    mgr.create()
    crashpoint("runtime.create.cgroup_made")
    record["cgroup"] = mgr.to_state()  # now lists the directories it made
    sdir.write(record)
    mgr.apply(cgroup_resources((config.get("linux") or {}).get("resources") or {}))
    record["cgroup"] = mgr.to_state()  # and where the limits went (exec joins the same)
    crashpoint("runtime.create.limits")
    _log_cgroup_warnings(mgr)


def _log_cgroup_warnings(mgr: Manager) -> None:
    """Rootless: one line saying limits were skipped, the details at debug level."""
    warnings = list(getattr(mgr, "warnings", ()))
    if not warnings:
        return
    if len(warnings) == 1:
        logmod.current.warning(warnings[0])
        return
    logmod.current.warning(f"cgroup limits not applied ({len(warnings)} operations skipped: "
                           f"cgroups not delegated to uid {os.geteuid()}); first: "
                           f"{warnings[0]}")
    for w in warnings:
        logmod.current.debug(w)


# Device rules every container gets after its own (runc's AllowedDevices): mknod of
# any node (access is still checked on open), the standard character devices, and
# pseudo-terminals.  Before everything, a deny-all: devices are a whitelist.
DENY_ALL_DEVICES = {"allow": False, "access": "rwm"}
DEFAULT_DEVICE_RULES = (
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},   # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},   # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},   # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},   # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},   # urandom
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},  # pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},   # ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun
)


def cgroup_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """linux.resources as the cgroup gets it: the device rules wrapped in the
    runtime's policy (deny by default, the container's rules, the defaults)."""
    out = dict(resources)
    out["devices"] = [DENY_ALL_DEVICES] + list(resources.get("devices") or ()) + list(
        DEFAULT_DEVICE_RULES)
    return out


def _cgroup_mounts(mgr: Manager) -> dict[str, CgroupMount]:
    """What the container's /sys/fs/cgroup shows: for v1, one entry per mounted
    hierarchy the container has a cgroup in ({dir name: {path, options, aliases}});
    for v2, {"": {"path": its cgroup}}."""
    if getattr(mgr, "version", 1) == 2:
        return {"": {"path": mgr.paths.get(""), "options": "", "aliases": []}}
    from pybox import cgroups  # noqa: PLC0415 -- only for commands that touch the cgroup

    out: dict[str, CgroupMount] = {}
    for h in cgroups.detect_layout().v1_hierarchies():
        path = mgr.paths.get(h.controllers[0])
        if not path:
            continue
        name = os.path.basename(h.mountpoint)
        named = [c for c in h.controllers if c.startswith("name=")]
        options = ",".join(h.controllers) if not named else "none," + ",".join(h.controllers)
        aliases = [c for c in h.controllers if c != name and not c.startswith("name=")]
        out[name] = {"path": path, "options": options,
                     "aliases": aliases if len(h.controllers) > 1 else []}
    return out


def _rollback(container: Container, sdir: st.StateDir) -> None:
    """Undo a failed create: kill init (if it got that far), remove the cgroup
    and any host mounts, remove the state directory."""
    rec = container.record
    if rec.get("pid"):
        try:
            os.kill(rec["pid"], 9)
        except OSError:
            pass
    crashpoint("runtime.rollback.killed")
    try:
        container.destroy_resources()
    except PyboxError as e:
        logmod.current.warning(f"rollback of {container.id}: {e}")
    sdir.remove()


def run(root: str, cid: str, bundle: str, *, detach: bool = False,
        **create_opts: Unpack[CreateOptions]) -> int:
    """create + start; in the foreground, wait, forward signals, delete, and return
    the exit status (128+N when the program was killed by signal N)."""
    from pybox.linux.wait import become_subreaper  # noqa: PLC0415 -- foreground only

    if detach:
        c = create(root, cid, bundle, **create_opts)
        try:
            c.start()
        except BaseException:
            _force_delete_quiet(c)
            raise
        return 0

    forwarder = SignalForwarder()
    console: _socket.socket | None = None
    master: int | None = None
    if create_opts.get("config") is None:
        from pybox.oci.spec import load_bundle_config  # noqa: PLC0415 -- only create reads a bundle

        create_opts["config"], create_opts["raw_config"] = load_bundle_config(
            os.path.abspath(bundle), with_raw=True)
    config = create_opts["config"]
    assert config is not None  # loaded above
    if (config.get("process") or {}).get("terminal") and not create_opts.get("console_socket"):
        import _socket  # noqa: PLC0415 -- a C module; only for a terminal

        # our own console socket: the master comes to us and we relay it
        console, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        create_opts["console_sock"] = theirs
    try:
        # init is a grandchild (stage1 exits): as the subreaper we get it back
        # and can wait for it; done after fork, overlapping stage1's start-up
        c = create(root, cid, bundle, after_fork=become_subreaper, **create_opts)
        if console is not None:
            theirs.close()
            from pybox.runtime.terminal import receive_master  # noqa: PLC0415 -- only with a tty

            master = receive_master(console)
    finally:
        if console is not None:
            console.close()
    return _foreground(c, c.pid, master, lambda: c.start(), delete=True,
                       forwarder=forwarder)


class SignalForwarder:
    """Forwards the signals a foreground run/exec receives to the container's
    process.  Installed before fork, so that a signal arriving while the process
    is being set up is not lost (nor kills the runtime and orphans it): it is
    held until ``target`` names the pid."""

    NAMES = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGPIPE",
             "SIGALRM", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGWINCH")

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []
        for name in self.NAMES:
            _signal.signal(getattr(_signal, name), self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pid is None:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except OSError:
            pass

    def target(self, pid: int) -> None:
        self.pid = pid
        pending, self.pending = self.pending, []
        for signum in pending:
            self._handle(signum, None)


def _foreground(c: Container, pid: int, master: int | None, start: Callable[[], None],
                delete: bool, forwarder: SignalForwarder) -> int:
    """Start ``pid``, forward signals to it, relay its terminal if any, wait for
    it, optionally delete the container; return the exit status."""
    if master is not None:
        from pybox.runtime.terminal import copy_window_size  # noqa: PLC0415 -- only with a tty

        copy_window_size(0, master)  # before the program can ask for it
    try:
        start()
    except BaseException:
        if delete:
            _force_delete_quiet(c)
        raise
    forwarder.target(pid)
    if master is not None:
        from pybox.runtime.terminal import Relay  # noqa: PLC0415 -- only with a tty

        try:
            with Relay(master) as relay:
                relay.run()
        finally:
            os.close(master)
    status = _wait_child(pid)
    if delete:
        try:
            c.delete(force=True)
        except PyboxError as e:
            logmod.current.warning(str(e))
    return status


def _wait_child(pid: int) -> int:
    """Wait for init; also reap any orphan re-parented to us meanwhile."""
    from pybox.linux.wait import UNKNOWN_EXIT, exit_code  # noqa: PLC0415 -- foreground only

    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return UNKNOWN_EXIT
        if wpid == pid:
            return exit_code(status)


def _force_delete_quiet(c: Container) -> None:
    try:
        c.delete(force=True)
    except PyboxError as e:
        logmod.current.warning(f"cleanup of {c.id}: {e}")
