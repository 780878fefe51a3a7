"""Image archives: docker-archive (``docker save``/``docker load``) and OCI image
layouts, as directories or tarballs.

docker-archive (what ``docker save`` writes; ``docker load`` reads both forms):

    manifest.json     [{"Config": "PATH", "RepoTags": ["busybox:latest"],
                        "Layers": ["PATH", ...]}, ...]   one entry per image
    repositories      {"busybox": {"latest": "TOP_LAYER_ID"}}   (legacy clients)
    PATHs: docker < 25:  CONFIG_HEX.json and V1ID/layer.tar (duplicates may be
                         symlinks to another layer.tar)
           docker >= 25: blobs/sha256/HEX, with index.json and oci-layout beside,
                         so the same tarball is also an OCI archive

Layers in a docker-archive are uncompressed tars (their digest is the diff-id).
pybox writes the docker >= 25 form: readable by every docker, podman and skopeo.

OCI image layout (umoci, skopeo ``oci:``, buildah, docker >= 25):

    oci-layout        {"imageLayoutVersion": "1.0.0"}
    index.json        an image index: manifests (or nested indexes) with
                      annotations org.opencontainers.image.ref.name (a tag, or a
                      full reference) and io.containerd.image.name
    blobs/sha256/HEX  manifests, configs, layers (any compression)

Reading streams the archive once: every regular file that is not small JSON goes
straight into the blob store (verified against its name under blobs/sha256/), so
nothing is unpacked twice; a manifest is then resolved against what arrived.
"""

import dataclasses
import io
import json
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterable
from typing import IO, Any, NoReturn, Protocol, cast

from pybox.errors import ImageError, LayerError
from pybox.images import layers as layer_io
from pybox.images import platforms
from pybox.images import reference as references
from pybox.images import store as st

SMALL_FILE = 4 << 20
METADATA_FILES = ("manifest.json", "index.json", "repositories", "oci-layout")
OCI_LAYOUT = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
MAX_INDEX_DEPTH = 16  # indexes naming indexes: a deeper chain is refused, not recursed

# A Go type, as below: "string", "bool", "int", ("list", T), ("map", T),
# ("strslice",) or (struct name, {field: T})
GoType = str | tuple[Any, ...]


# -- the archive's JSON, decoded by type -------------------------------------------
# docker load decodes manifest.json, the OCI index and manifests and the image
# config into Go structs: a value of another JSON type fails the load with
# encoding/json's words.  Here the documents are checked against the same
# types before anything reads them (a RepoTags string is not a list of one-
# character tags), and a document nested past what the parser takes is a 400.
# A type is "string", "bool", "int" (int64), ("list", T), ("map", T),
# ("strslice", ) (docker's StrSlice: a string or a list of them) or
# (struct name, {field: T}); null is any type's zero value, as in Go.

def _struct(name: str, fields: dict[str, GoType]) -> GoType:
    return (name, fields)


_STRINGS = ("list", "string")
_STRING_MAP = ("map", "string")
_EMPTY_STRUCTS: GoType = ("map", ("struct{}", {}))
_STRSLICE = ("strslice",)
_PLATFORM = _struct("Platform", {"architecture": "string", "os": "string",
                                 "os.version": "string", "os.features": _STRINGS,
                                 "variant": "string"})
_DESCRIPTOR = _struct("Descriptor", {"mediaType": "string", "digest": "string", "size": "int",
                                     "urls": _STRINGS, "annotations": _STRING_MAP,
                                     "platform": _PLATFORM, "artifactType": "string"})
_INDEX = _struct("Index", {"schemaVersion": "int", "mediaType": "string",
                           "manifests": ("list", _DESCRIPTOR), "annotations": _STRING_MAP})
_MANIFEST = _struct("Manifest", {"schemaVersion": "int", "mediaType": "string",
                                 "config": _DESCRIPTOR, "layers": ("list", _DESCRIPTOR),
                                 "annotations": _STRING_MAP})
_MANIFEST_ITEM = _struct("manifestItem", {"Config": "string", "RepoTags": _STRINGS,
                                          "Layers": _STRINGS, "Parent": "string"})
