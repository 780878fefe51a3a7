"""The engine's container records on disk, and name/id resolution.

DATA_ROOT/containers/ID/config.v2.json holds one container's record in docker's
inspect shape (so inspect is a read, and a restarted pyboxd rebuilds everything
from these files).  Writes are atomic and durable: this is the engine's truth.
"""

import os
import secrets
import threading

from pybox.errors import BadRequest, Conflict, NotFound, NotModified  # noqa: F401
from pybox.formats import fastjson
from pybox.oci.state import write_atomic

RECORD = "config.v2.json"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def new_id():
    return secrets.token_hex(32)


def validate_name(name):
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

    def __init__(self, lock) -> None:
        super().__init__(lock)
        self.hooks: dict = {}  # callable -> None (removal is O(1)); changed with the lock held

    def notify_all(self) -> None:
        super().notify_all()
        for hook in list(self.hooks):
            try:
                hook()
            except Exception:  # noqa: BLE001 - a waiter's bug must not undo an exit
                import traceback

                traceback.print_exc()


class Container:
    """One container: its record plus the engine's in-memory companions."""

    def __init__(self, record, directory) -> None:
        self.record = record
        self.dir = directory
        self.lock = threading.RLock()
        self.changed = StateChanged(self.lock)  # state transitions
        self.exit_seq = 0  # incremented on every exit (for wait next-exit)
        self.removed = False
        self.attachers = []  # attach sessions waiting for / joined to a start

    @property
    def id(self):
        return self.record["Id"]

    @property
    def name(self):
        return self.record["Name"].lstrip("/")

    @property
    def state(self):
        return self.record["State"]

    def save(self) -> None:
        write_atomic(os.path.join(self.dir, RECORD), fastjson.dumps(self.record), mode=0o600,
                     durable=True)


class ContainerStore:
    def __init__(self, root) -> None:
        self.root = root
        os.makedirs(root, mode=0o710, exist_ok=True)
        self.lock = threading.Lock()
        self.by_id = {}
        self.by_name = {}

    def load(self):
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

    def reserve(self, name):
        """Claim a name (or raise 409 with docker's message)."""
        with self.lock:
            holder = self.by_name.get(name)
            if holder is not None:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f'container "{holder.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")
            self.by_name[name] = None  # reserved while the record is being made

    def release_name(self, name) -> None:
        with self.lock:
            if self.by_name.get(name) is None:
                self.by_name.pop(name, None)

    def add(self, c) -> None:
        with self.lock:
            self.by_id[c.id] = c
            self.by_name[c.name] = c

    def remove(self, c) -> None:
        with self.lock:
            self.by_id.pop(c.id, None)
            if self.by_name.get(c.name) is c:
                self.by_name.pop(c.name)

    def rename(self, c, new):
        with self.lock:
            holder = self.by_name.get(new)
            if holder is not None and holder is not c:
                raise Conflict(f'Conflict. The container name "/{new}" is already in use by '
                               f'container "{holder.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")
            self.by_name.pop(c.name, None)
            self.by_name[new] = c

    def get(self, ref):
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

    def all(self):
        with self.lock:
            return [c for c in self.by_id.values()]
