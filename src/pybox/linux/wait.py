"""Child processes ended and adopted: the one decoder of a wait status and the
one way to become a child subreaper.

A container's init is a grandchild of whoever created it (the runtime's stage1
forks it and exits), so the process that must wait for it -- ``pybox-runtime
run``/``exec`` in the foreground, pyboxd's per-container monitor -- first makes
itself the subreaper that init is re-parented to.  The exit status it then
collects is reported the way docker and runc report it: the program's exit
code, or 128+N when signal N killed it.  No policy.

Both sit on hot paths (the runtime's foreground commands, pyboxd's monitors):
at import this module loads nothing but ``os``, so a monitor zygote that
preloads it for ``exit_code`` does not carry the syscalls interface too."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.linux.syscalls import Syscalls

UNKNOWN_EXIT = 255  # no status to decode (not our child any more, or stopped)


def exit_code(status: int) -> int:
    """A waitpid(2) status as docker shows it: the exit code when the process
    exited, 128+N when signal N killed it, 255 for anything else (a stop or
    continue report is not an end)."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return UNKNOWN_EXIT


def become_subreaper(sc: Syscalls | None = None) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphans among our descendants (a
    container's init once stage1 exits) are re-parented to us, so we can wait
    for them.  ``sc`` defaults to the process-wide real syscalls."""
    from pybox.linux import constants as C  # noqa: PLC0415 -- exit_code's users need neither
    from pybox.linux import syscalls  # noqa: PLC0415 -- (see the module's doc)

    (sc or syscalls.real()).prctl(C.PR_SET_CHILD_SUBREAPER, 1)
