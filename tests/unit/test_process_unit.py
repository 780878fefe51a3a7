"""Executable lookup and environment handling as runc does them."""


import pytest

from pybox.errors import ProcessSetupError
from pybox.runtime import process as P

pytestmark = pytest.mark.unit


def test_env_dict_later_entries_win():
    assert P.env_dict(["A=1", "B=x=y", "A=2", "C="]) == {"A": "2", "B": "x=y", "C": ""}


def test_lookup_in_path(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    noexec = d / "data"
    noexec.write_text("x")
    assert P.lookup_executable("tool", {"PATH": f"/nonexistent:{d}"}) == str(exe)
    with pytest.raises(ProcessSetupError, match='exec: "missing": executable file not '
                                                'found in \\$PATH') as e:
        P.lookup_executable("missing", {"PATH": str(d)})
    assert e.value.errno == 2
    with pytest.raises(ProcessSetupError, match="permission denied"):
        P.lookup_executable(str(noexec), {})
    with pytest.raises(ProcessSetupError, match="is a directory"):
        P.lookup_executable(str(d), {})


def test_default_home_from_passwd_as_runc(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\n"
                      "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                      "again:x:1:1:second entry:/elsewhere:/bin/false\n")
    env = {"PATH": "/bin"}
    P.default_home(env, 0, str(passwd))
    assert env == {"PATH": "/bin", "HOME": "/root"}
    env = {}
    P.default_home(env, 1, str(passwd))
    assert env["HOME"] == "/usr/sbin"  # the first entry for the uid wins
    env = {"HOME": ""}
    P.default_home(env, 4242, str(passwd))  # no entry: "/"
    assert env["HOME"] == "/"
    env = {}
    P.default_home(env, 0, str(tmp_path / "missing"))  # no /etc/passwd: "/"
    assert env["HOME"] == "/"
    env = {"HOME": "/set/by/caller"}
    P.default_home(env, 0, str(passwd))
    assert env["HOME"] == "/set/by/caller"
