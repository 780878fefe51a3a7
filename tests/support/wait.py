"""Bounded waits: poll until something the daemon does on its own threads
has happened.  A safety net against hangs, never an assertion on speed."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str | None = None, timeout: float = 30.0,
             interval: float = 0.05) -> T:
    """Call ``predicate()`` until it returns something true; return that.

    When ``timeout`` seconds pass first: with ``what`` (words naming what was
    awaited) raise AssertionError("timed out waiting for <what>"); without,
    return the last (false) value, for the caller's own assert to judge."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if what is not None:
                raise AssertionError(f"timed out waiting for {what}")
            return value
        time.sleep(interval)


def settle(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """``wait_for`` with a short default: for what should already be so (a
    cleanup the daemon finishes after answering), where waiting longer for a
    false answer would only slow the test down."""
    return wait_for(predicate, None, timeout, interval)
