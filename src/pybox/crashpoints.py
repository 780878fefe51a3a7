"""Crash points: places where a test can make a pybox process die by SIGKILL.

    PYBOX_CRASH_AT=engine.rm.rootfs       the first process to reach that point
    PYBOX_CRASH_AT=runtime.create.forked:3   ... the third time it reaches it
    PYBOX_CRASH_REPORT=/tmp/x             (optional) the process appends
                                          "NAME PID\\n" there before it dies

Test-only.  The variable is read once, when this module is first imported
(pyboxd imports it before anything else; the monitor zygote, the monitors, their
runtime "creators" and every ``pybox-runtime`` inherit pyboxd's environment, so
a point in the runtime or a monitor kills that process, not pyboxd).  Each
process counts its own hits.  Unset -- always, outside tests -- ``crashpoint``
is a function that returns at once: one call, nothing imported.

Why: recovery (pybox.engine.recovery) must finish or undo whatever a crash
interrupted, and the only honest test of that is a crash at each step that
leaves something half-done.  tests/crash drives every point named in the
source (``crashpoint("...")`` calls) and checks the restarted daemon.
"""

import os

ENV = "PYBOX_CRASH_AT"
REPORT_ENV = "PYBOX_CRASH_REPORT"


def _parse(text: str) -> tuple[str, int]:
    name, _, count = text.strip().partition(":")
    try:
        n = int(count) if count else 1
    except ValueError:
        n = 1
    return name, max(n, 1)


_armed = os.environ.get(ENV) or ""

if not _armed:
    def crashpoint(name: str) -> None:
        """No crash point armed: nothing to do."""
        return None
else:
    _NAME, _COUNT = _parse(_armed)
    _REPORT = os.environ.get(REPORT_ENV) or ""
    _hits = [0]

    def crashpoint(name: str) -> None:
        """Die here (SIGKILL, nothing flushed or cleaned up) if this is the
        armed point and its count is reached."""
        if name != _NAME:
            return
        _hits[0] += 1
        if _hits[0] < _COUNT:
            return
        if _REPORT:
            try:
                fd = os.open(_REPORT, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                             0o644)
                try:
                    os.write(fd, f"{name} {os.getpid()}\n".encode())
                finally:
                    os.close(fd)
            except OSError:
                pass
        os.kill(os.getpid(), 9)
        os._exit(137)  # a pid namespace's init cannot SIGKILL itself
