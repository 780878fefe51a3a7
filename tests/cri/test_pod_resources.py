"""UpdatePodSandboxResources (kubelet's in-place pod resize): after kubelet has
resized the pod's cgroup itself, the runtime keeps the pod's new overhead and
resources in its config -- told back by a verbose PodSandboxStatus, as
containerd's "config" -- and an unknown pod is NOT_FOUND."""

import json

import grpc
import pytest
from cri_api.v1 import api_pb2


def verbose_config(cri, pod_id):
    return json.loads(cri.pod_status(pod_id, verbose=True).info["info"])["config"]


def test_update_pod_sandbox_resources_is_kept(cri):
    pod_id, config = cri.run_pod()
    before = verbose_config(cri, pod_id)
    assert before["metadata"]["name"] == config.metadata.name
    assert "resources" not in before.get("linux", {})
    resources = api_pb2.LinuxContainerResources(cpu_shares=1024, cpu_quota=150000,
                                                cpu_period=100000,
                                                memory_limit_in_bytes=256 * 1024 * 1024)
    overhead = api_pb2.LinuxContainerResources(cpu_shares=10,
                                               memory_limit_in_bytes=16 * 1024 * 1024)
    cri.call("UpdatePodSandboxResources", api_pb2.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id=pod_id, resources=resources, overhead=overhead))
    after = verbose_config(cri, pod_id)["linux"]
    assert after["resources"]["memoryLimitInBytes"] == str(256 * 1024 * 1024)
    assert after["resources"]["cpuQuota"] == "150000"
    assert after["overhead"]["memoryLimitInBytes"] == str(16 * 1024 * 1024)
    # a later resize replaces what the last one said; the rest of the config stays
    cri.call("UpdatePodSandboxResources", api_pb2.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id=pod_id, resources=api_pb2.LinuxContainerResources(cpu_shares=512)))
    again = verbose_config(cri, pod_id)
    assert again["linux"]["resources"] == {"cpuShares": "512"}
    assert again["linux"]["overhead"]["cpuShares"] == "10"
    assert again["metadata"] == before["metadata"]
    assert cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_READY


def test_update_pod_sandbox_resources_of_an_unknown_pod(cri):
    with pytest.raises(grpc.RpcError) as e:
        cri.call("UpdatePodSandboxResources", api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id="0" * 64, resources=api_pb2.LinuxContainerResources(cpu_shares=2)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
