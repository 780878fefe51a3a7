"""pybox.runtime.seccomp without root: profiles are checked with errors that name
the JSON path, compiled the way runc compiles them, and -- in a forked child
with no_new_privs, which needs no privilege -- loaded and enforced."""

import _socket
import ctypes
import errno
import json
import os
import subprocess
import sys
import threading

import pytest

from pybox.errors import ConfigError, ProcessSetupError

seccomp = pytest.importorskip("seccomp")
from pybox.runtime import seccomp as sc  # noqa: E402

pytestmark = pytest.mark.unit

PR_SET_NO_NEW_PRIVS = 38
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(sc.__file__))))


def profile(*syscalls, default="SCMP_ACT_ALLOW", **extra):
    return dict(defaultAction=default, syscalls=list(syscalls), **extra)


def rule(names, action="SCMP_ACT_ERRNO", **extra):
    return dict(names=[names] if isinstance(names, str) else list(names), action=action,
                **extra)


def arg(index, value, op="SCMP_CMP_EQ", **extra):
    return dict(index=index, value=value, op=op, **extra)


def pfc(flt, tmp_path):
    path = tmp_path / "filter.pfc"
    with open(path, "w") as f:
        flt.export_pfc(f)
    return path.read_text()


def in_child(fn, nnp=True):
    """Run fn() in a forked child (after no_new_privs, so loading a filter needs
    no privilege); return what it returned (JSON-able) or raise what it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if nnp:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl")
            out = {"ok": fn()}
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = {"error": type(e).__name__, "message": str(e),
                   "errno": getattr(e, "errno", None)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died: {status:#x}"
    out = json.loads(data)
    if "error" in out:
        raise AssertionError(f"{out['error']}: {out['message']} (errno {out['errno']})")
    return out["ok"]


def attempt(fn, *args):
    """0 if the call worked, else its errno."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


# -- errors name the JSON path ----------------------------------------------

