"""Daemon autostart: with the default address and nothing listening, pybox
starts ``pyboxd -H unix://SOCKET`` (found on PATH) detached, waits for its
ping, and proceeds; a stand-in pyboxd plays the daemon here."""

import os
import signal
import sys
import time

import pytest

from pybox.cli.pybox import daemon
from pybox.errors import DaemonUnreachable

pytestmark = pytest.mark.unit

FAKE_PYBOXD = r'''#!{python}
import os, socket, sys
path = sys.argv[sys.argv.index("-H") + 1][len("unix://"):]
with open(os.path.join(os.path.dirname(path), "pyboxd.pid"), "w") as f:
    f.write("%d %d" % (os.getpid(), os.getsid(0)))
print("fake pyboxd serving", path, flush=True)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(8)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: 2\r\n\r\nOK")
    c.close()
'''


def test_autostart_starts_a_detached_pyboxd(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pyboxd"
    fake.write_text(FAKE_PYBOXD.format(python=sys.executable))
    fake.chmod(0o755)
    run = tmp_path / "run"
    logs = tmp_path / "log"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '')}")
    monkeypatch.setattr(daemon, "LOG_DIRS", (str(logs),))
    host = f"unix://{run}/pybox.sock"
    assert daemon.start_daemon(host) is True
    pid, sid = map(int, (run / "pyboxd.pid").read_text().split())
    try:
        assert sid == pid                      # its own session (setsid)
        assert daemon.ping(str(run / "pybox.sock"))
        assert "fake pyboxd serving" in (logs / "pyboxd.log").read_text()
        assert daemon.start_daemon(host) is True   # already up: nothing new started
        assert int((run / "pyboxd.pid").read_text().split()[0]) == pid
    finally:
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            time.sleep(0.01)


def test_autostart_without_pyboxd(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DaemonUnreachable, match="pyboxd was not found on PATH"):
        daemon.start_daemon(f"unix://{tmp_path}/pybox.sock")


def test_a_pyboxd_that_dies_is_reported(tmp_path, monkeypatch):
    (tmp_path / "pyboxd").write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    (tmp_path / "pyboxd").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(daemon, "LOG_DIRS", (str(tmp_path / "log"),))
    with pytest.raises(DaemonUnreachable, match="pyboxd exited with status 3"):
        daemon.start_daemon(f"unix://{tmp_path}/run/pybox.sock")
    assert "broken" in (tmp_path / "log" / "pyboxd.log").read_text()


def test_explicit_host_never_autostarts(monkeypatch):
    from pybox.cli.pybox import Cli
    monkeypatch.delenv("PYBOX_HOST", raising=False)
    assert Cli().explicit_host is False
    assert Cli("unix:///x.sock").explicit_host is True
    monkeypatch.setenv("PYBOX_HOST", "unix:///y.sock")
    assert Cli().explicit_host is True and Cli().host == "unix:///y.sock"
