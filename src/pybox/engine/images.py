"""The engine's view of the image store (pybox.images.service.Images): what a
container needs from it, in the engine's words, and the image verbs the API
calls (tag, remove, prune, import, load, save), each with its event: the store
below knows nothing of the engine's event stream."""

import builtins
import tempfile
from collections.abc import Callable, Iterable
from typing import IO, Any, TypedDict

from pybox.engine.events import EventBus
from pybox.engine.prune import read_prune_filters
from pybox.errors import BadRequest, ImageError, ImageNotFound, NotFound
from pybox.images.service import DockerDoc, Filters, Images
from pybox.images.snapshots import IdMap


class ImageLookup(TypedDict):
    """What create takes from an image: its Id, its Config (docker's container
    Config keys, merged under the request's), its tags and its platform (the
    create's --platform check)."""

    Id: str
    Config: dict[str, Any]
    RepoTags: builtins.list[str]
    Os: str
    Architecture: str
    Variant: str


class ImageService:
    def __init__(self, data_root: str,
                 container_running: Callable[[str], bool] | None = None,
                 events: EventBus | None = None) -> None:
        self.images = Images.open(data_root, container_running=container_running)
        # where the image events go: the engine gives its own stream (Engine.__init__)
        self.events = events if events is not None else EventBus()

    # -- what create needs ------------------------------------------------------
    def lookup(self, ref: str) -> ImageLookup:
        """{"Id", "Config"} (docker's container Config keys) or NotFound with
        docker's "No such image: X" (404: the CLI then pulls)."""
        try:
            doc = self.images.inspect(ref)
        except ImageNotFound:
            raise NotFound(f"No such image: {ref}") from None
        return {"Id": doc["Id"], "Config": doc.get("Config") or {},
                "RepoTags": doc.get("RepoTags") or [], "Os": doc.get("Os") or "",
                "Architecture": doc.get("Architecture") or "", "Variant": doc.get("Variant") or ""}

    # -- the image verbs (docker images, tag, rmi, image prune, import, load, save) --
    def list(self, *, all: bool = False, filters: Filters | None = None
             ) -> builtins.list[DockerDoc]:
        return self.images.list(all=all, filters=filters)

    def inspect(self, ref: str) -> DockerDoc:
        return self.images.inspect(ref)

    def history(self, ref: str) -> builtins.list[DockerDoc]:
        return self.images.history(ref)

    def tag(self, source: str, target: str) -> None:
        self.images.tag(source, target)
        self.events.emit("image", "tag", self.images.resolve(source), {"name": target})

    def remove(self, ref: str, *, force: bool = False) -> builtins.list[DockerDoc]:
        """docker rmi: docker's [{"Untagged": ...}, {"Deleted": ...}] list, an
        untag or delete event for each."""
        result = self.images.remove(ref, force=force)
        for item in result:
            if "Untagged" in item:
                self.events.emit("image", "untag", item["Untagged"], {"name": item["Untagged"]})
            if "Deleted" in item:
                self.events.emit("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        return result

    def prune(self, filters: Filters) -> DockerDoc:
        """docker image prune: dangling images, or with dangling=false every image
        no container uses; until and label! (prune-only filters, which list does
        not know) spare the images created at or after until or labelled label!.
        Returns docker's ImagesDeleted and SpaceReclaimed."""
        filters = {k: list(v) for k, v in filters.items()}
        dangling = filters.pop("dangling", ["true"])
        all_ = any(v.lower() in ("false", "0") for v in dangling)
        rest, spared = read_prune_filters(filters)

        def keep(summary: DockerDoc) -> bool:
            return spared.spares(lambda: summary["Created"], summary.get("Labels"))

        result = self.images.prune(all=all_, filters=rest or None, keep=keep)
        for item in result.get("ImagesDeleted") or ():
            if "Deleted" in item:
                self.events.emit("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        return result

    def scratch_file(self) -> IO[bytes]:
        """A temporary file on the store's file system, for an upload (load,
        import) or an archive (save) on its way."""
        return tempfile.TemporaryFile(dir=self.images.root)

    def import_(self, source: IO[bytes], *, reference: str | None, changes: Iterable[str],
                message: str) -> str:
        """docker import: a rootfs tarball as a one-layer image -> its Id."""
        image_id = self.images.import_(source, reference=reference, changes=changes,
                                       message=message)
        self.events.emit("image", "import", image_id, {"name": reference or image_id})
        return image_id

    def load(self, source: IO[bytes]) -> builtins.list[DockerDoc]:
        """docker load: [{"Id", "RepoTags"}] per image; an archive the store
        cannot read is the client's (BadRequest: the API puts it in the reply's
        stream, as dockerd does)."""
        try:
            loaded = self.images.load(source)
        except ImageError as e:
            raise BadRequest(str(e)) from None
        for item in loaded:
            self.events.emit("image", "load", item["Id"], {"name": item["Id"]})
        return loaded

    def save(self, refs: builtins.list[str], dest: IO[bytes]) -> None:
        """docker save: the archive into ``dest`` (every name looked up before
        anything is written: a 404 comes before the 200), then dockerd's
        ``save`` event for each image written."""
        for image_id in self.images.save(refs, dest):
            self.events.emit("image", "save", image_id, {"name": image_id})

    # -- container root filesystems -------------------------------------------------
    def create_rootfs(self, container_id: str, image_id: str, idmap: IdMap | None = None
                      ) -> None:
        """The writable layer, made at create (docker's), mounted at start.
        ``idmap``: the container's user namespace maps (--userns-remap)."""
        self.images.prepare_rootfs(container_id, image_id, idmap=idmap)
        self.images.unmount_rootfs(container_id)

    def rootfs_idmap(self, container_id: str) -> IdMap | None:
        """The idmap the rootfs was prepared with (None: not remapped)."""
        try:
            return self.images.snapshots.container_info(container_id).get("idmap")
        except Exception:  # noqa: BLE001 - no rootfs: nothing to map
            return None

    def mount_rootfs(self, container_id: str) -> str:
        return self.images.mount_rootfs(container_id)

    def unmount_rootfs(self, container_id: str) -> None:
        self.images.unmount_rootfs(container_id)

    def remove_rootfs(self, container_id: str) -> None:
        self.images.release_rootfs(container_id)

    def rootfs_info(self, container_id: str) -> dict[str, str]:
        return self.images.rootfs_info(container_id)

    def rootfs_size(self, container_id: str) -> tuple[int, int]:
        """(SizeRw, SizeRootFs) in bytes."""
        return self.images.rootfs_size(container_id)
