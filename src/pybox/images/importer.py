"""Images made of one new layer: ``docker import`` (a rootfs tarball) and
``docker commit`` (a container's writable layer on top of its image).

Both write the layer tar into the blob store first (verified, temp-then-rename),
unpack it once as a snapshot, build the config and manifest, and register the
image through ``Images.add_image`` - the same path every other way in takes, so
the same checks (diff-ids, missing blobs) and the same all-or-nothing rule hold.
"""

import copy
import os
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pybox.crashpoints import crashpoint
from pybox.errors import ImageError
from pybox.formats.times import rfc3339_nano_fixed
from pybox.images import config as image_config
from pybox.images import layers as layer_io
from pybox.images import reference as references
from pybox.images import store as st

if TYPE_CHECKING:  # service imports this module: Images is only an annotation here
    from pybox.images.service import Images


def _media_type_for(blobs: st.BlobStore, digest: str) -> str:
    kind = layer_io.blob_compression(blobs, digest)
    if kind not in st.LAYER_MEDIA_BY_COMPRESSION:
        raise ImageError(f"unsupported compression {kind} for an image layer: "
                         "decompress the tarball first")
    return st.LAYER_MEDIA_BY_COMPRESSION[kind]


def _target_refs(reference: str | None) -> list[str]:
    if not reference:
        return []
    ref = references.parse(reference)
    if ref.digest:
        raise ImageError("refusing to create a tag with a digest reference")
    return [str(ref)]


def import_rootfs(images: "Images", source: str | os.PathLike[str] | st.Readable, *,
                  reference: str | None = None, changes: Iterable[str] = (),
                  message: str = "", created: str | None = None) -> str:
    """docker import SOURCE [REPOSITORY[:TAG]] with --change and --message."""
    refs = _target_refs(reference)
    container_config = image_config.apply_changes({}, changes)
    with images.writing():
        with st.open_source(source) as stream:
            digest, size = images.write_blob(stream)
            crashpoint("images.import.blob")
        media = _media_type_for(images.blobs, digest)
        # the diff-id is only known once the tar is read: unpack now, then name it
        info = images.snapshots.ensure_layer(None, None, lambda: images.blobs.open(digest),
                                             allow_devices=images.allow_device_nodes)
        created = created or rfc3339_nano_fixed()
        history = [{"created": created, "created_by": "",
                    "comment": message or "Imported from -"}]
        config = image_config.new_config([info["diff_id"]], config=container_config,
                                         history=history, created=created,
                                         comment=message or None)
        config_bytes = st.canonical_json(config)
        config_digest = images.blobs.write_bytes(config_bytes)
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": st.MEDIA_OCI_MANIFEST,
            "config": st.descriptor(st.MEDIA_OCI_CONFIG, config_digest, len(config_bytes)),
            "layers": [st.descriptor(media, digest, size)]}
        return images.add_image(manifest, config_bytes, refs=refs)


# keys of docker's container Config that a commit's ``config`` may set
COMMIT_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes",
                      "WorkingDir", "Labels", "StopSignal", "Healthcheck", "OnBuild",
                      "Shell")


def commit_container(images: "Images", container_id: str, *, reference: str | None = None,
                     changes: Iterable[str] = (), message: str = "", author: str = "",
                     config: dict[str, Any] | None = None) -> str:
    """docker commit CONTAINER [REPOSITORY[:TAG]] with --change/--message/--author."""
    refs = _target_refs(reference)
    snapshots = images.snapshots
    info = snapshots.container_info(container_id)
    parent_id = info["image"]
    with images.writing():
        parent_record = images.store.get_record(parent_id)
        parent_config = images.blobs.read_json(parent_record["config"]["digest"])
        ingest = images.blobs.ingest
        try:
            with tempfile.TemporaryFile(dir=ingest) as layer_file:
                snapshots.write_layer(container_id, layer_file)
                layer_file.seek(0)
                digest, size = images.write_blob(layer_file)
                crashpoint("images.commit.blob")
        except OSError as e:
            if isinstance(e, ImageError):
                raise
            raise st.storage_error(f"committing container {container_id}", e) from None
        top_chain = parent_record["layers"][-1]["chain_id"] if parent_record["layers"] else None
        layer = snapshots.ensure_layer(top_chain, digest, lambda: images.blobs.open(digest),
                                       allow_devices=True)
        crashpoint("images.commit.layer")
        created = rfc3339_nano_fixed()
        new = copy.deepcopy(parent_config)
        container_config = dict(new.get("config") or {})
        for key in COMMIT_CONFIG_KEYS:
            if config and config.get(key) is not None:
                container_config[key] = config[key]
        container_config = image_config.apply_changes(container_config, changes)
        new["config"] = container_config
        new["created"] = created
        new.pop("comment", None)
        if author:
            new["author"] = author
        if message:
            new["comment"] = message
        new["rootfs"] = {"type": "layers",
                         "diff_ids": [*(parent_config.get("rootfs") or {}).get("diff_ids", []),
                                      layer["diff_id"]]}
        entry: dict[str, Any] = {"created": created, "created_by": "", "comment": message}
        if author:
            entry["author"] = author
        new["history"] = [*(parent_config.get("history") or []), entry]
        config_bytes = st.canonical_json(new)
        config_digest = images.blobs.write_bytes(config_bytes)
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": st.MEDIA_OCI_MANIFEST,
            "config": st.descriptor(st.MEDIA_OCI_CONFIG, config_digest, len(config_bytes)),
            "layers": [*(st.descriptor(layer_entry["blob"]["mediaType"],
                                       layer_entry["blob"]["digest"],
                                       layer_entry["blob"]["size"])
                         for layer_entry in parent_record["layers"]),
                       st.descriptor(st.MEDIA_OCI_LAYER, digest, size)]}
        return images.add_image(manifest, config_bytes, refs=refs, parent=parent_id)


__all__ = ["import_rootfs", "commit_container"]
