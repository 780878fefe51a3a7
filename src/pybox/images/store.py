"""The image store on disk: content-addressed blobs, image records, tags, locks.

    DATA_ROOT/images/
      blobs/sha256/HEX       manifests, configs, layer tars: named by their sha256,
                             verified while written (temp file in ingest/, fsync,
                             rename), so a blob present is a blob complete
      ingest/                temp files of writes in progress (any left by a crash
                             are removed when the store is opened)
      imagedb/HEX.json       one record per image, HEX = its config digest = its Id:
                             manifest and config descriptors, layers (diff-id,
                             chain-id, blob), parent, when it was added
      repositories.json      the tag database: normalised reference -> image Id
      layers/, l/, containers/   snapshots (see snapshots.py)
      locks/                 flock files (below)

Writes of metadata are whole-file: temp, fsync, rename (``write_atomic`` with
``durable=True``).  An image becomes visible only when its record is written,
and that happens after every blob and layer it needs is in place; a failure
before that leaves only unreferenced blobs or nothing, never half an image.

Locking (flock, so it holds across processes and threads and dies with them):
  - ``gc``: shared by every operation that adds content or starts a rootfs
    (blobs and layers it relies on must not be collected under it); exclusive
    for removal and prune.
  - ``meta``: exclusive around each read-modify-write of repositories.json and
    the records.
  - ``blob-HEX`` / ``layer-HEX``: one writer per blob or layer at a time, so two
    imports of the same content do the work once and never see each other's
    temp files.
"""

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any, NotRequired, Protocol, Self, TypedDict

from pybox.crashpoints import crashpoint
from pybox.errors import DigestMismatch, ImageError, ImageNotFound
from pybox.formats import times
from pybox.images import reference as references
from pybox.oci.state import write_atomic

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
LAYER_MEDIA_TYPES = {MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD,
                     MEDIA_DOCKER_LAYER, "application/vnd.docker.image.rootfs.diff.tar",
                     "application/vnd.oci.image.layer.nondistributable.v1.tar",
                     "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                     "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                     MEDIA_DOCKER_FOREIGN}
MANIFEST_MEDIA_TYPES = {MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST}
# the layer media type pybox names a blob by, from its compression (layers.detect_compression)
LAYER_MEDIA_BY_COMPRESSION: dict[str | None, str] = {
    None: MEDIA_OCI_LAYER, "gzip": MEDIA_OCI_LAYER_GZIP, "zstd": MEDIA_OCI_LAYER_ZSTD}
INDEX_MEDIA_TYPES = {MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST}

COPY_CHUNK = 1 << 20

# A binary file object (a stored blob, an archive being written).
BinaryFile = IO[bytes]


class Readable(Protocol):
    """Anything read in chunks: a file, a registry's BlobReader, a decompressor."""

    def read(self, size: int = ..., /) -> bytes: ...


# -- the store's own records (their JSON on disk is unchanged: TypedDicts are dicts)

class Descriptor(TypedDict):
    """An OCI content descriptor as the store writes it (records, manifests it makes)."""

    mediaType: str
    digest: str
    size: int


class LayerEntry(TypedDict):
    """One layer of an image record: its diff-id, chain-id and stored blob."""

    diff_id: str
    chain_id: str
    blob: Descriptor


class ImageRecord(TypedDict):
    """imagedb/HEX.json: what the store knows of an image beyond its blobs."""

    id: str
    manifest: Descriptor
    config: Descriptor
    layers: list[LayerEntry]
    parent: str
    added: str
    last_tag_time: NotRequired[str]


# -- digests -------------------------------------------------------------------

