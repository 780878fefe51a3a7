"""CRI stats: ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats.

Read from the containers' cgroups (the runtime's stats, runc's ``events
--stats`` shape: pybox.cgroups.stats), as containerd reads its tasks'
metrics: CPU usage in core-nanoseconds and, from the previous sample of the
same container, nano-cores; memory usage, working set (usage minus the
inactive page cache, what kubelet evicts on), RSS (anon), page faults;
the writable layer's bytes.  A pod's stats are its containers' and its
sandbox's summed, its network the pod interface's counters (read in the
pod's network namespace through /proc/<pause>/net/dev), its process count
the pids of its containers.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from cri_api.v1 import api_pb2

from pybox.cri import meta
from pybox.cri.containers import Containers
from pybox.cri.sandbox import Pods, matches, read_network_state
from pybox.engine.engine import Engine
from pybox.engine.store import Container
from pybox.errors import PyboxError


def disk_usage(top: str) -> tuple[int, int]:
    """(bytes in blocks, inodes) of the tree at ``top``, not crossing mounts,
    each inode counted once."""
    try:
        st = os.lstat(top)
    except OSError:
        return 0, 0
    seen = {(st.st_dev, st.st_ino)}
    used = st.st_blocks * 512
    stack = [top]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if est.st_dev != st.st_dev or (est.st_dev, est.st_ino) in seen:
                continue
            seen.add((est.st_dev, est.st_ino))
            used += est.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return used, len(seen)


def _u64(value: int) -> Any:
    return api_pb2.UInt64Value(value=max(int(value), 0))


class Stats:
    """Stats of one engine's CRI containers and pods."""

    def __init__(self, engine: Engine, pods: Pods, containers: Containers) -> None:
        self.engine = engine
        self.pods = pods
        self.containers = containers
        self._last: dict[str, tuple[int, int]] = {}  # id -> (timestamp ns, cpu ns)
        self._lock = threading.Lock()

    def raw(self, c: Container) -> dict[str, Any]:
        if not c.state.running:
            return {}
        try:
            return dict(self.engine.runner.cgroup_stats(c.id))
        except (PyboxError, OSError):
            return {}

    def cpu(self, c: Container, raw: dict[str, Any], now: int) -> Any:
        total = int(((raw.get("cpu") or {}).get("usage") or {}).get("total") or 0)
        nano_cores = 0
        with self._lock:
            prev = self._last.get(c.id)
            self._last[c.id] = (now, total)
        if prev is not None and now > prev[0] and total >= prev[1]:
            nano_cores = (total - prev[1]) * 1_000_000_000 // (now - prev[0])
        return api_pb2.CpuUsage(timestamp=now, usage_core_nano_seconds=_u64(total),
                                usage_nano_cores=_u64(nano_cores))

    @staticmethod
    def memory(raw: dict[str, Any], now: int) -> Any:
        mem = raw.get("memory") or {}
        usage = (mem.get("usage") or {})
        flat = mem.get("raw") or mem.get("stats") or {}
        used = int(usage.get("usage") or 0)
        limit = int(usage.get("limit") or 0)
        inactive = int(flat.get("inactive_file", flat.get("total_inactive_file", 0)) or 0)
        working = max(used - inactive, 0)
        rss = int(flat.get("anon", flat.get("total_rss", 0)) or 0)
        available = limit - working if 0 < limit < (1 << 62) else 0
        return api_pb2.MemoryUsage(
            timestamp=now, working_set_bytes=_u64(working), usage_bytes=_u64(used),
            available_bytes=_u64(available), rss_bytes=_u64(rss),
            page_faults=_u64(flat.get("pgfault", flat.get("total_pgfault", 0)) or 0),
            major_page_faults=_u64(flat.get("pgmajfault", flat.get("total_pgmajfault", 0)) or 0))

    def writable_layer(self, c: Container, now: int) -> Any:
        """The container's writable layer (its overlay upper directory): blocks
        in use and inodes, the directory itself included, as containerd's
        snapshotter usage counts them."""
        try:
            upper = self.engine.images.rootfs_info(c.id).get("UpperDir") or ""
        except Exception:  # noqa: BLE001 - a layer being removed: no numbers
            upper = ""
        used, inodes = disk_usage(upper) if upper else (0, 0)
        return api_pb2.FilesystemUsage(
            timestamp=now, fs_id=api_pb2.FilesystemIdentifier(
                mountpoint=self.engine.images.images.root),
            used_bytes=_u64(used), inodes_used=_u64(inodes))

    def container(self, c: Container, raw: dict[str, Any] | None = None) -> Any:
        """``raw``: the cgroup's numbers when the caller has read them already
        (a pod's stats: its sum and its containers' entries from one read each)."""
        config = meta.container_config(c)
        now = time.time_ns()
        if raw is None:
            raw = self.raw(c)
        return api_pb2.ContainerStats(
            attributes=api_pb2.ContainerAttributes(id=c.id, metadata=config.metadata,
                                                   labels=dict(config.labels),
                                                   annotations=dict(config.annotations)),
            cpu=self.cpu(c, raw, now), memory=self.memory(raw, now),
            writable_layer=self.writable_layer(c, now))

    def list_containers(self, flt: Any) -> list[Any]:
        out = []
        for c in self.containers.all():
            if flt is not None:
                if flt.id and not c.id.startswith(flt.id):
                    continue
                if flt.pod_sandbox_id and not meta.pod_of(c).startswith(flt.pod_sandbox_id):
                    continue
                if not matches(meta.container_config(c).labels, flt.label_selector.items()):
                    continue
            out.append(self.container(c))
        return out

    def pod(self, pod: Container) -> Any:
        config = meta.pod_config(pod)
        now = time.time_ns()
        members = self.pods.containers_of(pod.id)
        member_raws = [self.raw(c) for c in members]
        stats = [self.container(c, raw) for c, raw in zip(members, member_raws, strict=True)]
        raws = [self.raw(pod), *member_raws]
        cpu_total = sum(int(((r.get("cpu") or {}).get("usage") or {}).get("total") or 0)
                        for r in raws)
        cpu = api_pb2.CpuUsage(timestamp=now, usage_core_nano_seconds=_u64(cpu_total),
                               usage_nano_cores=_u64(
                                   self.cpu(pod, raws[0], now).usage_nano_cores.value
                                   + sum(s.cpu.usage_nano_cores.value for s in stats)))
        mems = [self.memory(r, now) for r in raws]
        memory = api_pb2.MemoryUsage(
            timestamp=now,
            working_set_bytes=_u64(sum(m.working_set_bytes.value for m in mems)),
            usage_bytes=_u64(sum(m.usage_bytes.value for m in mems)),
            rss_bytes=_u64(sum(m.rss_bytes.value for m in mems)),
            page_faults=_u64(sum(m.page_faults.value for m in mems)),
            major_page_faults=_u64(sum(m.major_page_faults.value for m in mems)))
        procs = sum(int((r.get("pids") or {}).get("current") or 0) for r in raws)
        return api_pb2.PodSandboxStats(
            attributes=api_pb2.PodSandboxAttributes(id=pod.id, metadata=config.metadata,
                                                    labels=dict(config.labels),
                                                    annotations=dict(config.annotations)),
            linux=api_pb2.LinuxPodSandboxStats(
                cpu=cpu, memory=memory, network=self.network(pod, now),
                process=api_pb2.ProcessUsage(timestamp=now, process_count=_u64(procs)),
                containers=stats))

    @staticmethod
    def network(pod: Container, now: int) -> Any:
        """The pod interface's counters, from the pause's /proc/PID/net/dev."""
        state = read_network_state(pod)
        name = state.interface or "eth0"
        if not pod.state.running or not pod.state.pid or not state.netns:
            return api_pb2.NetworkUsage(timestamp=now)
        interfaces = []
        try:
            with open(f"/proc/{pod.state.pid}/net/dev") as f:
                lines = f.read().splitlines()[2:]
        except OSError:
            lines = []
        for line in lines:
            ifname, _, rest = line.partition(":")
            ifname = ifname.strip()
            fields = rest.split()
            if ifname == "lo" or len(fields) < 16:
                continue
            interfaces.append(api_pb2.NetworkInterfaceUsage(
                name=ifname, rx_bytes=_u64(int(fields[0])), rx_errors=_u64(int(fields[2])),
                tx_bytes=_u64(int(fields[8])), tx_errors=_u64(int(fields[10]))))
        default = next((i for i in interfaces if i.name == name), None)
        return api_pb2.NetworkUsage(timestamp=now, default_interface=default,
                                    interfaces=[i for i in interfaces if i is not default])

    def list_pods(self, flt: Any) -> list[Any]:
        out = []
        for pod in self.pods.all():
            if flt is not None:
                if flt.id and not pod.id.startswith(flt.id):
                    continue
                if not matches(meta.pod_config(pod).labels, flt.label_selector.items()):
                    continue
            out.append(self.pod(pod))
        return out

    def forget(self, cid: str) -> None:
        with self._lock:
            self._last.pop(cid, None)
