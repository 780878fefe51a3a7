"""docker's JSON progress messages for pull and push.

A pull or push reports through a callable ``report(message)`` that gets one dict
per event, in the shape dockerd streams on ``POST /images/create`` and
``POST /images/NAME/push`` (the docker CLI draws its per-layer bars from them):

    {"status": "Pulling fs layer", "progressDetail": {}, "id": "<12 hex>"}
    {"status": "Downloading", "progressDetail": {"current": N, "total": M},
     "progress": "[==>    ]  1.2MB/4.5MB", "id": "..."}
    {"status": "Digest: sha256:..."}
    {"errorDetail": {"message": "..."}, "error": "..."}

Byte counts are throttled as dockerd's progress reader does (every 512 KiB
and at most ten a second per layer, plus the last), so a fast local pull does not
send thousands of lines.  ``report`` may be called from several threads; the
caller's sink must be thread-safe (``Collector`` and the API's writer are).
The messages are typed (``ProgressMessage``): docker's keys, each optional.
"""

import threading
import time
from collections.abc import Callable
from typing import Any, TypedDict

from pybox.formats.sizes import human_size

UPDATE_BYTES = 512 * 1024
UPDATE_SECONDS = 0.1


class ProgressDetail(TypedDict, total=False):
    current: int
    total: int


class ErrorDetail(TypedDict):
    message: str


class ProgressMessage(TypedDict, total=False):
    """One of docker's JSON progress messages (jsonmessage.JSONMessage)."""

    status: str
    id: str
    progressDetail: ProgressDetail
    progress: str
    aux: dict[str, Any]
    errorDetail: ErrorDetail
    error: str


Report = Callable[[ProgressMessage], None]
"""What a pull or push reports its progress to (may be called from several threads)."""


def short_id(digest: str) -> str:
    """The 12 hex digits docker shows for a layer (of its blob digest on pull,
    its diff-id on push)."""
    return digest.partition(":")[2][:12] if ":" in digest else digest[:12]


def status(text: str, layer_id: str | None = None) -> ProgressMessage:
    """A status line; of one layer (with docker's empty progressDetail) when
    ``layer_id`` is given."""
    message: ProgressMessage = {"status": text}
    if layer_id is not None:
        message["progressDetail"] = {}
        message["id"] = layer_id
    return message


def error(text: str) -> ProgressMessage:
    """A stream's last line when the operation failed after it had begun."""
    return {"errorDetail": {"message": text}, "error": text}


def bar(current: int, total: int, started: float | None = None) -> str:
    """JSONProgress.String() as dockerd renders it for a wide terminal."""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(50, int(current / total * 100) // 2)
    box = f"[{'=' * percentage}>{' ' * (50 - percentage)}] "
    numbers = f"{human_size(current):>8}/{human_size(total)}"
    if current > total:
        numbers = f"{human_size(current):>8}"
    left = ""
    if started and current > 0 and percentage < 50:
        elapsed = time.time() - started
        remaining = int(elapsed / current * (total - current))
        left = " " + _go_duration(remaining)
    return box + numbers + left


def _go_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class ByteProgress:
    """Counts bytes of one layer and reports ``action`` (Downloading, Pushing,
    Extracting) with docker's throttling."""

    def __init__(self, report: Report, action: str, layer_id: str, total: int | None) -> None:
        self.report = report
        self.action = action
        self.layer_id = layer_id
        self.total = total or 0
        self.current = 0
        self.started = time.time()
        self._last_bytes = 0
        self._last_time = 0.0

    def add(self, count: int) -> None:
        self.current += count
        now = time.monotonic()
        if (self.current - self._last_bytes >= UPDATE_BYTES
                and now - self._last_time >= UPDATE_SECONDS) or \
                (self.total and self.current >= self.total):
            self.emit(now)

    def reset(self, current: int = 0) -> None:
        self.current = current

    def emit(self, now: float | None = None) -> None:
        self._last_bytes = self.current
        self._last_time = now or time.monotonic()
        self.report({"status": self.action,
                     "progressDetail": {"current": self.current, "total": self.total},
                     "progress": bar(self.current, self.total, self.started),
                     "id": self.layer_id})


class Collector:
    """A thread-safe sink that keeps every message (tests, the library's callers
    that want the lines afterwards)."""

    def __init__(self, echo: Report | None = None) -> None:
        self.messages: list[ProgressMessage] = []
        self.lock = threading.Lock()
        self.echo = echo

    def __call__(self, message: ProgressMessage) -> None:
        with self.lock:
            self.messages.append(message)
        if self.echo:
            self.echo(message)

    def statuses(self, layer_id: str | None = None) -> list[str | None]:
        return [m.get("status") for m in self.messages
                if layer_id is None or m.get("id") == layer_id]


def discard(message: ProgressMessage) -> None:
    """The sink of a caller that wants no progress."""