BAD_PROFILES = [
    (profile(default="SCMP_ACT_FOO"),
     "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_FOO'"),
    (profile(rule("getcwd"), rule("chmod"), rule("mkdir", action="SCMP_ACT_FOO")),
     "linux.seccomp.syscalls[2].action: unknown action 'SCMP_ACT_FOO'"),
    (profile(rule("personality", args=[arg(0, 8), arg(1, 1, op="SCMP_CMP_ALMOST")])),
     "linux.seccomp.syscalls[0].args[1].op: unknown operator 'SCMP_CMP_ALMOST'"),
    (profile(rule("personality", args=[arg(6, 8)])),
     "linux.seccomp.syscalls[0].args[0].index: 6 is out of range"),
    (profile(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_Z80"]),
     "linux.seccomp.architectures[1]: unknown architecture 'SCMP_ARCH_Z80'"),
    (profile(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FAST"]),
     "linux.seccomp.flags[1]: unknown flag 'SECCOMP_FILTER_FLAG_FAST'"),
    (profile(rule("getcwd", action="SCMP_ACT_ALLOW", errnoRet=5), default="SCMP_ACT_LOG"),
     "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW does not return an errno"),
    (profile(defaultErrnoRet=38),
     "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW does not return an errno"),
    (profile(rule("getcwd", errnoRet=70000)),
     "linux.seccomp.syscalls[0].errnoRet: 70000 does not fit in the 16 bits"),
    (profile(rule("getcwd"), rule("mkdir", action="SCMP_ACT_NOTIFY")),
     "linux.seccomp.listenerPath: is required: linux.seccomp.syscalls[1] uses "
     "SCMP_ACT_NOTIFY"),
    (profile(listenerMetadata="x"),
     "linux.seccomp.listenerMetadata: must not be set without listenerPath"),
    (profile(default="SCMP_ACT_NOTIFY", listenerPath="/run/agent.sock"),
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    (profile(rule(["mkdir", "sendmsg"], action="SCMP_ACT_NOTIFY"),
             listenerPath="/run/agent.sock"),
     "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for sendmsg"),
    (profile(rule([])), "linux.seccomp.syscalls[0].names: must list at least one syscall"),
    (profile(rule(["getcwd", ""])), "linux.seccomp.syscalls[0].names[1]: empty syscall name"),
    (profile(rule("personality", args=[{"index": 0, "op": "SCMP_CMP_EQ"}])),
     "linux.seccomp.syscalls[0].args[0].value: is required"),
]


@pytest.mark.parametrize("spec,message", BAD_PROFILES, ids=[m.split(":")[0] + f"-{i}"
                                                            for i, (_, m) in
                                                            enumerate(BAD_PROFILES)])
def test_errors_name_the_json_path(spec, message):
    with pytest.raises(ConfigError) as err:
        sc.compile_filter(spec)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.path == message.split(":")[0]
    assert "\n" not in str(err.value)


def test_a_flag_this_libseccomp_cannot_set_is_an_error():
    if hasattr(seccomp.Attr, "CTL_WAITKILL"):
        pytest.skip("this libseccomp supports WAIT_KILLABLE_RECV")
    with pytest.raises(ConfigError) as err:
        sc.compile_filter(profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert str(err.value) == ("linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                              " is not supported by this libseccomp or kernel")


def test_an_architecture_this_libseccomp_lacks_is_an_error():
    missing = [n for n, attr in sc.ARCHS.items() if not hasattr(seccomp.Arch, attr)]
    if not missing:
        pytest.skip("this libseccomp knows every architecture of the spec")
    with pytest.raises(ConfigError) as err:
        sc.compile_filter(profile(architectures=[missing[0]]))
    assert str(err.value) == (f"linux.seccomp.architectures[0]: architecture {missing[0]} "
                              "is not supported by this libseccomp")


# -- compilation as runc does it --------------------------------------------

def test_unknown_syscalls_are_skipped(tmp_path):
    flt = sc.compile_filter(profile(rule(["getcwd", "no_such_syscall_2099", "chmod"])))
    assert flt.skipped == ("no_such_syscall_2099",)
    text = pfc(flt, tmp_path)
    assert '"getcwd"' in text and '"chmod"' in text


def test_syscall_of_another_architecture_only(tmp_path):
    # _llseek is no x86_64 syscall: skipped on a native-only filter, kept for x86
    if seccomp.system_arch() != int(seccomp.Arch.X86_64) & 0xFFFFFFFF:
        pytest.skip("x86_64 host only")
    assert sc.compile_filter(profile(rule("_llseek"))).skipped == ("_llseek",)
    flt = sc.compile_filter(profile(rule("_llseek"), architectures=["SCMP_ARCH_X86"]))
    assert flt.skipped == ()
    assert "filter for arch x86 " in pfc(flt, tmp_path)


def test_native_architecture_is_always_there_and_listed_ones_added(tmp_path):
    flt = sc.compile_filter(profile(rule("getcwd"), architectures=["SCMP_ARCH_AARCH64"]))
    text = pfc(flt, tmp_path)
    assert "filter for arch aarch64" in text
    assert text.count("filter for arch ") == 2  # + the native one


def test_architectures_of_the_other_byte_order_are_skipped(tmp_path):
    if sys.byteorder != "little":
        pytest.skip("little-endian host only")
    flt = sc.compile_filter(profile(rule("getcwd"), architectures=[
        "SCMP_ARCH_X86", "SCMP_ARCH_S390X", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_MIPS"]))
    assert flt.skipped_archs == ("SCMP_ARCH_S390X", "SCMP_ARCH_MIPS")
    text = pfc(flt, tmp_path)
    assert "filter for arch x86 " in text and "filter for arch ppc64le" in text
    assert text.count("filter for arch ") == 3  # + the native one


def test_rule_with_the_default_action_is_skipped(tmp_path):
    flt = sc.compile_filter(profile(rule("getcwd", action="SCMP_ACT_ALLOW"),
                                    rule("chmod", errnoRet=1),
                                    default="SCMP_ACT_ERRNO", defaultErrnoRet=1))
    text = pfc(flt, tmp_path)
    assert '"getcwd"' in text and '"chmod"' not in text  # ERRNO(EPERM) == the default


def test_errno_defaults(tmp_path):
    text = pfc(sc.compile_filter(profile(rule("getcwd"), rule("chmod", errnoRet=42),
                                         rule("mkdir", action="SCMP_ACT_TRACE"),
                                         default="SCMP_ACT_ERRNO", defaultErrnoRet=38,
                                         )), tmp_path)
    assert "action ERRNO(1);" in text  # no errnoRet: EPERM, not defaultErrnoRet
    assert "action ERRNO(42);" in text
    assert "action TRACE(1);" in text
    assert "action ERRNO(38);" in text  # the default action


def test_long_profiles_get_a_binary_tree_short_or_empty_ones_do_not(tmp_path):
    many = [seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr).decode() for nr in range(40)]
    assert "if ($syscall > " in pfc(sc.compile_filter(profile(rule(many))), tmp_path)
    assert "if ($syscall > " not in pfc(sc.compile_filter(profile(rule(many[:5]))), tmp_path)
    # 40 names, none known: no rule at all, and no tree (libseccomp 2.5.4 breaks on that)
    flt = sc.compile_filter(profile(rule([f"future_{i}" for i in range(40)])))
    assert len(flt.skipped) == 40
    assert in_child(lambda: [flt.load(), attempt(os.getcwd)]) == [None, 0]


def test_every_action_compiles():
    for name in sc.ACTIONS:
        extra = {"listenerPath": "/run/agent.sock"} if name == "SCMP_ACT_NOTIFY" else {}
        flt = sc.compile_filter(profile(rule("getcwd", action=name), default="SCMP_ACT_LOG",
                                        **extra))
        assert flt.uses_notify == (name == "SCMP_ACT_NOTIFY")


def test_json_nulls_are_absent_values(tmp_path):
    spec = profile(rule("getcwd", errnoRet=None, args=None), defaultErrnoRet=None,
                   architectures=None, flags=None, listenerPath=None)
    assert "action ERRNO(1);" in pfc(sc.compile_filter(spec), tmp_path)


# -- loading and enforcing (forked children with no_new_privs) --------------

def test_load_enforces_errno_and_args_semantics(tmp_path):
    """lseek(fd, offset, whence): args on different indexes AND; the same index
    twice turns every condition into a rule of its own (OR), as runc does."""
    flt = sc.compile_filter(profile(
        rule("getcwd", errnoRet=errno.ENOMSG),
        rule("lseek", errnoRet=11, args=[arg(1, 7), arg(2, os.SEEK_SET)]),      # AND
        rule("lseek", errnoRet=12, args=[arg(1, 100), arg(1, 101)]),           # OR
        rule("lseek", errnoRet=13, args=[arg(1, 200), arg(1, 201),
                                         arg(2, os.SEEK_END)]),                # runc: OR
        rule("lseek", errnoRet=14, args=[arg(1, 0xF0, op="SCMP_CMP_MASKED_EQ",
                                             valueTwo=0x30)]),
        rule("lseek", errnoRet=15, args=[arg(1, 1 << 40, op="SCMP_CMP_GE")]),
    ))
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)

    def child():
        fd = os.open(path, os.O_RDONLY)
        assert flt.load() is None
        seek = lambda off, how=os.SEEK_SET: attempt(os.lseek, fd, off, how)  # noqa: E731
        return {"getcwd": attempt(os.getcwd),
                "and": [seek(7), seek(7, os.SEEK_CUR), seek(8)],
                "or": [seek(100), seek(101), seek(102)],
                "mixed": [seek(200), seek(201), seek(0, os.SEEK_END), seek(5)],
                "masked": [seek(0x35), seek(0x135), seek(0x45)],
                "ge": [seek(1 << 40), seek((1 << 40) - 1)]}

    got = in_child(child)
    assert got["getcwd"] == errno.ENOMSG
    assert got["and"] == [11, 0, 0]
    assert got["or"] == [12, 12, 0]
    assert got["mixed"] == [13, 13, 13, 0]
    assert got["masked"] == [14, 14, 0]
    assert got["ge"] == [15, 0]


def test_load_imports_nothing_and_opens_nothing():
    flt = sc.compile_filter(profile(rule("getcwd")))

    def child():
        import builtins

        def refuse(*a, **k):
            raise AssertionError(f"called during load: {a[:1]}")

        saved = builtins.__import__, builtins.open, os.open
        builtins.__import__ = builtins.open = os.open = refuse
        try:
            fd = flt.load()
        finally:
            builtins.__import__, builtins.open, os.open = saved
        return [fd, attempt(os.getcwd)]

    assert in_child(child) == [None, errno.EPERM]


def test_load_without_no_new_privs_does_not_set_it():
    """libseccomp sets no_new_privs itself unless told not to: the runtime must
    not, or setuid programs would stop working in containers without
    noNewPrivileges.  (Loading without it needs CAP_SYS_ADMIN.)"""
    if os.geteuid() != 0:
        pytest.skip("needs CAP_SYS_ADMIN")
    flt = sc.compile_filter(profile(rule("getcwd")))

    def child():
        flt.load()
        with open("/proc/self/status") as f:
            return [attempt(os.getcwd), [ln.split()[1] for ln in f
                                         if ln.startswith("NoNewPrivs:")][0]]

    assert in_child(child, nnp=False) == [errno.EPERM, "0"]


def test_load_error_is_a_process_setup_error_with_errno():
    flt = sc.compile_filter(profile(rule("getcwd")))

    def child():
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)  # no CAP_SYS_ADMIN and no no_new_privs
        try:
            flt.load()
        except ProcessSetupError as e:
            return [e.errno, str(e)]
        return None

    code, message = in_child(child, nnp=False)
    assert code == errno.EACCES
    assert message.startswith("cannot load the seccomp filter: Permission denied")
    assert "noNewPrivileges" in message


def test_notify_load_returns_a_close_on_exec_listener_fd():
    flt = sc.compile_filter(profile(rule("acct", action="SCMP_ACT_NOTIFY"),
                                    listenerPath="/run/agent.sock"))
    assert flt.uses_notify

    def child():
        fd = flt.load()
        return [fd >= 0, os.get_inheritable(fd), os.readlink(f"/proc/self/fd/{fd}")]

    assert in_child(child) == [True, False, "anon_inode:seccomp notify"]


# -- the listener --------------------------------------------------------------

class Listener:
    """A one-shot seccomp agent stand-in: accept, read the state and the fds."""

    def __init__(self, path):
        self.path = path
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        dfd = os.open(os.path.dirname(path), os.O_PATH)
        try:
            self.sock.bind(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
        finally:
            os.close(dfd)
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.result = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        fd, _ = self.sock._accept()
        conn = _socket.socket(fileno=fd)
        data, fds = b"", []
        while True:
            chunk, anc, _, _ = conn.recvmsg(65536, _socket.CMSG_SPACE(4 * 4))
            for level, kind, payload in anc:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    fds += [int.from_bytes(payload[i:i + 4], sys.byteorder)
                            for i in range(0, len(payload) - len(payload) % 4, 4)]
            if not chunk:
                break
            data += chunk
        conn.close()
        self.result = (json.loads(data), fds)

    def wait(self):
        self.thread.join(10)
        self.sock.close()
        return self.result


@pytest.mark.parametrize("long_path", [False, True])
def test_send_to_listener(tmp_path, long_path):
    where = tmp_path / ("d" * 120 if long_path else "d")
    where.mkdir()
    listener = Listener(str(where / "agent.sock"))
    r, w = os.pipe()
    state = {"ociVersion": "1.1.0", "id": "c1", "status": "creating", "pid": 4242,
             "bundle": "/b"}
    sc.send_to_listener(listener.path, w, pid=4242, metadata="MKNOD=/dev/null", state=state)
    os.close(w)
    msg, fds = listener.wait()
    assert msg == {"ociVersion": msg["ociVersion"], "fds": ["seccompFd"], "pid": 4242,
                   "metadata": "MKNOD=/dev/null", "state": state}
    assert msg["ociVersion"].startswith("1.")
    assert len(fds) == 1
    os.write(fds[0], b"through the passed fd")  # it is our pipe's write end
    os.close(fds[0])
    assert os.read(r, 100) == b"through the passed fd"
    os.close(r)


def test_send_to_listener_errors_name_the_path(tmp_path):
    path = str(tmp_path / "nobody-listens.sock")
    with pytest.raises(ProcessSetupError) as err:
        sc.send_to_listener(path, 0, pid=1, metadata="", state={})
    assert str(err.value) == (f"seccomp listener {path}: cannot connect: "
                              f"{os.strerror(errno.ENOENT)}")
    assert err.value.errno == errno.ENOENT


# -- features and import cost -----------------------------------------------

def test_features_lists_what_libseccomp_offers():
    feat = sc.features()
    assert feat["enabled"] is True
    api = seccomp.get_api()
    expected = [a for a in sc.ACTIONS
                if not (a == "SCMP_ACT_NOTIFY" and api < 5)
                and not (a in ("SCMP_ACT_LOG", "SCMP_ACT_KILL_PROCESS") and api < 3)]
    assert feat["actions"] == expected
    assert feat["operators"] == list(sc.OPERATORS)
    assert feat["archs"] == [n for n, a in sc.ARCHS.items() if hasattr(seccomp.Arch, a)]
    native = {int(getattr(seccomp.Arch, a)) & 0xFFFFFFFF: n for n, a in sc.ARCHS.items()
              if hasattr(seccomp.Arch, a)}[seccomp.system_arch()]
    assert native in feat["archs"]
    assert feat["knownFlags"] == list(sc.FLAGS)
    assert set(feat["supportedFlags"]) <= set(feat["knownFlags"])
    assert ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in feat["supportedFlags"]) == hasattr(
        seccomp.Attr, "CTL_WAITKILL")
    # and everything listed is accepted by compile_filter
    sc.compile_filter(profile(rule("getcwd"), architectures=feat["archs"],
                              flags=feat["supportedFlags"]))


def test_module_import_is_cheap():
    """Imported on create's path: no libseccomp, json, re or enum until used."""
    code = (f"import sys; sys.path.insert(0, {SRC!r}); import pybox.runtime.seccomp; "
            "print(' '.join(m for m in ('seccomp', 'json', 're', 'enum', 'socket') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                         text=True, check=True, cwd="/").stdout.strip()
    assert out == ""
