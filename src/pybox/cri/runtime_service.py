"""The CRI RuntimeService: kubelet's calls, each mapped onto the engine.

Every method is wrapped by ``errors.rpc`` (pybox errors -> gRPC codes).  The
work is in sandbox.py (pods) and containers.py (containers); this class is
the gRPC face: requests in, responses out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from pybox import __version__
from pybox.cri import meta
from pybox.cri.containers import Containers
from pybox.cri.errors import CRIError, rpc, unimplemented
from pybox.cri.options import CRIOptions
from pybox.cri.sandbox import Pods
from pybox.cri.stats import Stats
from pybox.cri.streaming import StreamingServer
from pybox.engine.engine import Engine
from pybox.errors import BadRequest, PyboxError
from pybox.network.cni import CNI

CRI_VERSION = "0.1.0"  # the kubelet API version every runtime reports (containerd's too)
RUNTIME_NAME = "pybox"
RUNTIME_API_VERSION = "v1"
EVENT_TYPES = {"create": api_pb2.CONTAINER_CREATED_EVENT, "start": api_pb2.CONTAINER_STARTED_EVENT,
               "die": api_pb2.CONTAINER_STOPPED_EVENT, "destroy": api_pb2.CONTAINER_DELETED_EVENT}


class RuntimeService(api_pb2_grpc.RuntimeServiceServicer):
    """runtime.v1.RuntimeService on one engine."""

    def __init__(self, engine: Engine, options: CRIOptions) -> None:
        self.engine = engine
        self.options = options
        self.cni = CNI(conf_dir=options.cni_conf_dir, bin_dirs=options.cni_bin_dirs,
                       cache_dir=options.cni_cache_dir)
        self.pods = Pods(engine, options, self.cni)
        self.containers = Containers(engine, self.pods)
        self.stats = Stats(engine, self.pods, self.containers)
        self._streaming: StreamingServer | None = None
        self._streaming_lock = threading.Lock()

    def close(self) -> None:
        """The daemon is going: stop what the service started (the streaming server)."""
        with self._streaming_lock:
            if self._streaming is not None:
                self._streaming.close()
                self._streaming = None

    def streaming(self) -> StreamingServer:
        """The streaming server (cri/streaming.py), started on first use."""
        with self._streaming_lock:
            if self._streaming is None:
                server = StreamingServer(self.engine, self.pods.pod_netns,
                                         address=self.options.stream_address,
                                         port=self.options.stream_port,
                                         idle_timeout=self.options.stream_idle_timeout)
                server.start()
                self._streaming = server
            return self._streaming

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
                "cgroupDriver": "cgroupfs",
                # containerd's keys: pybox applies neither LSM (profiles refused)
                "enableSelinux": False, "disableApparmor": True})
        handler = api_pb2.RuntimeHandler(name="", features=api_pb2.RuntimeHandlerFeatures(
            recursive_read_only_mounts=False, user_namespaces=False))
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=conditions),
                                      info=info, runtime_handlers=[handler])

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
    @rpc()
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
    def UpdatePodSandboxResources(self, request: Any,  # noqa: N802
                                  context: grpc.ServicerContext) -> Any:
        self.pods.update_resources(
            request.pod_sandbox_id,
            request.overhead if request.HasField("overhead") else None,
            request.resources if request.HasField("resources") else None)
        return api_pb2.UpdatePodSandboxResourcesResponse()

    @rpc()
    def PodSandboxStatus(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                         ) -> Any:
        response = self.pods.status(request.pod_sandbox_id, request.verbose)
        for c in self.pods.containers_of(response.status.id):  # kubelet's evented PLEG
            try:
                response.containers_statuses.append(self.containers.status(c.id, False).status)
            except PyboxError:
                pass
        return response

    @rpc()
    def ListPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListPodSandboxResponse(items=self.pods.list(flt))

    # -- containers (containers.py) ------------------------------------------------------------
    @rpc()
    def CreateContainer(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                        ) -> Any:
        cid = self.containers.create(request.pod_sandbox_id, request.config,
                                     request.sandbox_config)
        return api_pb2.CreateContainerResponse(container_id=cid)

    @rpc(conflict=grpc.StatusCode.UNKNOWN)
    def StartContainer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.containers.start(request.container_id)
        return api_pb2.StartContainerResponse()

    @rpc()
    def StopContainer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.containers.stop(request.container_id, request.timeout)
        return api_pb2.StopContainerResponse()

    @rpc()
    def RemoveContainer(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                        ) -> Any:
        self.containers.remove(request.container_id)
        self.stats.forget(request.container_id)
        return api_pb2.RemoveContainerResponse()

    @rpc()
    def ListContainers(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListContainersResponse(containers=self.containers.list(flt))

    @rpc()
    def ContainerStatus(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                        ) -> Any:
        return self.containers.status(request.container_id, request.verbose)

    @rpc()
    def UpdateContainerResources(self, request: Any,  # noqa: N802
                                 context: grpc.ServicerContext) -> Any:
        self.containers.update_resources(request.container_id, request.linux)
        return api_pb2.UpdateContainerResourcesResponse()

    @rpc()
    def ReopenContainerLog(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                           ) -> Any:
        c = self.containers.get(request.container_id)
        self.engine.reopen_log(c.id)
        return api_pb2.ReopenContainerLogResponse()

    @rpc()
    def ExecSync(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self.containers.exec_sync(request.container_id, list(request.cmd),
                                         request.timeout)

    # -- streaming (C3's cri/streaming.py) ---------------------------------------------------------
    @rpc()
    def Exec(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        c = self.containers.get(request.container_id)
        if not c.state.running:
            raise CRIError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"container {c.id!r} is not running")
        if not request.cmd:
            raise BadRequest("cmd must not be empty")
        url = self.streaming().exec_url(c.id, list(request.cmd), tty=request.tty,
                                        stdin=request.stdin, stdout=request.stdout,
                                        stderr=request.stderr)
        return api_pb2.ExecResponse(url=url)

    @rpc()
    def Attach(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        c = self.containers.get(request.container_id)
        if not c.state.running:
            raise CRIError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"container {c.id!r} is not running")
        url = self.streaming().attach_url(c.id, tty=request.tty, stdin=request.stdin,
                                          stdout=request.stdout, stderr=request.stderr)
        return api_pb2.AttachResponse(url=url)

    @rpc()
    def PortForward(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pod = self.pods.get(request.pod_sandbox_id)
        if not pod.state.running:
            raise CRIError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"sandbox {pod.id!r} is not running")
        url = self.streaming().port_forward_url(pod.id, list(request.port))
        return api_pb2.PortForwardResponse(url=url)

    # -- stats (stats.py) --------------------------------------------------------------------------
    @rpc()
    def ContainerStats(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        c = self.containers.get(request.container_id)
        return api_pb2.ContainerStatsResponse(stats=self.stats.container(c))

    @rpc()
    def ListContainerStats(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                           ) -> Any:
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListContainerStatsResponse(stats=self.stats.list_containers(flt))

    @rpc()
    def PodSandboxStats(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                        ) -> Any:
        pod = self.pods.get(request.pod_sandbox_id)
        return api_pb2.PodSandboxStatsResponse(stats=self.stats.pod(pod))

    @rpc()
    def ListPodSandboxStats(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                            ) -> Any:
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListPodSandboxStatsResponse(stats=self.stats.list_pods(flt))

    @rpc()
    def ListMetricDescriptors(self, request: Any,  # noqa: N802
                              context: grpc.ServicerContext) -> Any:
        return api_pb2.ListMetricDescriptorsResponse()

    @rpc()
    def ListPodSandboxMetrics(self, request: Any,  # noqa: N802
                              context: grpc.ServicerContext) -> Any:
        return api_pb2.ListPodSandboxMetricsResponse()

    # -- events ----------------------------------------------------------------------------------
    def GetContainerEvents(self, request: Any, context: grpc.ServicerContext  # noqa: N802
                           ) -> Iterator[Any]:
        """kubelet's evented PLEG: the CRI containers' created, started,
        stopped and deleted events as they happen, each with its pod's
        status and the container's, until the client goes."""
        queue = self.engine.events.subscribe()
        try:
            deque_, cond = queue
            while context.is_active() and not self.engine.stopping:
                with cond:
                    if not deque_:
                        cond.wait(0.5)
                    events = list(deque_)
                    deque_.clear()
                for event in events:
                    response = self.container_event(event)
                    if response is not None:
                        yield response
        finally:
            self.engine.events.unsubscribe(queue)

    def container_event(self, event: dict[str, Any]) -> Any | None:
        """A CRI event from an engine event, containerd's shape: a pod
        sandbox's events too (its id as the container's), each with the pod's
        status and the statuses of every container of the pod."""
        if event.get("Type") != "container":
            return None
        kind = EVENT_TYPES.get(event.get("Action", ""))
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        if kind is None or attrs.get(meta.KIND) not in (meta.CONTAINER_KIND, meta.SANDBOX_KIND):
            return None
        cid = event["Actor"]["ID"]
        pod_id = cid if attrs.get(meta.KIND) == meta.SANDBOX_KIND else attrs.get(meta.SANDBOX, "")
        response = api_pb2.ContainerEventResponse(container_id=cid, container_event_type=kind,
                                                  created_at=event.get("timeNano", 0))
        try:
            response.pod_sandbox_status.CopyFrom(self.pods.status(pod_id, False).status)
        except PyboxError:
            pass
        for c in self.pods.containers_of(pod_id):
            try:
                response.containers_statuses.append(self.containers.status(c.id, False).status)
            except PyboxError:
                pass
        return response
