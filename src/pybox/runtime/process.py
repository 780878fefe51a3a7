"""The container process's identity and limits, applied in its init just before
exec: rlimits, user and groups, capabilities, no_new_privs, umask, signals, fds.

Order matters and follows runc's finalizeNamespace:
  rlimits, oom_score_adj (while still privileged; a raised hard limit needs
  CAP_SYS_RESOURCE)
  bounding set drop            (needs CAP_SETPCAP: before setuid)
  PR_SET_KEEPCAPS=1; setgroups; setresgid; setresuid; PR_SET_KEEPCAPS=0
  capset(effective, permitted, inheritable); ambient raise
  no_new_privs; umask; signals restored; fds past the preserved ones CLOEXEC; execve
"""

from __future__ import annotations

import os

from pybox.errors import ProcessSetupError, SyscallError
from pybox.linux import caps as capslib
from pybox.linux import constants as C
from pybox.oci.spec import RLIMITS

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Iterable
    from typing import Any

    from pybox.linux.syscalls import Syscalls
else:
    import _signal  # the C module, loaded at start-up: signal.py's enums cost time

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_dict(env_list: Iterable[str] | None) -> dict[str, str]:
    """process.env ("K=V" strings, later entries win) -> dict for execve."""
    out: dict[str, str] = {}
    for entry in env_list or ():
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def default_home(env: dict[str, str], uid: int, passwd: str = "/etc/passwd") -> None:
    """Set HOME, when process.env has none (or an empty one), as runc does: the
    home directory of the first entry for ``uid`` in the container's
    /etc/passwd, else "/".  docker's config.json carries no HOME: programs in a
    docker container find it only this way."""
    if env.get("HOME"):
        return
    home = "/"
    try:
        with open(passwd, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) > 2 and fields[2].strip().isdigit() and int(fields[2]) == uid:
                    home = fields[5] if len(fields) > 5 else ""
                    break
    except OSError:
        pass
    env["HOME"] = home


def lookup_executable(name: str, env: dict[str, str], cwd: str = "/") -> str:
    """Resolve args[0] like execvp / Go's exec.LookPath, in the container's view.
    Errors use runc's words, which containerd and podman show to users."""
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd, name)
        _check_executable(name, path)
        return path
    search = env.get("PATH", DEFAULT_PATH)
    denied: ProcessSetupError | None = None
    for directory in search.split(":"):
        directory = directory or "."
        path = os.path.join(directory, name)
        try:
            _check_executable(name, path)
            return path
        except ProcessSetupError as e:
            if e.errno == 13:
                denied = e
    if denied:
        raise denied
    raise ProcessSetupError(f'exec: "{name}": executable file not found in $PATH', errno=2)


