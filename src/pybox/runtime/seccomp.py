"""linux.seccomp: the runtime-spec's seccomp profiles, through libseccomp's own
Python binding (Debian's python3-seccomp, imported as ``seccomp``).

Two halves, split by fork:

* ``compile_filter(spec)`` runs in the runtime's parent before anything of the
  container exists.  It checks the whole profile (every error is a ConfigError
  naming the JSON path) and builds the libseccomp filter in memory.  A bad
  profile therefore fails ``create`` before a state dir, cgroup or process is made.
* ``Filter.load()`` runs in the container's init, inherited through fork, after
  pivot_root: no host file is visible any more, so it imports nothing and opens
  nothing; it only asks libseccomp to generate the BPF program and install it.

Semantics, as runc has them (profiles are written for runc and docker):

* ``SCMP_ACT_KILL`` is ``SCMP_ACT_KILL_THREAD``.  ``SCMP_ACT_ERRNO`` returns the
  rule's ``errnoRet`` (``defaultErrnoRet`` for the default action), EPERM when
  unset; ``SCMP_ACT_TRACE`` passes the same number to the tracer.  ``errnoRet``
  on any other action is an error (the spec says the runtime MUST fail).
* Syscall names libseccomp does not know are skipped (docker's profile lists
  syscalls newer than many hosts); names known for another architecture only
  are kept, and libseccomp applies them to the architectures that have them.
* A rule whose action equals the default action is skipped (libseccomp refuses it).
* ``args``: conditions on different argument indexes are ANDed in one rule.  If
  one index appears more than once, every condition becomes a rule of its own
  (OR), runc's behaviour (libseccomp cannot compare one argument twice in a rule).
* ``architectures`` are added to the native one; those of the other byte order
  (libseccomp cannot put them in one filter, and this kernel cannot run their
  syscalls) are skipped, so multi-arch profiles work everywhere.
* ``flags`` map to libseccomp filter attributes (TSYNC, LOG, SPEC_ALLOW=SSB,
  WAIT_KILLABLE_RECV=WAITKILL); one this libseccomp or kernel cannot set is an
  error, not silently dropped.
* libseccomp's own NO_NEW_PRIVS attribute is turned off: no_new_privs is set by
  init only when ``process.noNewPrivileges`` says so.  Without it, init loads the
  filter while it still has CAP_SYS_ADMIN (see init.py).
* ``SCMP_ACT_NOTIFY`` needs ``listenerPath``; ``load()`` returns the listener fd
  (close-on-exec, as the kernel makes it), init hands it to the parent over the
  sync socket (sendmsg), and the parent sends it to the listener with
  ``send_to_listener``.  The filter is active from ``load()`` on, so a syscall the
  runtime makes before the fd has left init must not be notified, or nobody could
  ever answer: NOTIFY is refused as the default action and for ``sendmsg`` (runc
  refuses it for ``write``, its equivalent).  Later syscalls of init (close,
  accept, execve...) are the listener's to answer, as with runc.
"""

from __future__ import annotations

import _socket
import os
import sys

from pybox import OCI_VERSION
from pybox.errors import ConfigError, ProcessSetupError
from pybox.formats import fastjson
from pybox.linux.unixsock import call as unix_call
from pybox.runtime import log

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import ModuleType
    from typing import Any, BinaryIO

    from seccomp import Arg, SyscallFilter  # (untyped: Any to mypy)

EPERM = 1
EACCES = 13
EDOM = 33
MAX_ARGS = 6  # a syscall has at most six arguments
MAX_ERRNO_RET = 0xFFFF  # SECCOMP_RET_DATA: the 16 bits an action can carry

# spec name -> the binding's name (None: ERRNO/TRACE, built with the errno)
ACTIONS = {
    "SCMP_ACT_KILL": "KILL",  # SECCOMP_RET_KILL_THREAD
    "SCMP_ACT_KILL_THREAD": "KILL",
    "SCMP_ACT_KILL_PROCESS": "KILL_PROCESS",
    "SCMP_ACT_TRAP": "TRAP",
    "SCMP_ACT_ERRNO": None,
    "SCMP_ACT_TRACE": None,
    "SCMP_ACT_ALLOW": "ALLOW",
    "SCMP_ACT_LOG": "LOG",
    "SCMP_ACT_NOTIFY": "NOTIFY",
}
ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = {
    "SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}

# spec name -> attribute of seccomp.Arch (absent from older bindings: then an error)
ARCHS = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64",
    "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64",
    "SCMP_ARCH_MIPS64N32": "MIPS64N32", "SCMP_ARCH_MIPSEL": "MIPSEL",
    "SCMP_ARCH_MIPSEL64": "MIPSEL64", "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32",
    "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64", "SCMP_ARCH_PPC64LE": "PPC64LE",
    "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64",
    "SCMP_ARCH_RISCV64": "RISCV64", "SCMP_ARCH_LOONGARCH64": "LOONGARCH64",
    "SCMP_ARCH_M68K": "M68K", "SCMP_ARCH_SH": "SH", "SCMP_ARCH_SHEB": "SHEB",
}