_HEALTH = _struct("HealthConfig", {"Test": _STRINGS, "Interval": "int", "Timeout": "int",
                                   "StartPeriod": "int", "StartInterval": "int",
                                   "Retries": "int"})
_CONTAINER_CONFIG = _struct("Config", {
    "Hostname": "string", "Domainname": "string", "User": "string", "AttachStdin": "bool",
    "AttachStdout": "bool", "AttachStderr": "bool", "ExposedPorts": _EMPTY_STRUCTS,
    "Tty": "bool", "OpenStdin": "bool", "StdinOnce": "bool", "Env": _STRINGS,
    "Cmd": _STRSLICE, "Healthcheck": _HEALTH, "ArgsEscaped": "bool", "Image": "string",
    "Volumes": _EMPTY_STRUCTS, "WorkingDir": "string", "Entrypoint": _STRSLICE,
    "OnBuild": _STRINGS, "Labels": _STRING_MAP, "StopSignal": "string", "StopTimeout": "int",
    "Shell": _STRSLICE})
_IMAGE_CONFIG = _struct("Image", {
    "created": "string", "author": "string", "architecture": "string", "variant": "string",
    "os": "string", "os.version": "string", "os.features": _STRINGS,
    "config": _CONTAINER_CONFIG, "container_config": _CONTAINER_CONFIG,
    "rootfs": _struct("RootFS", {"type": "string", "diff_ids": _STRINGS}),
    "history": ("list", _struct("History", {"created": "string", "created_by": "string",
                                            "author": "string", "comment": "string",
                                            "empty_layer": "bool"})),
    "comment": "string", "docker_version": "string"})


def _go_kind(value: Any) -> str:
    """How encoding/json names a JSON value in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}" if not isinstance(value, int) else "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "value")


def _go_type(typ: GoType) -> str:
    if typ == "int":
        return "int64"
    if isinstance(typ, str):
        return typ
    if typ[0] == "list":
        return "[]" + _go_type(typ[1])
    if typ[0] == "map":
        return "map[string]" + _go_type(typ[1])
    if typ[0] == "strslice":
        return "strslice.StrSlice"
    name: str = typ[0]
    return name


def _typed(value: Any, typ: GoType, where: str, struct: str | None = None,
           path: str = "") -> None:
    """Raise ImageError if ``value`` does not decode into Go type ``typ``."""
    def bad() -> NoReturn:
        into = (f"Go struct field {struct}.{path}" if struct else "Go value")
        raise ImageError(f"invalid archive: {where}: json: cannot unmarshal "
                         f"{_go_kind(value)} into {into} of type {_go_type(typ)}")

    if value is None:
        return
    if typ == "string":
        if not isinstance(value, str):
            bad()
    elif typ == "bool":
        if not isinstance(value, bool):
            bad()
    elif typ == "int":
        if isinstance(value, bool) or not isinstance(value, int) or \
                not -(1 << 63) <= value < (1 << 63):
            bad()
    elif typ[0] == "strslice":
        if isinstance(value, str):
            return
        _typed(value, _STRINGS, where, struct, path)
    elif typ[0] == "list":
        if not isinstance(value, list):
            bad()
        for item in value:
            _typed(item, typ[1], where, struct, path)
    elif typ[0] == "map":
        if not isinstance(value, dict):
            bad()
        for item in value.values():
            _typed(item, typ[1], where, struct, path)
    else:
        name, fields = cast(tuple[str, dict[str, GoType]], typ)  # a struct: the rest
        if not isinstance(value, dict):
            bad()
        for key, ftyp in fields.items():
            if key in value:
                _typed(value[key], ftyp, where, name,
                       f"{path}.{key}" if path else key)


def _json(data: bytes, what: str, typ: GoType | None = None) -> Any:
    """``data`` parsed, and checked against Go type ``typ``: ImageError (a 400)
    for what is not JSON, nested deeper than the parser goes (Go's decoder
    stops at 10,000 too), or of another type."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"invalid archive: {what} is not valid JSON: {e}") from None
    except RecursionError:
        raise ImageError(f"invalid archive: {what} is not valid JSON: exceeded max "
                         "depth") from None
    if typ is not None:
        _typed(doc, typ, what)
    return doc


