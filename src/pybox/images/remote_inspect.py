"""``GET /distribution/NAME/json``: what a registry holds under a name, without
pulling it (docker-py's ``inspect_distribution``; the docker CLI asks it before
``service create``), as moby's distribution router answers it:

    {"Descriptor": {"mediaType": ..., "digest": "sha256:...", "size": N},
     "Platforms": [{"architecture": "amd64", "os": "linux"}, ...]}

The descriptor is the top manifest's (an index or manifest list, or a single
manifest) by tag (``latest`` when none) or digest; the platforms are an
index's entries', or a single manifest's config's.  Endpoints are tried as
dockerd tries them (a mirror first for Docker Hub, then the registry; HTTPS,
then plain HTTP for an insecure one) and the last error is the answer:
``manifest unknown: manifest unknown`` (404) for a tag the registry lacks.

One deliberate difference: dockerd lists no platform (``null``) for a single
OCI manifest (its switch knows only Docker's schema2); the API documents
"all platforms supported by the image", so pybox reads the OCI config too.
"""

import json
from typing import Any, NotRequired, TypedDict

from pybox.errors import PyboxError, RegistryError
from pybox.formats.registryauth import ANONYMOUS, Credentials
from pybox.images import reference as references
from pybox.images import store as st
from pybox.images.registry import Registries, RegistryClient

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
MAX_CONFIG_BYTES = 8 << 20


class Descriptor(TypedDict):
    mediaType: str
    digest: str
    size: int


# ocispec.Platform's JSON keys, in its order (the optional ones omitted when
# empty, as Go's omitempty); keys with dots: the functional form
Platform = TypedDict("Platform", {"architecture": str, "os": str,
                                  "os.version": NotRequired[str],
                                  "os.features": NotRequired[list[str]],
                                  "variant": NotRequired[str]})


class DistributionInspect(TypedDict):
    Descriptor: Descriptor
    Platforms: list[Platform] | None


def inspect(registries: Registries, name: str,
            credentials: Credentials = ANONYMOUS) -> DistributionInspect:
    """The registry's descriptor and platforms for ``name`` (see the module's
    docstring).  InvalidReference (400) for a bad name, RegistryNotFound (404)
    for one the registry lacks, RegistryError (500) for the rest."""
    if references.ANCHORED_ID_RE.match(name) or references.DIGEST_RE.match(name):
        raise PyboxError("no manifest found for full image ID")
    ref = references.parse(name)
    client = registries.client(ref.domain, credentials)
    last: RegistryError | None = None
    for endpoint in list(client.candidates):
        try:
            client.ping(endpoint)
            return _describe(client, ref)
        except RegistryError as e:
            last = e
    raise last or RegistryError(f"no endpoint for registry {ref.domain}")


def _describe(client: RegistryClient, ref: references.Reference) -> DistributionInspect:
    data, content_type, digest = client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
    doc = _json_object(data, f"manifest {ref}")
    media_type = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else None
    media_type = media_type or content_type
    if media_type in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise RegistryError(f"{ref.familiar()}: Docker Image Format v1 and Docker Image "
                            "manifest version 2, schema 1 are not supported")
    platforms: list[Platform] | None = None
    if media_type in st.INDEX_MEDIA_TYPES or "manifests" in doc:
        platforms = [_platform(entry.get("platform") or {})
                     for entry in doc.get("manifests") or [] if isinstance(entry, dict)]
    else:
        config = doc.get("config")
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            found = _config_platform(client, ref, config["digest"], config.get("size"))
            platforms = [found] if found else None
    return {"Descriptor": {"mediaType": media_type, "digest": digest, "size": len(data)},
            "Platforms": platforms}


def _config_platform(client: RegistryClient, ref: references.Reference, digest: str,
                     size: Any) -> Platform | None:
    """The platform an image's config names; None when it names none or
    cannot be read (dockerd ignores that too: the descriptor still answers)."""
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_CONFIG_BYTES:
        size = None
    try:
        with client.open_blob(ref.path, digest, size) as blob:
            data = b""
            while len(data) <= MAX_CONFIG_BYTES:
                chunk = blob.read(MAX_CONFIG_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
    except (RegistryError, OSError):
        return None
    if len(data) > MAX_CONFIG_BYTES or st.sha256_digest(data) != digest:
        return None
    try:
        config = _json_object(data, "config")
    except RegistryError:
        return None
    platform = _platform(config)
    return platform if platform["os"] or platform["architecture"] else None


def _platform(doc: dict[str, Any]) -> Platform:
    def text(key: str) -> str:
        value = doc.get(key)
        return value if isinstance(value, str) else ""

    platform: Platform = {"architecture": text("architecture"), "os": text("os")}
    if text("os.version"):
        platform["os.version"] = text("os.version")
    features = doc.get("os.features")
    if isinstance(features, list) and features and all(isinstance(f, str) for f in features):
        platform["os.features"] = features
    if text("variant"):
        platform["variant"] = text("variant")
    return platform


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise RegistryError(f"{what}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: not a JSON object")
    return doc
