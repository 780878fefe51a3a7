"""The CRI security context, as kubelet sends it, seen from inside the
container: run-as user/group/username, supplemental groups, privileged,
capabilities, seccomp (RuntimeDefault, Unconfined, Localhost), read-only
root, masked and read-only paths, no-new-privileges, and AppArmor/SELinux
profiles refused (pybox applies neither)."""

import json

import grpc
import pytest
from cri_api.v1 import api_pb2

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_CHOWN = 0


def status_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


def run_with(cri, security, command=("sleep", "3600")):
    pod_id, pod = cri.run_pod()
    cid = cri.run(pod_id, pod, command=list(command), security=security)
    return cid


def proc_status(cri, cid):
    out = cri.exec_sync(cid, ["cat", "/proc/self/status"])
    assert out.exit_code == 0, out
    return out.stdout.decode()


def test_run_as_user_group_and_supplemental(cri):
    sc = api_pb2.LinuxContainerSecurityContext(
        run_as_user=api_pb2.Int64Value(value=1234), run_as_group=api_pb2.Int64Value(value=5678),
        supplemental_groups=[4000, 4001])
    cid = run_with(cri, sc)
    out = cri.exec_sync(cid, ["id"]).stdout.decode()
    assert "uid=1234" in out and "gid=5678" in out
    assert "4000" in out and "4001" in out


def test_run_as_username(cri):
    sc = api_pb2.LinuxContainerSecurityContext(run_as_username="nobody")
    cid = run_with(cri, sc)
    assert cri.exec_sync(cid, ["id", "-un"]).stdout.decode().strip() == "nobody"


def test_capabilities_add_drop(cri):
    sc = api_pb2.LinuxContainerSecurityContext(capabilities=api_pb2.Capability(
        add_capabilities=["NET_ADMIN"], drop_capabilities=["CHOWN"]))
    cid = run_with(cri, sc)
    eff = int(status_field(proc_status(cri, cid), "CapEff"), 16)
    assert eff & (1 << CAP_NET_ADMIN)
    assert not eff & (1 << CAP_CHOWN)
    assert not eff & (1 << CAP_SYS_ADMIN)


def test_drop_all(cri):
    sc = api_pb2.LinuxContainerSecurityContext(capabilities=api_pb2.Capability(
        drop_capabilities=["ALL"]))
    cid = run_with(cri, sc)
    assert int(status_field(proc_status(cri, cid), "CapEff"), 16) == 0


def test_privileged(cri):
    pod_id, pod = cri.run_pod(privileged=True)
    cid = cri.run(pod_id, pod, security=api_pb2.LinuxContainerSecurityContext(privileged=True))
    eff = int(status_field(proc_status(cri, cid), "CapEff"), 16)
    assert eff & (1 << CAP_SYS_ADMIN)
    assert status_field(proc_status(cri, cid), "Seccomp") == "0"
    # devices of the host are there, /sys is writable
    out = cri.exec_sync(cid, ["sh", "-c", "ls /dev | wc -l; grep ' /sys ' /proc/self/mounts"])
    lines = out.stdout.decode().splitlines()
    assert int(lines[0]) > 20 and " rw," in lines[1]


def test_privileged_container_needs_privileged_pod(cri):
    pod_id, pod = cri.run_pod()
    with pytest.raises(grpc.RpcError) as e:
        cri.create(pod_id, pod, security=api_pb2.LinuxContainerSecurityContext(privileged=True))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no privileged container allowed in sandbox" in e.value.details()


def test_seccomp_profiles(cri, tmp_path):
    default = run_with(cri, api_pb2.LinuxContainerSecurityContext(
        seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)))
    assert status_field(proc_status(cri, default), "Seccomp") == "2"
    unconfined = run_with(cri, api_pb2.LinuxContainerSecurityContext(
        seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)))
    assert status_field(proc_status(cri, unconfined), "Seccomp") == "0"
    # a localhost profile denying mkdir (a node's profile file)
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    local = run_with(cri, api_pb2.LinuxContainerSecurityContext(
        seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost,
                                        localhost_ref=str(profile))))
    out = cri.exec_sync(local, ["mkdir", "/tmp/x"])
    assert out.exit_code != 0 and b"not permitted" in out.stderr
    with pytest.raises(grpc.RpcError) as e:
        run_with(cri, api_pb2.LinuxContainerSecurityContext(
            seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost,
                                            localhost_ref=str(tmp_path / "missing.json"))))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_seccomp_defaults_and_path_forms(cri):
    """containerd's rules: no profile at all is unconfined; the deprecated path
    form takes runtime/default, docker/default, unconfined and localhost/PATH,
    and refuses anything else (critest's SeccompProfilePath specs)."""
    none = run_with(cri, api_pb2.LinuxContainerSecurityContext())
    assert status_field(proc_status(cri, none), "Seccomp") == "0"
    for path, mode in (("runtime/default", "2"), ("docker/default", "2"), ("unconfined", "0")):
        cid = run_with(cri, api_pb2.LinuxContainerSecurityContext(seccomp_profile_path=path))
        assert status_field(proc_status(cri, cid), "Seccomp") == mode, path
    with pytest.raises(grpc.RpcError) as e:
        run_with(cri, api_pb2.LinuxContainerSecurityContext(
            seccomp_profile_path="/etc/no-prefix.json"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_readonly_root_masked_readonly_paths_no_new_privs(cri):
    sc = api_pb2.LinuxContainerSecurityContext(
        readonly_rootfs=True, masked_paths=["/etc/hostname-masked-dir", "/proc/kcore"],
        readonly_paths=["/proc/sys"], no_new_privs=True)
    cid = run_with(cri, sc)
    assert cri.exec_sync(cid, ["touch", "/x"]).exit_code != 0
    assert cri.exec_sync(cid, ["sh", "-c", "echo 1 > /proc/sys/kernel/domainname"]).exit_code != 0
    assert cri.exec_sync(cid, ["cat", "/proc/kcore"]).stdout == b""
    assert status_field(proc_status(cri, cid), "NoNewPrivs") == "1"
    # masked paths are kubelet's list, not added to the defaults: /proc/keys stays readable
    # only if kubelet did not list it (here it did not)
    assert cri.exec_sync(cid, ["test", "-r", "/proc/keys"]).exit_code == 0


def test_apparmor_and_selinux_refused(cri):
    with pytest.raises(grpc.RpcError) as e:
        run_with(cri, api_pb2.LinuxContainerSecurityContext(
            apparmor=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost,
                                             localhost_ref="my-profile")))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        run_with(cri, api_pb2.LinuxContainerSecurityContext(
            selinux_options=api_pb2.SELinuxOption(type="spc_t")))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # the runtime's default and unconfined are fine (nothing to apply)
    cid = run_with(cri, api_pb2.LinuxContainerSecurityContext(
        apparmor=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)))
    assert cri.status(cid).state == api_pb2.CONTAINER_RUNNING


def test_sandbox_runs_as_user(cri):
    import os

    pod_id, pod = cri.run_pod(run_as_user=api_pb2.Int64Value(value=65535),
                              run_as_group=api_pb2.Int64Value(value=65535))
    info = json.loads(cri.pod_status(pod_id, verbose=True).info["info"])
    st = os.stat(f"/proc/{info['pid']}")
    assert (st.st_uid, st.st_gid) == (65535, 65535)
