"""docker push: an image from the store to a registry.

    result = push(images, registries, "127.0.0.1:5000/me/app:1.0",
                  credentials=creds, report=print)

For each layer, in parallel (``max_concurrent_uploads``):
  1. the blob to send: as stored when compressed; a layer the store keeps as a
     plain tar (docker import, commit, load of a docker-archive) is gzipped
     first into an anonymous temp file -- deterministically (no name, mtime 0),
     so pushing it again gives the same digest and the registry already has it;
  2. ``HEAD`` it: present -> "Layer already exists";
  3. else a cross-repository mount (``POST ...?mount=DIGEST&from=REPO``) from
     another repository of the same registry that the store knows holds it
     (one of the image's other names there) -> "Mounted from REPO";
  4. else an upload: ``POST`` then one ``PUT`` with the body (monolithic), or
     ``PATCH`` chunks of ``chunk_size`` bytes then an empty ``PUT``;
     "Pushing" progress, "Pushed".
Then the config blob the same way, and the manifest ``PUT`` by tag: the stored
manifest bytes when nothing was recompressed (the digest stays the one the
image was pulled by), else a manifest of the same kind naming the new blobs.
"""

import gzip
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypedDict, cast

from pybox.errors import ImageError, RegistryError
from pybox.images import progress as P
from pybox.images import reference as references
from pybox.images import store as st
from pybox.images.auth import ANONYMOUS, Credentials
from pybox.images.registry import Registries, RegistryClient, pull_scope, push_scope

if TYPE_CHECKING:
    from pybox.images.service import Images

Opener = Callable[[], IO[bytes]]  # a new file object on a blob's bytes, at its start


class PushResult(TypedDict):
    tag: str
    digest: str
    size: int

UNCOMPRESSED_LAYER_TYPES = {st.MEDIA_OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar",
                            "application/vnd.oci.image.layer.nondistributable.v1.tar"}
GZIP_LEVEL = 6
COPY_CHUNK = 1 << 20


def push(images: "Images", registries: Registries, reference: str | references.Reference, *,
         credentials: Credentials = ANONYMOUS, report: P.Report = P.discard) -> PushResult:
    """Push one tag (``name:tag``); returns {"tag", "digest", "size"}."""
    ref = references.parse(reference) if isinstance(reference, str) else reference
    if ref.digest:
        raise ImageError("cannot push a digest reference")
    tag = ref.tag
    assert tag is not None  # parse gives one (latest), with_tag too, and digests are refused
    report({"status": f"The push refers to repository [{ref.name}]"})
    record = images.record(str(ref))
    client = registries.client(ref.domain, credentials, push=True)
    client.ping()
    with images.store.gc_lock(shared=True):
        manifest_bytes = images.blobs.read(record["manifest"]["digest"])
        manifest = json.loads(manifest_bytes)
        layers = record["layers"]
        for layer in layers:
            report(P.status("Preparing", P.short_id(layer["diff_id"])))
        sources = _mount_sources(images, ref, {layer["blob"]["digest"] for layer in layers})
        pushed: list[st.Descriptor | None] = [None] * len(layers)
        workers = min(client.options.max_concurrent_uploads, max(1, len(layers)))
        for layer in layers[workers:]:
            report(P.status("Waiting", P.short_id(layer["diff_id"])))
        failed = threading.Event()

        def work(index: int) -> None:
            if failed.is_set():
                return
            try:
                pushed[index] = _push_layer(images, client, ref, layers[index], sources, report)
            except BaseException:
                failed.set()
                raise

        if layers:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
                futures = [pool.submit(work, i) for i in range(len(layers))]
                errors = [e for e in (f.exception() for f in futures) if e is not None]
            if errors:
                raise errors[0]
        config = record["config"]
        if client.blob_size(ref.path, config["digest"],
                            scopes=[push_scope(ref.path)]) is None:
            _upload(client, ref, config["digest"], config["size"],
                    lambda: images.blobs.open(config["digest"]), None)
        done = [new for new in pushed if new is not None]  # all of them: no error
        changed = any(new["digest"] != layer["blob"]["digest"]
                      for new, layer in zip(done, layers, strict=True))
        if changed:
            manifest_bytes = _rewritten_manifest(manifest, done)
        media_type = manifest.get("mediaType") or st.MEDIA_OCI_MANIFEST
        digest = client.put_manifest(ref.path, tag, manifest_bytes, media_type)
    size = len(manifest_bytes)
    report({"status": f"{tag}: digest: {digest} size: {size}"})
    report({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}})
    return {"tag": tag, "digest": digest, "size": size}


