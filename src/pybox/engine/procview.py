"""The engine's side of the /proc view (pybox.procview): the server's life and
the binds a container gets.

engine.py and pyboxd call:

    start()      pyboxd is up (after the zygote): a server runs for RUN_ROOT and
                 a supervisor thread restarts it whenever it dies
    mounts(c)    at each start: the OCI bind mounts of container ``c`` over its
                 /proc files and /sys/devices/system/cpu/online ([] when off)
    shutdown()   pyboxd is stopping: the server stops too unless a running
                 container still has its files (it then keeps serving them,
                 and the next pyboxd supervises it again)

On by default.  Off for the whole daemon with ``pyboxd --no-proc-view``, for
one container with the label ``org.pybox.proc-view=false`` (what ``pybox run
--proc-view=false`` sends; docker CLI users can pass ``-l`` themselves).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pybox.engine.store import Container
from pybox.errors import PyboxError
from pybox.procview import FILES, LABEL, sysinfo
from pybox.procview.control import Server, Supervisor, unavailable_reason
from pybox.procview.inject import namespaces_using
from pybox.procview.server import SECCOMP_SOCKET, fsname

if TYPE_CHECKING:
    from pybox.engine.engine import Engine

OFF_VALUES = ("false", "0", "no", "off")


def wanted(record: dict[str, Any]) -> bool:
    """Does the container's configuration ask for the view (the default)?"""
    labels = (record.get("Config") or {}).get("Labels") or {}
    return str(labels.get(LABEL, "true")).strip().lower() not in OFF_VALUES


class EngineProcView:
    def __init__(self, engine: Engine, enabled: bool = True,
                 log: Callable[[str], object] | None = None) -> None:
        self.engine = engine
        self.enabled = enabled
        self.server = Server(os.path.join(engine.run_root, "procview"))
        self.supervisor: Supervisor | None = None
        self.log = log or (lambda text: sys.stderr.write(f"pyboxd: {text}\n"))
        self.problem: str | None = None  # why the view is off although enabled

    def start(self) -> None:
        if not self.enabled:
            if self.server.running() and self._in_use():
                # containers of an earlier pyboxd still have the view: keep it alive
                self.log("the /proc view is off for new containers; its server still "
                         "serves running ones and stays supervised")
                self.supervisor = Supervisor(self.server, log=self.log)
                self.supervisor.start()
            return

        self.problem = unavailable_reason()
        if self.problem:
            self.log(f"the /proc view is off: {self.problem}")
            return
        self.supervisor = Supervisor(self.server, log=self.log)
        try:
            self.supervisor.start()
        except PyboxError as e:
            self.problem = str(e)
            self.log(f"the /proc view is off: {e}")
            self.supervisor = None

    def active(self) -> bool:
        return self.enabled and self.supervisor is not None

    def _in_use(self) -> bool:
        return bool(namespaces_using(fsname(self.server.dir)))

    def used_by(self, c: Container) -> bool:
        return self.active() and wanted({"Config": c.config})

    def mounts(self, c: Container) -> list[dict[str, Any]]:
        """The binds for container ``c`` (the server is made ready first)."""
        c.procview = False  # what this start gets, for the two calls below
        if not self.used_by(c):
            return []
        assert self.supervisor is not None  # (active)
        try:
            self.supervisor.ensure()
        except PyboxError as e:
            # the container starts, with the host's /proc: better than no start
            self.log(f"container {c.id[:12]} starts without the /proc view: {e}")
            return []
        c.procview = True
        options = ["bind", "ro", "nosuid", "nodev", "noexec"]
        return [{"destination": dest, "type": "bind",
                 "source": self.server.source(c.id, name), "options": list(options)}
                for name, dest in FILES]

    def intercept_sysinfo(self, c: Container, config: dict[str, Any], rundir: str) -> None:
        """Send the container's sysinfo calls to the server (procview.sysinfo):
        its seccomp profile notifies, and the listener fd goes to its monitor's
        socket (the monitor keeps it and hands the server a copy)."""
        if not c.procview:
            return
        linux = config.get("linux") or {}
        profile = linux.get("seccomp")
        changed = sysinfo.add_to_profile(profile, os.path.join(rundir, "monitor.sock"),
                                         metadata=c.id)
        if changed is not profile:
            linux["seccomp"] = changed

    def monitor_socket(self, c: Container) -> str | None:
        """Where c's monitor forwards the sysinfo listener (None: view off)."""
        if not c.procview:
            return None
        return os.path.join(self.server.dir, SECCOMP_SOCKET)

    def shutdown(self) -> None:
        if self.supervisor is None:
            return
        if self._in_use():
            self.supervisor.detach()  # running containers keep their files
        else:
            self.supervisor.stop_server()
