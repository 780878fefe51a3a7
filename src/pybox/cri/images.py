"""The CRI's ImageService: kubelet's pulls, lists, statuses and removals on
pyboxd's one image store (the Docker API's: an image pulled through either is
seen by both), answered as containerd's CRI plugin answers them.

* Names are full references, containerd's: ``docker.io/library/busybox:latest``
  in RepoTags, ``NAME@sha256:...`` (the manifest's digest) in RepoDigests;
  an image's Id is its config's digest, ``sha256:...``.
* ``Uid``/``Username`` come from the image config's User, before any ``:group``
  (a number is a uid, anything else a user name), as containerd's
  getUserFromImage.
* ImageStatus of an image that is not there (or a name that cannot be one)
  answers no image, not an error; RemoveImage of one is a success; RemoveImage
  by a tag or a digest removes the whole image with every name it has (the
  CRI's semantics, containerd's RemoveImage); ListImages' filter names one
  image (by any of its names or its Id), as CRI-O reads it.
* PullImage takes the AuthConfig kubelet passes (username/password, ``auth``
  = base64 "user:password", an identity token, a registry token), ignored when
  its server_address names another registry (containerd's ParseAuth), and
  answers the image's Id.  The sandbox config is not needed.
* Mirrors: daemon.json's ``cri-registry-mirrors`` ({"registry.k8s.io":
  ["http://127.0.0.1:5000"], ...}, containerd's CRI ``registry.mirrors``) are
  tried before each registry for the CRI's pulls, on top of the daemon's
  registry settings (insecure registries, docker.io's ``registry-mirrors``).
* Pinned: the sandbox image, pyboxd's own pause or the one configured
  (``--pod-infra-container-image``), as containerd pins its sandbox_image.
* ImageFsInfo: the image store's directory with the bytes and inodes under it
  (layers, blobs, containers' writable layers; other file systems mounted
  below, the containers' root file systems, are not entered), measured at
  most every 10 seconds as containerd's snapshot syncer does.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from pybox.cri import pause
from pybox.cri.errors import CRIError, rpc
from pybox.engine.distribution import Distribution
from pybox.errors import ImageError, ImageInUse, ImageNotFound
from pybox.formats.registryauth import ANONYMOUS, Credentials, registry_domain
from pybox.images import reference as references
from pybox.linux import fstree

if TYPE_CHECKING:
    from pybox.cri.options import CRIOptions
    from pybox.engine.engine import Engine

FS_USAGE_PERIOD = 10.0  # seconds: containerd's stats_collect_period


@dataclass(frozen=True)
class FsUsage:
    """The image store's file system use, as measured at ``timestamp`` (ns)."""

    timestamp: int
    used_bytes: int
    inodes_used: int


