"""The engine's view of the image store (pybox.images.service.Images): what a
container needs from it, in the engine's words."""


from pybox.errors import ImageNotFound, NotFound


class ImageService:
    def __init__(self, data_root, container_running=None) -> None:
        from pybox.images.service import Images

        self.images = Images.open(data_root, container_running=container_running)

    # -- what create needs ------------------------------------------------------
    def lookup(self, ref):
        """{"Id", "Config"} (docker's container Config keys) or NotFound with
        docker's "No such image: X" (404: the CLI then pulls)."""
        try:
            doc = self.images.inspect(ref)
        except ImageNotFound:
            raise NotFound(f"No such image: {ref}") from None
        return {"Id": doc["Id"], "Config": doc.get("Config") or {},
                "RepoTags": doc.get("RepoTags") or []}

    def list(self, **kw):
        return self.images.list(**kw)

    # -- container root filesystems -------------------------------------------------
    def create_rootfs(self, container_id, image_id, idmap=None) -> None:
        """The writable layer, made at create (docker's), mounted at start.
        ``idmap``: the container's user namespace maps (--userns-remap)."""
        self.images.prepare_rootfs(container_id, image_id, idmap=idmap)
        self.images.unmount_rootfs(container_id)

    def rootfs_idmap(self, container_id):
        """The idmap the rootfs was prepared with (None: not remapped)."""
        try:
            return self.images.snapshots.container_info(container_id).get("idmap")
        except Exception:  # noqa: BLE001 - no rootfs: nothing to map
            return None

    def mount_rootfs(self, container_id):
        return self.images.mount_rootfs(container_id)

    def unmount_rootfs(self, container_id) -> None:
        self.images.unmount_rootfs(container_id)

    def remove_rootfs(self, container_id) -> None:
        self.images.release_rootfs(container_id)

    def rootfs_info(self, container_id):
        return self.images.rootfs_info(container_id)

    def rootfs_size(self, container_id):
        """(SizeRw, SizeRootFs) in bytes."""
        return self.images.rootfs_size(container_id)