def _check_executable(name: str, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        raise ProcessSetupError(f'exec: "{name}": stat {path}: {(e.strerror or "").lower()}',
                                errno=e.errno) from None
    if (st.st_mode & 0o170000) == 0o040000:
        raise ProcessSetupError(f'exec: "{name}": {path} is a directory', errno=13)
    if not os.access(path, os.X_OK):
        raise ProcessSetupError(f'exec: "{name}": permission denied', errno=13)


def set_rlimits(sc: Syscalls, rlimits: Iterable[dict[str, Any]] | None) -> None:
    for rl in rlimits or ():
        try:
            sc.setrlimit(RLIMITS[rl["type"]], rl["soft"], rl["hard"])
        except SyscallError as e:
            raise ProcessSetupError(f"setrlimit {rl['type']} soft={rl['soft']} "
                                    f"hard={rl['hard']}: {e.strerror}",
                                    errno=e.errno) from None


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise ProcessSetupError(f"cannot set oom_score_adj to {value}: {e.strerror}",
                                errno=e.errno) from None


def drop_bounding_set(sc: Syscalls, names: Iterable[str]) -> None:
    keep = capslib.to_mask(names)
    for cap in range(capslib.last_cap() + 1):
        if not keep & (1 << cap):
            try:
                sc.prctl(C.PR_CAPBSET_DROP, cap)
            except SyscallError as e:
                if e.errno != 22:  # EINVAL: cap unknown to this kernel
                    raise ProcessSetupError(f"cannot drop {capslib.CAPABILITY_NAMES[cap]} "
                                            f"from the bounding set: {e.strerror}",
                                            errno=e.errno) from None


def fix_stdio_ownership(uid: int) -> None:
    """Give stdin/stdout/stderr to the container's user before switching to it,
    as runc's fixStdioPermissions does: a process running as uid 1000 can then
    reopen them (``echo hi > /dev/stdout``, nginx logging to /dev/stderr), which
    the kernel refuses on a pipe or pty owned by root with mode 0600.  The
    group is kept; fds already owned by uid or pointing at /dev/null are left
    alone; a refusal (unmapped owner in a user namespace, read-only /dev) is
    ignored, as runc ignores it."""
    try:
        null_rdev = os.stat("/dev/null").st_rdev
    except OSError:
        null_rdev = os.makedev(1, 3)  # never chown the host's /dev/null
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # closed
        if st.st_uid == uid or st.st_rdev == null_rdev:
            continue
        try:
            os.fchown(fd, uid, st.st_gid)
        except OSError as e:
            if e.errno not in (1, 22, 30):  # EPERM, EINVAL, EROFS
                raise ProcessSetupError(f"cannot chown fd {fd} to uid {uid}: {e.strerror}",
                                        errno=e.errno) from None


def switch_user(sc: Syscalls, user: dict[str, Any], *, setgroups_allowed: bool = True) -> None:
    """Become uid/gid with the additional groups, keeping capabilities for capset.
    The spec's gid is the primary group; additionalGids replace the supplementary
    groups entirely (an empty list clears them, as runc does)."""
    uid, gid = user["uid"], user["gid"]
    groups = list(user.get("additionalGids") or ())
    sc.prctl(C.PR_SET_KEEPCAPS, 1)
    try:
        if setgroups_allowed:
            os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise ProcessSetupError(f"cannot switch to uid {uid} gid {gid} groups {groups}: "
                                f"{e.strerror}", errno=e.errno) from None
    sc.prctl(C.PR_SET_KEEPCAPS, 0)


def apply_capabilities(sc: Syscalls, caps: dict[str, Any]) -> None:
    """Set effective/permitted/inheritable, then raise the ambient set.  An ambient
    capability the kernel refuses (not in permitted and inheritable) is skipped, as
    runc does for the default spec, which lists ambient but not inheritable caps."""
    eff = capslib.to_mask(caps.get("effective") or ())
    prm = capslib.to_mask(caps.get("permitted") or ())
    inh = capslib.to_mask(caps.get("inheritable") or ())
    try:
        sc.capset(eff, prm, inh)
    except SyscallError as e:
        try:
            have = sc.capget()[1]
        except (SyscallError, AttributeError):
            have = prm
        missing = capslib.from_mask((prm | eff) & ~have)
        why = (f"{', '.join(missing)} not held by the runtime itself (missing from "
               "its bounding set?)" if missing else e.strerror)
        raise ProcessSetupError(f"cannot set capabilities: {why}", errno=e.errno) from None
    try:
        sc.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_CLEAR_ALL)
    except SyscallError:
        pass
    for name in caps.get("ambient") or ():
        cap = capslib.CAPABILITY_NUMBERS[name]
        if cap > capslib.last_cap() or not (prm >> cap) & 1 or not (inh >> cap) & 1:
            continue
        sc.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_RAISE, cap)


def restore_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ and handles SIGINT; exec keeps ignored
    signals ignored and the blocked mask as is.  Give the program a clean slate."""
    for sig in range(1, _signal.NSIG):
        if sig in (_signal.SIGKILL, _signal.SIGSTOP):
            continue
        try:
            if _signal.getsignal(sig) not in (_signal.SIG_DFL, None):
                _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def cloexec_from(sc: Syscalls, first_fd: int) -> None:
    """Mark every fd >= first_fd close-on-exec so that nothing of the runtime's
    (or its caller's) leaks into the container (the CVE-2024-21626 class)."""
    try:
        sc.close_range(first_fd, 0xFFFFFFFF, C.CLOSE_RANGE_CLOEXEC)
        return
    except (SyscallError, AttributeError):
        pass
    import fcntl  # noqa: PLC0415 -- a fallback for kernels without close_range

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first_fd:
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            except OSError:
                pass


def check_cwd_inside_root() -> None:
    """After chdir: the kernel reports a cwd outside our root as unreachable
    (getcwd fails or prefixes "(unreachable)") -- refuse to exec there."""
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        raise ProcessSetupError("current working directory is outside of the container "
                                "root", errno=2) from None
    if not cwd.startswith("/"):
        raise ProcessSetupError(f"current working directory {cwd!r} is outside of the "
                                "container root", errno=2)