def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The hex part of a validated ``sha256:HEX`` digest (safe as a file name)."""
    references.validate_digest(digest)
    return digest[len("sha256:"):]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain-ids: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + ' ' +
    diff(n)).  A layer's chain-id names it together with everything under it,
    which is what an unpacked snapshot depends on."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def descriptor(media_type: str, data_or_digest: bytes | str, size: int = 0) -> Descriptor:
    """The descriptor of ``data`` (bytes), or of the blob ``digest`` of ``size`` bytes."""
    if isinstance(data_or_digest, bytes):
        return {"mediaType": media_type, "digest": sha256_digest(data_or_digest),
                "size": len(data_or_digest)}
    return {"mediaType": media_type, "digest": data_or_digest, "size": size}


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted JSON bytes: a stable digest for configs/manifests we make."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def parse_rfc3339(text: str | None) -> float:
    """Seconds since the epoch from an RFC 3339 time (any fraction, Z or offset);
    0 when missing or unparseable (docker lists such images as created long ago)."""
    try:
        return times.parse_rfc3339(text)
    except ValueError:
        return 0


# -- locks ---------------------------------------------------------------------

class FileLock:
    """flock(2) on a file under locks/: ``with FileLock(path, shared=True):``."""

    def __init__(self, path: str, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self.fd: int | None = None

    def __enter__(self) -> Self:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.fd = fd
        fcntl.flock(fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
        self.fd = None


# -- blobs ---------------------------------------------------------------------

def _no_space(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def storage_error(what: str, err: OSError) -> ImageError:
    """An OSError while writing, as an ImageError that says what failed."""
    if _no_space(err):
        return ImageError(f"{what}: no space left on device", errno=err.errno)
    return ImageError(f"{what}: {err.strerror or err}", errno=err.errno)


class BlobStore:
    """blobs/sha256/HEX, written through ingest/ and verified before the rename."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = os.path.join(root, "blobs", "sha256")
        self.ingest = os.path.join(root, "ingest")
        self.locks = os.path.join(root, "locks")

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, digest_hex(digest))

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def open(self, digest: str) -> io.BufferedReader:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the store", errno=2) from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def read_json(self, digest: str) -> Any:
        try:
            return json.loads(self.read(digest))
        except ValueError as e:
            raise ImageError(f"blob {digest} is not valid JSON: {e}") from None

    def write_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store ``data``; returns its digest.  Raises DigestMismatch when the data
        is not what ``expected_digest`` names."""
        return self.write_stream(io.BytesIO(data), expected_digest, len(data))[0]

    def write_stream(self, stream: Readable, expected_digest: str | None = None,
                     expected_size: int | None = None) -> tuple[str, int]:
        """Copy a stream into the store, hashing it on the way; (digest, size).

        Nothing is visible under blobs/ until the content is complete and matches
        ``expected_digest`` (and ``expected_size``).  A blob already present is
        not rewritten (the stream is still read and checked, so the caller's
        input is verified either way)."""
        tmp = os.path.join(self.ingest, f"blob-{uuid.uuid4().hex}")
        hasher = hashlib.sha256()
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                while True:
                    chunk = stream.read(COPY_CHUNK)
                    if not chunk:
                        break
                    hasher.update(chunk)
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                os.fsync(fd)
                crashpoint("images.blob.written")
            finally:
                os.close(fd)
            digest = "sha256:" + hasher.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise DigestMismatch(f"blob {expected_digest}", expected_digest, digest)
            if expected_size is not None and size != expected_size:
                raise ImageError(f"blob {digest}: size mismatch: expected "
                                 f"{expected_size} bytes, got {size}")
            final = self.path(digest)
            # concurrent writers of the same blob: both verified the same bytes, and
            # rename() over an identical file is atomic, so whichever lands is right
            with FileLock(os.path.join(self.locks, f"blob-{digest_hex(digest)}")):
                if os.path.exists(final):
                    os.unlink(tmp)
                else:
                    os.rename(tmp, final)
                    crashpoint("images.blob.stored")
            return digest, size
        except OSError as e:
            _unlink_quiet(tmp)
            raise storage_error("writing a blob", e) from None
        except BaseException:
            _unlink_quiet(tmp)
            raise

    def delete(self, digest: str) -> None:
        _unlink_quiet(self.path(digest))

    def all(self) -> set[str]:
        try:
            return {"sha256:" + name for name in os.listdir(self.dir)}
        except FileNotFoundError:
            return set()


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- image records and tags ------------------------------------------------------

class ImageStore:
    """Records (imagedb/), tags (repositories.json) and the locks over them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs = BlobStore(root)
        self.imagedb = os.path.join(root, "imagedb")
        self.tags_file = os.path.join(root, "repositories.json")
        self.locks = os.path.join(root, "locks")
        for d in (self.blobs.dir, self.blobs.ingest, self.imagedb, self.locks):
            os.makedirs(d, mode=0o700, exist_ok=True)

    # locks
    def gc_lock(self, shared: bool) -> FileLock:
        return FileLock(os.path.join(self.locks, "gc"), shared=shared)

    def meta_lock(self) -> FileLock:
        return FileLock(os.path.join(self.locks, "meta"))

    def clean_ingest(self) -> None:
        """Remove temp files left by a crashed writer (under the exclusive gc lock:
        no writer is running then)."""
        for name in os.listdir(self.blobs.ingest):
            path = os.path.join(self.blobs.ingest, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                _unlink_quiet(path)

    # records
    def record_path(self, image_id: str) -> str:
        return os.path.join(self.imagedb, digest_hex(image_id) + ".json")

    def get_record(self, image_id: str) -> ImageRecord:
        try:
            with open(self.record_path(image_id), "rb") as f:
                record: ImageRecord = json.loads(f.read())
                return record
        except FileNotFoundError:
            raise ImageNotFound(image_id) from None

    def has_record(self, image_id: str) -> bool:
        return os.path.exists(self.record_path(image_id))

    def put_record(self, record: ImageRecord) -> None:
        write_atomic(self.record_path(record["id"]),
                     json.dumps(record, indent=1, sort_keys=True), mode=0o644,
                     durable=True)

    def delete_record(self, image_id: str) -> None:
        _unlink_quiet(self.record_path(image_id))

    def records(self) -> list[ImageRecord]:
        out: list[ImageRecord] = []
        for name in sorted(os.listdir(self.imagedb)):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.imagedb, name), "rb") as f:
                        out.append(json.loads(f.read()))
                except (OSError, ValueError):
                    continue
        return out

    # tags
    def load_refs(self) -> dict[str, str]:
        """{normalised reference: image id} (tags and name@digest references)."""
        try:
            with open(self.tags_file, "rb") as f:
                refs: dict[str, str] = json.loads(f.read()).get("refs", {})
                return refs
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise ImageError(f"{self.tags_file} is corrupt: {e}") from None

    def save_refs(self, refs: dict[str, str]) -> None:
        write_atomic(self.tags_file,
                     json.dumps({"refs": dict(sorted(refs.items()))}, indent=1),
                     mode=0o644, durable=True)

    def refs_of(self, image_id: str, refs: dict[str, str] | None = None) -> list[str]:
        refs = self.load_refs() if refs is None else refs
        return sorted(r for r, i in refs.items() if i == image_id)

    def resolve(self, text: str) -> str:
        """An image Id from anything docker takes: a name[:tag], name@digest, a full
        or abbreviated Id (``sha256:`` optional).  Raises ImageNotFound."""
        refs = self.load_refs()
        ref: references.Reference | None = None
        try:
            ref = references.parse(text)
        except ImageError:
            if not references.looks_like_id(text):
                raise
        if ref is not None:
            found = refs.get(str(ref))
            if found:
                return found
            if ref.digest and ref.tag:
                found = refs.get(str(ref.with_digest(ref.digest)))
                if found:
                    return found
        if references.looks_like_id(text):
            hexpart = text[len("sha256:"):] if text.startswith("sha256:") else text
            matches = [n[:-5] for n in os.listdir(self.imagedb)
                       if n.endswith(".json") and n.startswith(hexpart)]
            if len(matches) == 1:
                return "sha256:" + matches[0]
            if len(matches) > 1:
                raise ImageError(f"short ID {text!r} is ambiguous: it matches "
                                 f"{len(matches)} images")
        raise ImageNotFound(text)


# -- archives and tarballs named by path or passed open ----------------------------

@contextlib.contextmanager
def open_source(source: str | os.PathLike[str] | Readable) -> Iterator[Readable]:
    """``source`` to read from: a path (opened here, ImageError when it cannot
    be), or an open file object (left to the caller)."""
    if isinstance(source, (str, os.PathLike)):
        try:
            f = open(source, "rb")
        except OSError as e:
            raise ImageError(f"{os.fspath(source)}: {e.strerror}", errno=e.errno) from None
        with f:
            yield f
    else:
        yield source


@contextlib.contextmanager
def open_dest(dest: str | os.PathLike[str] | BinaryFile) -> Iterator[BinaryFile]:
    """``dest`` to write to: a path (written as PATH.tmp-PID and renamed into
    place only when complete), or an open binary file object."""
    if isinstance(dest, (str, os.PathLike)):
        tmp = f"{os.fspath(dest)}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                yield f
            os.rename(tmp, dest)
        except OSError as e:
            _unlink_quiet(tmp)
            raise storage_error(f"writing {os.fspath(dest)}", e) from None
        except BaseException:
            _unlink_quiet(tmp)
            raise
    else:
        yield dest
