"""pybox-runtime's command line accepts what runc's callers send."""

import pytest

from pybox.cli import runtime as cli
from pybox.errors import UsageError
from pybox.runtime.signals import parse_signal

pytestmark = pytest.mark.unit


def test_containerd_style_invocation():
    g, name, opts, args = cli.parse([
        "--root", "/run/containerd/runc/default", "--log", "/x/log.json",
        "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/b/init.pid",
        "cid"])
    assert g == {"root": "/run/containerd/runc/default", "log": "/x/log.json",
                 "log_format": "json"}
    assert name == "create" and args == ["cid"]
    assert opts == {"bundle": "/b", "pid_file": "/b/init.pid"}


def test_equals_single_dash_and_bools():
    g, name, opts, args = cli.parse(["--debug", "--systemd-cgroup=false", "run", "-d",
                                     "-bundle=/b", "--no-pivot", "x"])
    assert g == {"debug": True, "systemd_cgroup": False}
    assert opts == {"detach": True, "bundle": "/b", "no_pivot": True}


def test_kill_and_delete_forms():
    assert cli.parse(["kill", "--all", "c", "KILL"])[2:] == ({"all": True}, ["c", "KILL"])
    assert cli.parse(["kill", "c"])[3] == ["c"]
    assert cli.parse(["delete", "c", "--force"])[2:] == ({"force": True}, ["c"])
    assert cli.parse(["delete", "-f", "c"])[2] == {"force": True}


def test_usage_errors():
    with pytest.raises(UsageError, match="flag provided but not defined: --bogus"):
        cli.parse(["create", "--bogus", "x"])
    with pytest.raises(UsageError, match='"start" requires exactly 1'):
        cli.parse(["start"])
    with pytest.raises(UsageError, match="no such command"):
        cli.parse(["frobnicate"])
    with pytest.raises(UsageError, match="needs an argument"):
        cli.parse(["create", "--bundle"])
    with pytest.raises(UsageError, match="must be an integer"):
        cli.parse(["create", "--preserve-fds", "two", "x"])


def test_main_exit_codes(capsys):
    assert cli.main(["--version"]) == 0
    assert "pybox-runtime version" in capsys.readouterr().out
    assert cli.main(["start"]) == 1
    assert capsys.readouterr().err.startswith("pybox-runtime: ")


@pytest.mark.parametrize("text,num", [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9),
                                      ("TERM", 15), ("SIGUSR1", 10), ("RTMIN+1", 35),
                                      ("HUP", 1)])
def test_parse_signal(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["NOPE", "0", "99", "RTMIN+99"])
def test_parse_signal_rejects(text):
    with pytest.raises(UsageError):
        parse_signal(text)
