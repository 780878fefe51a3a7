"""The engine: containers as docker reports them, behind the one facade the API
calls (pybox.api) and pyboxd starts (pybox.cli.pyboxd).

The engine is in rooms, each its own module; ``Engine`` ties them together
and keeps the methods the API calls:

    store.py       the containers' typed records on disk, names and ids
    state.py       a container's state and its named transitions (the only
                   writer of State): created, running, paused, restarting,
                   exited, removing, dead
    lifecycle.py   create, start, the exit, stop, kill, restart, pause,
                   remove, wait
    restart.py     restart policies and their back-off
    views.py       inspect, list (docker ps), filters, summaries
    execs.py       docker exec sessions
    health.py      health checks
    attach.py      attach sessions (a client joined to a container's monitor)
    logs.py        reading the json-file logs
    namespaces.py  where a container's namespaces come from (another
                   container's now, a pod sandbox's next) and /dev/shm
    etcfiles.py    the container's hostname, hosts and resolv.conf
    events.py      the event stream, and a container event's attributes
    runner.py      the one door to the runtime: the monitor zygote and the
                   monitors, the runtime's library, `pybox-runtime exec`
    recovery.py    what a (re)started pyboxd finishes or undoes
    networking.py, volumes.py, spec.py, observe.py, explain.py, procview.py,
    rootview.py, archive.py, distribution.py, images.py: the engine's other
    services; prune.py the prune filters' one reading, system.py what docker
    info counts.

Pods (CRI, next): a sandbox holding the net, IPC and UTS namespaces is one
more namespaces.NamespaceHolder, which the containers of the pod join as a
container joins another's today (namespaces.py says how); the rooms above
need no other change.

A container's record (store.Container) is the truth on disk; the live parts
are a monitor process per running container (pybox.monitor), and one watcher
thread per running container that learns of the exit.  pyboxd serves
requests on threads: nothing here forks (forking a threaded process is
unsafe); monitors come from the zygote, execs from the runtime's CLI.
"""

from __future__ import annotations

import builtins
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pybox import __version__, cgroups
from pybox.engine import spec as specmod
from pybox.engine.attach import AttachSession
from pybox.engine.daemonconfig import DaemonConfig, apply_log_defaults, apply_network_defaults
from pybox.engine.distribution import Distribution
from pybox.engine.events import EventBus, attributes
from pybox.engine.execs import ExecSession
from pybox.engine.images import ImageService
from pybox.engine.lifecycle import Lifecycle
from pybox.engine.logs import read_logs
from pybox.engine.namespaces import Namespaces
from pybox.engine.networking import EngineNetworking
from pybox.engine.plugins import Plugins
from pybox.engine.procview import EngineProcView
from pybox.engine.prune import read_prune_filters
from pybox.engine.recovery import recover
from pybox.engine.remap import UsernsRemap
from pybox.engine.restart import RestartPolicies
from pybox.engine.runner import Runner
from pybox.engine.store import Container, ContainerStore
from pybox.engine.system import Counts, counts
from pybox.engine.views import ContainerViews, Filters
from pybox.engine.volumes import VolumeStore
from pybox.errors import BadRequest, Conflict, NotFound, PyboxError
from pybox.formats.times import parse_rfc3339
from pybox.images.platforms import Platform
from pybox.locations import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT
from pybox.network.manager import NetworkRecord


def check_kill_signal(signal: str) -> None:
    """ContainerKill's checks: a signal moby/sys/signal parses and Linux has.
    (The words are the reference dockerd's that tests/engine compares with,
    "Invalid signal: X"; docker 28 says "cannot kill container: NAME: invalid
    signal: X".)"""
    try:
        number = specmod.parse_signal_name(signal)
    except ValueError:
        raise BadRequest(f"Invalid signal: {signal}") from None
    if not 0 < number <= 64:
        raise BadRequest(f"the linux daemon does not support signal {number}")