# spec flag -> attribute of seccomp.Attr (CTL_WAITKILL needs libseccomp >= 2.6)
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": "CTL_WAITKILL",
}

# syscalls init makes between load() and the moment the notify fd has left it
NOT_NOTIFIABLE = ("sendmsg",)

# above this many rules, ask libseccomp for a binary tree (fewer BPF jumps per syscall)
_OPTIMIZE_ABOVE = 32


class Filter:
    """A compiled profile.  ``uses_notify``: some rule is SCMP_ACT_NOTIFY;
    ``skipped``: syscall names left out (unknown to libseccomp, or not a syscall
    on any of the filter's architectures); ``skipped_archs``: architectures of
    the other byte order, left out."""

    __slots__ = ("uses_notify", "skipped", "skipped_archs", "_ctx")

    def __init__(self, ctx: SyscallFilter, uses_notify: bool, skipped: Iterable[str] = (),
                 skipped_archs: Iterable[str] = ()) -> None:
        self._ctx = ctx
        self.uses_notify = uses_notify
        self.skipped = tuple(skipped)
        self.skipped_archs = tuple(skipped_archs)

    def load(self) -> int | None:
        """Install the filter in the calling process.  Returns the notify
        listener fd (close-on-exec) when ``uses_notify``, else None.  Imports
        nothing and opens no file: it runs after pivot_root."""
        try:
            self._ctx.load()
        except RuntimeError as e:
            err = _library_errno(e)
            why = os.strerror(err) if err else str(e)
            if err == EACCES:
                why += (" (loading a filter needs CAP_SYS_ADMIN or "
                        "process.noNewPrivileges)")
            raise ProcessSetupError(f"cannot load the seccomp filter: {why}",
                                    errno=err) from None
        if not self.uses_notify:
            return None
        try:
            fd: int = self._ctx.get_notify_fd()
            return fd
        except RuntimeError as e:
            raise ProcessSetupError(f"seccomp filter loaded but it has no notify fd: {e}",
                                    errno=_library_errno(e)) from None

    def export_pfc(self, file: BinaryIO) -> None:
        """libseccomp's readable listing of the filter (for debugging and tests)."""
        self._ctx.export_pfc(file)


def _library_errno(exc: BaseException) -> int | None:
    """The binding raises RuntimeError("Library error (errno = -13)")."""
    text = str(exc)
    at = text.rfind("errno = ")
    if at < 0:
        return None
    try:
        return abs(int(text[at + 8:].rstrip(")")))
    except ValueError:
        return None


def _binding(path: str = "linux.seccomp") -> ModuleType:
    try:
        import seccomp  # noqa: PLC0415 -- an optional dependency, loaded for a profile only
    except ImportError:
        raise ConfigError(path, "seccomp is not supported here: libseccomp's Python "
                                "binding is not installed (Debian package python3-seccomp)") \
            from None
    return seccomp


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise ConfigError(f"{path}.{key}", "is required")
    return value


def _action(sc: ModuleType, name: str, errno_ret: int | None, path: str, errno_path: str,
            ) -> int:
    """The binding's action value for a spec action name (+ errnoRet)."""
    if name not in ACTIONS:
        raise ConfigError(path, f"unknown action {name!r}")
    if name in ACTIONS_WITH_ERRNO:
        if errno_ret is None:
            errno_ret = EPERM
        elif errno_ret > MAX_ERRNO_RET:
            raise ConfigError(errno_path, f"{errno_ret} does not fit in the 16 bits "
                                          f"{name} can return (at most {MAX_ERRNO_RET})")
        action: int = (sc.ERRNO if name == "SCMP_ACT_ERRNO" else sc.TRACE)(errno_ret)
        return action
    if errno_ret is not None:
        raise ConfigError(errno_path, f"{name} does not return an errno (only "
                                      "SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one)")
    attr = ACTIONS[name]
    assert attr is not None  # (the errno actions returned above)
    action = getattr(sc, attr)
    return action


