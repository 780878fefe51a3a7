"""The CRI RuntimeService: kubelet's calls, each mapped onto the engine.

Every method is wrapped by ``errors.rpc`` (pybox errors -> gRPC codes).  The
work is in sandbox.py (pods) and containers.py (containers); this class is
the gRPC face: requests in, responses out.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from pybox import __version__
from pybox.cri.errors import rpc, unimplemented
from pybox.cri.options import CRIOptions
from pybox.cri.sandbox import Pods
from pybox.engine.engine import Engine
from pybox.network.cni import CNI

CRI_VERSION = "0.1.0"  # the kubelet API version every runtime reports (containerd's too)
RUNTIME_NAME = "pybox"
RUNTIME_API_VERSION = "v1"


class RuntimeService(api_pb2_grpc.RuntimeServiceServicer):
    """runtime.v1.RuntimeService on one engine."""

    def __init__(self, engine: Engine, options: CRIOptions) -> None:
        self.engine = engine
        self.options = options
        self.cni = CNI(conf_dir=options.cni_conf_dir, bin_dirs=options.cni_bin_dirs,
                       cache_dir=options.cni_cache_dir)
        self.pods = Pods(engine, options, self.cni)

    def close(self) -> None:
        """The daemon is going: stop what the service started (the streaming server)."""

    # -- the runtime ------------------------------------------------------------------------
    @rpc()
    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return api_pb2.VersionResponse(version=CRI_VERSION, runtime_name=RUNTIME_NAME,
                                       runtime_version=__version__,
                                       runtime_api_version=RUNTIME_API_VERSION)

    def network_status(self) -> str | None:
        """None when pods can be networked, else why not (containerd's words)."""
        return self.cni.status_detail()

    @rpc()
    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        conditions = [api_pb2.RuntimeCondition(type="RuntimeReady", status=True)]
        problem = self.network_status()
        if problem is None:
            conditions.append(api_pb2.RuntimeCondition(type="NetworkReady", status=True))
        else:
            conditions.append(api_pb2.RuntimeCondition(
                type="NetworkReady", status=False, reason="NetworkPluginNotReady",
                message=f"Network plugin returns error: {problem}"))
        info: dict[str, str] = {}
        if request.verbose:
            info["config"] = json.dumps({
                "cniConfDir": self.options.cni_conf_dir,
                "cniBinDirs": list(self.options.cni_bin_dirs),
                "podInfraImage": self.options.pod_infra_image or "(pybox pause)",
                "cgroupDriver": "cgroupfs"})
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=conditions),
                                      info=info)

    @rpc()
    def RuntimeConfig(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return api_pb2.RuntimeConfigResponse(linux=api_pb2.LinuxRuntimeConfiguration(
            cgroup_driver=api_pb2.CGROUPFS))

    @rpc()
    def UpdateRuntimeConfig(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                            ) -> Any:
        """kubelet sends the node's pod CIDR; the CNI conf names its own ranges
        (containerd only templates it into a conf it writes itself)."""
        return api_pb2.UpdateRuntimeConfigResponse()

    @rpc()
    def CheckpointContainer(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                            ) -> Any:
        raise unimplemented("CheckpointContainer")

    # -- pod sandboxes (sandbox.py) ------------------------------------------------------------
    @rpc(conflict=grpc.StatusCode.ALREADY_EXISTS)
    def RunPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pod_id = self.pods.run(request.config, request.runtime_handler)
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=pod_id)

    @rpc()
    def StopPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.pods.stop(request.pod_sandbox_id)
        return api_pb2.StopPodSandboxResponse()

    @rpc()
    def RemovePodSandbox(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                         ) -> Any:
        self.pods.remove(request.pod_sandbox_id)
        return api_pb2.RemovePodSandboxResponse()

    @rpc()
    def PodSandboxStatus(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                         ) -> Any:
        return self.pods.status(request.pod_sandbox_id, request.verbose)

    @rpc()
    def ListPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListPodSandboxResponse(items=self.pods.list(flt))
