"""A container's state and its named transitions: the one place that writes it.

    created --start--> running --pause--> paused --resume--> running
    running/paused --exit--> exited --schedule_restart--> restarting
    restarting --start--> running        restarting --give_up_restart--> exited
    created/exited --start_failed--> created/exited (the start's error kept)
    any but removing --mark_removing--> removing --mark_dead--> dead

docker's State object (inspect's ``State``: Status, Running, Paused,
Restarting, OOMKilled, Dead, Pid, ExitCode, Error, StartedAt, FinishedAt,
Health) is this record at its edges: ``from_docker`` reads what any pyboxd
wrote (config.v2.json), ``to_docker`` gives it back key for key, in the
order it was stored, so inspect's output and the file on disk do not change.
The fields are written only by the transition methods below (``docker`` keys
a transition sets that a stored record lacked are appended, as a dict's
``update`` appended them before).

Which transitions a verb may take (start a paused container, remove a
running one...) are checked here too, with docker's words: ``check_start``,
``check_pause``... raise the Conflict/NotModified the API has always sent.
A transition taken from a state it does not leave raises InvalidState: that
is the engine's own bug, not a client's mistake.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pybox.errors import Conflict, InvalidState, NotModified

ZERO_TIME = "0001-01-01T00:00:00Z"


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    REMOVING = "removing"
    DEAD = "dead"


# attribute -> docker's key, in docker's order (a new record's)
_KEYS: dict[str, str] = {
    "status": "Status", "running": "Running", "paused": "Paused",
    "restarting": "Restarting", "oom_killed": "OOMKilled", "dead": "Dead", "pid": "Pid",
    "exit_code": "ExitCode", "error": "Error", "started_at": "StartedAt",
    "finished_at": "FinishedAt", "health": "Health",
}
_ATTRS = {v: k for k, v in _KEYS.items()}
_BOOLS = ("running", "paused", "restarting", "oom_killed", "dead")


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


@dataclass(eq=False)
class ContainerState:
    """What docker's State says, typed.  Written only through the methods
    named after transitions."""

    status: str = Status.CREATED.value
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: dict[str, Any] | None = None  # docker's Health (health.py keeps it)
    # docker keys in stored order; keys of a stored State this record does not
    # model pass through unchanged
    keys: list[str] = field(default_factory=lambda: [k for k in _KEYS.values()
                                                     if k != "Health"])
    extra: dict[str, Any] = field(default_factory=dict)

    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {}  # filled below

    # -- the edges: docker's shape ------------------------------------------------------
    @classmethod
    def from_docker(cls, st: dict[str, Any]) -> ContainerState:
        """A stored State (any pyboxd's; odd values read as store.repair reads
        them: flags by truthiness, numbers that are not numbers as 0)."""
        self = cls(keys=list(st))
        for key, value in st.items():
            attr = _ATTRS.get(key)
            if attr is None:
                self.extra[key] = value
            elif attr in _BOOLS:
                object.__setattr__(self, attr, bool(value))
            elif attr in ("pid", "exit_code"):
                object.__setattr__(self, attr, _int(value))
            elif attr == "health":
                object.__setattr__(self, attr, value if isinstance(value, dict) else None)
                if not isinstance(value, dict):
                    self.extra[key] = value
            elif attr == "status":
                object.__setattr__(self, attr, _str(value))
            else:
                object.__setattr__(self, attr, _str(value, ZERO_TIME if attr.endswith("_at")
                                                     else ""))
        return self

    def to_docker(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.keys:
            attr = _ATTRS.get(key)
            if attr is None or (attr == "health" and self.health is None):
                out[key] = self.extra.get(key)
            else:
                out[key] = getattr(self, attr)
        return out

    def _set(self, **fields: Any) -> None:
        for attr, value in fields.items():
            if isinstance(value, Status):
                value = value.value  # stored and compared as docker's plain string
            object.__setattr__(self, attr, value)
            key = _KEYS[attr]
            if key not in self.keys:
                self.keys.append(key)

    def _require(self, transition: str) -> None:
        allowed = self.TRANSITIONS[transition]
        if self.status not in allowed:
            raise InvalidState(f"container state {self.status!r}: cannot take the "
                               f"{transition!r} transition")

    # -- what a verb may do (docker's answers) ------------------------------------------
    @property
    def listed_running(self) -> bool:
        """docker ps lists a restarting container with the running ones."""
        return self.running or self.restarting

    @property
    def pending_restart(self) -> bool:
        """A restart scheduled, nothing running (between two runs)."""
        return self.restarting and not self.running

    def check_start(self, cid: str, removed: bool) -> None:
        if self.paused:
            raise Conflict("cannot start a paused container, try unpause instead")
        if self.running:
            raise NotModified("container already started")
        if removed or self.status == Status.REMOVING:
            raise Conflict(f"container {cid} is marked for removal and cannot be started")

    def check_running(self, cid: str) -> None:
        if not self.running:
            raise Conflict(f"Container {cid} is not running")

    def check_pause(self, cid: str) -> None:
        self.check_running(cid)
        if self.paused:
            raise Conflict(f"Container {cid} is already paused")

    def check_unpause(self, cid: str) -> None:
        if not self.paused:
            raise Conflict(f"Container {cid} is not paused")

    def check_exec(self, cid: str) -> None:
        self.check_running(cid)
        if self.paused:
            raise Conflict(f"Container {cid} is paused, unpause the container before exec")

    def check_remove(self, cid: str, force: bool) -> None:
        if self.pending_restart and not force:
            raise Conflict(f"You cannot remove a restarting container {cid}. Stop the "
                           "container before attempting removal or force remove")
        if self.running and not force:
            state = "paused" if self.paused else "running"
            raise Conflict(f"You cannot remove a {state} container {cid}. Stop the "
                           "container before attempting removal or force remove")

    # -- the transitions ----------------------------------------------------------------
    def start(self, pid: int, started_at: str) -> None:
        """The program runs (a start, a restart, a policy's restart)."""
        self._require("start")
        self._set(status=Status.RUNNING, running=True, paused=False, restarting=False,
                  oom_killed=False, dead=False, pid=pid, exit_code=0, error="",
                  started_at=started_at, finished_at=ZERO_TIME)

    def adopt(self, pid: int, paused: bool, started_at: str | None) -> None:
        """A restarted pyboxd finds the program running under its monitor;
        ``started_at`` when the record did not say it ran (a crash came
        between the start and the record's save)."""
        if started_at is not None:
            self._set(status=Status.RUNNING, running=True, restarting=False,
                      oom_killed=False, dead=False, exit_code=0, error="",
                      started_at=started_at, finished_at=ZERO_TIME)
        self._set(pid=pid, paused=paused)
        self._set(status=Status.PAUSED if paused else Status.RUNNING)

    def start_failed(self, message: str, exit_code: int, finished_at: str) -> None:
        """The start did not get the program running: created if it never
        ran, else exited, with the start's error."""
        self._require("start_failed")
        self._set(status=Status.CREATED if self.started_at == ZERO_TIME else Status.EXITED,
                  running=False, pid=0, error=message, exit_code=exit_code,
                  finished_at=finished_at)

    def exit(self, exit_code: int, oom_killed: bool, error: str, finished_at: str) -> None:
        """The program ended (its monitor told, or recovery found it gone)."""
        self._require("exit")
        self._set(status=Status.EXITED, running=False, paused=False, pid=0,
                  exit_code=exit_code, oom_killed=oom_killed, error=error,
                  finished_at=finished_at)

    def schedule_restart(self) -> None:
        """Its restart policy brings it back (after a back-off)."""
        self._require("schedule_restart")
        self._set(restarting=True, status=Status.RESTARTING)

    def give_up_restart(self) -> None:
        """A pending restart is off (stopped, killed, removed, failed, or
        recovery takes it over)."""
        self._set(restarting=False, status=Status.EXITED)

    def pause(self) -> None:
        self._require("pause")
        self._set(paused=True, status=Status.PAUSED)

    def resume(self) -> None:
        self._require("resume")
        self._set(paused=False)
        self._set(status=Status.RUNNING)

    def settle(self) -> None:
        """Not running: not paused either (recovery's tidy-up)."""
        self._set(paused=False)

    def mark_removing(self) -> None:
        self._require("mark_removing")
        self._set(status=Status.REMOVING)

    def mark_dead(self, error: str | None = None) -> None:
        """A removal failed half-way, or recovery could not make it whole:
        only rm works on it."""
        if error is None:
            self._set(status=Status.DEAD, dead=True)
        else:
            self._set(status=Status.DEAD, dead=True, running=False, paused=False,
                      restarting=False, pid=0, error=error)

    # -- docker's State.Health: written only by these three ----------------------------
    def health_starting(self) -> None:
        """The checks begin (a start or an adoption): docker's first Health."""
        self._set(health={"Status": "starting", "FailingStreak": 0, "Log": []})

    def health_probed(self, result: dict[str, Any], *, in_start_period: bool,
                      retries: int, keep: int) -> tuple[str | None, str]:
        """One probe's result (docker's HealthcheckResult: Start, End, ExitCode,
        Output) joins the log, which keeps the last ``keep``.  As dockerd's
        handleProbeResult: a success is healthy and clears the streak; a failure
        counts unless the start period is still running and the container has not
        been healthy yet, and ``retries`` in a row make it unhealthy.  Returns the
        (old, new) status, so the caller emits health_status only on a change."""
        health = dict(self.health or {"Status": "starting", "FailingStreak": 0, "Log": []})
        old = health.get("Status")
        health["Log"] = (health.get("Log") or [])[-(keep - 1):] + [result]
        if result["ExitCode"] == 0:
            health["FailingStreak"] = 0
            health["Status"] = "healthy"
        elif not (in_start_period and old == "starting"):
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        self._set(health=health)
        return old, health["Status"]

    def health_stopped(self, exit_code: int) -> None:
        """The container exited: its health stays as last probed, except that a
        failed run leaves it unhealthy (docker's)."""
        if self.health and exit_code:
            self._set(health={**self.health, "Status": "unhealthy"})

    # -- views ----------------------------------------------------------------------------
    def docker_status(self) -> str:
        """docker's one-word state (ps's State column, the status filter)."""
        if self.status == Status.REMOVING:
            return "removing"
        if self.paused:
            return "paused"
        if self.restarting:
            return "restarting"
        if self.running:
            return "running"
        if self.dead:
            return "dead"
        return self.status or "created"


_ANY = frozenset(Status)
ContainerState.TRANSITIONS.update({
    # a start: from what is not running (restart() may start one its stop could
    # not end: the runtime's delete then ends it); never a removal's
    "start": _ANY - {Status.REMOVING},
    "start_failed": _ANY - {Status.REMOVING},
    "exit": _ANY,  # the program's end is a fact, whatever was recorded
    "schedule_restart": frozenset({Status.EXITED}),
    "pause": frozenset({Status.RUNNING}),
    "resume": frozenset({Status.PAUSED, Status.RUNNING}),
    "mark_removing": _ANY,
})
