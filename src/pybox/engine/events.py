"""The engine's event stream (docker events): recent events kept in memory for
--since replays, and live subscribers."""

import collections
import threading
import time


class EventBus:
    def __init__(self, keep: int=1024) -> None:
        self.lock = threading.Lock()
        self.recent = collections.deque(maxlen=keep)
        self.subscribers = []

    def emit(self, kind, action, actor_id, attributes=None, *, scope: str="local"):
        ns = time.time_ns()
        event = {
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

    def subscribe(self):
        """A (deque, condition) pair that receives every event from now on."""
        queue = (collections.deque(), threading.Condition())
        with self.lock:
            self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue) -> None:
        with self.lock:
            if queue in self.subscribers:
                self.subscribers.remove(queue)

    def since(self, since_ns):
        with self.lock:
            return [e for e in self.recent if e["timeNano"] >= since_ns]


def matches(event, filters) -> bool:
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