def check_config(config_bytes: bytes, what: str) -> dict[str, Any]:
    """The image config as docker load decodes it: an object whose fields have
    their types (an image whose ``created`` is a number would break every
    later ``docker images``)."""
    config = _json(config_bytes, what, _IMAGE_CONFIG)
    if not isinstance(config, dict):
        raise ImageError(f"invalid archive: {what} is not a JSON object")
    return config


@dataclasses.dataclass
class ImageToAdd:
    """One image found in an archive: its manifest (dict, OCI or docker schema2,
    layers' blobs already in the store), config bytes and the references to tag."""

    manifest: dict[str, Any]
    config_bytes: bytes
    refs: list[str]
    manifest_bytes: bytes | None = None


# -- reading -------------------------------------------------------------------

class _ArchiveFiles:
    """What a streamed archive held: small files in memory, blobs in the store."""

    def __init__(self) -> None:
        self.small: dict[str, bytes] = {}
        self.blobs: dict[str, str] = {}
        self.links: dict[str, str] = {}

    def resolve(self, path: str) -> str:
        seen = set()
        while path in self.links and path not in seen:
            seen.add(path)
            path = self.links[path]
        return path

    def read(self, blobs: st.BlobStore, path: str) -> bytes:
        path = self.resolve(path)
        if path in self.small:
            return self.small[path]
        if path in self.blobs:
            return blobs.read(self.blobs[path])
        raise ImageError(f"invalid archive: {path!r} is named but not in the archive")

    def blob_digest(self, path: str) -> str:
        path = self.resolve(path)
        if path in self.blobs:
            return self.blobs[path]
        raise ImageError(f"invalid archive: layer {path!r} is named by the manifest but "
                         "not in the archive")


def _blob_name_digest(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256":
        digest = "sha256:" + parts[2]
        try:
            references.validate_digest(digest)
        except ImageError:
            raise ImageError(f"invalid archive: bad blob name {name!r}") from None
        return digest
    return None


# dockerd's words for an archive it cannot read (what `docker load` prints
# there, scripts included): its untar's "Error processing tar file(exit status
# 1): ..." with Go's archive/tar errors, and its load's "invalid archive: does
# not contain a manifest.json" (an empty input is an empty tar to Go).  A tar
# cut short at a member boundary Go takes as complete; pybox refuses it, in its
# own words.
TAR_NOT_READABLE = "Error processing tar file(exit status 1): archive/tar: invalid tar header"
TAR_CUT_SHORT = "Error processing tar file(exit status 1): unexpected EOF"
NO_MANIFEST = "invalid archive: does not contain a manifest.json"

_ARCHIVE_TAR_ERRORS = {
    layer_io.TarStreamError.Kind.TRUNCATED: TAR_CUT_SHORT,
    layer_io.TarStreamError.Kind.CORRUPT: TAR_NOT_READABLE,
    layer_io.TarStreamError.Kind.ENDED: TAR_CUT_SHORT,
    layer_io.TarStreamError.Kind.NO_MARKER: "invalid archive: truncated (the tar ends "
                                            "without its end-of-archive marker)",
}


def read_archive(stream: st.Readable, blobs: st.BlobStore,
                 repository: str | None = None) -> list[ImageToAdd]:
    """Stream a (possibly compressed) docker-archive or OCI archive into the blob
    store; returns the list of ImageToAdd.  ``repository``: the name for OCI
    index entries whose ref.name is only a tag."""
    decompressed, _ = layer_io.decompressed(stream, allowed=("gzip", "zstd", "bzip2", "xz",
                                                              None))
    plain = layer_io.HashingReader(decompressed)
    files = _ArchiveFiles()

    def add(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = layer_io.normalise_member_name(member.name)
        if member.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name),
                                                       member.linkname))
            files.links[name] = target
        elif member.islnk():
            files.links[name] = layer_io.normalise_member_name(member.linkname)
        elif member.isreg():
            src = tar.extractfile(member)
            if src is None:
                return  # tarfile gives no reader only for what is not a regular file
            blob_digest = _blob_name_digest(name)
            if blob_digest is None and member.size <= SMALL_FILE and (
                    name in METADATA_FILES or name.endswith(".json")):
                files.small[name] = src.read()
                if len(files.small[name]) != member.size:
                    raise LayerError(f"truncated archive: {name!r} ends early")
                return
            digest, _size = blobs.write_stream(src, blob_digest, member.size)
            files.blobs[name] = digest

    try:
        layer_io.read_tar_stream(plain, add)
    except layer_io.TarStreamError as e:
        if e.kind is layer_io.TarStreamError.Kind.CORRUPT:
            if e.detail == "empty file":
                raise ImageError(NO_MANIFEST) from None
            if plain.size < tarfile.BLOCKSIZE:  # not even one header: Go's short read
                raise ImageError(TAR_CUT_SHORT) from None
        raise ImageError(_ARCHIVE_TAR_ERRORS[e.kind]) from None
    if "manifest.json" in files.small:
        return _docker_archive_images(files, blobs)
    if "index.json" in files.small:
        index = _json(files.small["index.json"], "index.json", _INDEX)
        return _oci_images(index, blobs, None, default_name=repository)
    raise ImageError(NO_MANIFEST)  # nor an OCI layout's index.json


