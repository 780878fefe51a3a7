"""Reading a container's json-file logs, docker's way: streams, since/until,
tail, timestamps, and follow (through rotations, until the container stops)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from pybox.engine.store import Container
from pybox.formats.times import parse_rfc3339
from pybox.monitor.jsonlog import read_entries


def _wanted(entry: dict[str, Any], stdout: bool, stderr: bool, since: float,
            until: float) -> bool:
    stream = entry.get("stream")
    if stream == "stdout" and not stdout or stream == "stderr" and not stderr:
        return False
    if since or until:
        t = parse_rfc3339(entry.get("time"))
        if since and t < since:
            return False
        if until and t > until:
            return False
    return True


def _render(entry: dict[str, Any], timestamps: bool) -> tuple[int, bytes]:
    data = entry.get("log", "").encode()
    if timestamps:
        data = entry.get("time", "").encode() + b" " + data
    return (1 if entry.get("stream") == "stdout" else 2), data


def read_logs(c: Container, *, stdout: bool, stderr: bool, follow: bool, since: float,
              until: float, tail: str | None, timestamps: bool,
              cancelled: Callable[[], bool] | None) -> Iterator[tuple[int, bytes]]:
    path = c.log_path
    entries = [e for e in read_entries(path) if _wanted(e, stdout, stderr, since, until)]
    if tail not in (None, "", "all"):
        try:
            n = int(tail)
        except ValueError:
            n = -1
        if n >= 0:
            entries = entries[-n:] if n else []
    # where the existing content ended, to follow from there
    inode: int | None
    try:
        st = os.stat(path)
        inode, offset = st.st_ino, st.st_size
    except OSError:
        inode, offset = None, 0
    for e in entries:
        yield _render(e, timestamps)
    if not follow or (until and until < time.time()):
        return
    seq = c.exit_seq
    running = c.state.running
    f: IO[bytes] | None = None
    try:
        while True:
            if cancelled is not None and cancelled():
                return
            if f is None:
                try:
                    f = open(path, "rb")
                    st = os.fstat(f.fileno())
                    if st.st_ino == inode:
                        f.seek(offset)
                    inode = st.st_ino
                except FileNotFoundError:
                    f = None
            got = False
            if f is not None:
                for line in f:
                    if not line.endswith(b"\n"):
                        f.seek(-len(line), os.SEEK_CUR)  # a line being written
                        break
                    got = True
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if _wanted(e, stdout, stderr, since, until):
                        yield _render(e, timestamps)
                try:
                    if os.stat(path).st_ino != inode:  # rotated: finish old, then new
                        f.close()
                        f = None
                        offset = 0
                        continue
                except FileNotFoundError:
                    pass
            if not got:
                stopped = (not c.state.running) or c.exit_seq != seq or c.removed
                if stopped or not running:
                    # one last read happened above after the exit: done
                    if not got:
                        return
                time.sleep(0.05)
    finally:
        if f is not None:
            f.close()
