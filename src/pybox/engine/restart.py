"""Restart policies (--restart no | on-failure[:N] | always | unless-stopped):
whether an exit brings the container back, and docker's back-off before it
does (100 ms doubling to 1 minute, back to 100 ms once a run lasted 10
seconds)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pybox.crashpoints import crashpoint
from pybox.engine.events import EventBus, attributes
from pybox.engine.store import Container
from pybox.errors import PyboxError
from pybox.formats.times import parse_rfc3339


def policy_name(c: Container) -> str:
    policy = c.host_config.get("RestartPolicy") or {}
    return policy.get("Name") or "no"


def comes_back_with_daemon(c: Container) -> bool:
    """docker: ``always`` containers, and ``unless-stopped`` ones not stopped
    by hand, are started again when the daemon comes back."""
    name = policy_name(c)
    return name == "always" or (name == "unless-stopped" and not c.manual_stop)


class RestartPolicies:
    """The policy of every container of one engine.  ``start_locked`` starts
    a container (its lock held); ``await_recovery`` blocks until the
    daemon's recovery is through; ``stopping`` says pyboxd is going down."""

    def __init__(self, start_locked: Callable[[Container], None], events: EventBus,
                 await_recovery: Callable[[], None], stopping: Callable[[], bool]) -> None:
        self.start_locked = start_locked
        self.events = events
        self.await_recovery = await_recovery
        self.stopping = stopping

    def should_restart(self, c: Container, code: int) -> bool:
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "no" or c.removed or c.exit_on_next or self.stopping():
            return False
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return code != 0 and (limit == 0 or c.restart_count < limit)
        return name in ("always", "unless-stopped")

    def schedule(self, c: Container) -> None:
        """The restart of a container marked restarting, after its back-off."""
        st = c.state
        ran = parse_rfc3339(st.finished_at) - parse_rfc3339(st.started_at)
        delay = c.restart_delay
        delay = 0.1 if ran >= 10 or not delay else min(delay * 2, 60.0)
        c.restart_delay = delay

        def restart() -> None:
            time.sleep(delay)
            self.await_recovery()
            with c.lock:
                if c.removed or not c.state.restarting or c.exit_on_next:
                    return
                c.restart_count += 1
                crashpoint("engine.restart_policy.counted")
                try:
                    self.start_locked(c)
                except PyboxError:
                    st.give_up_restart()
                    c.save()
                    if self.should_restart(c, st.exit_code or 1):
                        st.schedule_restart()
                        c.save()
                        threading.Thread(target=self.schedule, args=(c,),
                                         daemon=True).start()
                    return
            self.events.emit("container", "restart", c.id, attributes(c))

        threading.Thread(target=restart, name=f"restart-{c.id[:12]}", daemon=True).start()
