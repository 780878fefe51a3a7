"""What docker info counts of the engine: its containers by state, its images,
its event listeners (the API's /info adds the host's facts)."""

from dataclasses import dataclass

from pybox.engine.events import EventBus
from pybox.engine.images import ImageService
from pybox.engine.store import ContainerStore


@dataclass(frozen=True)
class Counts:
    containers: int
    running: int  # running and not paused
    paused: int
    stopped: int  # the rest: created, exited, dead...
    images: int
    event_listeners: int


def counts(store: ContainerStore, images: ImageService, events: EventBus) -> Counts:
    containers = store.all()
    running = sum(1 for c in containers if c.state.running and not c.state.paused)
    paused = sum(1 for c in containers if c.state.paused)
    try:
        # every image, the builder's intermediate ones too: dockerd's CountImages
        # (the image store's size), which docker-py checks against `images -a`
        n_images = len({image["Id"] for image in images.list(all=True)})
    except Exception:  # noqa: BLE001 - info must answer anyway
        n_images = 0
    return Counts(containers=len(containers), running=running, paused=paused,
                  stopped=len(containers) - running - paused, images=n_images,
                  event_listeners=len(events.subscribers))