def push_repository(images: "Images", registries: Registries, name: str, *,
                    credentials: Credentials = ANONYMOUS,
                    report: P.Report = P.discard) -> list[PushResult]:
    """docker push --all-tags: every tag of a repository, in name order."""
    repo = references.parse_repository(name)
    tags = sorted(r for r in images.store.load_refs()
                  if "@" not in r and r.rpartition(":")[0] == repo.name)
    if not tags:
        raise ImageError(f"An image does not exist locally with the tag: {repo.familiar_name}")
    return [push(images, registries, tag, credentials=credentials, report=report)
            for tag in tags]


def _mount_sources(images: "Images", ref: references.Reference, digests: set[str]
                   ) -> dict[str, list[str]]:
    """{blob digest: [other repositories on ref's registry whose images hold it]}
    from the store's names: where a cross-repository mount may find a blob."""
    out: dict[str, set[str]] = {}
    by_image: dict[str, set[str]] = {}
    for name, image_id in images.store.load_refs().items():
        other = references.parse(name)
        if other.domain == ref.domain and other.path != ref.path:
            by_image.setdefault(image_id, set()).add(other.path)
    for image_id, paths in by_image.items():
        try:
            record = images.store.get_record(image_id)
        except ImageError:
            continue
        for layer in record["layers"]:
            digest = layer["blob"]["digest"]
            if digest in digests:
                out.setdefault(digest, set()).update(paths)
    return {d: sorted(p) for d, p in out.items()}


def _push_layer(images: "Images", client: RegistryClient, ref: references.Reference,
                layer: st.LayerEntry, sources: dict[str, list[str]],
                report: P.Report) -> st.Descriptor:
    """Send one layer unless the registry has it; -> the descriptor pushed."""
    layer_id = P.short_id(layer["diff_id"])
    blob = layer["blob"]
    with _layer_blob(images, blob) as (media_type, digest, size, opener):
        scopes = [push_scope(ref.path)]
        if client.blob_size(ref.path, digest, scopes=scopes) is not None:
            report(P.status("Layer already exists", layer_id))
            return {"mediaType": media_type, "digest": digest, "size": size}
        location = None
        for source in sources.get(blob["digest"], []):
            mounted, location = client.start_upload(
                ref.path, mount=digest, source=source,
                scopes=scopes + [pull_scope(source)])
            if mounted:
                report(P.status(f"Mounted from {source}", layer_id))
                return {"mediaType": media_type, "digest": digest, "size": size}
            break  # the registry opened an upload instead: use it
        pushing = P.ByteProgress(report, "Pushing", layer_id, size)
        _upload(client, ref, digest, size, opener, pushing, location=location)
        report(P.status("Pushed", layer_id))
        return {"mediaType": media_type, "digest": digest, "size": size}


