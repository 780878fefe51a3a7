"""A container's filesystem as something else: its changes (docker diff), a new
image (docker commit), a tarball (docker export).

The writable layer belongs to the image store (pybox.images); what is the
engine's is which container, with what config, paused or not, mounted for how
long, and the event.  The API only reads the request and sends the answer
(pybox.api.observe)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from pybox.engine.events import attributes
from pybox.engine.rootview import MountedRootfs
from pybox.engine.spec import merge_image_config
from pybox.errors import PyboxError

if TYPE_CHECKING:
    from pybox.engine.engine import Engine
    from pybox.engine.store import Container

# files the engine bind-mounts into every container: not the container's
# changes (docker keeps them in an init layer below the writable one)
ENGINE_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def changes(engine: Engine, ref: str) -> list[dict[str, Any]]:
    """GET /containers/ID/changes: [{"Path", "Kind"}] (Kind 0=C 1=A 2=D), without
    the mount points the engine made (the /etc files, volume and bind targets)."""
    c = engine.get(ref)
    hidden = set(ENGINE_FILES)
    hidden.update(m["Destination"] for m in c.record.get("Mounts") or ())
    return [ch for ch in engine.images.images.diff(c.id) if ch["Path"] not in hidden]


def commit_config(body: Any, container_config: dict[str, Any]) -> dict[str, Any]:
    """The image config of a commit: the request's Config over the container's
    (moby's merge, the same rules as a create over its image).  Docker's commit
    keeps what the container ran with -- its Cmd, Env, --health-cmd, labels --
    also when the client sends no Config (the docker CLI never does); taking
    only the parent image's config lost all of it."""
    merged: dict[str, Any] = merge_image_config(body if isinstance(body, dict) else {},
                                                container_config)
    return merged


def commit(engine: Engine, ref: str, *, reference: str | None = None,
           changes: list[str] | None = None, message: str = "", author: str = "",
           pause: bool = True, config: Any = None) -> str:
    """docker commit: the container ``ref``'s changes as a new image (named
    ``reference`` if given), its config ``config`` (a create request's Config)
    over the container's, Dockerfile ``changes`` applied; the container paused
    meanwhile when ``pause`` and it runs.  -> the new image's Id."""
    c = engine.get(ref)
    paused = pause and _pause(engine, c)
    try:
        with MountedRootfs(engine, c):
            image_id = engine.images.images.commit(
                c.id, reference=reference, changes=changes or [], message=message,
                author=author, config=commit_config(config, c.record["Config"]))
    finally:
        if paused:
            try:
                engine.unpause_after_commit(c)
            except PyboxError:  # dockerd ignores its unpause's error too
                pass
    engine.events.emit("container", "commit", c.id, attributes(c))
    return image_id


def _pause(engine: Engine, c: Container) -> bool:
    """The commit's pause, best effort as dockerd's (daemon/commit.go ignores
    containerPause's error): a container that exits while it is being paused
    -- docker-py commits with pause on, often right after the program ends --
    is committed as it is, never a 500.  -> whether it was frozen."""
    try:
        return engine.pause_for_commit(c)
    except PyboxError:
        return False


def export(engine: Engine, ref: str, out: IO[bytes]) -> None:
    """docker export: the container ``ref``'s whole filesystem, flattened, as
    one tar written to ``out``."""
    c = engine.get(ref)
    with MountedRootfs(engine, c):
        engine.images.images.export(c.id, out)