class Engine:
    def __init__(self, data_root: str = DEFAULT_DATA_ROOT, run_root: str = DEFAULT_EXEC_ROOT,
                 images: ImageService | None = None, runtime: str = "pybox-runtime",
                 userns_remap: UsernsRemap | None = None,
                 config: DaemonConfig | None = None) -> None:
        if images is None:
            raise ValueError("the engine needs an image service")
        # the daemon's configuration (pyboxd's flags and daemon.json): the
        # containers' and networks' defaults (engine/daemonconfig.py)
        self.config = config or DaemonConfig(data_root=data_root, exec_root=run_root)
        apply_network_defaults(self.config)
        self.data_root = data_root
        self.run_root = run_root
        self.runtime_root = os.path.join(run_root, "runtime")
        os.makedirs(self.runtime_root, mode=0o711, exist_ok=True)
        os.makedirs(os.path.join(run_root, "containers"), mode=0o711, exist_ok=True)
        self.runner = Runner(runtime, self.runtime_root, run_root)
        self.runtime = self.runner.runtime
        self.store = ContainerStore(os.path.join(data_root, "containers"))
        self.images = images
        self.events = EventBus()
        images.events = self.events  # the image verbs' events join the engine's stream
        self.distribution = Distribution(images, self.events)  # pull, push, login
        self.network = EngineNetworking(self)  # networking hooks: engine/networking.py
        self.procview = EngineProcView(self)  # the /proc view: engine/procview.py
        self.namespaces = Namespaces(self.get)
        self.views = ContainerViews(self.store, images, self.network)
        self.lifecycle = Lifecycle(self)
        self.restarts = RestartPolicies(self.lifecycle.start_locked, self.events,
                                        self.await_recovery, lambda: self.stopping)
        self.execs: dict[str, ExecSession] = {}
        self.execs_lock = threading.Lock()
        self.stopping = False
        self.started_at = time.time()
        self.volumes = VolumeStore(data_root, self.volume_users)
        # managed plugins (docker plugin ...): engine/plugins.py
        self.plugins = Plugins(os.path.join(data_root, "plugins"), self.distribution.registries,
                               self.events.emit, __version__)
        # pyboxd --userns-remap (pybox.engine.remap.UsernsRemap or None)
        self.remap = userns_remap
        if userns_remap is not None:
            self.volumes.root_owner = userns_remap.root
        self._cgroup_v2: bool | None = None
        # set once recover() has rebuilt everything, the network included:
        # restarts it schedules wait for it (see await_recovery)
        self.recovered = threading.Event()

    # -- daemon life ------------------------------------------------------------------------
    def start_zygote(self) -> None:
        """Fork the monitor zygote.  Must run before any thread starts."""
        self.runner.start_zygote()

    def supervise_zygote(self) -> None:
        self.runner.supervise_zygote()

    def stop_zygote(self) -> None:
        self.runner.stop_zygote()

    def release_cgroup_parent(self) -> None:
        self.runner.release_cgroup_parent()

    def recover(self) -> None:
        """Rebuild the engine's view after a (re)start and finish or undo
        whatever a crash interrupted: pybox.engine.recovery (its docstring
        gives the order)."""
        recover(self)

    def await_recovery(self) -> None:
        """A restart that recover() started must not run before the network's
        own recovery is through: that tears down what it does not know yet (a
        start racing it failed with "(19, 'No such device')").  Bounded: an
        engine whose recover() is never called does not hang its restarts."""
        self.recovered.wait(timeout=60)

    def restart_on_boot(self, c: Container) -> None:
        """recovery's step 8: a container its policy brings back with pyboxd."""
        self.await_recovery()
        try:
            self.start(c.id)
        except PyboxError:
            pass

    def volume_users(self) -> dict[str, list[str]]:
        """Volume name -> the containers that mount it."""
        users: dict[str, list[str]] = {}
        for c in self.store.all():
            for m in c.mounts or ():
                if m.get("Type") == "volume" and isinstance(m.get("Name"), str):
                    users.setdefault(m["Name"], []).append(c.id)
        return users

    def cgroup_v2(self) -> bool:
        if self._cgroup_v2 is None:
            self._cgroup_v2 = cgroups.detect_layout().mode == "v2"
        return self._cgroup_v2

    # -- lookups ----------------------------------------------------------------------------
    def run_dir(self, c: Container) -> str:
        return self.runner.run_dir(c.id)

    def get(self, ref: str) -> Container:
        return self.store.get(ref)

    def attributes(self, c: Container, **extra: str) -> dict[str, str]:
        """A container event's attributes (events.attributes)."""
        return attributes(c, **extra)

    def counts(self) -> Counts:
        """docker info's counts: containers by state, images, event listeners."""
        return counts(self.store, self.images, self.events)

    # -- the container verbs (lifecycle.py) --------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None = None,
               platform: Platform | None = None, *, cri_log_path: str | None = None,
               monitor_group: str | None = None) -> tuple[str, list[str]]:
        """POST /containers/create, ``body`` typed by pybox.api.schema,
        ``platform`` the one asked for (spec.parse_platform).  Returns (id,
        warnings).

        ``cri_log_path`` (pyboxd's CRI only, never from an API body: it is a
        host path the monitor creates and writes): the container logs in the
        CRI format (pybox.monitor.crilog) to this absolute path, kubelet's
        LogDirectory joined with the container's LogPath; "" for no log (a
        CRI container kubelet gave no path).  The record's LogConfig becomes
        {"Type": "cri"} ("none" for "") and its LogPath the path, so every
        start's monitor writes there; ``reopen_log`` reopens it.

        ``monitor_group`` (pyboxd's CRI only): the containers created with the
        same group (a pod: its sandbox and its containers, e.g. the sandbox's
        record name) share one monitor process, as containerd's shim serves a
        pod (pybox.monitor.monitor's Loop); kept in the record
        ("MonitorGroup"), so every start joins it.  Each container keeps its
        own monitor socket, exit file and log: nothing else changes."""
        if isinstance(body, dict):  # the daemon's default log driver and options
            hc = body["HostConfig"] = dict(body.get("HostConfig") or {})
            apply_log_defaults(hc, self.config.log_config())
        return self.lifecycle.create(body, name, platform, cri_log_path=cri_log_path,
                                     monitor_group=monitor_group)

    def start(self, ref: str, *, netns_path: str | None = None) -> None:
        """``netns_path`` (pyboxd's CRI only: a pod's pinned namespace): this
        start of a NetworkMode "none" container joins it instead of a new one."""
        self.lifecycle.start(ref, netns_path=netns_path)

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.lifecycle.stop(ref, timeout)

    def kill(self, ref: str, signal: str | int | None = None) -> None:
        """docker kill: a signal given by name or number is checked before the
        container is looked up (a 400 even for a missing one, as dockerd's)."""
        if isinstance(signal, str):
            check_kill_signal(signal)
        self.lifecycle.kill(ref, signal)

    def restart(self, ref: str, timeout: int | None = None) -> None:
        self.lifecycle.restart(ref, timeout)

    def pause(self, ref: str) -> None:
        self.lifecycle.pause(ref)

    def unpause(self, ref: str) -> None:
        self.lifecycle.unpause(ref)

    def pause_for_commit(self, c: Container) -> bool:
        return self.lifecycle.pause_for_commit(c)

    def unpause_after_commit(self, c: Container) -> None:
        self.lifecycle.unpause_after_commit(c)

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.lifecycle.remove(ref, force, volumes)

    def wait(self, ref: str, condition: str = "not-running",
             cancelled: Callable[[], bool] | None = None) -> tuple[int | None, str | None]:
        return self.lifecycle.wait(ref, condition, cancelled)

    def wait_parked(self, ref: str, condition: str,
                    done: Callable[[int, str | None], None],
                    since: int | None = None) -> Callable[[], None]:
        return self.lifecycle.wait_parked(ref, condition, done, since)

    def exit_count(self, ref: str) -> int:
        return self.lifecycle.exit_count(ref)

    def rename(self, ref: str, new_name: str) -> None:
        self.lifecycle.rename(ref, new_name)

    def resize(self, ref: str, h: int, w: int) -> None:
        self.lifecycle.resize(ref, h, w)

    # -- views (views.py) -------------------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        return self.views.inspect(self.get(ref), size)

    def list(self, all_: bool = False, limit: int | None = -1, size: bool = False,
             filters: Filters | None = None) -> list[dict[str, Any]]:
        return self.views.list(all_, limit, size, filters)

    # -- networks and volumes: the room's work, then its event --------------------------
    def networks(self, filters: Filters) -> builtins.list[dict[str, Any]]:
        """docker network ls."""
        return self.network.manager.list(filters)

    def inspect_network(self, ref: str) -> dict[str, Any]:
        return self.network.manager.inspect(ref)

    def create_network(self, body: dict[str, Any]) -> tuple[str, str]:
        """POST /networks/create -> (id, warning)."""
        nid, warning = self.network.manager.create(body)
        rec = self.network.manager.get(nid)
        self.events.emit("network", "create", nid, {"name": rec["Name"], "type": "bridge"})
        return nid, warning

    def remove_network(self, ref: str) -> None:
        rec = self.network.manager.remove(ref)
        self.events.emit("network", "destroy", rec["Id"],
                         {"name": rec["Name"], "type": rec["Driver"]})

    def prune_networks(self, filters: Filters) -> builtins.list[str]:
        """docker network prune: the unused user-defined networks the filters
        choose go (until and label! spare some) -> their names."""
        rest, spared = read_prune_filters(filters)

        def keep(rec: NetworkRecord) -> bool:
            return spared.spares(lambda: parse_rfc3339(rec.get("Created")), rec.get("Labels"))

        removed = self.network.manager.prune(rest, in_use=self.network.networks_in_use(),
                                             keep=keep)
        for name in removed:
            self.events.emit("network", "destroy", name, {"name": name, "type": "bridge"})
        return removed

    def create_volume(self, name: str | None, driver: str, labels: dict[str, str] | None,
                      options: dict[str, str] | None) -> dict[str, Any]:
        """POST /volumes/create (docker's local driver only) -> the volume."""
        if driver != "local":
            raise BadRequest(f"volume driver {driver!r} is not supported (local only)")
        doc = self.volumes.create(name, labels=labels, options=options)
        self.events.emit("volume", "create", doc["Name"], {"driver": "local"})
        return doc

    def remove_volume(self, name: str, force: bool = False) -> None:
        self.volumes.remove(name, force=force)
        self.events.emit("volume", "destroy", name, {"driver": "local"})

    def prune_volumes(self, filters: Filters) -> tuple[builtins.list[str], int]:
        """docker volume prune: unused anonymous volumes (all=true: named ones
        too) the filters choose -> (their names, the bytes reclaimed)."""
        wanted = {k: builtins.list(v) for k, v in filters.items()}
        all_ = any(v.lower() in ("true", "1") for v in wanted.pop("all", []))
        deleted, reclaimed = self.volumes.prune(wanted, all_=all_)
        for name in deleted:
            self.events.emit("volume", "destroy", name, {"driver": "local"})
        return deleted, reclaimed

    # -- attach -----------------------------------------------------------------------------
    def attach(self, ref: str, client: Any, *, stdin: bool, stdout: bool, stderr: bool,
               logs: bool = False, detach_keys: str | None = None) -> None:
        """Serve an attach session on ``client`` (the hijacked socket, or a callable
        that hijacks and returns it: called once the session is registered) until
        the container exits or the client detaches.  Works on a created or stopped
        container too: the session joins at the next start (docker start -a
        attaches first)."""
        c = self.get(ref)
        deferred = client if callable(client) else None
        session = AttachSession(self, c, None if deferred else client, stdin=stdin,
                                stdout=stdout, stderr=stderr,
                                tty=bool(c.config.get("Tty")),
                                stdin_once=bool(c.config.get("StdinOnce")),
                                detach_keys=detach_keys)
        self.events.emit("container", "attach", c.id, attributes(c))
        session.run(open_client=deferred, replay=logs)

    def attach_logs(self, ref: str, client: socket.socket, *, stdout: bool, stderr: bool
                    ) -> None:
        """An attach with logs and no stream: the container's logs so far onto
        ``client`` (the hijacked socket), which is then closed."""
        c = self.get(ref)
        session = AttachSession(self, c, client, stdin=False, stdout=stdout, stderr=stderr,
                                tty=bool(c.config.get("Tty")), stdin_once=False)
        session.replay_logs()
        session.close_client()

    # -- exec -------------------------------------------------------------------------------
    def exec_create(self, ref: str, body: dict[str, Any]) -> str:
        c = self.get(ref)
        c.state.check_exec(c.id)
        if not body.get("Cmd"):
            raise BadRequest("No exec command specified")
        # an unknown user fails the start, not the create (dockerd before 29, API 1.44)
        session = ExecSession(self.runner, self.events, c, body)
        with self.execs_lock:
            self.execs[session.id] = session
        with c.lock:
            c.exec_ids = (c.exec_ids or []) + [session.id]
        self.events.emit("container", "exec_create: " + session.command_line, c.id,
                         attributes(c, execID=session.id))
        return session.id

    def get_exec(self, eid: str) -> ExecSession:
        with self.execs_lock:
            e = self.execs.get(eid)
        if e is None:
            raise NotFound(f"No such exec instance: {eid}")
        return e

    def forget_execs(self, c: Container) -> None:
        """A removed container's exec sessions go with it."""
        with self.execs_lock:
            for eid in [e for e, x in self.execs.items() if x.container is c]:
                del self.execs[eid]

    # -- logs -------------------------------------------------------------------------------
    def reopen_log(self, ref: str) -> None:
        """CRI's ReopenContainerLog: kubelet renamed the container's log file
        and asks for a new one at its path (the monitor opens it; entries go on
        there).  Conflict "container is not running" as containerd refuses a
        container not running; BadRequest for a container whose log is not a
        CRI log; PyboxError when the new file cannot be made."""
        c = self.get(ref)
        driver = (c.host_config.get("LogConfig") or {}).get("Type")
        if driver not in ("cri", "none") or (driver == "none" and c.log_path):
            raise BadRequest(f"container {c.id} does not log in the CRI format")
        if not c.state.running:
            raise Conflict("container is not running")
        reply = self.runner.monitor(c.id).reopen_log()
        if reply is None:
            raise Conflict("container is not running")
        if reply != "ok":
            message = reply.get("error") if isinstance(reply, dict) else str(reply)
            if message == "container is not running":
                raise Conflict(message)
            raise PyboxError(message or "failed to reopen the container's log")

    def logs(self, ref: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: float = 0, until: float = 0, tail: str = "all", timestamps: bool = False,
             cancelled: Callable[[], bool] | None = None,
             details: bool = False) -> Iterator[tuple[int, bytes]]:
        """(stream, bytes) log entries, read as they are iterated; with
        ``follow``, they keep coming until the container stops (after its last
        output) or ``cancelled()``.  The container and its log driver are
        checked now (a 404 or 400 before the API's 200), the log when read."""
        c = self.get(ref)
        return read_logs(c, stdout=stdout, stderr=stderr, follow=follow,
                         since=since, until=until, tail=tail, timestamps=timestamps,
                         cancelled=cancelled, details=details)
