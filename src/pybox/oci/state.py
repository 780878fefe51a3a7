"""The runtime's state on disk: one directory per container under --root.

    ROOT/ID/state.json   everything later commands need (written atomically)
    ROOT/ID/config.json  the bundle's config.json as it was at create time (later
                         edits of the bundle must not affect the container)
    ROOT/ID/start.sock   only while the container is "created": `start` connects
                         to it to let the init process exec the user's program

state.json is the truth: no runtime process stays around after a command, so every
command rebuilds its view from this file plus the kernel (/proc/PID/stat start
time, the cgroup).  Writes go to a temp file that is renamed over the old one, so
a crash leaves either the old or the new file, never half of one.  The runtime's
state is not fsynced (runc's is not either): it describes processes, which do not
survive a power loss, and a state file left from before a reboot is recognised
as stopped (its pid's start time no longer matches) and removed by delete.
"""

from __future__ import annotations

import _thread
import os

from pybox.errors import ContainerExists, ContainerNotFound, PyboxError, UsageError
from pybox.formats import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
START_SOCKET = "start.sock"


def validate_id(cid: str) -> str:
    """runc's rule: [A-Za-z0-9_+.-]+, not '.' or '..', so an id is always one safe
    path component (no '/', no traversal)."""
    if not cid:
        raise UsageError("container id cannot be empty")
    if cid in (".", "..") or len(cid) > 1024:
        raise UsageError(f"invalid container id {cid!r}")
    for ch in cid:
        if not (ch.isascii() and (ch.isalnum() or ch in "_+-.")):
            raise UsageError(f"invalid container id {cid!r}: only letters, digits and "
                             "'_+-.' are allowed")
    return cid


TMP_MARK = ".tmp-"  # NAME.tmp-PID[.TID]: a write in progress, or a crashed one's


def temp_name(path: str) -> str:
    """The temp file write_atomic renames over ``path``.  Its writer's pid (and
    thread: two threads of pyboxd may write one file) is in the name, so a
    restarted pyboxd tells a crashed writer's leftover (pid gone) from a live
    one's (pybox.engine.recovery)."""
    return f"{path}{TMP_MARK}{os.getpid()}.{_thread.get_native_id()}"


def write_atomic(path: str, data: bytes | str, mode: int = 0o600, durable: bool = False) -> None:
    """Write bytes/str to path via temp file + rename, so a crash leaves the old
    file or the new one, never half of one.  ``durable``: the data and the
    rename reach the disk (fsync of the file, then of its directory) before
    this returns -- the engine's data root wants that; the run root (a tmpfs)
    and the runtime's --root do not."""
    if isinstance(data, str):
        data = data.encode()
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def fsync_dir(path: str) -> None:
    """fsync a directory: a rename or a new entry in it is on disk after this."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # a filesystem that cannot (some FUSE ones): nothing more to do
    finally:
        os.close(fd)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class StateDir:
    """ROOT/ID: claim, read, write, lock and remove one container's state."""

    def __init__(self, root: str, cid: str) -> None:
        self.root = root
        self.id = cid
        self.path = f"{root}/{cid}"
        self.state_path = f"{self.path}/{STATE_FILE}"
        self._lock_fd: int | None = None

    # -- lifetime ----------------------------------------------------------
    def claim(self) -> None:
        """Create the directory; fails if the id is in use.  mkdir is atomic, so two
        concurrent creates with one id cannot both win."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.id) from None

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def remove(self) -> None:
        """Remove the directory and what is in it (it holds no subdirectories)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            _unlink_quiet(f"{self.path}/{name}")
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass

    # -- content -----------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        try:
            with open(self.state_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if not self.exists():
                raise ContainerNotFound(self.id) from None
            return None  # being created, or a create that crashed before its first write
        try:
            return fastjson.loads(data)
        except ValueError as e:
            raise PyboxError(f"container {self.id!r}: state file {self.state_path} is "
                             f"corrupt: {e}") from None

    def write(self, record: Mapping[str, Any]) -> None:
        write_atomic(self.state_path, fastjson.dumps(record))

    def write_config(self, raw: bytes | str) -> None:
        write_atomic(f"{self.path}/{CONFIG_FILE}", raw)

    def read_config(self) -> dict[str, Any]:
        try:
            return fastjson.load_file(f"{self.path}/{CONFIG_FILE}")
        except FileNotFoundError:
            return {}

    # -- locking -----------------------------------------------------------
    def lock(self) -> StateDir:
        """Exclusive lock serialising start/delete/pause on one container."""
        import fcntl  # noqa: PLC0415 -- a shared library: only the commands that lock load it

        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StateDir:
        return self.lock()

    def __exit__(self, *exc: object) -> None:
        self.unlock()


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isdir(f"{root}/{n}"))
