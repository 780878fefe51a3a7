"""Executable lookup and environment handling as runc does them."""

import os

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
