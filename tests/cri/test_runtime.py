"""The runtime's own calls: Version, Status, RuntimeConfig, and the calls
pyboxd answers UNIMPLEMENTED (what crictl version / crictl info show)."""

import json
import os
import stat

import grpc
import pytest
from cri_api.v1 import api_pb2

from .conftest import CALL_TIMEOUT


def test_version(runtime_stub):
    v = runtime_stub.Version(api_pb2.VersionRequest(), timeout=CALL_TIMEOUT)
    assert v.version == "0.1.0"
    assert v.runtime_name == "pybox"
    assert v.runtime_api_version == "v1"
    assert v.runtime_version


def test_status_ready(runtime_stub, cri_pyboxd):
    s = runtime_stub.Status(api_pb2.StatusRequest(verbose=True), timeout=CALL_TIMEOUT)
    conditions = {c.type: c for c in s.status.conditions}
    assert conditions["RuntimeReady"].status is True
    # the private conf dir holds a conflist whose plugins exist
    assert conditions["NetworkReady"].status is True, conditions["NetworkReady"]
    config = json.loads(s.info["config"])
    assert config["cniConfDir"] == cri_pyboxd.cni_conf_dir
    assert (config["enableSelinux"], config["disableApparmor"]) == (False, True)


def test_status_runtime_handlers(runtime_stub):
    s = runtime_stub.Status(api_pb2.StatusRequest(), timeout=CALL_TIMEOUT)
    assert [h.name for h in s.runtime_handlers] == [""]
    assert s.runtime_handlers[0].features.user_namespaces is False


def test_runtime_config_cgroupfs(runtime_stub):
    r = runtime_stub.RuntimeConfig(api_pb2.RuntimeConfigRequest(), timeout=CALL_TIMEOUT)
    assert r.linux.cgroup_driver == api_pb2.CGROUPFS


def test_update_runtime_config_accepted(runtime_stub):
    runtime_stub.UpdateRuntimeConfig(api_pb2.UpdateRuntimeConfigRequest(
        runtime_config=api_pb2.RuntimeConfig(network_config=api_pb2.NetworkConfig(
            pod_cidr="10.244.0.0/24"))), timeout=CALL_TIMEOUT)


def test_checkpoint_unimplemented(runtime_stub):
    with pytest.raises(grpc.RpcError) as e:
        runtime_stub.CheckpointContainer(api_pb2.CheckpointContainerRequest(
            container_id="x", location="/tmp/x"), timeout=CALL_TIMEOUT)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_socket_private_and_root_only(cri_pyboxd):
    """The private daemon serves its own socket, 0660, and not the system's."""
    st = os.stat(cri_pyboxd.cri_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert cri_pyboxd.cri_socket != "/run/pybox/cri.sock"
