"""The engine's view of the image store (pybox.images.service.Images): what a
container needs from it, in the engine's words."""

import builtins
from collections.abc import Callable
from typing import Any, TypedDict

from pybox.errors import ImageNotFound, NotFound
from pybox.images.service import DockerDoc, Filters, Images
from pybox.images.snapshots import IdMap


class ImageLookup(TypedDict):
    """What create takes from an image: its Id, its Config (docker's container
    Config keys, merged under the request's) and its tags."""

    Id: str
    Config: dict[str, Any]
    RepoTags: builtins.list[str]


class ImageService:
    def __init__(self, data_root: str,
                 container_running: Callable[[str], bool] | None = None) -> None:
        self.images = Images.open(data_root, container_running=container_running)

    # -- what create needs ------------------------------------------------------
    def lookup(self, ref: str) -> ImageLookup:
        """{"Id", "Config"} (docker's container Config keys) or NotFound with
        docker's "No such image: X" (404: the CLI then pulls)."""
        try:
            doc = self.images.inspect(ref)
        except ImageNotFound:
            raise NotFound(f"No such image: {ref}") from None
        return {"Id": doc["Id"], "Config": doc.get("Config") or {},
                "RepoTags": doc.get("RepoTags") or []}

    def list(self, *, all: bool = False, filters: Filters | None = None
             ) -> builtins.list[DockerDoc]:
        return self.images.list(all=all, filters=filters)

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
