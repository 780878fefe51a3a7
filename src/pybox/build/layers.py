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
from dataclasses import dataclass, field
from typing import IO, Any

from pybox.formats.times import rfc3339_nano_fixed
from pybox.images import layers as layer_io
from pybox.images import store as st
from pybox.images.config import host_platform
from pybox.images.service import Images
from pybox.images.snapshots import CHANGE_DELETE, DRIVER_OVERLAY, Change, write_changes

# what the engine bind-mounts into every container (and the mount points the
# runtime makes for them in the writable layer): never part of a RUN's layer
ENGINE_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv")
# and the kernel filesystems mounted over these (what a RUN writes there is not
# in its writable layer): only the mount point dirs can be there
RUN_SKIPS = frozenset((*ENGINE_FILES, "dev", "proc", "sys"))


# docker's container.Config as Go writes it into an image config: every field,
# "" / false / null included, but these (json:",omitempty") only when set
GO_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("Tty", False), ("OpenStdin", False),
    ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None), ("Labels", None))
GO_CONFIG_OMITEMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled",
                       "MacAddress", "StopSignal", "StopTimeout", "Shell")


def go_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the fields Go's encoding of container.Config has."""
    out: dict[str, Any] = {key: config.get(key, zero) if config.get(key) is not None else zero
                           for key, zero in GO_CONFIG_FIELDS}
    for key in GO_CONFIG_OMITEMPTY:
        if config.get(key):
            out[key] = config[key]
    return out


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


def _skipped(rel: str, skips: frozenset[str]) -> bool:
    return rel in skips or any(rel.startswith(s + "/") for s in skips)


def _holders(entries: list[str], skips: frozenset[str]) -> set[str]:
    """The directories among ``entries`` that are there only to hold skipped
    paths (copied up or made for a mount point): nothing else below them."""
    own = [e for e in entries if not _skipped(e, skips)]
    return {e for e in own if any(s.startswith(e + "/") for s in skips)
            and not any(o.startswith(e + "/") for o in own)}


@dataclass
class LayerPlan:
    """What of a snapshot becomes the step's layer: ``empty`` (docker's empty
    layer: its tar would hold nothing), the paths to leave out (overlay), or
    the changes to write (the copying driver)."""

    empty: bool
    skip: set[str] = field(default_factory=set)
    changes: list[Change] | None = None


def plan_layer(images: Images, snapshot: str, container: bool) -> LayerPlan:
    """The step's layer is its writable layer as it is (docker's overlay2 Diff:
    the upper dir, a directory only copied up included); for a RUN's container
    without what the engine made for it: the mount points of its /etc files and
    of /dev, /proc, /sys (docker's init layer), and the directories there only
    to hold them."""
    skips = RUN_SKIPS if container else frozenset()
    info = images.snapshots.container_info(snapshot)
    if info["driver"] != DRIVER_OVERLAY:
        changes = [c for c in images.snapshots.changes(snapshot)
                   if not _skipped(c.path.lstrip("/"), skips)]
        held = _holders([c.path.lstrip("/") for c in changes if c.kind != CHANGE_DELETE], skips)
        changes = [c for c in changes if c.path.lstrip("/") not in held]
        return LayerPlan(not changes, changes=changes)
    upper = os.path.join(images.snapshots.container_dir(snapshot), "upper")
    entries = []
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in dirnames + filenames:
            entries.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    held = _holders(entries, skips)
    own = [e for e in entries if not _skipped(e, skips) and e not in held]
    return LayerPlan(not own and not layer_io.is_opaque_dir(upper), skip=set(skips) | held)


def write_layer(images: Images, snapshot: str, plan: LayerPlan, out: IO[bytes]) -> None:
    """The snapshot's layer tar (whiteouts for deletions), as ``plan`` says."""
    cdir = images.snapshots.container_dir(snapshot)
    if plan.changes is not None:
        write_changes(os.path.join(cdir, "merged"), plan.changes, out)
        return
    layer_io.write_tree(os.path.join(cdir, "upper"), out, overlay_whiteouts=True,
                        skip=plan.skip)


def commit_step(images: Images, parent_id: str, run_config: dict[str, Any],
                container_config: dict[str, Any], *, snapshot: str | None,
                container: bool = False, container_id: str = "", author: str = "") -> str:
    """A child image of ``parent_id`` ("" for scratch): its config
    ``run_config``, ``container_config`` the step's (its Cmd the instruction:
    the cache compares it and history shows it), and the layer of the
    ``snapshot`` (a container's or a build snapshot's writable layer; None or
    an unchanged one: an empty layer).
    -> the image Id."""
    base = parent_config(images, parent_id)
    plan = plan_layer(images, snapshot, container) if snapshot is not None else None
    empty = plan is None or plan.empty
    with images.writing():
        parent_layers = images.store.get_record(parent_id)["layers"] if parent_id else []
        descriptors = [st.descriptor(layer["blob"]["mediaType"], layer["blob"]["digest"],
                                     layer["blob"]["size"]) for layer in parent_layers]
        diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
        if plan is not None and not plan.empty and snapshot is not None:
            with tempfile.TemporaryFile(dir=images.blobs.ingest) as layer_file:
                write_layer(images, snapshot, plan, layer_file)
                layer_file.seek(0)
                digest, size = images.write_blob(layer_file)
            top = parent_layers[-1]["chain_id"] if parent_layers else None
            info = images.snapshots.ensure_layer(top, digest, lambda: images.blobs.open(digest),
                                                 allow_devices=True)
            diff_ids.append(info["diff_id"])
            descriptors.append(st.descriptor(st.MEDIA_OCI_LAYER, digest, size))
        created = rfc3339_nano_fixed()
        new = copy.deepcopy(base)
        new["config"] = go_config(copy.deepcopy(run_config))
        new["container_config"] = go_config(copy.deepcopy(container_config))
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
