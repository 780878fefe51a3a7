"""A build step's result as an image of the store: the parent's layers plus,
when the step changed the filesystem, one new layer; the step's config and a
history entry as docker's classic builder writes them (image.NewChildImage).

Each step's image is kept (intermediate images with a Parent, `docker images
-a` shows them as <none>): the build cache finds a step's result among the
children of the previous step's image (cache.py).
"""

from __future__ import annotations

import copy
import os
import tempfile
from typing import IO, Any

from pybox.formats.times import rfc3339_nano_fixed
from pybox.images import layers as layer_io
from pybox.images import store as st
from pybox.images.config import host_platform
from pybox.images.service import Images

# what the engine bind-mounts into every container (and the mount points the
# runtime makes for them in the writable layer): never part of a RUN's layer
ENGINE_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv")


def parent_config(images: Images, image_id: str) -> dict[str, Any]:
    """The image config (the whole OCI/docker document) of ``image_id``; for
    scratch (""), an empty one for this host's platform."""
    if not image_id:
        os_name, arch = host_platform()
        return {"architecture": arch, "os": os_name, "config": {},
                "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    record = images.store.get_record(image_id)
    doc: dict[str, Any] = images.blobs.read_json(record["config"]["digest"])
    return doc


def layer_chain(images: Images, image_id: str) -> list[str]:
    """The chain ids of an image's layers, bottom first ([] for scratch)."""
    if not image_id:
        return []
    return [layer["chain_id"] for layer in images.store.get_record(image_id)["layers"]]


def _hidden(path: str) -> bool:
    """A change that is the engine's, not the step's: the mount points, and
    the directories holding them changed only by them."""
    rel = path.lstrip("/")
    return rel in ENGINE_FILES


def step_changed(images: Images, snapshot: str) -> bool:
    """Whether the step's writable layer holds a change of its own."""
    changes = images.snapshots.changes(snapshot)
    own = [c for c in changes if not _hidden(c.path)]
    for change in own:
        rel = change.path.lstrip("/")
        if change.kind == 0 and any(f.startswith(rel + "/") for f in ENGINE_FILES):
            if not any(o.path.startswith(change.path + "/") for o in own):
                continue
        return True
    return False


def write_layer(images: Images, snapshot: str, out: IO[bytes]) -> None:
    """The snapshot's changes as a layer tar (whiteouts for deletions), the
    engine's mount points left out."""
    info = images.snapshots.container_info(snapshot)
    if info["driver"] == "overlay":
        upper = os.path.join(images.snapshots.container_dir(snapshot), "upper")
        layer_io.write_tree(upper, out, overlay_whiteouts=True, skip=ENGINE_FILES)
    else:
        images.snapshots.write_layer(snapshot, out)


def commit_step(images: Images, parent_id: str, run_config: dict[str, Any],
                container_config: dict[str, Any], *, snapshot: str | None,
                container_id: str = "", author: str = "") -> str:
    """A child image of ``parent_id`` ("" for scratch): its config
    ``run_config``, ``container_config`` the step's (its Cmd the instruction:
    the cache compares it and history shows it), and the layer of ``upper``
    snapshot's changes (a container's or a build snapshot's writable layer;
    None or an unchanged one: an empty layer).
    -> the image Id."""
    base = parent_config(images, parent_id)
    empty = snapshot is None or not step_changed(images, snapshot)
    with images.writing():
        parent_layers = images.store.get_record(parent_id)["layers"] if parent_id else []
        descriptors = [st.descriptor(layer["blob"]["mediaType"], layer["blob"]["digest"],
                                     layer["blob"]["size"]) for layer in parent_layers]
        diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
        if not empty and snapshot is not None:
            with tempfile.TemporaryFile(dir=images.blobs.ingest) as layer_file:
                write_layer(images, snapshot, layer_file)
                layer_file.seek(0)
                digest, size = images.write_blob(layer_file)
            top = parent_layers[-1]["chain_id"] if parent_layers else None
            info = images.snapshots.ensure_layer(top, digest, lambda: images.blobs.open(digest),
                                                 allow_devices=True)
            diff_ids.append(info["diff_id"])
            descriptors.append(st.descriptor(st.MEDIA_OCI_LAYER, digest, size))
        created = rfc3339_nano_fixed()
        new = copy.deepcopy(base)
        new["config"] = copy.deepcopy(run_config)
        new["container_config"] = copy.deepcopy(container_config)
        new["container"] = container_id
        new["created"] = created
        new.pop("comment", None)
        if author:
            new["author"] = author
        new["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        entry: dict[str, Any] = {"created": created,
                                 "created_by": " ".join(container_config.get("Cmd") or [])}
        if author:
            entry["author"] = author
        if empty:
            entry["empty_layer"] = True
        new["history"] = [*(base.get("history") or []), entry]
        config_bytes = st.canonical_json(new)
        config_digest = images.blobs.write_bytes(config_bytes)
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": st.MEDIA_OCI_MANIFEST,
            "config": st.descriptor(st.MEDIA_OCI_CONFIG, config_digest, len(config_bytes)),
            "layers": descriptors}
        return images.add_image(manifest, config_bytes, parent=parent_id)
