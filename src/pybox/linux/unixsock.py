"""AF_UNIX paths longer than sun_path's 108 bytes.

bind() and connect() take a path of at most 107 bytes; container state lives at
paths like /run/X/containers/<64-hex id>/monitor.sock that can exceed it.  A
longer path is reached through its directory opened with O_PATH:
/proc/self/fd/N/NAME is short and names the same place."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

UNIX_PATH_MAX = 107


def call(fn: Callable[[str], T], path: str) -> T:
    """fn(path) for a bind or connect, shortening ``path`` when needed."""
    if len(os.fsencode(path)) <= UNIX_PATH_MAX:
        return fn(path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_CLOEXEC)
    try:
        return fn(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
    finally:
        os.close(dfd)