def _docker_archive_images(files: _ArchiveFiles, blobs: st.BlobStore) -> list[ImageToAdd]:
    manifest = _json(files.small["manifest.json"], "manifest.json", ("list", _MANIFEST_ITEM))
    if not isinstance(manifest, list):
        raise ImageError("invalid archive: manifest.json is not a list")
    out = []
    for entry in manifest:
        if not isinstance(entry, dict) or not entry.get("Config") or \
                entry.get("Layers") is None:
            raise ImageError("invalid archive: a manifest.json entry lacks Config or Layers")
        config_bytes = files.read(blobs, entry["Config"])
        check_config(config_bytes, f"image config {entry['Config']}")
        config_digest = blobs.write_bytes(config_bytes)
        layers = []
        for path in entry["Layers"]:
            digest = files.blob_digest(path)
            media = st.LAYER_MEDIA_BY_COMPRESSION.get(layer_io.blob_compression(blobs, digest),
                                                      st.MEDIA_OCI_LAYER)
            layers.append(st.descriptor(media, digest, blobs.size(digest)))
        manifest_obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": st.MEDIA_OCI_MANIFEST,
                        "config": st.descriptor(st.MEDIA_OCI_CONFIG, config_digest,
                                                len(config_bytes)),
                        "layers": layers}
        refs = []
        for tag in entry.get("RepoTags") or []:
            refs.append(str(references.parse(tag)))
        out.append(ImageToAdd(manifest_obj, config_bytes, refs))
    return out


def _platform_matches(desc: dict[str, Any]) -> bool:
    """Is an index entry for this host?  platforms' one matching rule; a
    field the entry leaves out is taken as the host's (docker load's leniency)."""
    platform = desc.get("platform")
    if not platform:
        return True
    host = platforms.host_platform()
    return host.matches({"os": host.os, "architecture": host.architecture, **platform})


