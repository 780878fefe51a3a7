"""What runs inside the container's namespaces, up to execve.

``init_main``: the container's init (see launch.py).  The steps and their order
follow runc's standard init, because the runtime-spec conformance suite and real
workloads depend on it: rootfs first (mounts can only be made while the host is
visible), hooks before pivot_root, sysctls before /proc/sys turns read-only,
privileges dropped last.  After "ready" the parent exits; init waits for
``start``.

``exec_main``: a process joining a running container (``pybox-runtime exec``).
It shares ``prepare_process``, the identity and limit steps, with init.

Runs in the forked children only: what a step needs only sometimes (hooks,
terminals) is imported where it is used, before pivot_root (``_preload``).
"""

from __future__ import annotations

import os

from pybox.errors import ProcessSetupError, SyscallError
from pybox.linux import constants as C
from pybox.runtime import process as proc
from pybox.runtime.rootfs import RootfsBuilder, secure_join

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import _socket
    from typing import Any

    from pybox.linux.syscalls import Syscalls
    from pybox.runtime.launch import ExecPlan, LaunchPlan
    from pybox.runtime.seccomp import Filter
    from pybox.runtime.sync import Channel


def init_main(plan: LaunchPlan, chan: Channel, sc: Syscalls) -> None:
    config = plan.config
    linux = config.get("linux") or {}
    process = config["process"]
    ns = plan.namespaces
    os.setsid()

    if not plan.no_new_keyring:
        _join_session_keyring(sc, plan.cid)

    builder = RootfsBuilder(
        sc, config, plan.rootfs, has_mount_ns="mount" in ns, in_user_ns="user" in ns,
        cgroup_mounts=plan.cgroup_mounts, cgroup_ns="cgroup" in ns,
        cgroup_v2=plan.cgroup_v2)
    builder.prepare_root()
    builder.mount_all()
    builder.create_devices()
    try:
        os.makedirs(secure_join(plan.rootfs, process["cwd"]), 0o755, exist_ok=True)
    except OSError:
        pass  # reported by chdir later, with the container's view

    hooks = config.get("hooks") or {}
    if any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer")):
        chan.send("hooks")
        chan.expect("go")
        if hooks.get("createContainer"):
            from pybox.runtime.hooks import run_hooks  # noqa: PLC0415 -- most containers have none

            state = dict(plan.hook_state, pid=os.getpid(), status="creating")
            run_hooks(hooks["createContainer"], state, "createContainer")

    _preload(hooks, process)
    builder.enter(no_pivot=plan.no_pivot)

    if config.get("hostname"):
        sc.sethostname(config["hostname"])
    if config.get("domainname"):
        sc.setdomainname(config["domainname"])
    for key, value in (linux.get("sysctl") or {}).items():
        _write_sysctl(key, value)

    if process.get("terminal"):
        from pybox.runtime.terminal import setup_console  # noqa: PLC0415 -- only with a tty

        assert plan.console_sock is not None  # a terminal comes with its console socket
        setup_console(plan.console_sock, process, sc)  # before /dev may turn read-only
    builder.finalize()
    exe, env, late_seccomp = prepare_process(sc, process, plan.seccomp, chan)

    chan.send("ready")
    chan.close()

    try:
        conn = _wait_for_start(plan.start_sock)
    except BaseException as e:  # noqa: BLE001 - nobody to report to but stderr
        os.write(2, f"pybox-runtime init: waiting for start: {e}\n".encode())
        os._exit(1)
    try:
        if hooks.get("startContainer"):
            from pybox.runtime.hooks import run_hooks  # noqa: PLC0415 -- preloaded (_preload)

            state = dict(plan.hook_state, pid=os.getpid(), status="created")
            run_hooks(hooks["startContainer"], state, "startContainer")
        exec_process(sc, exe, process, env, late_seccomp, plan.preserve_fds)
    except BaseException as e:  # noqa: BLE001 - told to `start`, which prints it
        try:
            conn.sendall(("error " + _exec_error(e, exe)).encode())
        except OSError:
            pass
        os._exit(127 if isinstance(e, OSError) else 1)


def exec_main(plan: ExecPlan, chan: Channel, sc: Syscalls) -> None:
    """A new process in a running container: namespaces and cgroup are already
    joined (launch.py); set up the process and exec.  Success is the channel
    closing on exec; anything else is an error message."""
    process = plan.process
    if process.get("terminal"):
        from pybox.runtime.terminal import setup_console  # noqa: PLC0415 -- only with a tty

        assert plan.console_sock is not None  # a terminal comes with its console socket
        os.setsid()
        setup_console(plan.console_sock, process)
    exe, env, late_seccomp = prepare_process(sc, process, plan.seccomp, chan)
    try:
        exec_process(sc, exe, process, env, late_seccomp, plan.preserve_fds)
    except BaseException as e:  # noqa: BLE001
        raise ProcessSetupError(_exec_error(e, exe), errno=getattr(e, "errno", None)) from e