def _condition_sets(sc: ModuleType, args: Sequence[dict[str, Any]], path: str,
                    ) -> list[tuple[Arg, ...]]:
    """The rules one syscalls[] entry becomes, as tuples of seccomp.Arg:
    [()] without args; one rule ANDing them when every index is distinct; one
    rule per condition when an index repeats (runc's behaviour)."""
    conds: list[Arg] = []
    seen: set[int] = set()
    repeated = False
    for k, arg in enumerate(args):
        apath = f"{path}.args[{k}]"
        index = _required(arg, "index", apath)
        value = _required(arg, "value", apath)
        op = _required(arg, "op", apath)
        if index >= MAX_ARGS:
            raise ConfigError(f"{apath}.index", f"{index} is out of range: syscalls have "
                                                f"{MAX_ARGS} arguments (0-{MAX_ARGS - 1})")
        if op not in OPERATORS:
            raise ConfigError(f"{apath}.op", f"unknown operator {op!r}")
        two = arg.get("valueTwo") or 0
        conds.append(sc.Arg(index, getattr(sc, OPERATORS[op]), value, two))
        repeated = repeated or index in seen
        seen.add(index)
    if not conds:
        return [()]
    if repeated:
        return [(c,) for c in conds]
    return [tuple(conds)]


def compile_filter(spec: dict[str, Any]) -> Filter:
    """Check ``linux.seccomp`` and build its libseccomp filter (not loaded)."""
    base = "linux.seccomp"
    sc = _binding(base)
    default_name = _required(spec, "defaultAction", base)
    default = _action(sc, default_name, spec.get("defaultErrnoRet"),
                      f"{base}.defaultAction", f"{base}.defaultErrnoRet")
    if default_name == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{base}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default "
                          "action (the runtime's own syscalls would wait for a listener "
                          "that has not got the notify fd yet)")

    # -- every rule checked before the filter is built --
    rules: list[tuple[int, Sequence[str], list[tuple[Arg, ...]], str]] = []
    # (action, names, condition sets, path)
    notify_at = None
    for i, call in enumerate(spec.get("syscalls") or ()):
        path = f"{base}.syscalls[{i}]"
        action_name = _required(call, "action", path)
        action = _action(sc, action_name, call.get("errnoRet"), f"{path}.action",
                         f"{path}.errnoRet")
        names = call.get("names") or ()
        if not names:
            raise ConfigError(f"{path}.names", "must list at least one syscall")
        for j, name in enumerate(names):
            if not name:
                raise ConfigError(f"{path}.names[{j}]", "empty syscall name")
            if action_name == "SCMP_ACT_NOTIFY" and name in NOT_NOTIFIABLE:
                raise ConfigError(f"{path}.names[{j}]", f"SCMP_ACT_NOTIFY cannot be used "
                                  f"for {name}: the runtime needs it to hand the notify "
                                  "fd to the listener")
        if action_name == "SCMP_ACT_NOTIFY" and notify_at is None:
            notify_at = path
        rules.append((action, names, _condition_sets(sc, call.get("args") or (), path),
                      path))
    listener = spec.get("listenerPath")
    if notify_at is not None and not listener:
        raise ConfigError(f"{base}.listenerPath", f"is required: {notify_at} uses "
                                                  "SCMP_ACT_NOTIFY")
    if spec.get("listenerMetadata") and not listener:
        raise ConfigError(f"{base}.listenerMetadata", "must not be set without listenerPath")

    # -- the filter --
    ctx = sc.SyscallFilter(default)
    ctx.set_attr(sc.Attr.CTL_NNP, 0)  # no_new_privs only if process.noNewPrivileges
    try:
        ctx.set_attr(sc.Attr.API_SYSRAWRC, 1)  # the kernel's errno from load(), not ECANCELED
    except (AttributeError, RuntimeError):
        pass
    foreign = []
    for k, name in enumerate(spec.get("architectures") or ()):
        arch = _arch(sc, name, f"{base}.architectures[{k}]")
        if not ctx.exist_arch(arch):  # the native one is always there
            try:
                ctx.add_arch(arch)
            except RuntimeError as e:
                if _library_errno(e) == EDOM:
                    # the other byte order: no process on this kernel can make
                    # such syscalls, so a multi-arch profile just skips it
                    foreign.append(name)
                    continue
                raise ConfigError(f"{base}.architectures[{k}]",
                                  f"libseccomp cannot add {name}: {_why(e)}") from None
    for k, flag in enumerate(spec.get("flags") or ()):
        if flag not in FLAGS:
            raise ConfigError(f"{base}.flags[{k}]", f"unknown flag {flag!r}")
        if not _set_flag(sc, ctx, flag):
            raise ConfigError(f"{base}.flags[{k}]", f"{flag} is not supported by this "
                                                    "libseccomp or kernel")

    skipped = []
    added = 0
    native = sc.Arch.NATIVE
    for action, names, cond_sets, path in rules:
        if action == default:
            continue  # redundant, and libseccomp refuses it
        for j, name in enumerate(names):
            if sc.resolve_syscall(native, name) < 0 and not _resolvable(sc, ctx, name):
                skipped.append(name)
                continue
            for conds in cond_sets:
                try:
                    ctx.add_rule(action, name, *conds)
                except RuntimeError as e:
                    raise ConfigError(f"{path}.names[{j}]", f"libseccomp refused the rule "
                                                            f"for {name}: {_why(e)}") from None
                added += 1
    if added > _OPTIMIZE_ABOVE:
        # (not with few or no rules: libseccomp <= 2.5.4 builds a wrong tree for 0)
        try:
            ctx.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        except (AttributeError, RuntimeError):
            pass  # an older libseccomp: the default (linear) layout still works
    if skipped or foreign:
        if foreign:
            log.current.debug("seccomp: architectures of the other byte order, skipped: "
                              + ", ".join(foreign))
        if skipped:
            log.current.debug("seccomp: syscalls unknown to libseccomp or to the filter's "
                              "architectures, skipped: " + ", ".join(sorted(set(skipped))))
    return Filter(ctx, notify_at is not None, skipped, foreign)


