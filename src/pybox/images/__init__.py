"""Images: references, the content store, layers, overlay snapshots, archives.
Knows nothing about running containers (docs/images.md).

The engine holds one ``Images`` (service.py); ``from pybox.images import Images``
imports it lazily, so the runtime's users of ``pybox.images.rootfs`` pay nothing."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pybox.images.service import Images


def __getattr__(name: str) -> "type[Images]":
    if name == "Images":
        # the package's lazy attribute (PEP 562): importing any one module of
        # pybox.images must not load the whole store
        from pybox.images.service import Images  # noqa: PLC0415 -- lazy by design (above)

        return Images
    raise AttributeError(name)
