"""What clients see of containers: inspect, the list (docker ps) with its
filters, the summaries, ps's STATUS column.  Reads only: nothing here writes
a container's record."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pybox.engine.state import ZERO_TIME, ContainerState
from pybox.engine.store import Container, ContainerStore
from pybox.formats import fastjson

if TYPE_CHECKING:
    from pybox.engine.images import ImageService
    from pybox.engine.networking import EngineNetworking
from pybox.formats.durations import human_duration
from pybox.formats.times import parse_rfc3339

Filters = Mapping[str, Iterable[str]]


def human_status(st: ContainerState) -> str:
    """docker's ps STATUS column: "Up 7 seconds", "Exited (137) 2 minutes ago"."""
    if st.restarting:
        finished = parse_rfc3339(st.finished_at)
        return (f"Restarting ({st.exit_code}) "
                f"{human_duration(time.time() - finished)} ago")
    if st.running:
        started = parse_rfc3339(st.started_at)
        text = "Up " + human_duration(time.time() - started)
        if st.paused:
            text += " (Paused)"
        health = (st.health or {}).get("Status")
        if health == "starting":
            text += " (health: starting)"
        elif health in ("healthy", "unhealthy"):
            text += f" ({health})"
        return text
    if st.status == "removing":
        return "Removal In Progress"
    if st.dead:
        return "Dead"
    if st.started_at == ZERO_TIME:
        return "Created"
    finished = parse_rfc3339(st.finished_at)
    return f"Exited ({st.exit_code}) {human_duration(time.time() - finished)} ago"


class ContainerViews:
    """inspect and list over the store; ``images`` gives sizes, ``network``
    the published ports of ps."""

    def __init__(self, store: ContainerStore, images: ImageService,
                 network: EngineNetworking) -> None:
        self.store = store
        self.images = images
        self.network = network

    def inspect(self, c: Container, size: bool = False) -> dict[str, Any]:
        with c.lock:
            out: dict[str, Any] = fastjson.loads(fastjson.dumps(c.to_docker()))
        if out["State"].get("Restarting"):
            out["State"]["Running"] = True  # as dockerd reports a restarting container
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.images.rootfs_size(c.id)
        return out

    def list(self, all_: bool = False, limit: int | None = -1, size: bool = False,
             filters: Filters | None = None) -> list[dict[str, Any]]:
        if limit is not None and limit > 0:
            all_ = True  # docker: ps -n N / -l list the newest, whatever their state
        items = []
        # newest first: Created is RFC 3339 with 9 fraction digits, sortable as text
        for c in sorted(self.store.all(), key=lambda c: c.created, reverse=True):
            # docker ps lists restarting containers too (dockerd keeps them
            # "running" between two runs): a crash loop is what one looks for
            if not all_ and not c.state.listed_running and not filters:
                continue
            if filters and not self.filter_match(c, filters, all_):
                continue
            items.append(self.summary(c, size))
        if limit is not None and limit > 0:
            items = items[:limit]
        return items

    @staticmethod
    def filter_match(c: Container, filters: Filters, all_: bool) -> bool:
        """docker ps's filters (and container prune's)."""
        st = c.state
        if not all_ and not st.listed_running and "status" not in filters and \
                "exited" not in filters:
            return False
        for key, values in filters.items():
            values = list(values)
            if key == "name" and not any(v.lstrip("/") in c.name for v in values):
                return False
            if key == "id" and not any(c.id.startswith(v) for v in values):
                return False
            if key == "status" and st.docker_status() not in values:
                return False
            if key == "exited" and (st.running or str(st.exit_code) not in values):
                return False
            if key == "label":
                labels = c.config.get("Labels")
                labels = labels if isinstance(labels, dict) else {}
                for v in values:
                    k, _, val = v.partition("=")
                    if k not in labels or (val and labels[k] != val):
                        return False
            if key == "ancestor" and c.config.get("Image") not in values and \
                    (c.image if c.has("Image") else None) not in values:
                return False
        return True

    def summary(self, c: Container, size: bool) -> dict[str, Any]:
        """One container as docker ps lists it."""
        st = c.state
        try:
            created_unix = int(parse_rfc3339(c.created))
        except (ValueError, TypeError):
            created_unix = 0
        try:  # a record however odd is listed (store.repair; the API renders the types)
            status = human_status(st)
        except (ValueError, TypeError, AttributeError, OverflowError):
            status = ""
        out = {
            "Id": c.id,
            "Names": ["/" + c.name],
            "Image": c.config.get("Image", ""),
            "ImageID": c.image,
            "Command": " ".join(shlex.quote(str(a)) for a in [c.path] + list(c.args)),
            "Created": created_unix,
            "Ports": self.network.ps_ports(c),
            "Labels": c.config.get("Labels") or {},
            "State": st.docker_status(),
            "Status": status,
            "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": c.network_settings.get("Networks") or {}},
            "Mounts": c.mounts or [],
        }
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.images.rootfs_size(c.id)
        return out
