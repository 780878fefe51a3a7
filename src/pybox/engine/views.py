"""What clients see of containers: inspect, the list (docker ps) with its
filters, the summaries, ps's STATUS column.  Reads only: nothing here writes
a container's record."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pybox import cgroups
from pybox.engine import spec
from pybox.engine.state import ZERO_TIME, ContainerState
from pybox.engine.store import Container, ContainerStore, is_cri
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


# -- inspect's Config and HostConfig: every field docker's Go types declare -------------------
# A record holds what the client sent (plus the engine's normalizations);
# dockerd's inspect encodes its whole container.Config and container.HostConfig
# structs (docker 25, API 1.44: api/types/container/config.go, hostconfig.go), in
# their order: zero values (null for unset lists, maps and pointers) for what
# was not sent, dockerd's create-time defaults where it fills them (ShmSize,
# IpcMode, CgroupnsMode, OomKillDisable, Runtime, the masked and read-only
# paths), and ``omitempty`` fields left out when empty.  docker-py reads
# ``attrs['HostConfig']['Privileged']`` of any container.
_OMIT_EMPTY = object()  # an omitempty field: left out when it has no value
HOST_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Binds", None), ("ContainerIDFile", ""), ("LogConfig", None), ("NetworkMode", "default"),
    ("PortBindings", None), ("RestartPolicy", None), ("AutoRemove", False),
    ("VolumeDriver", ""), ("VolumesFrom", None), ("ConsoleSize", None),
    ("Annotations", _OMIT_EMPTY), ("CapAdd", None), ("CapDrop", None), ("CgroupnsMode", None),
    ("Dns", None), ("DnsOptions", None), ("DnsSearch", None), ("ExtraHosts", None),
    ("GroupAdd", None), ("IpcMode", "private"), ("Cgroup", ""), ("Links", None),
    ("OomScoreAdj", 0), ("PidMode", ""), ("Privileged", False), ("PublishAllPorts", False),
    ("ReadonlyRootfs", False), ("SecurityOpt", None), ("StorageOpt", _OMIT_EMPTY),
    ("Tmpfs", _OMIT_EMPTY), ("UTSMode", ""), ("UsernsMode", ""),
    ("ShmSize", spec.DEFAULT_SHM_SIZE), ("Sysctls", _OMIT_EMPTY), ("Runtime", "pybox"),
    ("Isolation", ""),
    # container.Resources, embedded
    ("CpuShares", 0), ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""), ("BlkioWeight", 0),
    ("BlkioWeightDevice", None), ("BlkioDeviceReadBps", None), ("BlkioDeviceWriteBps", None),
    ("BlkioDeviceReadIOps", None), ("BlkioDeviceWriteIOps", None), ("CpuPeriod", 0),
    ("CpuQuota", 0), ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""),
    ("CpusetMems", ""), ("Devices", None), ("DeviceCgroupRules", None),
    ("DeviceRequests", None), ("KernelMemory", _OMIT_EMPTY), ("KernelMemoryTCP", _OMIT_EMPTY),
    ("MemoryReservation", 0), ("MemorySwap", 0), ("MemorySwappiness", None),
    ("OomKillDisable", False), ("PidsLimit", None), ("Ulimits", None), ("CpuCount", 0),
    ("CpuPercent", 0), ("IOMaximumIOps", 0), ("IOMaximumBandwidth", 0),
    ("Mounts", _OMIT_EMPTY), ("MaskedPaths", None), ("ReadonlyPaths", None),
    ("Init", _OMIT_EMPTY),
)
# create-time defaults dockerd writes over an empty value too (its
# adaptContainerSettings, setDefaults...): "" or 0 is never what inspect shows
_FILLED_WHEN_EMPTY = ("NetworkMode", "IpcMode", "ShmSize", "Runtime", "OomKillDisable",
                      "CgroupnsMode")
# and over null only (an empty list is the client's choice: systempaths=unconfined)
_FILLED_WHEN_NULL = ("LogConfig", "RestartPolicy", "ConsoleSize", "MaskedPaths", "ReadonlyPaths")
CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", _OMIT_EMPTY),
    ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", _OMIT_EMPTY), ("ArgsEscaped", _OMIT_EMPTY), ("Image", ""),
    ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None),
    ("NetworkDisabled", _OMIT_EMPTY), ("MacAddress", _OMIT_EMPTY), ("OnBuild", None),
    ("Labels", None), ("StopSignal", _OMIT_EMPTY), ("StopTimeout", _OMIT_EMPTY),
    ("Shell", _OMIT_EMPTY),
)
# omitempty pointers (Go leaves out only nil): a 0 or {} they point to is shown
_OMIT_NIL_ONLY = ("Init", "Healthcheck", "StopTimeout")
_KNOWN = {id(fields): frozenset(k for k, _ in fields) for fields in (HOST_CONFIG_FIELDS, CONFIG_FIELDS)}


def _empty(key: str, value: Any) -> bool:
    """Go's omitempty test for a JSON value (nil pointers only, for pointers)."""
    if key in _OMIT_NIL_ONLY:
        return value is None
    return value is None or value == "" or value is False or value == 0 or \
        (isinstance(value, (list, dict)) and not value)


