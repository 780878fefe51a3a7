"""docker's json-file log driver format, with rotation on by default.

One JSON object per line: {"log": "text\n", "stream": "stdout"|"stderr",
"time": RFC3339Nano}.  Output is split into entries at newlines (a line longer
than 16 KiB is cut, as docker does); the file is rotated (pybox.monitor.logfile,
as dockerd) once it reached ``max_size`` bytes, keeping ``max_files`` files in
all, rotated ones gzipped with ``compress`` (docker's log-opts max-size,
max-file, compress; pybox's defaults are 10 MiB and 3 -- docker's own default,
unbounded, fills disks).
"""

from __future__ import annotations

import time

from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.monitor.logfile import RotatingFile

MAX_LINE = 16 * 1024
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3


_GO_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
               ("\u2029", "\\u2029"))


def _escape(obj: object) -> str:
    """JSON as Go writes it: &, <, >, U+2028 and U+2029 escaped (docker's log
    lines are byte for byte dockerd's)."""
    text = fastjson.dumps(obj)
    for char, escaped in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text


class LogWriter:
    """The monitor's writer of one container's log (its stdout and stderr)."""

    def __init__(self, path: str, max_size: int | None = DEFAULT_MAX_SIZE,
                 max_files: int | None = DEFAULT_MAX_FILES, compress: bool = False,
                 attrs: list[tuple[str, str]] | None = None) -> None:
        self.path = path
        # docker's "attrs" (the labels, env and tag the options ask for), keys sorted
        self.attrs = (',"attrs":' + _escape(dict(sorted(attrs)))) if attrs else ""
        self.partial = {"stdout": b"", "stderr": b""}
        self.file = RotatingFile(path, max_size if max_size and max_size > 0 else -1,
                                 max(1, max_files or 1), compress)

    def write(self, stream: str, data: bytes) -> None:
        """Buffer container output; write every complete line as one entry."""
        buf = self.partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                if len(buf) >= MAX_LINE:
                    self._entry(stream, buf[:MAX_LINE])
                    buf = buf[MAX_LINE:]
                    continue
                break
            self._entry(stream, buf[:nl + 1])
            buf = buf[nl + 1:]
        self.partial[stream] = buf

    def flush(self) -> None:
        """Write what is left without a newline (at exit)."""
        for stream, buf in self.partial.items():
            if buf:
                self._entry(stream, buf)
        self.partial = {"stdout": b"", "stderr": b""}

    def _entry(self, stream: str, data: bytes) -> None:
        line = ('{"log":' + _escape(data.decode("utf-8", "replace")) + ',"stream":"' + stream
                + '"' + self.attrs + ',"time":"' + rfc3339_nano_fixed() + '"}\n').encode()
        self.file.write(line, time.time_ns())

    def close(self) -> None:
        self.flush()
        self.file.close()
