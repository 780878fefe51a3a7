"""docker pull: a registry's image into the store, all or nothing.

    result = pull(images, registries, "127.0.0.1:5000/me/app:1.0",
                  platform="linux/arm64", credentials=creds, report=print)

1. the manifest by tag or digest (mirrors, then the registry itself); an index
   or manifest list is narrowed to the wanted platform (default: the host's)
   and that platform's manifest fetched by digest;
2. the config blob (verified), its diff-ids against the manifest's layers;
3. the missing layer blobs, several at once (``max_concurrent_downloads``
   threads): each streamed into the store's ingest area while hashed, resumed
   on an interrupted connection, renamed into blobs/ only when its digest and
   size match the manifest -- and unpacked right away in the same thread
   (overlay layers are independent directories), so unpacking overlaps the
   other downloads;
4. ``Images.add_image`` writes the record and the tags.

It all runs inside ``Images.writing()``: if anything fails (a 404, a wrong
digest, a connection that will not come back, an unknown platform, a bad
layer), the garbage collection afterwards removes every blob and layer the pull
added, so the store is as it was.  Progress goes to ``report`` as docker's JSON
messages (progress.py).
"""

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pybox.crashpoints import crashpoint
from pybox.errors import (
    AuthenticationError,
    DigestMismatch,
    ImageError,
    ImageNotFound,
    PullAccessDenied,
    RegistryError,
    RegistryNotFound,
)
from pybox.images import platforms
from pybox.images import progress as P
from pybox.images import reference as references
from pybox.images import store as st
from pybox.images.auth import ANONYMOUS, Credentials

if TYPE_CHECKING:  # the registry client is loaded by whoever makes Registries
    from pybox.images.registry import BlobReader, Registries, RegistryClient
    from pybox.images.service import Images

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")

T = TypeVar("T")
Descriptor = dict[str, Any]  # an OCI descriptor, as the registry sent it


class PullResult(dict[str, Any]):
    """{"id": image Id, "digest": the digest the registry names it by,
    "reference": familiar name, "status": the final line, "new": bool}."""


def pull(images: "Images", registries: "Registries", reference: str | references.Reference, *,
         platform: str | None = None, credentials: Credentials = ANONYMOUS,
         report: P.Report = P.discard) -> PullResult:
    ref = references.parse(reference) if isinstance(reference, str) else reference
    wanted = platforms.parse(platform)
    explicit_platform = bool(platform)
    tag_or_digest = ref.digest or ref.tag
    client = registries.client(ref.domain, credentials)
    data, media_type, digest = _fetch_top_manifest(client, ref)
    repo_digest = digest
    manifest = _json(data, f"manifest {ref}")
    media_type = manifest.get("mediaType") or media_type
    if media_type in st.INDEX_MEDIA_TYPES or (not media_type and "manifests" in manifest):
        entry = platforms.select(manifest.get("manifests") or [], wanted)
        if entry is None:
            raise RegistryNotFound(f"no matching manifest for {wanted} in the manifest "
                                   "list entries")
        data, media_type, _ = _translate(ref, lambda: client.get_manifest(
            ref.path, entry["digest"]))
        manifest = _json(data, f"manifest {ref.name}@{entry['digest']}")
        media_type = manifest.get("mediaType") or media_type
        explicit_platform = False  # the index said which platform it is
    if media_type in SCHEMA1_TYPES or manifest.get("schemaVersion") == 1:
        raise RegistryError(f"{ref.familiar()}: Docker Image Format v1 and Docker Image "
                            "manifest version 2, schema 1 are not supported")
    if media_type and media_type not in st.MANIFEST_MEDIA_TYPES:
        raise RegistryError(f"{ref.familiar()}: unsupported manifest media type {media_type}")
    if not media_type:
        manifest["mediaType"] = st.MEDIA_OCI_MANIFEST
    config_desc = manifest.get("config") or {}
    layer_descs = list(manifest.get("layers") or [])
    _check_descriptor(config_desc, "config")
    for desc in layer_descs:
        _check_descriptor(desc, "layer")

    # after the manifests are resolved, as dockerd: a missing tag or platform
    # is then an HTTP error, not a line in a started stream
    report({"status": f"Pulling from {ref.path}", "id": tag_or_digest or ""})
    before = _current(images, ref)
    with images.writing():
        config_bytes = _fetch_config(images, client, ref, config_desc)
        config = _json(config_bytes, f"image config {config_desc['digest']}")
        if explicit_platform and not wanted.matches(config):
            raise RegistryNotFound(
                f"image with reference {ref.familiar()} was found but does not match the "
                f"specified platform: wanted {wanted}, actual: {platforms.describe(config)}")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layer_descs):
            raise ImageError(f"invalid image: the manifest has {len(layer_descs)} layers but "
                             f"the config lists {len(diff_ids)} diff-ids")
        image_id = config_desc["digest"]
        known = images.store.has_record(image_id) and all(
            images.has_blob(d["digest"]) for d in layer_descs)
        downloaded = False
        if not known:
            downloaded = _fetch_layers(images, client, ref, layer_descs, diff_ids, report)
        crashpoint("images.pull.fetched")
        refs = [str(ref)] if ref.tag and not ref.digest else []
        image_id = images.add_image(manifest, config_bytes, refs=refs, manifest_bytes=data,
                                    repo_digest_names=[ref.name], repo_digest=repo_digest)
    shown = ref.familiar()
    report({"status": f"Digest: {repo_digest}"})
    new = downloaded or before != image_id
    line = (f"Status: Downloaded newer image for {shown}" if new
            else f"Status: Image is up to date for {shown}")
    report({"status": line})
    return PullResult(id=image_id, digest=repo_digest, reference=shown, status=line, new=new)