def _complete(stored: Mapping[str, Any], fields: tuple[tuple[str, Any], ...],
              defaults: Mapping[str, Any], refill: Iterable[str] = ()) -> dict[str, Any]:
    """``stored`` with every field of ``fields`` in their order: a missing one
    (or, for ``refill``, one without a value) takes ``defaults``' value or the
    field's zero; omitempty ones without a value are left out; other keys
    follow as they were."""
    out: dict[str, Any] = {}
    refilled = set(refill)
    for key, zero in fields:
        default = defaults.get(key, zero)
        value = stored[key] if key in stored else default
        if key in refilled and (value is None or (key in _FILLED_WHEN_EMPTY and _empty(key, value))):
            value = default
        if value is _OMIT_EMPTY or (zero is _OMIT_EMPTY and _empty(key, value)):
            continue
        out[key] = value
    for key, value in stored.items():
        if key not in out and key not in _KNOWN[id(fields)]:
            out[key] = value
    return out


_cgroup_v2: bool | None = None


def _cgroup_ns_default() -> str:
    """dockerd's default cgroup namespace mode: private on a cgroup v2 host,
    host on v1 (spec.build unshares by the same rule)."""
    global _cgroup_v2
    if _cgroup_v2 is None:
        try:
            _cgroup_v2 = cgroups.detect_layout().mode == "v2"
        except (OSError, cgroups.CgroupError):
            _cgroup_v2 = False
    return "private" if _cgroup_v2 else "host"


def full_host_config(hc: Mapping[str, Any]) -> dict[str, Any]:
    """A container's HostConfig as dockerd's inspect shows it."""
    privileged = bool(hc.get("Privileged"))
    defaults = {
        "LogConfig": {"Type": "json-file", "Config": {}},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "ConsoleSize": [0, 0],
        "CgroupnsMode": _cgroup_ns_default(),
        # dockerd stores the defaults it applies; none for a privileged container
        "MaskedPaths": None if privileged else spec.masked_paths(),
        "ReadonlyPaths": None if privileged else list(spec.READONLY_PATHS),
    }
    out = _complete(hc, HOST_CONFIG_FIELDS, defaults, _FILLED_WHEN_EMPTY + _FILLED_WHEN_NULL)
    policy = out.get("RestartPolicy")
    if isinstance(policy, dict) and not policy.get("Name"):
        out["RestartPolicy"] = {**policy, "Name": "no"}
    # generateSecurityOpt: no SELinux label for a container sharing the host's
    # IPC or PID namespace or privileged, unless the client gave one
    opts = out.get("SecurityOpt")
    if (privileged or out.get("IpcMode") == "host" or out.get("PidMode") == "host") and \
            not any(isinstance(o, str) and o.split("=", 1)[0] == "label" for o in opts or ()):
        out["SecurityOpt"] = [*(opts or ()), "label=disable"]
    return out


def full_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A container's Config as dockerd's inspect shows it."""
    return _complete(config, CONFIG_FIELDS, {})


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
        if isinstance(out.get("HostConfig"), dict):
            out["HostConfig"] = full_host_config(out["HostConfig"])
        if isinstance(out.get("Config"), dict):
            out["Config"] = full_config(out["Config"])
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
            if is_cri(c) and not (filters and "label" in filters):
                continue  # kubelet's (pybox.cri): listed only when a label filter asks
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
