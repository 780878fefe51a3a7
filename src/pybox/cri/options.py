"""What configures pyboxd's CRI server (pyboxd's flags and daemon.json keys,
pybox.engine.daemonconfig): one typed record the CRI modules share."""

from __future__ import annotations

from dataclasses import dataclass

from pybox.cri.stream_http import STREAM_IDLE_TIMEOUT

DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CNI_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")


@dataclass(frozen=True)
class CRIOptions:
    """``socket``: the unix socket served; ``pod_infra_image``: a sandbox
    image to run instead of pybox's own pause ("" for pybox's); the CNI conf
    and plugin directories and the CNI result cache (DATA_ROOT/cni); the
    streaming server's address, port and idle timeout."""

    socket: str
    cni_cache_dir: str
    cni_conf_dir: str = DEFAULT_CNI_CONF_DIR
    cni_bin_dirs: tuple[str, ...] = DEFAULT_CNI_BIN_DIRS
    pod_infra_image: str = ""
    group: int | None = None
    stream_address: str = "127.0.0.1"
    stream_port: int = 0
    stream_idle_timeout: float = STREAM_IDLE_TIMEOUT  # seconds; 0: never (stream_http.IdleWatch)
