"""linux.seccomp in real containers, through pybox-runtime's command line: each
action does what the kernel says it does, argument conditions apply only when
they match, profiles work with and without noNewPrivileges (without it init
loads the filter before it drops its capabilities), a docker-style allow list
works, SCMP_ACT_NOTIFY hands a working notify fd to a listener, and bad profiles
fail create with one line and leave nothing behind."""

import _socket
import errno
import fcntl
import json
import os
import select
import struct
import threading
import time

import pytest

from .test_errors import fails

seccomp = pytest.importorskip("seccomp")

pytestmark = pytest.mark.root

SIGSYS_STATUS = 128 + 31  # killed by SIGSYS


def use_profile(bundle, *syscalls, default="SCMP_ACT_ALLOW", nnp=True, **extra):
    bundle.linux["seccomp"] = dict(defaultAction=default, syscalls=list(syscalls), **extra)
    bundle.process["noNewPrivileges"] = nnp
    # a SIGSYS death must not leave a core file in the bundle
    bundle.process["rlimits"] = [r for r in bundle.process.get("rlimits") or ()
                                 if r["type"] != "RLIMIT_CORE"] + [
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]
    return bundle


def rule(names, action="SCMP_ACT_ERRNO", **extra):
    return dict(names=[names] if isinstance(names, str) else list(names), action=action,
                **extra)


def run(rt, bundle):
    return rt("run", "-b", bundle.write(), rt.new_id(), check=False)


def wait_stopped(rt, cid, timeout=10):
    deadline = time.monotonic() + timeout
    while rt.state(cid)["status"] != "stopped":
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid} did not stop")
        time.sleep(0.02)


# -- actions -----------------------------------------------------------------