def _oci_images(index: Any, blobs: st.BlobStore,
                fetch: Callable[[dict[str, Any]], None] | None,
                default_name: str | None = None, depth: int = 0) -> list[ImageToAdd]:
    """Images named by an OCI index.  ``fetch(digest)`` brings a blob into the
    store when it is not there yet (OCI layout directories); manifest lists are
    narrowed to this host's platform."""
    if not isinstance(index, dict):
        raise ImageError("invalid archive: index.json is not a JSON object")
    if depth > MAX_INDEX_DEPTH:
        raise ImageError(f"invalid OCI index: indexes nested more than {MAX_INDEX_DEPTH} "
                         "deep")
    out = []
    for desc in index.get("manifests") or []:
        media = desc.get("mediaType")
        digest = desc.get("digest")
        if not digest:
            raise ImageError("invalid OCI index: a manifest descriptor has no digest")
        if fetch:
            fetch(desc)
        if not blobs.exists(digest):
            raise ImageError(f"invalid OCI layout: manifest {digest} is named by "
                             "index.json but missing")
        if media in st.INDEX_MEDIA_TYPES:
            nested = _json(blobs.read(digest), f"index {digest}", _INDEX)
            if not isinstance(nested, dict):
                raise ImageError(f"invalid archive: index {digest} is not a JSON object")
            chosen = [d for d in nested.get("manifests") or [] if _platform_matches(d)]
            if not chosen:
                host = platforms.host_platform()
                raise ImageError(f"no image for {host.os}/{host.architecture} in index "
                                 f"{digest}")
            sub = {"manifests": [dict(chosen[0], annotations=desc.get("annotations"))]}
            out.extend(_oci_images(sub, blobs, fetch, default_name, depth + 1))
            continue
        if media and media not in st.MANIFEST_MEDIA_TYPES:
            continue  # artifacts, attestations: not images
        manifest_bytes = blobs.read(digest)
        manifest = _json(manifest_bytes, f"manifest {digest}", _MANIFEST)
        if not isinstance(manifest, dict):
            raise ImageError(f"invalid archive: manifest {digest} is not a JSON object")
        if manifest.get("mediaType") in st.INDEX_MEDIA_TYPES or "manifests" in manifest:
            sub = {"manifests": [{"mediaType": st.MEDIA_OCI_INDEX, "digest": digest,
                                  "annotations": desc.get("annotations")}]}
            out.extend(_oci_images(sub, blobs, fetch, default_name, depth + 1))
            continue
        config_desc = manifest.get("config") or {}
        if fetch:
            fetch(config_desc)
            for layer in manifest.get("layers") or []:
                fetch(layer)
        if not config_desc.get("digest") or not blobs.exists(config_desc["digest"]):
            raise ImageError(f"invalid image: config {config_desc.get('digest')} named "
                             f"by manifest {digest} is missing")
        for layer in manifest.get("layers") or []:
            if not layer.get("digest") or not blobs.exists(layer["digest"]):
                raise ImageError(f"invalid image: layer {layer.get('digest')} named by "
                                 f"manifest {digest} is missing")
        refs = _refs_from_annotations(desc.get("annotations") or {}, default_name)
        config_bytes = blobs.read(config_desc["digest"])
        check_config(config_bytes, f"image config {config_desc['digest']}")
        out.append(ImageToAdd(manifest, config_bytes, refs, manifest_bytes=manifest_bytes))
    return out


def _refs_from_annotations(annotations: dict[str, str], default_name: str | None) -> list[str]:
    """containerd's full name wins; else ref.name if it is a full reference, else
    ref.name as a tag of ``default_name`` (``load --name``), else untagged."""
    full = annotations.get(ANNOTATION_IMAGE_NAME)
    if full:
        return [str(references.parse(full))]
    ref_name = annotations.get(ANNOTATION_REF_NAME)
    if not ref_name:
        return []
    if default_name:
        try:
            references.validate_tag(ref_name)
            return [str(references.parse(default_name).with_tag(ref_name))]
        except ImageError:
            pass
    if "/" in ref_name or ":" in ref_name:
        try:
            return [str(references.parse(ref_name))]
        except ImageError:
            return []
    return []


def read_oci_layout_dir(path: str, blobs: st.BlobStore,
                        name: str | None = None) -> list[ImageToAdd]:
    """Images of an OCI layout directory, copying only the blobs they need (each
    verified against its digest)."""
    try:
        with open(os.path.join(path, "index.json"), "rb") as f:
            index = _json(f.read(), "index.json", _INDEX)
    except FileNotFoundError:
        raise ImageError(f"{path}: not an OCI image layout (no index.json)") from None

    def fetch(desc: dict[str, Any]) -> None:
        digest = desc.get("digest")
        if not digest or blobs.exists(digest):
            return
        blob_path = os.path.join(path, "blobs", "sha256", st.digest_hex(digest))
        try:
            with open(blob_path, "rb") as f:
                blobs.write_stream(f, digest, desc.get("size"))
        except FileNotFoundError:
            raise ImageError(f"invalid OCI layout: blob {digest} is named but missing "
                             f"from {path}") from None

    return _oci_images(index, blobs, fetch, default_name=name)


