"""Reading a container's json-file logs, docker's way: streams, since/until,
tail, timestamps, and follow (through rotations, until the container stops)."""

import json
import os
import time

from pybox.formats.times import parse_rfc3339
from pybox.monitor.jsonlog import read_entries


def _wanted(entry, stdout, stderr, since, until) -> bool:
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


def _render(entry, timestamps):
    data = entry.get("log", "").encode()
    if timestamps:
        data = entry.get("time", "").encode() + b" " + data
    return (1 if entry.get("stream") == "stdout" else 2), data


def read_logs(engine, c, *, stdout, stderr, follow, since, until, tail, timestamps,
              cancelled):
    path = c.record["LogPath"]
    entries = [e for e in read_entries(path) if _wanted(e, stdout, stderr, since, until)]
    if tail not in (None, "", "all"):
        try:
            n = int(tail)
        except ValueError:
            n = -1
        if n >= 0:
            entries = entries[-n:] if n else []
    # where the existing content ended, to follow from there
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
    running = c.state.get("Running")
    f = None
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
                stopped = (not c.state.get("Running")) or c.exit_seq != seq or c.removed
                if stopped or not running:
                    # one last read happened above after the exit: done
                    if not got:
                        return
                time.sleep(0.05)
    finally:
        if f is not None:
            f.close()
