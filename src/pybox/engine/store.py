"""The engine's container records on disk, and name/id resolution.

DATA_ROOT/containers/ID/config.v2.json holds one container's record in docker's
inspect shape (so inspect is a read, and a restarted pyboxd rebuilds everything
from these files).  Writes are atomic and durable: this is the engine's truth.
In memory a record is a typed ``Container`` (its state a state.ContainerState)
that converts to and from that shape at its edges, key for key: a pyboxd
upgraded over an existing data root loads the files the older one wrote.
"""

from __future__ import annotations

import os
import secrets
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pybox.engine.state import ContainerState
from pybox.errors import BadRequest, Conflict, NotFound
from pybox.formats import fastjson
from pybox.oci.state import write_atomic

if TYPE_CHECKING:
    from pybox.engine.attach import AttachSession
    from pybox.engine.health import HealthMonitor

RECORD = "config.v2.json"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def new_id() -> str:
    return secrets.token_hex(32)


def validate_name(name: str) -> str:
    name = name.lstrip("/")
    if len(name) < 2 or not name[0].isalnum() or any(ch not in NAME_CHARS for ch in name):
        raise BadRequest(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                         "are allowed")
    return name


# the parts of a record the engine walks into: they must be objects
_OBJECTS = ("State", "Config", "HostConfig", "NetworkSettings")
# flags the engine reads by truthiness: inspect must show what it acts on
_HOST_BOOLS = ("Privileged", "ReadonlyRootfs", "AutoRemove", "PublishAllPorts", "Init",
               "OomKillDisable")
_CONFIG_BOOLS = ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout",
                 "AttachStderr", "NetworkDisabled")


def repair(record: dict, cid: str) -> dict:
    """A record as stored by any pyboxd, however odd (an older one stored
    ``Cmd: [5]``; a hand-edited file may lack keys), made safe to list, inspect
    and remove: the id is its directory's, the name a string, the objects the
    engine reads into objects, the command strings.  What is there is kept;
    the API renders the rest by docker's types (pybox.api.schema.render)."""
    record["Id"] = cid
    if not isinstance(record.get("Name"), str) or not record["Name"].strip("/"):
        record["Name"] = "/" + cid
    for key in _OBJECTS:
        if not isinstance(record.get(key), dict):
            record[key] = {}
    hc = record["HostConfig"]
    for key in ("RestartPolicy", "LogConfig"):
        if not isinstance(hc.get(key), dict):
            hc.pop(key, None)
    for obj, keys in ((hc, _HOST_BOOLS), (record["Config"], _CONFIG_BOOLS)):
        for key in keys:
            if key in obj and obj[key] is not None and not isinstance(obj[key], bool):
                # what an older pyboxd ran it with: truthiness ("false" was true)
                obj[key] = bool(obj[key])
    if not isinstance(record["NetworkSettings"].get("Networks"), dict):
        record["NetworkSettings"]["Networks"] = {}
    if not isinstance(record.get("Created"), str):
        record["Created"] = "0001-01-01T00:00:00Z"
    if not isinstance(record.get("Path"), str):
        record["Path"] = "" if record.get("Path") is None else str(record["Path"])
    args = record.get("Args")
    record["Args"] = [a if isinstance(a, str) else fastjson.dumps(a)
                      for a in (args if isinstance(args, list) else [])]
    mounts = record.get("Mounts")
    record["Mounts"] = [m for m in mounts if isinstance(m, dict)] \
        if isinstance(mounts, list) else []
    for key in ("Image", "LogPath", "ResolvConfPath", "HostnamePath", "HostsPath"):
        if key in record and not isinstance(record[key], str):
            record[key] = ""
    return record


class StateChanged(threading.Condition):
    """A container's state-transition condition whose ``notify_all`` also
    calls ``hooks`` (with the lock held): how a wait is parked without a
    thread (Engine.wait_parked).  A hook must not block; one that fails is
    reported and the others still run -- the transition has happened."""

    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        # callable -> None (removal is O(1)); changed with the lock held
        self.hooks: dict[Callable[[], None], None] = {}

    def notify_all(self) -> None:
        super().notify_all()
        for hook in list(self.hooks):
            try:
                hook()
            except Exception:  # noqa: BLE001 - a waiter's bug must not undo an exit
                traceback.print_exc()


