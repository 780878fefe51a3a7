"""Images: references, the content store, layers, overlay snapshots, archives.
Knows nothing about running containers (docs/images.md).

The engine holds one ``Images`` (service.py); ``from pybox.images import Images``
imports it lazily, so the runtime's users of ``pybox.images.rootfs`` pay nothing."""


def __getattr__(name):
    if name == "Images":
        from pybox.images.service import Images

        return Images
    raise AttributeError(name)