def prepare_process(sc: Syscalls, process: dict[str, Any], seccomp: Filter | None,
                    chan: Channel) -> tuple[str, dict[str, str], Filter | None]:
    """Identity and limits of the process about to exec (runc's finalizeNamespace).
    Returns (executable path, environment, seccomp filter still to load);
    oom_score_adj was set before the namespaces (launch._set_oom_score_adj)."""
    proc.set_rlimits(sc, process.get("rlimits"))
    if process.get("apparmorProfile"):
        _check_apparmor(process["apparmorProfile"])
    nnp = bool(process.get("noNewPrivileges"))
    if nnp:
        sc.prctl(C.PR_SET_NO_NEW_PRIVS, 1)

    env = proc.env_dict(process.get("env"))
    proc.default_home(env, (process.get("user") or {}).get("uid", 0))
    cwd = process["cwd"]
    # chdir as root first (the user may lack search permission on the path's
    # parents but the spec still wants that cwd); retry as the user if that fails.
    chdir_error: ProcessSetupError | None = _try_chdir(cwd)
    if chdir_error is None:
        proc.check_cwd_inside_root()
    exe = proc.lookup_executable(process["args"][0], env, cwd)
    if seccomp is not None and not nnp:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the
        # capabilities go, but after our own getcwd and executable lookup, which
        # the profile may refuse (the conformance suite's refuses getcwd).
        _load_seccomp(seccomp, chan)
        seccomp = None

    caps = process.get("capabilities")
    if caps is not None:
        proc.drop_bounding_set(sc, caps.get("bounding") or ())
    user = process["user"]
    proc.fix_stdio_ownership(user["uid"])
    proc.switch_user(sc, user, setgroups_allowed=_setgroups_allowed())
    if chdir_error is not None:
        chdir_error = _try_chdir(cwd)
        if chdir_error is not None:
            raise chdir_error
        proc.check_cwd_inside_root()
    if caps is not None:
        proc.apply_capabilities(sc, caps)
    os.umask(user.get("umask", 0o022))
    if seccomp is not None and seccomp.uses_notify:
        # the notify fd must reach the parent (and the listener) now
        _load_seccomp(seccomp, chan)
        seccomp = None
    return exe, env, seccomp


def exec_process(sc: Syscalls, exe: str, process: dict[str, Any], env: dict[str, str],
                 late_seccomp: Filter | None, preserve_fds: int) -> None:
    proc.restore_signals()
    proc.cloexec_from(sc, 3 + preserve_fds)
    if late_seccomp is not None:
        # with no_new_privs: as late as possible, so the fewest of our own
        # syscalls run under the container's filter
        late_seccomp.load()
    os.execve(exe, process["args"], env)


def _exec_error(e: BaseException, exe: str) -> str:
    if isinstance(e, OSError) and not isinstance(e, SyscallError):
        return f"exec {exe}: {e.strerror}"
    return str(e)


def _load_seccomp(seccomp: Filter, chan: Channel) -> None:
    fd = seccomp.load()
    if fd is not None:
        try:
            chan.send("seccomp", fds=[fd])
        finally:
            os.close(fd)


def _preload(hooks: dict[str, Any], process: dict[str, Any]) -> None:
    """Import now what runs after pivot_root: from then on only the container's
    filesystem is visible, and the interpreter's own modules are not in it.
    (Imports here on purpose, each only when the container needs it.)"""
    import _signal  # type: ignore[import-not-found]  # no stub # noqa: F401, PLC0415 -- a preload
    import fcntl  # noqa: F401, PLC0415 -- a preload (process.cloexec_from's fallback)

    if process.get("terminal"):
        import _socket  # noqa: F401, PLC0415 -- a preload for a terminal

        from pybox.runtime import terminal  # noqa: F401, PLC0415 -- a preload for a terminal
    if hooks.get("startContainer"):
        import subprocess  # noqa: F401, PLC0415 -- a preload for the hooks

        from pybox.formats import fastjson  # noqa: F401, PLC0415 -- a preload for the hooks
        from pybox.runtime import hooks as _hooks  # noqa: F401, PLC0415 -- a preload for the hooks


def _wait_for_start(sock: _socket.socket) -> _socket.socket:
    """Block until `start` connects and says so.  A peer that connects and closes
    without the command (a probe) is ignored."""
    import _socket  # noqa: PLC0415 -- preloaded by create: a dict lookup

    while True:
        fd, _ = sock._accept()  # type: ignore[attr-defined]  # _socket's own: not in its stub
        conn = _socket.socket(fileno=fd)
        try:
            data = conn.recv(16)
        except OSError:
            conn.close()
            continue
        if data.startswith(b"start"):
            sock.close()
            return conn
        conn.close()


def _try_chdir(cwd: str) -> ProcessSetupError | None:
    try:
        os.chdir(cwd)
        return None
    except OSError as e:
        return ProcessSetupError(f"cannot change to working directory {cwd}: {e.strerror}",
                                 errno=e.errno)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise ProcessSetupError(f"cannot set sysctl {key}={value}: {e.strerror}",
                                errno=e.errno) from None


def _join_session_keyring(sc: Syscalls, cid: str) -> None:
    """A fresh session keyring per container, so containers do not share the
    host's keys (runc's default; --no-new-keyring keeps the caller's)."""
    try:
        serial = sc.keyctl(C.KEYCTL_JOIN_SESSION_KEYRING, f"_ses.{cid}".encode())
        # possessor: all; user: view, read, write, search, link, setattr
        sc.keyctl(C.KEYCTL_SETPERM, serial, 0x3F3F0000)
    except SyscallError as e:
        if e.errno not in (38, 1, 13):  # ENOSYS, EPERM, EACCES (e.g. in a userns)
            raise ProcessSetupError(f"cannot join a new session keyring: {e.strerror}",
                                    errno=e.errno) from None


def _check_apparmor(profile: str) -> None:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            enabled = f.read().strip() == "Y"
    except OSError:
        enabled = False
    if not enabled:
        raise ProcessSetupError(f"apparmor profile {profile!r} requested but AppArmor is "
                                "not enabled on this host", errno=22)
    try:
        with open("/proc/self/attr/apparmor/exec", "w") as f:
            f.write(f"exec {profile}")
    except OSError as e:
        raise ProcessSetupError(f"cannot set apparmor profile {profile!r}: {e.strerror}",
                                errno=e.errno) from None