@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
def test_errno_on_getcwd_makes_pwd_fail(rt, bundle, nnp):
    use_profile(bundle, rule("getcwd", errnoRet=errno.ENOMSG), nnp=nnp)
    # (the shell's builtin pwd prints what it remembers; /bin/pwd asks getcwd)
    bundle.sh("/bin/pwd; echo status=$?; grep NoNewPrivs /proc/self/status")
    proc = run(rt, bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"pwd: getcwd: {os.strerror(errno.ENOMSG)}\n"
    assert proc.stdout == f"status=1\nNoNewPrivs:\t{int(nnp)}\n"


def test_errno_without_errnoret_is_eperm(rt, bundle):
    use_profile(bundle, rule("getcwd"))
    bundle.set_args("pwd")
    proc = run(rt, bundle)
    assert (proc.returncode, proc.stderr) == (1, f"pwd: getcwd: {os.strerror(errno.EPERM)}\n")


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(rt, bundle, action):
    use_profile(bundle, rule("getcwd", action=action))
    bundle.set_args("pwd")
    proc = run(rt, bundle)
    assert proc.returncode == SIGSYS_STATUS, (proc.stdout, proc.stderr)
    assert proc.stdout == ""


def test_log_allows(rt, bundle):
    use_profile(bundle, rule("getcwd", action="SCMP_ACT_LOG"))
    bundle.process["cwd"] = "/tmp"
    bundle.set_args("pwd")
    proc = run(rt, bundle)
    assert (proc.returncode, proc.stdout) == (0, "/tmp\n")


def test_trace_without_a_tracer_fails_with_enosys(rt, bundle):
    use_profile(bundle, rule("getcwd", action="SCMP_ACT_TRACE", errnoRet=7))
    bundle.set_args("pwd")
    proc = run(rt, bundle)
    assert (proc.returncode, proc.stderr) == (1, f"pwd: getcwd: {os.strerror(errno.ENOSYS)}\n")


def test_flags_and_architectures(rt, bundle):
    use_profile(bundle, rule("getcwd", errnoRet=errno.ENOMSG),
                architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    bundle.set_args("pwd")
    proc = run(rt, bundle)
    assert (proc.returncode, proc.stderr) == (1, f"pwd: getcwd: {os.strerror(errno.ENOMSG)}\n")


# -- argument conditions -----------------------------------------------------

PER_LINUX, PER_LINUX32 = 0x0000, 0x0008


def test_argument_condition_applies_only_when_it_matches(rt, bundle):
    # busybox linux32 calls personality(PER_LINUX32), linux64 personality(PER_LINUX)
    use_profile(bundle, rule("personality", errnoRet=errno.ENOMSG,
                             args=[{"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"}]))
    bundle.sh("linux64 uname -m; echo status=$?; linux32 uname -m; echo status=$?")
    proc = run(rt, bundle)
    assert proc.returncode == 0
    assert proc.stdout == f"{os.uname().machine}\nstatus=0\nstatus=1\n"
    assert os.strerror(errno.ENOMSG) in proc.stderr


def test_same_argument_twice_means_either(rt, bundle):
    use_profile(bundle, rule("personality", errnoRet=errno.ENOMSG, args=[
        {"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": PER_LINUX, "op": "SCMP_CMP_EQ"}]))
    bundle.sh("linux64 true; echo status=$?; linux32 true; echo status=$?")
    proc = run(rt, bundle)
    assert proc.stdout == "status=1\nstatus=1\n"


# -- a docker-style profile: default ERRNO, an allow list --------------------

def native_syscalls():
    names = []
    for nr in range(1024):
        try:
            names.append(seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr).decode())
        except ValueError:
            pass
    return names


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
@pytest.mark.parametrize("default_errno", [None, errno.ENOMSG])
def test_docker_style_allow_list(rt, bundle, nnp, default_errno):
    allowed = [n for n in native_syscalls() if n not in ("getcwd", "personality")]
    extra = {} if default_errno is None else {"defaultErrnoRet": default_errno}
    use_profile(
        bundle,
        # names this kernel or libseccomp may not know are skipped, as docker's are
        rule(allowed + ["some_syscall_from_2099", "_llseek", "socketcall"],
             action="SCMP_ACT_ALLOW"),
        *[rule("personality", action="SCMP_ACT_ALLOW",
               args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
          for v in (PER_LINUX, PER_LINUX32, 0xFFFFFFFF)],
        rule("clone", action="SCMP_ACT_ALLOW", args=[
            {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]),
        default="SCMP_ACT_ERRNO", nnp=nnp,
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], **extra)
    bundle.sh("echo hello | cat; ls / >/dev/null && echo listed; linux32 true && echo l32; "
              "pwd; /bin/pwd; echo status=$?")
    proc = run(rt, bundle)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello\nlisted\nl32\n\nstatus=1\n"
    assert proc.stderr == f"pwd: getcwd: {os.strerror(default_errno or errno.EPERM)}\n"


# -- SCMP_ACT_NOTIFY ----------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24
NOTIF = struct.Struct("=QIIiIQ6Q")  # id, pid, flags, data.nr, data.arch, data.ip, args
NOTIF_RESP = struct.Struct("=QqiI")  # id, val, error, flags


class Agent:
    """A seccomp agent: takes the container process state and the notify fd from
    the runtime, then answers one notification with ``answer_errno`` (or, with
    ``close_at_once``, closes the fd and answers nothing)."""

    def __init__(self, path, answer_errno=errno.EXDEV, close_at_once=False):
        self.path = path
        self.answer_errno = answer_errno
        self.close_at_once = close_at_once
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.state = self.fd_link = self.notification = self.error = None
        self.got_state = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            fd = self._receive()
            self.got_state.set()
            try:
                if not self.close_at_once:
                    self._answer(fd)
            finally:
                os.close(fd)
        except BaseException as e:  # noqa: BLE001 - checked by the test
            self.error = e
            self.got_state.set()

    def _receive(self):
        cfd, _ = self.sock._accept()
        conn = _socket.socket(fileno=cfd)
        data, fds = b"", []
        try:
            while True:
                chunk, anc, _, _ = conn.recvmsg(65536, _socket.CMSG_SPACE(4 * 4))
                for level, kind, payload in anc:
                    if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                        fds += [int.from_bytes(payload[i:i + 4], "little")
                                for i in range(0, len(payload) - len(payload) % 4, 4)]
                if not chunk:
                    break
                data += chunk
        finally:
            conn.close()
        self.state = json.loads(data)
        assert len(fds) == 1, fds
        self.fd_link = os.readlink(f"/proc/self/fd/{fds[0]}")
        return fds[0]

    def _answer(self, fd):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(30000):
            raise AssertionError("no seccomp notification within 30 s")
        buf = bytearray(NOTIF.size)
        fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        fields = NOTIF.unpack(buf)
        self.notification = {"id": fields[0], "pid": fields[1], "nr": fields[3]}
        resp = bytearray(NOTIF_RESP.pack(fields[0], 0, -self.answer_errno, 0))
        fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp, True)

    def finish(self):
        self.thread.join(30)
        self.sock.close()
        if self.error is not None:
            raise self.error


def notify_profile(bundle, tmp_path, nnp=True, **extra):
    return use_profile(bundle, rule(["mkdir", "mkdirat"], action="SCMP_ACT_NOTIFY"),
                       listenerPath=str(tmp_path / "agent.sock"), nnp=nnp, **extra)


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
def test_notify_hands_a_working_fd_to_the_listener(rt, bundle, tmp_path, nnp):
    notify_profile(bundle, tmp_path, nnp=nnp, listenerMetadata="MKNOD=/dev/null;v=1")
    bundle.sh("mkdir /probe 2>/result; echo status=$? >>/result")
    agent = Agent(str(tmp_path / "agent.sock"))
    cid = rt.new_id()
    rt("create", "-b", bundle.write(), cid)
    assert agent.got_state.wait(1), "create returned before the listener got the fd"
    if agent.error is not None:
        raise agent.error
    state = rt.state(cid)

    msg = agent.state
    assert msg["fds"] == ["seccompFd"]
    assert msg["pid"] == state["pid"]
    assert msg["metadata"] == "MKNOD=/dev/null;v=1"
    assert msg["ociVersion"].startswith("1.")
    assert msg["state"]["id"] == cid
    assert msg["state"]["pid"] == state["pid"]
    assert msg["state"]["bundle"] == bundle.path
    assert msg["state"]["status"] == "creating"
    assert agent.fd_link == "anon_inode:seccomp notify"

    rt("start", cid)
    agent.finish()
    wait_stopped(rt, cid)
    mkdir_nrs = {seccomp.resolve_syscall(seccomp.Arch.NATIVE, n) for n in ("mkdir", "mkdirat")}
    assert agent.notification["nr"] in mkdir_nrs
    with open(os.path.join(bundle.rootfs, "result")) as f:
        assert f.read() == (f"mkdir: can't create directory '/probe': "
                            f"{os.strerror(errno.EXDEV)}\nstatus=1\n")
    assert not os.path.exists(os.path.join(bundle.rootfs, "probe"))


def test_notify_listener_that_closes_the_fd_does_not_hang_the_container(rt, bundle,
                                                                        tmp_path):
    # (TSYNC with a listener needs the kernel's TSYNC_ESRCH; libseccomp uses it)
    notify_profile(bundle, tmp_path, flags=["SECCOMP_FILTER_FLAG_TSYNC"])
    bundle.sh("mkdir /probe; echo status=$?")
    agent = Agent(str(tmp_path / "agent.sock"), close_at_once=True)
    proc = run(rt, bundle)
    agent.finish()
    # nobody holds the listener any more: the kernel fails the syscall
    assert proc.stdout == "status=1\n"
    assert proc.stderr == ("mkdir: can't create directory '/probe': "
                           f"{os.strerror(errno.ENOSYS)}\n")


def test_notify_without_a_listener_fails_create_cleanly(rt, bundle, tmp_path):
    notify_profile(bundle, tmp_path)
    bundle.write()
    msg = fails(rt, bundle, rt.new_id())
    assert f"seccomp listener {tmp_path / 'agent.sock'}: cannot connect" in msg


# -- bad profiles ---------------------------------------------------------------

BAD = [
    (dict(syscalls=[rule("getcwd"), rule("mkdir", action="SCMP_ACT_FOO")]),
     "linux.seccomp.syscalls[1].action: unknown action 'SCMP_ACT_FOO'"),
    (dict(architectures=["SCMP_ARCH_Z80"]),
     "linux.seccomp.architectures[0]: unknown architecture 'SCMP_ARCH_Z80'"),
    (dict(flags=["SECCOMP_FILTER_FLAG_FAST"]),
     "linux.seccomp.flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_FAST'"),
    (dict(syscalls=[rule("mkdir", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}])]),
     "linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_ALMOST'"),
    (dict(syscalls=[rule("mkdir", action="SCMP_ACT_NOTIFY")]),
     "linux.seccomp.listenerPath: is required"),
]


@pytest.mark.parametrize("profile,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_profile_fails_create_with_one_line(rt, bundle, profile, message):
    bundle.linux["seccomp"] = dict({"defaultAction": "SCMP_ACT_ALLOW"}, **profile)
    bundle.write()
    assert message in fails(rt, bundle, rt.new_id())