# -- writing -------------------------------------------------------------------

class LayoutWriter(Protocol):
    """Where an OCI layout is written: a tar stream or a directory."""

    def dir(self, name: str) -> None: ...

    def file(self, name: str, data: bytes | None = None, stream: st.Readable | None = None,
             size: int = 0) -> None: ...

    def close(self) -> None: ...


class _TarWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.written: set[str] = set()

    def dir(self, name: str) -> None:
        if name in self.written:
            return
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self.tar.addfile(info)
        self.written.add(name)

    def file(self, name: str, data: bytes | None = None, stream: st.Readable | None = None,
             size: int = 0) -> None:
        if name in self.written:
            return
        info = tarfile.TarInfo(name)
        info.mode = 0o644
        if data is not None:
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))
        else:
            info.size = size
            self.tar.addfile(info, cast(IO[bytes], stream))  # tarfile only read()s it
        self.written.add(name)

    def close(self) -> None:
        self.tar.close()


class _DirWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)

    def dir(self, name: str) -> None:
        os.makedirs(os.path.join(self.path, name), exist_ok=True)

    def file(self, name: str, data: bytes | None = None, stream: st.Readable | None = None,
             size: int = 0) -> None:
        target = os.path.join(self.path, name)
        if name.startswith("blobs/") and os.path.exists(target):
            return
        tmp = target + ".tmp"
        with open(tmp, "wb") as f:
            if data is not None:
                f.write(data)
            elif stream is not None:
                while True:
                    chunk = stream.read(layer_io.COPY_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
        os.rename(tmp, target)

    def close(self) -> None:
        pass


@dataclasses.dataclass
class SavedImage:
    """What a writer needs of one image: record, config bytes, tags, and how to
    open each layer's stored blob and its uncompressed form."""

    record: st.ImageRecord
    config_bytes: bytes
    refs: list[str]
    open_blob: Callable[[str], IO[bytes]]
    layer_tar_size: Callable[[st.LayerEntry], int]


def write_docker_archive(images: Iterable[SavedImage], out: IO[bytes]) -> None:
    """docker save: manifest.json + repositories + an OCI layout of uncompressed
    layers (docker >= 25's form) in one tar."""
    w = _TarWriter(out)
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    index: list[dict[str, Any]] = []
    w.dir("blobs/")
    w.dir("blobs/sha256/")
    for image in images:
        config_digest = image.record["config"]["digest"]
        w.file(f"blobs/sha256/{st.digest_hex(config_digest)}", image.config_bytes)
        layer_paths, layer_descs = [], []
        for layer in image.record["layers"]:
            diff_id = layer["diff_id"]
            path = f"blobs/sha256/{st.digest_hex(diff_id)}"
            size = image.layer_tar_size(layer)
            if path not in w.written:
                with image.open_blob(layer["blob"]["digest"]) as blob:
                    plain, _ = layer_io.decompressed(blob)
                    w.file(path, stream=_Exact(plain, size, diff_id), size=size)
            layer_paths.append(path)
            layer_descs.append(st.descriptor(st.MEDIA_OCI_LAYER, diff_id, size))
        manifest = {"schemaVersion": 2, "mediaType": st.MEDIA_OCI_MANIFEST,
                    "config": st.descriptor(st.MEDIA_OCI_CONFIG, config_digest,
                                            len(image.config_bytes)),
                    "layers": layer_descs}
        manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        manifest_digest = st.sha256_digest(manifest_bytes)
        w.file(f"blobs/sha256/{st.digest_hex(manifest_digest)}", manifest_bytes)
        tags = []
        for ref_text in image.refs:
            ref = references.parse(ref_text)
            if ref.digest or not ref.tag:
                continue
            tags.append(ref.familiar())
            repositories.setdefault(ref.familiar_name, {})[ref.tag] = \
                st.digest_hex(image.record["layers"][-1]["diff_id"]) if image.record[
                    "layers"] else ""
            index.append({"mediaType": st.MEDIA_OCI_MANIFEST, "digest": manifest_digest,
                          "size": len(manifest_bytes),
                          "annotations": {ANNOTATION_IMAGE_NAME: str(ref),
                                          ANNOTATION_REF_NAME: ref.tag}})
        if not tags:
            index.append({"mediaType": st.MEDIA_OCI_MANIFEST, "digest": manifest_digest,
                          "size": len(manifest_bytes)})
        manifest_json.append({"Config": f"blobs/sha256/{st.digest_hex(config_digest)}",
                              "RepoTags": tags or None, "Layers": layer_paths})
    w.file("index.json", json.dumps({"schemaVersion": 2, "mediaType": st.MEDIA_OCI_INDEX,
                                     "manifests": index}).encode())
    w.file("manifest.json", json.dumps(manifest_json).encode())
    w.file("oci-layout", OCI_LAYOUT)
    if repositories:
        w.file("repositories", json.dumps(repositories).encode())
    w.close()


def write_oci(images: Iterable[SavedImage], writer: LayoutWriter) -> None:
    """An OCI image layout with the blobs as stored (compressed layers stay
    compressed, manifests keep their digests)."""
    writer.dir("blobs/")
    writer.dir("blobs/sha256/")
    index: list[dict[str, Any]] = []
    for image in images:
        record = image.record
        digests = [record["manifest"]["digest"], record["config"]["digest"]]
        digests += [layer["blob"]["digest"] for layer in record["layers"]]
        for digest in digests:
            name = f"blobs/sha256/{st.digest_hex(digest)}"
            with image.open_blob(digest) as blob:
                size = os.fstat(blob.fileno()).st_size
                writer.file(name, stream=blob, size=size)
        base = {"mediaType": record["manifest"]["mediaType"],
                "digest": record["manifest"]["digest"], "size": record["manifest"]["size"]}
        tagged = False
        for ref_text in image.refs:
            ref = references.parse(ref_text)
            if ref.digest:
                continue
            index.append(dict(base, annotations={ANNOTATION_IMAGE_NAME: str(ref),
                                                 ANNOTATION_REF_NAME: ref.tag}))
            tagged = True
        if not tagged:
            index.append(base)
    writer.file("index.json", json.dumps({"schemaVersion": 2,
                                          "mediaType": st.MEDIA_OCI_INDEX,
                                          "manifests": index}).encode())
    writer.file("oci-layout", OCI_LAYOUT)
    writer.close()


def oci_dir_writer(path: str) -> LayoutWriter:
    """An OCI layout written as the directory ``path``."""
    return _DirWriter(path)


def oci_tar_writer(out: IO[bytes]) -> LayoutWriter:
    """An OCI layout written as a tar stream to ``out``."""
    return _TarWriter(out)


class _Exact(io.RawIOBase):
    """A stream that must yield exactly ``size`` bytes hashing to ``digest``: a
    stored layer that changed on disk is an error, not a corrupt archive."""

    def __init__(self, stream: st.Readable, size: int, digest: str) -> None:
        self._stream = layer_io.HashingReader(stream)
        self._left = size
        self._digest = digest

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1, /) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._stream.read(n) if n else b""
        self._left -= len(data)
        if n and not data:
            raise ImageError(f"stored layer {self._digest} is shorter than recorded")
        if self._left == 0 and self._stream.digest != self._digest:
            raise ImageError(f"stored layer {self._digest} is corrupt "
                             f"(hashes to {self._stream.digest})")
        return data


__all__ = ["read_archive", "read_oci_layout_dir", "write_docker_archive", "write_oci",
           "oci_dir_writer", "oci_tar_writer", "ImageToAdd", "SavedImage"]
