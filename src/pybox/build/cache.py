"""The classic builder's cache (moby's image/cache and the builder's
imageProber): a step is reused when an image whose parent is the current
image and whose container config (its Cmd is the instruction, with the
sources' checksums for COPY/ADD) equals the step's exists.  Once a step misses,
the rest of the stage does too (the probe is "busted").

The cache is the intermediate images themselves; ``prune_cache`` and
``cache_usage`` are what `docker builder prune` and `docker system df` see of
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybox.errors import ImageError
from pybox.images.service import Images

if TYPE_CHECKING:
    from pybox.engine.engine import Engine

# the container.Config fields moby's cache compare() looks at
COMPARED = ("Cmd", "Env", "Entrypoint", "ExposedPorts", "Volumes", "Labels", "Shell", "User",
            "WorkingDir", "OnBuild", "StopSignal", "Healthcheck", "Tty", "OpenStdin",
            "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr")


def _norm(config: dict[str, Any]) -> dict[str, Any]:
    """The compared fields, with Go's zero values and absent ones alike."""
    return {key: config[key] for key in COMPARED if config.get(key) not in (None, "", [], {}, False)}


def same_config(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    return a is not None and _norm(a) == _norm(b)


@dataclass
class Prober:
    """One stage's probe: ``disabled`` (no_cache), ``busted`` after a miss."""

    images: Images
    disabled: bool = False
    busted: bool = False
    children: dict[str, list[str]] = field(default_factory=dict)

    def reset(self) -> None:
        """A new stage: probe again (moby resets the prober per FROM)."""
        self.busted = False
        self.children = {}
        for record in self.images.store.records():
            self.children.setdefault(record.get("parent") or "", []).append(record["id"])

    def probe(self, parent_id: str, container_config: dict[str, Any]) -> str | None:
        """The newest child of ``parent_id`` built by the same step, or None (and
        the stage's cache is busted)."""
        if self.disabled or self.busted:
            return None
        if not self.children:
            self.reset()
        best: tuple[str, str] | None = None
        for child in self.children.get(parent_id, ()):
            try:
                record = self.images.store.get_record(child)
                doc = self.images.blobs.read_json(record["config"]["digest"])
            except (ImageError, OSError, ValueError):
                continue
            if not same_config(doc.get("container_config"), container_config):
                continue
            created = str(doc.get("created") or "")
            if best is None or created > best[0]:
                best = (created, child)
        if best is None:
            self.busted = True
            return None
        return best[1]

    def added(self, parent_id: str, image_id: str) -> None:
        """A step's new image is a child the next probes may find."""
        self.children.setdefault(parent_id, []).append(image_id)


@dataclass
class CacheRecord:
    """One build-cache entry as docker system df lists it (BuildCache)."""

    id: str
    parent: str
    size: int
    created: str
    description: str
    in_use: bool = False
    shared: bool = False
    usage_count: int = 0
    last_used: str | None = None
    type: str = "regular"

    def as_doc(self) -> dict[str, Any]:
        """GET /system/df's BuildCache entry."""
        return {"ID": self.id, "Parent": self.parent, "Parents": [self.parent] if self.parent else [],
                "Type": self.type, "Description": self.description, "InUse": self.in_use,
                "Shared": self.shared, "Size": self.size, "CreatedAt": self.created,
                "LastUsedAt": self.last_used, "UsageCount": self.usage_count}


def _intermediates(images: Images) -> list[tuple[str, dict[str, Any], int, str]]:
    """(id, config doc, size, parent) of the images a build made and nothing
    names: untagged images with a container_config and a parent or a child."""
    refs = images.store.load_refs()
    tagged = set(refs.values())
    records = images.store.records()
    parents = {r.get("parent") for r in records}
    out = []
    for record in records:
        if record["id"] in tagged:
            continue
        try:
            doc = images.blobs.read_json(record["config"]["digest"])
        except (ImageError, OSError, ValueError):
            continue
        if "container_config" not in doc or not (record.get("parent") or record["id"] in parents):
            continue
        size = images.size(record) - (images.size(images.store.get_record(record["parent"]))
                                      if record.get("parent") and images.store.has_record(record["parent"])
                                      else 0)
        out.append((record["id"], doc, max(0, size), record.get("parent") or ""))
    return out


def cache_usage(engine: Engine) -> list[dict[str, Any]]:
    """docker system df's BuildCache: the builds' untagged intermediate images."""
    images = engine.images.images
    entries = []
    for image_id, doc, size, parent in _intermediates(images):
        created_by = " ".join((doc.get("container_config") or {}).get("Cmd") or [])
        entries.append(CacheRecord(image_id.removeprefix("sha256:")[:25], parent, size,
                                   str(doc.get("created") or ""), created_by).as_doc())
    return entries


def prune_cache(engine: Engine, *, all: bool = False) -> tuple[list[str], int]:
    """docker builder prune (POST /build/prune): remove the intermediate
    images nothing is built on (no tagged image, no container; children
    first).  ``all`` is accepted for the API (every entry here is unused
    cache).  -> (removed ids, bytes reclaimed)."""
    images = engine.images.images
    before = images._disk_usage()
    used = {info.get("image") for info in images.snapshots.containers().values()}
    deleted: list[str] = []
    progress = True
    while progress:  # children first: a parent goes once nothing is built on it
        progress = False
        records = images.store.records()
        parents = {r.get("parent") for r in records}
        for image_id, _doc, _size, _parent in _intermediates(images):
            if image_id in parents or image_id in used:
                continue
            try:
                images.remove(image_id, force=False)
            except ImageError:
                continue
            deleted.append(image_id)
            progress = True
    images.collect_garbage()
    return deleted, max(0, before - images._disk_usage())