def _current(images: "Images", ref: references.Reference) -> str | None:
    try:
        return images.resolve(str(ref))
    except (ImageNotFound, ImageError):
        return None


def _fetch_top_manifest(client: "RegistryClient", ref: references.Reference
                        ) -> tuple[bytes, str, str]:
    """The manifest by tag/digest, from the first endpoint that has it."""
    wanted = ref.digest or ref.tag or ""
    return _from_first_endpoint(client, ref, lambda: client.get_manifest(ref.path, wanted))


def _from_first_endpoint(client: "RegistryClient", ref: references.Reference,
                         call: Callable[[], T]) -> T:
    """``call()`` against the first endpoint that answers it: mirrors that fail
    or lack the repository give way to the next endpoint, then the registry."""
    last: RegistryError | None = None
    for endpoint in client.candidates:
        if endpoint.mirror:
            try:
                client.ping(endpoint)
                return call()
            except RegistryError as e:
                last = e
                continue
        break
    else:
        raise last or RegistryError(f"no endpoint for {ref.domain}")
    direct = [e for e in client.candidates if not e.mirror]
    client.candidates = direct
    client.endpoint = None
    client.challenge = None
    return _translate(ref, lambda: (client.ping(), call())[1])


def pull_all_tags(images: "Images", registries: "Registries", name: str | references.Reference,
                  *, platform: str | None = None, credentials: Credentials = ANONYMOUS,
                  report: P.Report = P.discard) -> dict[str, Any]:
    """docker pull --all-tags (the API's ``fromImage=NAME`` without a tag): every
    tag the registry lists for the repository, one ``pull`` after another, as
    dockerd's pullRepository.  Each tag reports its own lines up to ``Digest:``;
    one ``Status:`` line for the repository ends it.  A tag that cannot be pulled
    (no image for the platform, a broken manifest) is skipped, as dockerd skips
    it; when none could be, the first tag's error is raised.  Returns
    {"reference", "status", "new", "pulled": [PullResult...], "failed": {tag: error}}."""
    repo = references.parse_repository(name) if isinstance(name, str) else name
    if repo.tag or repo.digest:
        raise ImageError(f"{repo}: a repository name without tag or digest is needed to pull "
                         "all tags")
    client = registries.client(repo.domain, credentials)
    tags = _from_first_endpoint(client, repo, lambda: client.list_tags(repo.path))
    if not tags:
        raise RegistryNotFound(f"{repo.familiar_name}: the registry lists no tags")
    pulled: list[PullResult] = []
    failed: dict[str, ImageError] = {}
    first_error: ImageError | None = None

    def per_tag(message: P.ProgressMessage) -> None:
        if not str(message.get("status") or "").startswith("Status: "):
            report(message)

    for tag in tags:
        try:
            pulled.append(pull(images, registries, repo.with_tag(tag), platform=platform,
                               credentials=credentials, report=per_tag))
        except (RegistryError, ImageError) as e:
            failed[tag] = e
            first_error = first_error or e
    if not pulled:
        assert first_error is not None  # there were tags, and each failed
        raise first_error
    new = any(r["new"] for r in pulled)
    shown = repo.familiar_name
    line = (f"Status: Downloaded newer image for {shown}" if new
            else f"Status: Image is up to date for {shown}")
    report({"status": line})
    return {"reference": shown, "status": line, "new": new, "pulled": pulled,
            "failed": failed}