# the typed fields of a Container -> their keys in docker's record (inspect)
_FIELDS: dict[str, str] = {
    "id": "Id", "created": "Created", "path": "Path", "args": "Args", "state": "State",
    "image": "Image", "resolv_conf_path": "ResolvConfPath", "hostname_path": "HostnamePath",
    "hosts_path": "HostsPath", "log_path": "LogPath", "docker_name": "Name",
    "restart_count": "RestartCount", "exec_ids": "ExecIDs", "host_config": "HostConfig",
    "mounts": "Mounts", "config": "Config", "network_settings": "NetworkSettings",
    "manual_stop": "ManualStop", "exit_on_next": "ExitOnNext",
    "remove_volumes": "RemoveVolumes",
}
_KEY_FIELDS = {v: k for k, v in _FIELDS.items()}


class Container:
    """One container: the engine's typed record of it (what is saved as
    config.v2.json) plus its in-memory companions.

    The engine's own data are typed attributes: the state (state.py, written
    only by its transitions), ids, names, paths, the restart count and the
    policy's flags (``manual_stop``: stopped by hand, for unless-stopped;
    ``exit_on_next``: the policy is off until the next start;
    ``remove_volumes``: an ``rm -v`` under way).  docker's Config, HostConfig,
    NetworkSettings and Mounts stay in docker's vocabulary (the spec builder
    and networking read them), and the keys this record does not model pass
    through untouched.  ``record`` is docker's shape of it all, key for key
    in the order the file had (a key first set later comes last, where a
    dict's assignment put it): inspect and the file on disk are unchanged
    from the days the record was a dict."""

    def __init__(self, record: dict[str, Any], directory: str) -> None:
        """``record``: docker's shape, repaired (store.repair) or new."""
        self.dir = directory
        self.lock = threading.RLock()
        self.changed = StateChanged(self.lock)  # state transitions
        self.exit_seq = 0  # incremented on every exit (for wait next-exit)
        self.removed = False
        self.attachers: list[AttachSession] = []  # attach sessions waiting for / joined to a start
        self.start_failed = False  # the last start failed (a wait does not repeat why)
        self.health: HealthMonitor | None = None  # its checks, while it runs
        self.restart_delay = 0.0  # the policy's back-off (restart.py)
        self.procview = False  # this run has the /proc view (engine/procview.py)
        self._keys: list[str] = []
        self.extra: dict[str, Any] = {}
        state = record.get("State")
        self.state = ContainerState.from_docker(state if isinstance(state, dict) else {})
        self.id: str = record["Id"]
        self.docker_name: str = record["Name"]
        self.created: str = _str(record.get("Created"))
        self.path: str = _str(record.get("Path"))
        self.args: list[str] = list(record.get("Args") or [])
        self.image: str = _str(record.get("Image"))
        self.resolv_conf_path: str = _str(record.get("ResolvConfPath"))
        self.hostname_path: str = _str(record.get("HostnamePath"))
        self.hosts_path: str = _str(record.get("HostsPath"))
        self.log_path: str = _str(record.get("LogPath"))
        count = record.get("RestartCount")
        self.restart_count: int = count if type(count) is int else 0
        ids = record.get("ExecIDs")
        self.exec_ids: list[str] | None = list(ids) if isinstance(ids, list) else None
        self.config: dict[str, Any] = record["Config"]
        self.host_config: dict[str, Any] = record["HostConfig"]
        self.network_settings: dict[str, Any] = record["NetworkSettings"]
        self.mounts: list[dict[str, Any]] = record.get("Mounts") or []
        self.manual_stop: bool = bool(record.get("ManualStop"))
        self.exit_on_next: bool = bool(record.get("ExitOnNext"))
        self.remove_volumes: bool = bool(record.get("RemoveVolumes"))
        for key, value in record.items():
            if key not in _KEY_FIELDS:
                self.extra[key] = value
        self._keys = list(record)  # from here on, a field first set is appended

    def __setattr__(self, attr: str, value: Any) -> None:
        object.__setattr__(self, attr, value)
        key = _FIELDS.get(attr)
        if key is not None and "_keys" in self.__dict__ and self._keys and \
                key not in self._keys:
            self._keys.append(key)

    def has(self, key: str) -> bool:
        """Whether docker's record has ``key`` (an old one may lack some)."""
        return key in self._keys

    @property
    def name(self) -> str:
        return self.docker_name.lstrip("/")

    def rename(self, new: str) -> None:
        self.docker_name = "/" + new

    def to_docker(self) -> dict[str, Any]:
        """docker's shape (inspect, the file): a new dict whose Config,
        HostConfig, NetworkSettings and Mounts are the live objects."""
        out: dict[str, Any] = {}
        for key in self._keys:
            attr = _KEY_FIELDS.get(key)
            if attr is None:
                out[key] = self.extra.get(key)
            elif attr == "state":
                out[key] = self.state.to_docker()
            else:
                out[key] = getattr(self, attr)
        return out

    @property
    def record(self) -> dict[str, Any]:
        """docker's shape, read-only (``to_docker``): for code that speaks
        docker's names (the spec builder, networking, api/)."""
        return self.to_docker()

    def save(self) -> None:
        write_atomic(os.path.join(self.dir, RECORD), fastjson.dumps(self.to_docker()),
                     mode=0o600, durable=True)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


