"""Terminals: console sockets (detached) and the foreground relay."""

import fcntl
import os
import pty
import socket
import struct
import termios
import time

import pytest

pytestmark = pytest.mark.root


def recv_master(server):
    conn, _ = server.accept()
    msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
    conn.close()
    fds = [struct.unpack("i", data[:4])[0] for level, kind, data in anc
           if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS]
    return msg.decode(), fds[0]


def read_until(fd, text, timeout=10):
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and text.encode() not in out:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def test_console_socket_gets_pty_master(rt, bundle, tmp_path):
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 40, "width": 132}
    bundle.sh("tty; stty size; read line; echo got:$line")
    cid = rt.new_id()
    rt("create", "--console-socket", path, "-b", bundle.write(), cid)
    name, master = recv_master(server)
    assert name.startswith("/dev/pts/")
    rt("start", cid)
    try:
        out = read_until(master, "40 132")
        assert "/dev/pts/0" in out and "40 132" in out
        os.write(master, b"typed\r")
        assert "got:typed" in read_until(master, "got:typed")
    finally:
        os.close(master)
        server.close()


def test_dev_console_is_the_terminal(rt, bundle, tmp_path):
    # runc bind-mounts the pty slave on /dev/console (docker run -t, podman -t)
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    bundle.process["terminal"] = True
    bundle.sh('[ "$(stat -c %t:%T /dev/console)" = "$(stat -c %t:%T "$(tty)")" ] && '
              'grep -c " /dev/console " /proc/self/mountinfo && echo via-console > /dev/console')
    cid = rt.new_id()
    rt("create", "--console-socket", path, "-b", bundle.write(), cid)
    _, master = recv_master(server)
    rt("start", cid)
    try:
        out = read_until(master, "via-console")
        assert "1\r\nvia-console" in out, out
    finally:
        os.close(master)
        server.close()


def test_detached_terminal_needs_console_socket(rt, bundle):
    bundle.process["terminal"] = True
    err = rt("run", "-d", "-b", bundle.write(), rt.new_id(), check=False)
    assert err.returncode != 0 and "--console-socket" in err.stderr


def run_on_pty(argv, script_input=b"", rows=33, cols=101, timeout=10):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if script_input and not sent and b"ready" in out:
            os.write(fd, script_input)
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_foreground_run_with_terminal(rt, bundle):
    bundle.process["terminal"] = True
    bundle.sh("stty size; echo ready; read x; echo got:$x; exit 4")
    out, code = run_on_pty(rt.cmd + ["--root", rt.root, "run", "-b", bundle.write(),
                                     rt.new_id()], b"hello\r")
    assert "33 101" in out and "got:hello" in out
    assert code == 4


def test_exec_tty_in_foreground(rt, bundle):
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), cid)
    out, code = run_on_pty(rt.cmd + ["--root", rt.root, "exec", "-t", cid, "sh", "-c",
                                     "tty; echo ready; read x; echo got:$x"], b"abc\r")
    assert "/dev/pts/" in out and "got:abc" in out and code == 0