def _translate(ref: references.Reference, call: Callable[[], T]) -> T:
    """docker's wording for the registry's refusals of a pull."""
    try:
        return call()
    except AuthenticationError as e:
        raise PullAccessDenied(
            f"pull access denied for {ref.familiar_name}, repository does not exist or may "
            f"require 'docker login': {e}", status=e.status, code=e.code) from None
    except RegistryNotFound as e:
        if e.code in ("NAME_UNKNOWN", "DENIED", "UNAUTHORIZED"):
            raise RegistryNotFound(
                f"pull access denied for {ref.familiar_name}, repository does not exist or "
                f"may require 'docker login': {e}", status=e.status, code=e.code) from None
        wanted = ref.digest or ref.tag
        shown = f"{ref.familiar_name}@{wanted}" if ref.digest else f"{ref.familiar_name}:{wanted}"
        raise RegistryNotFound(f"manifest for {shown} not found: {e}", status=e.status,
                               code=e.code) from None
    except RegistryError as e:
        if e.code == "DENIED":
            raise PullAccessDenied(
                f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                f"require 'docker login': {e}", status=e.status, code=e.code) from None
        raise


def _check_descriptor(desc: Any, what: str) -> None:
    if not isinstance(desc, dict) or not desc.get("digest"):
        raise ImageError(f"invalid manifest: a {what} without a digest")
    references.validate_digest(desc["digest"])
    size = desc.get("size")
    if not isinstance(size, int) or size < 0:
        raise ImageError(f"invalid manifest: {what} {desc['digest']} has no valid size")


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what} is not a JSON object")
    return doc


def _fetch_config(images: "Images", client: "RegistryClient", ref: references.Reference,
                  desc: Descriptor) -> bytes:
    digest = desc["digest"]
    if images.has_blob(digest):
        return images.blobs.read(digest)
    with client.open_blob(ref.path, digest, desc["size"]) as blob:
        _translate(ref, lambda: images.write_blob(blob, digest, desc["size"]))
    return images.blobs.read(digest)


def _fetch_layers(images: "Images", client: "RegistryClient", ref: references.Reference,
                  layer_descs: list[Descriptor], diff_ids: list[str], report: P.Report) -> bool:
    """Download and unpack the missing layers in parallel; True if any came
    over the network.  The first failure stops the others' new work."""
    chains = st.chain_ids(diff_ids)
    jobs = []
    for index, (desc, diff_id, chain_id) in enumerate(zip(layer_descs, diff_ids, chains, strict=True)):
        layer_id = P.short_id(desc["digest"])
        if images.has_blob(desc["digest"]) and images.has_layer(chain_id):
            report(P.status("Already exists", layer_id))
            continue
        jobs.append((index, desc, diff_id, layer_id))
    if not jobs:
        return False
    for _, _, _, layer_id in jobs:
        report(P.status("Pulling fs layer", layer_id))
    workers = min(client.options.max_concurrent_downloads, len(jobs))
    for _, _, _, layer_id in jobs[workers:]:
        report(P.status("Waiting", layer_id))
    failed = threading.Event()

    def work(job: tuple[int, Descriptor, str, str]) -> None:
        index, desc, diff_id, layer_id = job
        if failed.is_set():
            return
        try:
            _fetch_layer(images, client, ref, desc, layer_id, report)
            parent = chains[index - 1] if index else None
            extracting = P.ByteProgress(report, "Extracting", layer_id, desc["size"])
            images.unpack_layer(parent, diff_id, desc["digest"], on_read=extracting.add)
            report(P.status("Pull complete", layer_id))
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
        futures = [pool.submit(work, job) for job in jobs]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:
        raise _first_real(errors)
    return True


def _first_real(errors: list[BaseException]) -> BaseException:
    """The error to show: a registry's or the content's before a follower's."""
    for kind in (DigestMismatch, RegistryError, ImageError):
        for e in errors:
            if isinstance(e, kind):
                return e
    return errors[0]


def _fetch_layer(images: "Images", client: "RegistryClient", ref: references.Reference,
                 desc: Descriptor, layer_id: str, report: P.Report) -> None:
    digest, size = desc["digest"], desc["size"]
    if images.has_blob(digest):
        report(P.status("Download complete", layer_id))
        return
    downloading = P.ByteProgress(report, "Downloading", layer_id, size)
    with client.open_blob(ref.path, digest, size, on_bytes=downloading.add) as blob:
        def write() -> tuple[str, int]:
            return images.write_blob(_Verifying(blob, report, layer_id), digest, size)
        _translate(ref, write)
    report(P.status("Download complete", layer_id))


class _Verifying:
    """Says "Verifying Checksum" when the last byte has been read (the store
    then compares the hash it computed on the way)."""

    def __init__(self, blob: "BlobReader", report: P.Report, layer_id: str) -> None:
        self.blob = blob
        self.report = report
        self.layer_id = layer_id
        self.said = False

    def read(self, amount: int = -1, /) -> bytes:
        data = self.blob.read(amount if amount and amount > 0 else 1 << 20)
        if not data and not self.said:
            self.said = True
            self.report(P.status("Verifying Checksum", self.layer_id))
        return data
