"""pybox.linux.wait: the one wait-status decoder (docker's 128+N) and the
subreaper helper, through the syscalls interface."""

import os
import signal

from pybox.linux import constants as C
from pybox.linux.wait import UNKNOWN_EXIT, become_subreaper, exit_code

from .fakes import FakeSyscalls


def _status_of_child(body):
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return status


def test_an_exit_code_is_reported_as_is():
    assert exit_code(_status_of_child(lambda: os._exit(0))) == 0
    assert exit_code(_status_of_child(lambda: os._exit(3))) == 3
    assert exit_code(_status_of_child(lambda: os._exit(255))) == 255


def test_death_by_signal_n_is_128_plus_n():
    assert exit_code(_status_of_child(lambda: os.kill(os.getpid(), signal.SIGKILL))) == 137
    assert exit_code(_status_of_child(lambda: os.kill(os.getpid(), signal.SIGTERM))) == 143


def test_a_stop_report_is_no_exit_code():
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    try:
        _, status = os.waitpid(pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        assert exit_code(status) == UNKNOWN_EXIT
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_become_subreaper_is_one_prctl():
    sc = FakeSyscalls()
    become_subreaper(sc)
    assert sc.calls == [("prctl", C.PR_SET_CHILD_SUBREAPER, 1)]
