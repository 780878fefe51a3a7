"""pybox-runtime events [--stats] [--interval 5s] ID

JSON lines as runc prints them: {"type": "stats", "id": ID, "data": {...}}
every interval (once with --stats), and {"type": "oom", "id": ID} when the
kernel OOM-kills a process in the container.  Ends when the container stops."""

import sys
import time

from pybox.errors import UsageError
from pybox.oci import fastjson
from pybox.runtime.container import Container

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """Go's time.ParseDuration for the simple forms ("5s", "500ms", "1m30s")."""
    total, num, i = 0.0, "", 0
    text = text.strip()
    if not text:
        raise UsageError("empty --interval")
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = ""
        while i < len(text) and not (text[i].isdigit() or text[i] == "."):
            unit += text[i]
            i += 1
        if not num or unit not in UNITS:
            raise UsageError(f"invalid duration {text!r}")
        total += float(num) * UNITS[unit]
        num = ""
    if num:
        raise UsageError(f"invalid duration {text!r}: missing unit")
    if total <= 0:
        raise UsageError("--interval must be positive")
    return total


def emit(kind, cid, data=None) -> None:
    event = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    sys.stdout.write(fastjson.dumps(event) + "\n")
    sys.stdout.flush()


def run(ctx, opts, args) -> int:
    interval = parse_duration(opts.get("interval") or "5s")
    c = Container.load(ctx.root, args[0])
    if c.status() == "stopped":
        raise UsageError(f"container {c.id} is not running")
    mgr = c._require_cgroup()
    if opts.get("stats"):
        emit("stats", c.id, mgr.stats())
        return 0
    ooms = mgr.oom_kill_count()
    next_stats = time.monotonic()
    while True:
        # OOM kills first: the killed process may be init, and the container
        # stopping must not swallow the event that explains it
        count = mgr.oom_kill_count()
        if count > ooms:
            for _ in range(count - ooms):
                emit("oom", c.id)
            ooms = count
        if not c.init_alive():
            return 0
        now = time.monotonic()
        if now >= next_stats:
            emit("stats", c.id, mgr.stats())
            next_stats = now + interval
        time.sleep(min(0.1, max(0.0, next_stats - time.monotonic())))
