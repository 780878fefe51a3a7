"""The create/exec protocol's order: stage1 reports the process's pid before the
process may send anything on the same channel (hooks, seccomp fd, ready)."""

import os
import time
from collections.abc import Sequence

import pytest

from pybox.runtime import launch
from pybox.runtime.sync import Channel

pytestmark = pytest.mark.unit


class SlowToReport(Channel):
    """stage1 descheduled between its fork and its "pid" (a loaded machine)."""

    def send(self, msg_type: str, fds: Sequence[int] = (), **fields: object) -> None:
        if msg_type == "pid":
            time.sleep(0.3)
        super().send(msg_type, fds, **fields)


def test_the_process_speaks_only_after_stage1_reported_its_pid():
    parent, child_end = Channel.pair()
    child = SlowToReport(child_end.sock)
    pid = launch._fork_reporting_pid(child)
    if pid == 0:  # the container's process: done with its set-up at once
        try:
            child.send("ready")
        finally:
            os._exit(0)
    try:
        first, second = parent.recv(), parent.recv()
    finally:
        os.waitpid(pid, 0)
        parent.close()
        child.close()
    assert (first["type"], first.get("pid")) == ("pid", pid)
    assert second["type"] == "ready"


def test_the_process_exits_if_stage1_dies_before_reporting(monkeypatch):
    class Dead(Channel):
        def send(self, msg_type: str, fds: Sequence[int] = (), **fields: object) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    parent, child_end = Channel.pair()
    child = Dead(child_end.sock)
    try:
        with pytest.raises(BrokenPipeError):
            pid = launch._fork_reporting_pid(child)
            if pid == 0:
                os._exit(0)  # not reached: the gate ends the child first
    finally:
        parent.close()
        child.close()
    _, status = os.waitpid(forked[0], 0)
    assert os.waitstatus_to_exitcode(status) == 1  # it never went on