def credentials_from(auth: api_pb2.AuthConfig, domain: str) -> Credentials:
    """kubelet's AuthConfig as the registry client's Credentials, containerd's
    ParseAuth rules: none when ``server_address`` names another registry;
    username and password first, then the identity token, then ``auth``
    (base64 of "user:password"); a registry token is sent as a bearer token
    (containerd leaves it unsupported)."""
    if auth.server_address and registry_domain(auth.server_address) != domain:
        return ANONYMOUS
    if auth.username:
        return Credentials(username=auth.username, password=auth.password)
    if auth.identity_token:
        return Credentials(identity_token=auth.identity_token)
    if auth.auth:
        try:
            decoded = base64.b64decode(auth.auth + "=" * (-len(auth.auth) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CRIError(grpc.StatusCode.INVALID_ARGUMENT,
                           "invalid auth config: auth is not base64") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise CRIError(grpc.StatusCode.INVALID_ARGUMENT,
                           "invalid decoded auth: want user:password")
        return Credentials(username=user, password=password.strip("\x00"))
    if auth.registry_token:
        return Credentials(registry_token=auth.registry_token)
    return ANONYMOUS


def user_of(user: str) -> tuple[int | None, str]:
    """(uid, username) from an image's User: containerd's getUserFromImage."""
    if not user:
        return None, ""
    name = user.split(":", 1)[0]
    try:
        return int(name), ""
    except ValueError:
        return None, name


def store_usage(root: str) -> FsUsage:
    """Bytes (allocated blocks) and inodes under ``root``, each inode counted
    once (hard links), never entering another file system mounted below."""
    timestamp = time.time_ns()
    try:
        fd = os.open(root, fstree.DIR_FLAGS)
    except OSError:
        return FsUsage(timestamp, 0, 0)
    seen: set[int] = set()
    used = 0
    try:
        device = os.fstat(fd).st_dev
        for entry in fstree.walk(fd):
            if entry.st.st_dev != device:
                entry.descend = False  # a mount point: a container's root file system
                continue
            if entry.st.st_ino in seen:
                continue
            seen.add(entry.st.st_ino)
            used += entry.st.st_blocks * 512
    finally:
        os.close(fd)
    return FsUsage(timestamp, used, len(seen))


class ImageService(api_pb2_grpc.ImageServiceServicer):
    """runtime.v1's ImageService on the engine's image store (see the module)."""

    def __init__(self, engine: Engine, options: CRIOptions | None = None) -> None:
        self.engine = engine
        self.options = options
        self.images = engine.images.images  # the store (pybox.images.service.Images)
        self._lock = threading.Lock()
        self._distribution: Distribution | None = None
        self._usage: FsUsage | None = None
        self._usage_lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------------
    def distribution(self) -> Distribution:
        """The engine's Distribution, or one sharing its registry settings with
        the CRI's own mirrors (made on first use: pyboxd configures the
        engine's settings before any request)."""
        with self._lock:
            if self._distribution is None:
                mirrors = self.engine.config.cri_registry_mirrors
                engine_dist = self.engine.distribution
                if not mirrors:
                    self._distribution = engine_dist
                else:
                    options = engine_dist.registries().options.with_registry_mirrors(mirrors)
                    self._distribution = Distribution(self.engine.images, self.engine.events,
                                                      options)
            return self._distribution

    def pull(self, text: str, credentials: Credentials = ANONYMOUS) -> str:
        """Pull ``text`` as kubelet's PullImage does (a name without tag or
        digest is NAME:latest, never every tag; the CRI's mirrors) -> the
        image's Id.  Also the sandbox's pull of --pod-infra-container-image."""
        ref = references.parse(text)  # latest when untagged; InvalidReference -> 400
        self.distribution().pull(str(ref), credentials=credentials)
        image_id = self.resolve(str(ref))
        if image_id is None:  # removed between the pull and this answer
            raise CRIError(grpc.StatusCode.NOT_FOUND, f"image {text!r} pulled but gone")
        return image_id

    def resolve(self, ref: str) -> str | None:
        """The Id of the image ``ref`` names (a name, name:tag, name@digest, a
        full or short Id), or None: containerd's localResolve."""
        if not ref:
            return None
        try:
            return self.images.resolve(ref)
        except (ImageError, OSError):
            return None

    def pinned(self) -> str | None:
        """The Id of the sandbox image (--pod-infra-container-image, else
        pybox's own pause image), pinned as containerd pins its
        sandbox_image: kubelet's image garbage collection leaves a pinned
        image alone."""
        ref = self.options.pod_infra_image if self.options is not None else ""
        return self.resolve(ref or pause.image_ref())

    def to_cri(self, image_id: str, refs: dict[str, str], pinned: str | None = None
               ) -> api_pb2.Image | None:
        """The CRI's Image of ``image_id`` (None when it went meanwhile)."""
        try:
            record = self.images.store.get_record(image_id)
            config = self.images.blobs.read_json(record["config"]["digest"])
        except (ImageError, OSError, ValueError):
            return None
        tags, digests = names_of(self.images.store.refs_of(image_id, refs))
        image = api_pb2.Image(id=image_id, repo_tags=tags, repo_digests=digests,
                              size=self.images.size(record), pinned=image_id == pinned)
        user = ((config.get("config") or {}).get("User") or "") if isinstance(config, dict) \
            else ""
        uid, username = user_of(str(user))
        if uid is not None:
            image.uid.value = uid
        image.username = username
        return image

    def verbose_info(self, image_id: str) -> dict[str, str]:
        """containerd's verbose ImageStatus: {"info": JSON of the chain id and
        the image's OCI config}."""
        record = self.images.store.get_record(image_id)
        config = self.images.blobs.read_json(record["config"]["digest"])
        layers = record["layers"]
        chain = layers[-1]["chain_id"] if layers else ""
        return {"info": json.dumps({"chainID": chain, "imageSpec": config})}

    # -- the service -----------------------------------------------------------------------
    @rpc()
    def PullImage(self, request: api_pb2.PullImageRequest,  # noqa: N802 - gRPC's name
                  context: grpc.ServicerContext) -> api_pb2.PullImageResponse:
        text = request.image.image
        if not text:
            raise CRIError(grpc.StatusCode.INVALID_ARGUMENT, "image spec: no image given")
        ref = references.parse(text)
        credentials = credentials_from(request.auth, ref.domain) if request.HasField("auth") \
            else ANONYMOUS
        return api_pb2.PullImageResponse(image_ref=self.pull(text, credentials))

    @rpc()
    def ListImages(self, request: api_pb2.ListImagesRequest,  # noqa: N802 - gRPC's name
                   context: grpc.ServicerContext) -> api_pb2.ListImagesResponse:
        wanted = request.filter.image.image if request.HasField("filter") else ""
        refs = self.images.store.load_refs()
        if wanted:
            found = self.resolve(wanted)
            ids: Iterable[str] = [found] if found else []
        else:
            ids = sorted(r["id"] for r in self.images.store.records())
        pinned = self.pinned()
        out = [image for image in (self.to_cri(i, refs, pinned) for i in ids)
               if image is not None]
        return api_pb2.ListImagesResponse(images=out)

    @rpc()
    def ImageStatus(self, request: api_pb2.ImageStatusRequest,  # noqa: N802 - gRPC's name
                    context: grpc.ServicerContext) -> api_pb2.ImageStatusResponse:
        image_id = self.resolve(request.image.image)
        if image_id is None:
            return api_pb2.ImageStatusResponse()
        image = self.to_cri(image_id, self.images.store.load_refs(), self.pinned())
        if image is None:
            return api_pb2.ImageStatusResponse()
        info: dict[str, str] = {}
        if request.verbose:
            try:
                info = self.verbose_info(image_id)
            except (ImageError, OSError, ValueError):
                return api_pb2.ImageStatusResponse()
        return api_pb2.ImageStatusResponse(image=image, info=info)

    @rpc()
    def RemoveImage(self, request: api_pb2.RemoveImageRequest,  # noqa: N802 - gRPC's name
                    context: grpc.ServicerContext) -> api_pb2.RemoveImageResponse:
        image_id = self.resolve(request.image.image)
        if image_id is None:
            return api_pb2.RemoveImageResponse()  # gone already: a success, as containerd
        try:
            self.engine.images.remove(image_id, force=True)
        except ImageNotFound:
            pass  # removed meanwhile
        except ImageInUse as e:  # a running container's: kubelet's GC never asks this
            raise CRIError(grpc.StatusCode.FAILED_PRECONDITION, str(e)) from None
        return api_pb2.RemoveImageResponse()

    @rpc()
    def ImageFsInfo(self, request: api_pb2.ImageFsInfoRequest,  # noqa: N802 - gRPC's name
                    context: grpc.ServicerContext) -> api_pb2.ImageFsInfoResponse:
        usage = self.fs_usage()
        fs = api_pb2.FilesystemUsage(
            timestamp=usage.timestamp,
            fs_id=api_pb2.FilesystemIdentifier(mountpoint=self.images.root))
        fs.used_bytes.value = usage.used_bytes
        fs.inodes_used.value = usage.inodes_used
        return api_pb2.ImageFsInfoResponse(image_filesystems=[fs])

    def fs_usage(self) -> FsUsage:
        """The store's use, measured again when the last measure is older
        than FS_USAGE_PERIOD (one walk at a time; kubelet asks every 10 s)."""
        with self._usage_lock:
            now = time.time_ns()
            if self._usage is None or now - self._usage.timestamp > FS_USAGE_PERIOD * 1e9:
                self._usage = store_usage(self.images.root)
            return self._usage


def names_of(refs: Iterable[str]) -> tuple[list[str], list[str]]:
    """(RepoTags, RepoDigests), full references, sorted: the store's names of
    one image split as containerd's parseImageReferences."""
    tags: list[str] = []
    digests: list[str] = []
    for text in refs:
        try:
            ref = references.parse(text)
        except ImageError:
            continue
        if ref.digest:
            digests.append(f"{ref.name}@{ref.digest}")
        else:
            tags.append(str(ref))
    return sorted(tags), sorted(digests)
