"""The runtime's log: --log FILE, --log-format text|json, --debug.

containerd (go-runc) runs the runtime with ``--log FILE --log-format json`` and,
when a command fails, reads the last {"level":"error","msg":...} line of that file
to tell the user why.  So every error goes to the log in the chosen format, and
also to stderr as one line.  No ``logging`` import: it costs start-up time.
"""

from __future__ import annotations

import os
import sys

from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano

LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


class Log:
    """One destination (a file, else stderr) in one format, from a minimum level."""

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False,
                 prog: str = "pybox-runtime") -> None:
        self.path = path
        self.fmt = fmt
        self.min_level = 0 if debug else 1
        self.prog = prog
        self._fd: int | None = None

    def _open(self) -> int | None:
        if self._fd is None and self.path:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                   | os.O_CLOEXEC, 0o600)
            except OSError:
                self.path = None  # cannot log there; stderr still gets errors
        return self._fd

    def _line(self, level: str, msg: str) -> str:
        if self.fmt == "json":
            return fastjson.dumps({"level": level, "msg": msg, "time": rfc3339_nano()}) + "\n"
        return f'time="{rfc3339_nano()}" level={level} msg={fastjson.dumps(msg)}\n'

    def log(self, level: str, msg: str) -> None:
        if LEVELS[level] < self.min_level:
            return
        fd = self._open()
        line = self._line(level, msg)
        if fd is not None:
            try:
                os.write(fd, line.encode())
            except OSError:
                pass
        elif level != "error":
            # Without --log, debug/info/warnings go to stderr (errors are printed
            # there by the CLI anyway, exactly once).
            sys.stderr.write(line)

    def debug(self, msg: str) -> None:
        self.log("debug", msg)

    def info(self, msg: str) -> None:
        self.log("info", msg)

    def warning(self, msg: str) -> None:
        self.log("warning", msg)

    def error(self, msg: str) -> None:
        self.log("error", msg)


# The process-wide log; the CLI replaces it after parsing global flags.
current = Log()
