"""The engine's event stream (docker events): recent events kept in memory for
--since replays, and live subscribers; ``attributes`` gives a container
event's Actor.Attributes (its image, name and labels), for every module that
emits one."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pybox.engine.store import Container

Event = dict[str, Any]  # docker's event JSON
Subscriber = tuple[collections.deque[Event], threading.Condition]


def attributes(c: Container, **extra: str) -> dict[str, str]:
    """A container event's attributes, as dockerd's: image, name, the
    container's labels, then ``extra`` (exitCode, signal, execID...)."""
    attrs: dict[str, Any] = {"image": c.config.get("Image", ""), "name": c.name}
    labels = c.config.get("Labels")
    if isinstance(labels, dict):  # an odd stored record may hold anything
        attrs.update(labels)
    attrs.update(extra)
    return attrs


class EventBus:
    def __init__(self, keep: int = 1024) -> None:
        self.lock = threading.Lock()
        self.recent: collections.deque[Event] = collections.deque(maxlen=keep)
        self.subscribers: list[Subscriber] = []

    def emit(self, kind: str, action: str, actor_id: str,
             attributes: Mapping[str, Any] | None = None, *, scope: str = "local") -> Event:
        ns = time.time_ns()
        event: Event = {
            "Type": kind, "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": scope, "time": ns // 1_000_000_000, "timeNano": ns,
        }
        if kind == "container":
            # the legacy fields the CLI still prints
            event["status"] = action
            event["id"] = actor_id
            if attributes and "image" in attributes:
                event["from"] = attributes["image"]
        with self.lock:
            self.recent.append(event)
            subscribers = list(self.subscribers)
        for queue in subscribers:
            with queue[1]:
                queue[0].append(event)
                queue[1].notify()
        return event

    def subscribe(self) -> Subscriber:
        """A (deque, condition) pair that receives every event from now on."""
        queue: Subscriber = (collections.deque(), threading.Condition())
        with self.lock:
            self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: Subscriber) -> None:
        with self.lock:
            if queue in self.subscribers:
                self.subscribers.remove(queue)

    def since(self, since_ns: int) -> list[Event]:
        with self.lock:
            return [e for e in self.recent if e["timeNano"] >= since_ns]

    def watch(self, since: float, until: float, filters: Mapping[str, Any] | None,
              cancelled: Callable[[], bool]) -> Watch:
        """docker events: a Watch subscribed now (see Watch)."""
        return Watch(self, since, until, filters, cancelled)


class Watch:
    """docker events' stream: the recent events from ``since`` (unix seconds;
    0: none replayed), then the live ones, until ``until`` (0: none) has passed
    or ``cancelled()`` (the client left); only those ``filters`` match.  It
    subscribes when made, so that nothing emitted after is missed (the API makes
    it before its 200 goes out); ``finished`` says the stream reached until (the
    answer ends) rather than was cancelled; ``close`` unsubscribes."""

    def __init__(self, bus: EventBus, since: float, until: float,
                 filters: Mapping[str, Any] | None, cancelled: Callable[[], bool]) -> None:
        self.bus = bus
        self.since = since
        self.until = until
        self.filters = filters
        self.cancelled = cancelled
        self.finished = False
        self.queue = bus.subscribe()

    def __iter__(self) -> Iterator[Event]:
        since, until = self.since, self.until
        if since:
            for e in self.bus.since(int(since * 1e9)):
                if until and e["timeNano"] > until * 1e9:
                    break
                if matches(e, self.filters):
                    yield e
        if until and until <= time.time():
            self.finished = True
            return
        events_q, cond = self.queue
        while True:
            with cond:
                if not events_q:
                    cond.wait(0.5)
                batch = list(events_q)
                events_q.clear()
            for e in batch:
                if since and e["timeNano"] < since * 1e9:
                    continue
                if matches(e, self.filters):
                    yield e
            if until and time.time() >= until:
                self.finished = True
                return
            if self.cancelled():
                return

    def close(self) -> None:
        self.bus.unsubscribe(self.queue)


def matches(event: Event, filters: Mapping[str, Any] | None) -> bool:
    """docker's events filters: type, event/action, container, image, label..."""
    if not filters:
        return True
    actor = event["Actor"]
    attrs = actor.get("Attributes") or {}
    for key, values in filters.items():
        wanted = set(values)
        if key == "type" and event["Type"] not in wanted:
            return False
        if key == "event":
            action = event["Action"].split(":")[0]
            if action not in wanted and event["Action"] not in wanted:
                return False
        if key == "container" and event["Type"] == "container":
            if not (actor["ID"] in wanted or attrs.get("name") in wanted
                    or any(actor["ID"].startswith(v) for v in wanted)):
                return False
        if key == "image" and attrs.get("image") not in wanted:
            return False
        if key == "label":
            for label in wanted:
                k, _, v = label.partition("=")
                if k not in attrs or (v and attrs[k] != v):
                    return False
        if key in ("network", "volume") and event["Type"] == key and actor["ID"] not in wanted \
                and attrs.get("name") not in wanted:
            return False
    return True