def _resolvable(sc: ModuleType, ctx: SyscallFilter, name: str) -> bool:
    """Whether any architecture of the filter knows the name."""
    for attr in ARCHS.values():
        arch = getattr(sc.Arch, attr, None)
        if arch is not None and ctx.exist_arch(arch):
            try:
                if sc.resolve_syscall(arch, name) >= 0:
                    return True
            except (RuntimeError, ValueError):
                pass
    return False


def _why(exc: BaseException) -> str:
    err = _library_errno(exc)
    return os.strerror(err) if err else str(exc)


def _arch(sc: ModuleType, name: str, path: str) -> int:
    if name not in ARCHS:
        raise ConfigError(path, f"unknown architecture {name!r}")
    arch = getattr(sc.Arch, ARCHS[name], None)
    if arch is None:
        raise ConfigError(path, f"architecture {name} is not supported by this libseccomp")
    value: int = arch
    return value


def _set_flag(sc: ModuleType, ctx: SyscallFilter, flag: str) -> bool:
    attr = getattr(sc.Attr, FLAGS[flag], None)
    if attr is None:
        return False
    try:
        ctx.set_attr(attr, 1)
    except (RuntimeError, ValueError, OverflowError):
        return False
    return True


def send_to_listener(listener_path: str, notify_fd: int, *, pid: int, metadata: str,
                     state: Mapping[str, Any]) -> None:
    """Send the runtime-spec "container process state" and the notify fd
    (SCM_RIGHTS, named "seccompFd") to the seccomp agent listening on the
    AF_UNIX stream socket at ``listener_path``; one connection, then closed."""
    if not listener_path:
        raise ProcessSetupError("seccomp: SCMP_ACT_NOTIFY is used but "
                                "linux.seccomp.listenerPath is not set")
    data = fastjson.dumps({"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid,
                           "metadata": metadata or "", "state": state}).encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            unix_call(sock.connect, listener_path)  # also paths longer than sun_path
        except OSError as e:
            raise ProcessSetupError(f"seccomp listener {listener_path}: cannot connect: "
                                    f"{e.strerror or e}", errno=e.errno) from None
        try:
            fds = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                    int(notify_fd).to_bytes(4, sys.byteorder, signed=True))]
            sent = sock.sendmsg([data], fds)
            if sent < len(data):
                sock.sendall(data[sent:])  # the spec allows more sends, fds in the first
        except OSError as e:
            raise ProcessSetupError(f"seccomp listener {listener_path}: cannot send the "
                                    f"container process state: {e.strerror or e}",
                                    errno=e.errno) from None
    finally:
        sock.close()


def features() -> dict[str, Any]:
    """The runtime-spec features.json ``linux.seccomp`` object: what this
    libseccomp (and kernel) can do."""
    try:
        import seccomp as sc  # noqa: PLC0415 -- an optional dependency
    except ImportError:
        return {"enabled": False}
    actions = [name for name in ACTIONS if _action_supported(sc, name)]
    archs = [name for name, attr in ARCHS.items() if hasattr(sc.Arch, attr)]
    supported = []
    for flag in FLAGS:
        try:
            probe = sc.SyscallFilter(sc.ALLOW)
        except RuntimeError:
            break
        if _set_flag(sc, probe, flag):
            supported.append(flag)
    return {
        "enabled": True,
        "actions": actions,
        "operators": [name for name, attr in OPERATORS.items() if hasattr(sc, attr)],
        "archs": archs,
        "knownFlags": list(FLAGS),
        "supportedFlags": supported,
    }


def _action_supported(sc: ModuleType, name: str) -> bool:
    """libseccomp checks an action against the kernel when a rule uses it."""
    try:
        action = _action(sc, name, None, "", "")
        probe = sc.SyscallFilter(sc.ERRNO(EPERM) if name == "SCMP_ACT_ALLOW" else sc.ALLOW)
        probe.add_rule(action, "getpid")
    except (RuntimeError, ValueError, ConfigError):
        return False
    return True
