"""The pod's network namespace as RunPodSandbox makes it: pinned first, the
pause joining it while CNI's ADD fills it (containerd's order), or made by the
pause's runtime when the pod has net.* sysctls.  Either way the pin is the
pause's namespace, and a pause that fails to start leaves neither the pin nor
the address CNI gave it."""

import json
import os

import grpc
import pytest
from cri_api.v1 import api_pb2


def pins(daemon):
    netns_dir = os.path.join(daemon.exec_root, "cri", "netns")
    return set(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else set()


def leases(daemon):
    """host-local's leases: address -> the container (pod) id it was given to."""
    d = os.path.join(daemon.ipam_dir, daemon.network_name)
    out = {}
    for name in os.listdir(d) if os.path.isdir(d) else ():
        if name[0].isdigit():
            with open(os.path.join(d, name)) as f:
                out[name] = (f.read().split() or [""])[0]
    return out


@pytest.mark.parametrize("sysctls", [{}, {"net.ipv4.ip_unprivileged_port_start": "0"}],
                         ids=["pinned-first", "made-by-the-pause"])
def test_the_pin_is_the_pause_namespace(cri, cri_pyboxd, sysctls):
    pod_id, _ = cri.run_pod(sysctls=sysctls)
    status = cri.pod_status(pod_id, verbose=True)
    assert status.status.state == api_pb2.SANDBOX_READY
    info = json.loads(status.info["info"])
    pin = os.path.join(cri_pyboxd.exec_root, "cri", "netns", pod_id)
    assert info["netNamespacePath"] == pin
    assert os.stat(pin).st_ino == os.stat(f"/proc/{info['pid']}/ns/net").st_ino
    # CNI filled that namespace: the pod's address is on its eth0
    assert status.status.network.ip
    assert leases(cri_pyboxd).get(status.status.network.ip) == pod_id


def test_pause_failing_in_its_pinned_namespace_leaves_nothing(cri, cri_pyboxd):
    """An IPC sysctl the kernel lacks fails the pause's start (the runtime
    writes it) while CNI's ADD runs beside it: the answer is the start's
    failure, and the pin and the ADD's address are gone with the sandbox."""
    before_pins, before_leases = pins(cri_pyboxd), leases(cri_pyboxd)
    config = cri.pod_config(sysctls={"kernel.shm_no_such_knob": "1"})
    with pytest.raises(grpc.RpcError) as excinfo:
        cri.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))
    assert "shm_no_such_knob" in excinfo.value.details()
    left = cri.call("ListPodSandbox", api_pb2.ListPodSandboxRequest()).items
    assert config.metadata.uid not in [p.metadata.uid for p in left]
    assert pins(cri_pyboxd) == before_pins
    assert leases(cri_pyboxd) == before_leases
    # the name is free again: the same pod without the bad sysctl runs
    fixed = api_pb2.PodSandboxConfig()
    fixed.CopyFrom(config)
    fixed.linux.ClearField("sysctls")
    pod_id, _ = cri.run_pod(config=fixed)
    assert cri.pod_status(pod_id).status.state == api_pb2.SANDBOX_READY
