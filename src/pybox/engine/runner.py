"""The engine's one door to the runtime: every way pyboxd drives a container's
processes goes through ``Runner``.

- create and start: a monitor per container, forked by the monitor zygote
  (``spawn``; the zygote is forked while pyboxd is single-threaded and kept
  running by a thread), or one per group (a pod's containers: the group's
  monitor adopts the next ones, ``group_socket``), then reached through the
  container's socket (``monitor``: a pybox.monitor.client.MonitorClient on the
  container's run directory);
- kill, pause, resume, update, stats, top and delete: the runtime's library
  (pybox.runtime.container), on the runtime's state under ``runtime_root``;
- exec and health checks: ``pybox-runtime exec`` as a subprocess (forking the
  threaded daemon itself would be unsafe), its argv built by ``exec_argv``;
- the cgroups pyboxd names for its containers (spec.cgroups_path: the id below
  --cgroup-parent or spec.CGROUP_PARENT), and the parent cgroups its runtime made
  for them (``cgroup-parents.json`` in the run root: removed once empty, and no
  other cgroup ever is).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any

from pybox import cgroups
from pybox.engine.spec import CGROUP_PARENT, cgroups_path
from pybox.errors import Conflict, PyboxError
from pybox.monitor import zygote as zygotemod
from pybox.monitor.client import MonitorClient
from pybox.oci.state import list_ids, write_atomic
from pybox.runtime.container import Container as RuntimeContainer


def log(message: str) -> None:
    """pyboxd's log is its stderr."""
    try:
        sys.stderr.write(f"pyboxd: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Runner:
    """The runtime as the engine uses it, for the containers of one pyboxd."""

    def __init__(self, runtime: str, runtime_root: str, run_root: str) -> None:
        self.runtime = shutil.which(runtime) or runtime
        self.runtime_root = runtime_root
        self.run_root = run_root
        self.zygote: zygotemod.ZygoteClient | None = None
        self.zygote_pid = 0
        self.zygote_stopping = False
        self.parents_lock = threading.Lock()
        # a group's monitor is asked for (or forked) by one start at a time
        self.groups_lock = threading.Lock()
        self.group_locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    # -- paths --------------------------------------------------------------------------
    def run_dir(self, cid: str) -> str:
        """The container's bundle and its monitor's files (socket, exit.json)."""
        return os.path.join(self.run_root, "containers", cid)

    def monitor(self, cid: str) -> MonitorClient:
        return MonitorClient(self.run_dir(cid))

    def group_socket(self, group: str) -> str:
        """Where the monitor of ``group`` (any string: a pod's) takes its next
        containers: a name of fixed length under the run root (sun_path)."""
        directory = os.path.join(self.run_root, "monitor-groups")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        digest = hashlib.sha256(group.encode()).hexdigest()[:32]
        return os.path.join(directory, f"{digest}.sock")

    # -- the monitor zygote ---------------------------------------------------------------
    def start_zygote(self) -> None:
        """Fork the monitor zygote.  Must run before any thread starts."""
        path = os.path.join(self.run_root, "zygote.sock")
        self.zygote_pid = zygotemod.start(path)
        self.zygote = zygotemod.ZygoteClient(path)
        self.zygote_stopping = False

    def supervise_zygote(self) -> None:
        """Keep a zygote running: a thread waits for the zygote to end and starts
        a new one (a fresh python -IS, so starting it from a thread is safe).
        Without it a zygote killed by an operator or the OOM killer left pyboxd
        unable to start any container until it was restarted.  The thread lives
        as long as pyboxd: the zygote's PDEATHSIG follows the thread that
        started it."""
        threading.Thread(target=self._keep_zygote, name="zygote-keeper", daemon=True).start()

    def _keep_zygote(self) -> None:
        delay = 0.05
        while True:
            try:
                os.waitpid(self.zygote_pid, 0)
            except ChildProcessError:
                pass
            if self.zygote_stopping or self.zygote is None:
                return
            sys.stderr.write(f"pyboxd: the monitor zygote (pid {self.zygote_pid}) ended; "
                             "starting a new one\n")
            time.sleep(delay)  # a zygote that dies at once is not restarted in a tight loop
            try:
                self.zygote_pid = zygotemod.start(self.zygote.path)
                delay = 0.05
            except Exception as e:  # noqa: BLE001 - tried again, more slowly
                sys.stderr.write(f"pyboxd: cannot start the monitor zygote: {e}\n")
                delay = min(delay * 2, 5.0)

    def stop_zygote(self) -> None:
        """pyboxd's exit: end the zygote (running monitors live on) for good."""
        self.zygote_stopping = True
        try:
            os.kill(self.zygote_pid, signal.SIGTERM)
            os.waitpid(self.zygote_pid, 0)
        except OSError:
            pass  # the keeper reaped it first

    def spawn(self, request: dict[str, Any]) -> dict[str, Any]:
        """A monitor for a container (the zygote forks it; it runs the
        runtime's create): its report, {"ok", "pid"} or {"error"}."""
        if self.zygote is None:
            return {"ok": False, "error": "the monitor zygote is not running"}
        group = request.get("group_socket")
        if not group:
            return self.zygote.spawn(request)
        with self.groups_lock:
            lock, users = self.group_locks.setdefault(group, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:  # (two starts of a pod's first containers: one monitor)
                report = zygotemod.adopt(group, request)
                if report is None:  # no monitor of the group yet (or it was ending)
                    report = self.zygote.spawn(request)  # it will listen on ``group``
                return report
        finally:
            with self.groups_lock:
                users[0] -= 1
                if not users[0]:
                    self.group_locks.pop(group, None)

    # -- the runtime's library ------------------------------------------------------------
    def container_ids(self) -> list[str]:
        """Every container the runtime has state for (recovery's inventory)."""
        return list_ids(self.runtime_root)

    def load(self, cid: str) -> RuntimeContainer | None:
        """The runtime's container, or None when the runtime has none."""
        try:
            return RuntimeContainer.load(self.runtime_root, cid)
        except (PyboxError, ValueError):
            return None

    def container(self, cid: str) -> RuntimeContainer:
        """The runtime's container of one recorded as running (409 if none)."""
        try:
            return RuntimeContainer.load(self.runtime_root, cid)
        except PyboxError:
            raise Conflict(f"Container {cid} is not running") from None

    def delete(self, cid: str) -> None:
        """Remove the runtime's container (stopped, or left by a crash)."""
        try:
            rc = RuntimeContainer.load(self.runtime_root, cid)
        except PyboxError:
            return
        try:
            rc.delete(force=True)
        except PyboxError:
            pass

    def processes(self, cid: str) -> list[int]:
        return list(self.container(cid).processes())

    def cgroup_stats(self, cid: str) -> dict[str, Any]:
        mgr = self.container(cid).cgroup_manager()
        return mgr.stats() if mgr is not None else {}

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        self.container(cid).update(resources)

    # -- exec -----------------------------------------------------------------------------
    def exec_argv(self, cid: str, process_file: str, pid_file: str | None = None,
                  detach: bool = False) -> list[str]:
        """``pybox-runtime exec``: one more process in the container (docker
        exec, a health check), described by the OCI process file."""
        argv = [self.runtime, "--root", self.runtime_root, "exec", "--process", process_file]
        if pid_file is not None:
            argv += ["--pid-file", pid_file]
        if detach:
            argv.append("--detach")
        argv.append(cid)
        return argv

    # -- cgroups --------------------------------------------------------------------------
    @staticmethod
    def remove_container_cgroups(cid: str, host_config: dict[str, Any] | None = None) -> None:
        """The cgroup pyboxd names for a container (spec.cgroups_path: its id below
        its --cgroup-parent, or below spec.CGROUP_PARENT when ``host_config`` is
        None or has none; in every hierarchy), removed with whatever still runs in
        it.  The runtime records the directories it made only after making them,
        so a runtime killed in between left them unrecorded, and its delete did
        not remove them.  The name is pyboxd's, for this container alone: what
        exists of it is its."""
        try:
            mgr = cgroups.new_manager(cgroups_path(host_config or {}, cid), cid)
        except (PyboxError, OSError, ValueError):
            return
        # a hybrid manager's halves, or the manager itself (each with ``created``)
        drivers: list[Any] = [mgr.v1, mgr.v2] if hasattr(mgr, "v1") and hasattr(mgr, "v2") else [mgr]
        found = False
        for drv in drivers:
            drv.created = [d for d in set(drv.paths.values()) if d and os.path.isdir(d)]
            found = found or bool(drv.created)
        if found:
            try:
                mgr.destroy()
            except PyboxError as err:
                log(f"recovery: container {cid[:12]}: its cgroup: {err}")

    def _parents_file(self) -> str:
        return os.path.join(self.run_root, "cgroup-parents.json")

    def _read_parents(self) -> list[str]:
        try:
            with open(self._parents_file(), "rb") as f:
                saved = json.loads(f.read())
        except (OSError, ValueError):
            return []
        return [d for d in saved if isinstance(d, str)] if isinstance(saved, list) else []

    def _write_parents(self, dirs: list[str]) -> None:
        """Bookkeeping that never fails a start or an exit: a list not written
        (a full run root) costs at most a parent left behind, as dockerd leaves it."""
        try:
            if dirs:
                write_atomic(self._parents_file(), json.dumps(sorted(set(dirs))))
            else:
                os.unlink(self._parents_file())
        except FileNotFoundError:
            pass
        except OSError as err:
            log(f"cannot record the parent cgroups pyboxd made: {err}")

    def note_cgroup_parents(self, cid: str) -> None:
        """Record the parent cgroups the runtime made for ``cid`` (what its state
        lists as created, less the container's own directories), before its
        delete forgets them.  The runtime's delete removes them only if empty at
        that moment, and a parent made by one container's runtime and still used
        by another's was never removed: pyboxd keeps the list and removes them
        once empty (release_cgroup_parents)."""
        rc = self.load(cid)
        saved = rc.record.get("cgroup") if rc is not None else None
        if not isinstance(saved, dict):
            return
        # Manager.to_state() of every driver: "paths" (controller -> its own
        # directory) and "created" (every directory it made, parents included)
        leaves = set((saved.get("paths") or {}).values())
        made = [d for d in saved.get("created") or () if isinstance(d, str) and d not in leaves]
        if not made:
            return
        with self.parents_lock:
            known = self._read_parents()
            if not set(made) <= set(known):
                self._write_parents(known + made)

    def release_cgroup_parents(self) -> None:
        """rmdir the parent cgroups pyboxd's runtime made (note_cgroup_parents),
        deepest first, each that is empty now; the rest (a running container's
        parent, another parent's) stay listed for the next try.  Only a directory
        below a cgroup mount point is touched, and only one on the list: a parent
        that existed before pyboxd (someone else's cgroup) is never removed."""
        with self.parents_lock:
            known = self._read_parents()
            if not known:
                return
            try:
                layout = cgroups.detect_layout()
            except (PyboxError, OSError, ValueError) as err:
                log(f"the parent cgroups pyboxd made stay for now: {err}")
                return
            roots = [h.mountpoint.rstrip("/") + "/" for h in layout.v1_hierarchies()
                     + ([layout.unified] if layout.unified else [])]
            kept = []
            for d in sorted(set(known), key=lambda p: p.count("/"), reverse=True):
                if not d.startswith(tuple(roots)) or "/../" in d + "/" or not os.path.isabs(d):
                    continue  # not a cgroup: forgotten, never removed
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError:
                    kept.append(d)  # in use (EBUSY), or a child left: tried again later
            if set(kept) != set(known):
                self._write_parents(kept)

    def release_cgroup_parent(self) -> None:
        """pyboxd stopping: the parents its runtime made (release_cgroup_parents),
        and the containers' shared parent cgroup from each hierarchy when nothing
        is left in it (running containers, or another pyboxd's, keep it: rmdir of
        a cgroup with children fails); the runtime removes only the parents it
        made itself, so the last of several concurrent containers to leave never
        did."""
        self.release_cgroup_parents()
        layout = cgroups.detect_layout()
        for h in layout.v1_hierarchies() + ([layout.unified] if layout.unified else []):
            try:
                os.rmdir(h.directory(CGROUP_PARENT))
            except OSError:
                pass
