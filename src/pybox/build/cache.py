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

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybox.errors import ImageError
from pybox.images import store as st
from pybox.images.service import Images

if TYPE_CHECKING:
    from pybox.engine.engine import Engine

# the container.Config fields moby's cache compare() looks at
COMPARED = ("Cmd", "Env", "Entrypoint", "ExposedPorts", "Volumes", "Labels", "Shell", "User",
            "WorkingDir", "OnBuild", "StopSignal", "Healthcheck", "Tty", "OpenStdin",
            "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr", "NetworkDisabled",
            "ArgsEscaped", "StopTimeout")


def _norm(config: dict[str, Any]) -> dict[str, Any]:
    """The compared fields, with Go's zero values and absent ones alike."""
    return {key: config[key] for key in COMPARED if config.get(key) not in (None, "", [], {}, False)}


def same_config(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    return a is not None and _norm(a) == _norm(b)


# what the probe reads of an image config, by the config's digest: (its container_config's
# compared fields or None, its created) -- a config never changes (content-addressed), so a
# rebuild reads none again (bounded: the oldest go first)
_STEPS: dict[str, tuple[dict[str, Any] | None, str]] = {}
_STEPS_MAX = 4096
_STEPS_LOCK = threading.Lock()


def _step_of(images: Images, config_digest: str) -> tuple[dict[str, Any] | None, str] | None:
    """(compared fields of container_config, created) of a config; None when
    it cannot be read."""
    with _STEPS_LOCK:
        known = _STEPS.get(config_digest)
    if known is not None:
        return known
    try:
        doc = images.blobs.read_json(config_digest)
    except (ImageError, OSError, ValueError):
        return None
    cc = doc.get("container_config")
    step = (_norm(cc) if isinstance(cc, dict) else None, str(doc.get("created") or ""))
    with _STEPS_LOCK:
        if len(_STEPS) >= _STEPS_MAX:
            del _STEPS[next(iter(_STEPS))]
        _STEPS[config_digest] = step
    return step


@dataclass
class Prober:
    """One stage's probe: ``disabled`` (no_cache), ``busted`` after a miss;
    ``sources`` the --cache-from images (Ids), matched by their history as
    moby's ImageCache does when no local child of the chain matches."""

    images: Images
    disabled: bool = False
    busted: bool = False
    # parent id -> [(child id, its config's digest)]: the store's images read once per
    # build (the first probe), then the build's own new ones added
    children: dict[str, list[tuple[str, str]]] | None = None
    sources: list[str] = field(default_factory=list)
    restricted: bool = False  # --cache-from given (even naming nothing that exists)

    def reset(self) -> None:
        """A new stage: probe again (moby resets the prober per FROM)."""
        self.busted = False

    def _children(self) -> dict[str, list[tuple[str, str]]]:
        if self.children is None:
            self.children = {}
            for record in self.images.store.records():
                self.children.setdefault(record.get("parent") or "", []).append(
                    (record["id"], record["config"]["digest"]))
        return self.children

    def _doc(self, image_id: str) -> dict[str, Any] | None:
        try:
            record = self.images.store.get_record(image_id)
            doc: dict[str, Any] = self.images.blobs.read_json(record["config"]["digest"])
        except (ImageError, OSError, ValueError):
            return None
        return doc

    def _local(self, parent_id: str, container_config: dict[str, Any]) -> str | None:
        """The newest child of ``parent_id`` built by the same step (and still
        there: one removed since the build began is none)."""
        best: tuple[str, str] | None = None
        wanted = _norm(container_config)
        for child, config_digest in self._children().get(parent_id, ()):
            step = _step_of(self.images, config_digest)
            if step is None or step[0] is None or step[0] != wanted:
                continue
            if best is None or step[1] > best[0]:
                best = (step[1], child)
        if best is not None and not self.images.store.has_record(best[1]):
            return None
        return best[1] if best else None

    def _ancestor(self, image_id: str, ancestor: str) -> bool:
        seen = set()
        current = image_id
        while current and current not in seen:
            seen.add(current)
            try:
                current = self.images.store.get_record(current).get("parent") or ""
            except ImageError:
                return False
            if current == ancestor:
                return True
        return False

    def probe(self, parent_id: str, container_config: dict[str, Any]) -> str | None:
        """The image this step made before, or None (and the stage's cache is
        busted: the later steps run)."""
        if self.disabled or self.busted:
            return None
        found = self._local(parent_id, container_config)
        if self.restricted:
            if found is not None and not any(self._ancestor(s, found) for s in self.sources):
                found = None
            if found is None:
                found = self._from_sources(parent_id, container_config)
        if found is None:
            self.busted = True
        return found

    def _from_sources(self, parent_id: str, container_config: dict[str, Any]) -> str | None:
        """moby's ImageCache.GetCache: a --cache-from image whose history
        continues the parent's with this step's command."""
        parent = self._doc(parent_id) if parent_id else None
        parent_history = list((parent or {}).get("history") or [])
        parent_layers = list(((parent or {}).get("rootfs") or {}).get("diff_ids") or [])
        created_by = " ".join(container_config.get("Cmd") or [])
        for target_id in self.sources:
            target = self._doc(target_id)
            if target is None:
                continue
            history = list(target.get("history") or [])
            layers = list((target.get("rootfs") or {}).get("diff_ids") or [])
            if not history or len(parent_history) >= len(history):
                continue
            if parent is not None and (parent_history or parent_layers):
                if history[:len(parent_history)] != parent_history \
                        or layers[:len(parent_layers)] != parent_layers:
                    continue
            entry = history[len(parent_history)]
            if entry.get("created_by", "") != created_by:
                continue
            if len(history) - 1 == len(parent_history):  # the source itself
                if parent_id:
                    self._set_parent(target_id, parent_id)
                    self.added(parent_id, target_id)
                return target_id
            restored = self._restore(parent_id, parent, target_id, target, len(parent_history),
                                     container_config)
            self.sources = [target_id]
            return restored
        return None

    def _set_parent(self, image_id: str, parent_id: str) -> None:
        with self.images.store.meta_lock():
            record = self.images.store.get_record(image_id)
            record["parent"] = parent_id
            self.images.store.put_record(record)

    def _restore(self, parent_id: str, parent: dict[str, Any] | None, target_id: str,
                 target: dict[str, Any], index: int, container_config: dict[str, Any]) -> str:
        """An image of the parent plus the source's step ``index`` (its history
        entry and, unless empty, its layer): moby's restoreCachedImage."""
        history = list(target.get("history") or [])
        layer_index = sum(1 for h in history[:index] if not h.get("empty_layer"))
        target_record = self.images.store.get_record(target_id)
        parent_record = self.images.store.get_record(parent_id) if parent_id else None
        layer_entries = list(parent_record["layers"]) if parent_record else []
        entry = history[index]
        if not entry.get("empty_layer"):
            layer_entries.append(target_record["layers"][layer_index])
        doc: dict[str, Any] = {
            "architecture": target.get("architecture"), "os": target.get("os"),
            "config": container_config, "created": entry.get("created"),
            "history": [*((parent or {}).get("history") or []), entry],
            "rootfs": {"type": "layers", "diff_ids": [e["diff_id"] for e in layer_entries]}}
        if target.get("author"):
            doc["author"] = target["author"]
        config_bytes = st.canonical_json(doc)
        with self.images.writing():
            config_digest = self.images.blobs.write_bytes(config_bytes)
            manifest: dict[str, Any] = {
                "schemaVersion": 2, "mediaType": st.MEDIA_OCI_MANIFEST,
                "config": st.descriptor(st.MEDIA_OCI_CONFIG, config_digest, len(config_bytes)),
                "layers": [st.descriptor(e["blob"]["mediaType"], e["blob"]["digest"],
                                         e["blob"]["size"]) for e in layer_entries]}
            restored = self.images.add_image(manifest, config_bytes, parent=parent_id)
        self.added(parent_id, restored)
        return restored

    def added(self, parent_id: str, image_id: str) -> None:
        """A step's new image is a child the next probes may find."""
        if self.children is None:
            return  # (read with the rest at the first probe)
        try:
            config_digest = self.images.store.get_record(image_id)["config"]["digest"]
        except ImageError:
            return
        self.children.setdefault(parent_id, []).append((image_id, config_digest))


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
