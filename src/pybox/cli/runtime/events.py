"""pybox-runtime events [--stats] [--interval 5s] ID

JSON lines as runc prints them: {"type": "stats", "id": ID, "data": {...}}
every interval (once with --stats), and {"type": "oom", "id": ID} when the
kernel OOM-kills a process in the container.  Ends when the container stops."""

from __future__ import annotations

import sys
import time

from pybox.errors import UsageError
from pybox.formats import fastjson
from pybox.formats.durations import go_duration
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def parse_duration(text: str) -> float:
    """--interval: Go's time.ParseDuration ("5s", "500ms", "1m30s") -> seconds."""
    text = text.strip()
    if not text:
        raise UsageError("empty --interval")
    try:
        total = go_duration(text) / 1e9
    except ValueError as e:
        missing = ": missing unit" if "missing unit" in str(e) else ""
        raise UsageError(f"invalid duration {text!r}{missing}") from None
    if total <= 0:
        raise UsageError("--interval must be positive")
    return total


def emit(kind: str, cid: str, data: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    sys.stdout.write(fastjson.dumps(event) + "\n")
    sys.stdout.flush()


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    interval = parse_duration(opts.get("interval") or "5s")
    c = Container.load(ctx.root, args[0])
    if c.status() == "stopped":
        raise UsageError(f"container {c.id} is not running")
    mgr = c.require_cgroup()
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
