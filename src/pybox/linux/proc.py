"""Readers for /proc: what the kernel says about a process.  No policy."""

from __future__ import annotations

import os


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, as a list of strings
    (index 0 is the state letter, field 3 of the man page).  None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(b")") + 2:].decode().split()


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (man proc: field 22), or
    None if the process does not exist.  Together with the pid it names one
    process for good: a recycled pid has a different start time."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def process_state(pid: int) -> str | None:
    """State letter (R, S, D, Z, T, ...) or None if the process does not exist."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def is_alive(pid: int, expected_start_time: int | None = None) -> bool:
    """True if PID exists, is not a zombie and (if given) has the expected start
    time, i.e. is still the very process we recorded."""
    fields = stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return expected_start_time is None or int(fields[19]) == expected_start_time


def parent_pid(pid: int) -> int | None:
    """The parent's pid (field 4), or None if the process does not exist."""
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def namespace_inode(pid: int, ns: str) -> int | None:
    """Inode of /proc/PID/ns/NS (identifies the namespace), or None."""
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def read_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict of strings."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def children_of(pid: int) -> list[int]:
    """Direct children, from /proc/PID/task/*/children."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out
