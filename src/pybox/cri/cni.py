"""The pods' CNI, as the CRI layer sees it: pybox.network.cni's CNI (C2's
module), reached through this small door while that module is being written
(a pyboxd without it serves the CRI with NetworkReady false and host-network
pods only).  ``PodNetwork`` is the part of the interface the CRI uses."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any, Protocol

from pybox.cri.options import CRIOptions


class CNIResultLike(Protocol):
    @property
    def interface(self) -> str: ...

    @property
    def ips(self) -> tuple[str, ...]: ...


class PodNetwork(Protocol):
    """pybox.network.cni.CNI's methods the CRI calls (the agreed interface)."""

    def status(self) -> str | None: ...

    def setup(self, pod_id: str, netns: str, *, pod_name: str, pod_namespace: str,
              pod_uid: str, port_mappings: Sequence[Any] = (),
              ifname: str = "eth0") -> CNIResultLike: ...

    def teardown(self, pod_id: str, netns: str | None, *, pod_name: str,
                 pod_namespace: str, pod_uid: str, ifname: str = "eth0") -> None: ...


def load(options: CRIOptions) -> tuple[PodNetwork | None, Any]:
    """(the CNI, its CNIPortMapping class), or (None, None) without pybox.network.cni."""
    if importlib.util.find_spec("pybox.network.cni") is None:
        return None, None
    module = importlib.import_module("pybox.network.cni")
    cni: PodNetwork = module.CNI(conf_dir=options.cni_conf_dir,
                                 bin_dirs=options.cni_bin_dirs,
                                 cache_dir=options.cni_cache_dir)
    return cni, module.CNIPortMapping