# pyboxd's CRI (pybox.cri.meta) marks its pod sandboxes and containers with this
# label: the Docker API's list and prune leave them alone unless asked (as
# containerd's k8s.io namespace keeps kubelet's containers apart)
CRI_KIND_LABEL = "io.pybox.cri.kind"


def is_cri(c: Container) -> bool:
    """Whether ``c`` is a CRI pod sandbox or container (kubelet's, not docker's)."""
    labels = c.config.get("Labels")
    return isinstance(labels, dict) and CRI_KIND_LABEL in labels


class ContainerStore:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o710, exist_ok=True)
        self.lock = threading.Lock()
        self.by_id: dict[str, Container] = {}
        # None: reserved while the record is being made
        self.by_name: dict[str, Container | None] = {}

    def load(self) -> list[Container]:
        for cid in os.listdir(self.root):
            path = os.path.join(self.root, cid, RECORD)
            try:
                record = fastjson.load_file(path)
            except (OSError, ValueError):
                continue  # a half-created container: removed by the engine's recovery
            if not isinstance(record, dict):
                continue  # not a record at all
            c = Container(repair(record, cid), os.path.join(self.root, cid))
            self.by_id[cid] = c
            self.by_name[c.name] = c
        return list(self.by_id.values())

    def reserve(self, name: str) -> None:
        """Claim a name (or raise 409 with docker's message)."""
        with self.lock:
            holder = self.by_name.get(name)
            if holder is not None:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f'container "{holder.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")
            self.by_name[name] = None  # reserved while the record is being made

    def release_name(self, name: str) -> None:
        with self.lock:
            if self.by_name.get(name) is None:
                self.by_name.pop(name, None)

    def add(self, c: Container) -> None:
        with self.lock:
            self.by_id[c.id] = c
            self.by_name[c.name] = c

    def remove(self, c: Container) -> None:
        with self.lock:
            self.by_id.pop(c.id, None)
            if self.by_name.get(c.name) is c:
                self.by_name.pop(c.name)

    def rename(self, c: Container, new: str) -> None:
        with self.lock:
            holder = self.by_name.get(new)
            if holder is not None and holder is not c:
                raise Conflict(f'Conflict. The container name "/{new}" is already in use by '
                               f'container "{holder.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")
            self.by_name.pop(c.name, None)
            self.by_name[new] = c

    def get(self, ref: str) -> Container:
        """A container by name (with or without '/'), full id or unique id prefix."""
        ref = ref.lstrip("/") if ref else ref
        if not ref:
            raise NotFound("No such container: ")
        with self.lock:
            c = self.by_id.get(ref) or self.by_name.get(ref)
            if c is not None:
                return c
            matches = [c for cid, c in self.by_id.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(f"No such container: {ref} (multiple containers match this prefix)")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        with self.lock:
            return [c for c in self.by_id.values()]
