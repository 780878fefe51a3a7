"""Health checks (HEALTHCHECK / --health-*): a thread per running container that
runs the check inside it (through the runtime's exec) every interval and keeps
State.Health as docker does: starting -> healthy | unhealthy, the failing
streak, the last five results, a health_status event on every change."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from pybox.engine.events import EventBus, attributes
from pybox.engine.runner import Runner
from pybox.engine.store import Container
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.oci.state import write_atomic

NS = 1_000_000_000
DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "StartPeriod": 0, "Retries": 3,
            "StartInterval": 5 * NS}
MAX_LOG = 5
MAX_OUTPUT = 4096
# docker takes any Go duration (up to 2**63-1 ns, 292 years); Python's timers
# do not: Event.wait past threading.TIMEOUT_MAX raises, and a subprocess's
# communicate() polls with an int of milliseconds (about 24.8 days).  Longer
# waits are made of pieces this long, so the thread keeps working.
MAX_WAIT = 24 * 86400.0


@dataclass(frozen=True)
class Check:
    """A container's effective health check: docker's Healthcheck with its
    defaults filled in (durations in nanoseconds, as docker's JSON has them)."""

    test: list[str]
    interval: int
    timeout: int
    start_period: int
    retries: int
    start_interval: int


def healthcheck_of(config: dict[str, Any]) -> Check | None:
    """The effective check, or None (no check, or Test ["NONE"])."""
    hc = config.get("Healthcheck")
    if not hc or not hc.get("Test") or hc["Test"][0] == "NONE":
        return None
    out = dict(DEFAULTS)
    for key in DEFAULTS:
        if hc.get(key):
            out[key] = hc[key]
    return Check(test=hc["Test"], interval=out["Interval"], timeout=out["Timeout"],
                 start_period=out["StartPeriod"], retries=out["Retries"],
                 start_interval=out["StartInterval"])


def start_checks(c: Container, runner: Runner, events: EventBus) -> None:
    """A started (or adopted) container's checks begin, if it has any."""
    check = healthcheck_of(c.config)
    if check is not None:
        c.health = HealthMonitor(runner, events, c, check)
        c.health.start()


def stop_checks(c: Container, code: int) -> None:
    """The container exited: its checks end; a failed run leaves it unhealthy."""
    monitor = c.health
    if monitor is None:
        return
    monitor.cancel()
    c.health = None
    c.state.health_stopped(code)


def command(test: list[str]) -> list[str]:
    kind = test[0]
    if kind == "CMD":
        return list(test[1:])
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test)  # a bare command list (old API)


class HealthMonitor:
    def __init__(self, runner: Runner, events: EventBus, container: Container,
                 check: Check) -> None:
        self.runner = runner
        self.events = events
        self.c = container
        self.check = check
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"health-{container.id[:12]}",
                                       daemon=True)

    def start(self) -> None:
        with self.c.lock:
            self.c.state.health_starting()
            self.c.save()
        self.thread.start()

    def cancel(self) -> None:
        self.stop.set()

    def _loop(self) -> None:
        started = time.monotonic()
        while True:
            in_start = time.monotonic() - started < self.check.start_period / NS
            status = (self.c.state.health or {}).get("Status")
            wait = (self.check.start_interval if in_start and status == "starting"
                    else self.check.interval) / NS
            if self._wait(wait):
                return
            if not self.c.state.running or self.c.state.paused:
                continue
            self._probe(in_start)

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` (any length) or until cancelled; True if cancelled."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self.stop.is_set()
            if self.stop.wait(min(left, MAX_WAIT)):
                return True

    def _probe(self, in_start_period: bool) -> None:
        start = rfc3339_nano_fixed()
        code, output = self._run()
        end = rfc3339_nano_fixed()
        c = self.c
        with c.lock:
            if not c.state.running:
                return
            old, new = c.state.health_probed(
                {"Start": start, "End": end, "ExitCode": code, "Output": output},
                in_start_period=in_start_period, retries=self.check.retries, keep=MAX_LOG)
            c.save()
        if new != old:
            self.events.emit("container", f"health_status: {new}", c.id, attributes(c))

    def _run(self) -> tuple[int, str]:
        """Run the check in the container; (exit code, output)."""
        c = self.c
        rundir = self.runner.run_dir(c.id)
        try:
            config = fastjson.load_file(os.path.join(rundir, "config.json"))
        except (OSError, ValueError):
            return -1, "container is not running"
        process = dict(config["process"])
        process["args"] = command(self.check.test)
        process["terminal"] = False
        process.pop("consoleSize", None)
        path = os.path.join(rundir, f"health-{threading.get_ident()}.json")
        write_atomic(path, fastjson.dumps(process))
        try:
            proc = subprocess.Popen(self.runner.exec_argv(c.id, path), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as e:
            return -1, str(e)
        try:
            out = self._communicate(proc, self.check.timeout / NS)
            return proc.returncode, out[-MAX_OUTPUT:].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.terminate()  # the runtime forwards it to the check's process
            try:
                proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            return -1, (f"Health check exceeded timeout "
                        f"({self.check.timeout / NS:g}s)")
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    @staticmethod
    def _communicate(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
        """proc's output, waiting at most ``timeout`` seconds (any length: in
        pieces communicate() takes; a retry loses no output)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                out, _ = proc.communicate(timeout=max(0.0, min(left, MAX_WAIT)))
                return out
            except subprocess.TimeoutExpired:
                if left <= MAX_WAIT:
                    raise