class _layer_blob:
    """(media type, digest, size, opener) of the bytes to send for a layer: the
    stored blob, or a gzip of it in an anonymous temp file when stored plain."""

    def __init__(self, images: "Images", blob: st.Descriptor) -> None:
        self.images = images
        self.blob = blob
        self.tmp: IO[bytes] | None = None

    def __enter__(self) -> tuple[str, str, int, Opener]:
        blob = self.blob
        if blob["mediaType"] not in UNCOMPRESSED_LAYER_TYPES:
            return (blob["mediaType"], blob["digest"], blob["size"],
                    lambda: self.images.blobs.open(blob["digest"]))
        tmp = self.tmp = tempfile.TemporaryFile(dir=self.images.root)
        hasher = _HashingWriter(tmp)
        with self.images.blobs.open(blob["digest"]) as src, \
                gzip.GzipFile(filename="", mode="wb", fileobj=hasher, compresslevel=GZIP_LEVEL,
                              mtime=0) as gz:
            while True:
                chunk = src.read(COPY_CHUNK)
                if not chunk:
                    break
                gz.write(chunk)
        tmp.flush()
        fd = tmp.fileno()
        media = (st.MEDIA_OCI_LAYER_GZIP if blob["mediaType"].startswith("application/vnd.oci")
                 else st.MEDIA_DOCKER_LAYER)
        return media, hasher.digest(), hasher.size, lambda: _reopen(fd)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.tmp is not None:
            self.tmp.close()


def _reopen(fd: int) -> IO[bytes]:
    """A new file object on the temp file, at its start (dup'd descriptors share
    the offset; each layer's file has one reader at a time)."""
    f = os.fdopen(os.dup(fd), "rb")
    f.seek(0)
    return f


class _HashingWriter:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class _CountingBody:
    """A request body that reports bytes sent and stops at ``limit``."""

    def __init__(self, f: IO[bytes], progress: P.ByteProgress | None, limit: int) -> None:
        self.f = f
        self.progress = progress
        self.left = limit

    def read(self, amount: int = COPY_CHUNK) -> bytes:
        if self.left <= 0:
            return b""
        data = self.f.read(min(amount if amount and amount > 0 else COPY_CHUNK, self.left))
        self.left -= len(data)
        if data and self.progress:
            self.progress.add(len(data))
        return data

    def close(self) -> None:
        self.f.close()


def _upload(client: RegistryClient, ref: references.Reference, digest: str, size: int,
            opener: Opener, progress: P.ByteProgress | None, *,
            location: str | None = None) -> None:
    """POST (unless ``location`` is an upload already open), then one PUT with
    the blob or PATCH chunks and an empty PUT.  A failed attempt starts a new
    upload (up to max_attempts), since a half-sent upload cannot be resumed
    portably."""
    scopes = [push_scope(ref.path)]
    chunk = client.options.chunk_size
    attempts = client.options.max_attempts
    for attempt in range(attempts):
        try:
            if location is None:
                _, location = client.start_upload(ref.path, scopes=scopes)
            if progress:
                progress.reset()
            assert location is not None  # start_upload without a mount gives one
            if not chunk or size <= chunk:
                # a body only needs read() (urllib3 streams it): the registry
                # client's IO[bytes] is wider than what it uses
                client.finish_upload(location, digest, scopes=scopes, size=size,
                                     body=lambda: cast(IO[bytes],
                                                       _CountingBody(opener(), progress, size)))
            else:
                start = 0
                while start < size:
                    end = min(size, start + chunk)

                    def body(start: int = start, end: int = end) -> IO[bytes]:
                        f = opener()
                        f.seek(start)
                        return cast(IO[bytes], _CountingBody(f, progress, end - start))

                    location = client.upload_chunk(location, body, start, end, scopes=scopes)
                    start = end
                client.finish_upload(location, digest, scopes=scopes)
            if progress:
                progress.emit()
            return
        except RegistryError as e:
            location = None
            retryable = e.status is None or e.status in (408, 429, 500, 502, 503, 504)
            if attempt + 1 >= attempts or not retryable:
                raise


def _rewritten_manifest(manifest: dict[str, Any], pushed: list[st.Descriptor]) -> bytes:
    """The manifest with the layer descriptors actually pushed."""
    out = dict(manifest)
    out["layers"] = []
    for old, new in zip(manifest.get("layers") or [], pushed, strict=False):
        desc = dict(old)
        desc.update(new)
        out["layers"].append(desc)
    return json.dumps(out, indent=3).encode()
