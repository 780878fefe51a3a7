"""One daemon per data root (issue 13, point 4): a second pyboxd on the data
root, the exec root, the pidfile or the socket of a running one exits at once
with status 1 and one line naming what is taken and by which pid, and touches
nothing of the first, which goes on serving after the second is gone (before,
the second one served too, and its exit broke the first's `run`)."""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from support.paths import PYTHON, SRC
from support.pyboxd import Pyboxd
from support.unixhttp import api
from support.wait import settle

pytestmark = [pytest.mark.root, pytest.mark.engine]


def second_pyboxd(*args, timeout=30):
    """pyboxd with ``args`` -> CompletedProcess; it must not stay (timeout)."""
    return subprocess.run([PYTHON, "-m", "pybox.cli.pyboxd", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHONPATH=SRC))


def serves(sock):
    try:
        return api(sock, "GET", "/_ping", timeout=2) == (200, b"OK")
    except OSError:
        return False


@pytest.fixture
def scratch():
    """Fresh paths for a second daemon: a directory and an exec root (under
    /run, as the engine tests' daemons), removed at the end."""
    base = tempfile.mkdtemp(prefix="pybox-second-")
    exec_root = f"/run/pbs-{uuid.uuid4().hex[:8]}"
    yield base, exec_root
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(exec_root, ignore_errors=True)


def first_state(d):
    """What of the first daemon a second one must leave alone."""
    out = {}
    for path in (d.socket, os.path.join(d.exec_root, "pyboxd.pid"),
                 os.path.join(d.exec_root, "zygote.sock"),
                 os.path.join(d.data_root, "pyboxd.lock"),
                 os.path.join(d.exec_root, "pyboxd.lock")):
        st = os.stat(path)
        out[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    with open(os.path.join(d.exec_root, "pyboxd.pid")) as f:
        out["pid"] = f.read()
    return out


def assert_first_untouched(d, before):
    assert first_state(d) == before
    assert before["pid"].strip() == str(d.pid)
    # the first goes on serving, after the second has gone
    assert d.ok("ps", "-a", "--format", "{{.ID}}") is not None
    assert d.ok("run", "--rm", "busybox", "echo", "first") == "first\n"


@pytest.mark.parametrize("shared", ["data-root", "exec-root", "both"])
def test_second_daemon_on_the_same_roots_exits_at_once(pyboxd, scratch, shared):
    base, exec_root = scratch
    before = first_state(pyboxd)
    data_root = os.path.join(base, "data")
    if shared in ("data-root", "both"):
        data_root = pyboxd.data_root
    if shared in ("exec-root", "both"):
        exec_root = pyboxd.exec_root
    sock = os.path.join(base, "second.sock")
    proc = second_pyboxd("-H", f"unix://{sock}", "--data-root", data_root,
                         "--exec-root", exec_root)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    root, flag = ((pyboxd.data_root, "--data-root") if shared != "exec-root"
                  else (pyboxd.exec_root, "--exec-root"))
    kind = "data root" if flag == "--data-root" else "exec root"
    assert lines[0] == (f"pyboxd: another pyboxd (pid {pyboxd.pid}) is running on the {kind} "
                        f"{root} (it holds {root}/pyboxd.lock); stop it first, or start this "
                        f"one with another {flag}")
    assert not os.path.exists(sock)  # it got nowhere near serving
    assert_first_untouched(pyboxd, before)


def test_second_daemon_with_the_same_pidfile_exits(pyboxd, scratch):
    base, exec_root = scratch
    before = first_state(pyboxd)
    pidfile = os.path.join(pyboxd.exec_root, "pyboxd.pid")
    proc = second_pyboxd("-H", f"unix://{base}/second.sock", "--data-root", f"{base}/data",
                         "--exec-root", exec_root, "--pidfile", pidfile)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (f"pyboxd: pid file {pidfile} is held by another pyboxd (pid "
                           f"{pyboxd.pid}); stop it first, or start this one with another "
                           "--pidfile\n")
    assert_first_untouched(pyboxd, before)
    # the second one's own pidfile is not left behind either
    assert not os.path.exists(os.path.join(exec_root, "pyboxd.pid"))


def test_second_daemon_on_the_same_socket_exits(pyboxd, scratch):
    """Other roots, the same socket: the socket is in use, so the second one
    leaves it (and the first's clients) alone."""
    base, exec_root = scratch
    before = first_state(pyboxd)
    proc = second_pyboxd("-H", pyboxd.host, "--data-root", f"{base}/data",
                         "--exec-root", exec_root)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (f"pyboxd: {pyboxd.socket}: another process is listening on this "
                           "socket (is another pyboxd running with other roots?)\n")
    assert_first_untouched(pyboxd, before)
    assert not os.path.exists(os.path.join(exec_root, "pyboxd.pid"))


def test_a_stopped_daemon_leaves_nothing_that_blocks_the_next(scratch):
    """The locks die with their process: after a daemon stops -- or is killed,
    leaving its pidfile -- the next one on the same roots starts; the pidfile
    holds the running daemon's pid and goes when it stops."""
    d = Pyboxd()
    try:
        d.start()
        pidfile = os.path.join(d.exec_root, "pyboxd.pid")
        with open(pidfile) as f:
            assert f.read() == f"{d.pid}\n"
        d.process.kill()  # no clean-up: a stale pidfile and socket stay
        d.process.wait()
        assert os.path.exists(pidfile)
        d.start()
        with open(pidfile) as f:
            assert f.read() == f"{d.pid}\n"
        assert d.ok("ps", "-q") == ""
    finally:
        problems = d.stop()
    assert not problems, problems
    assert not os.path.exists(pidfile)


def test_racing_starts_leave_one_daemon_and_a_working_socket(scratch):
    """Three pyboxd started at the same moment on the same roots and socket
    (what racing autostarts would do without their own lock): one serves, the
    others exit 1 with the message, and the socket works."""
    base, exec_root = scratch
    data_root, sock = os.path.join(base, "data"), os.path.join(base, "pybox.sock")
    argv = [PYTHON, "-m", "pybox.cli.pyboxd", "-H", f"unix://{sock}", "--data-root", data_root,
            "--exec-root", exec_root]
    env = dict(os.environ, PYTHONPATH=SRC)
    procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) for _ in range(3)]
    try:
        # the losers leave at once, the winner serves on
        settle(lambda: sum(p.poll() is not None for p in procs) >= 2 and serves(sock),
               timeout=30)
        losers = [p for p in procs if p.poll() is not None]
        assert len(losers) == 2, [(p.returncode, p.stderr.read()) for p in losers]
        (winner,) = [p for p in procs if p not in losers]
        for p in losers:
            assert p.returncode == 1
            assert p.stderr.read() == (
                f"pyboxd: another pyboxd (pid {winner.pid}) is running on the data root "
                f"{data_root} (it holds {data_root}/pyboxd.lock); stop it first, or start "
                "this one with another --data-root\n")
        with open(os.path.join(exec_root, "pyboxd.pid")) as f:
            assert f.read() == f"{winner.pid}\n"
        ps = subprocess.run(["docker", "ps", "-q"], capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, DOCKER_HOST=f"unix://{sock}"))
        assert (ps.returncode, ps.stdout) == (0, ""), ps.stderr
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
    assert winner.returncode == 0
    assert not os.path.exists(sock)
    assert not os.path.exists(os.path.join(exec_root, "pyboxd.pid"))
