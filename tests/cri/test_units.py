"""The CRI layer's pure pieces, no daemon: the pause program, resolv.conf,
seccomp options, label selectors, record names, and the engine's
rootfsPropagation rule they rely on."""

import os
import shutil
import signal
import struct
import subprocess
import time

import pytest
from cri_api.v1 import api_pb2

from pybox.cli.pyboxd import parse_args
from pybox.cri import meta, pause
from pybox.cri.sandbox import matches, resolv_conf, security_options, user_spec
from pybox.engine.spec import rootfs_propagation
from pybox.errors import BadRequest, DaemonConfigError


def elf_header(prog):
    """(e_type, e_machine, e_entry) and the one PT_LOAD's (p_vaddr, p_filesz, p_align)."""
    assert prog[:4] == b"\x7fELF" and prog[4:6] == b"\x02\x01"  # 64-bit, little-endian
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", prog, 16)
    p_type, p_flags, _, p_vaddr, _, p_filesz, _, p_align = struct.unpack_from(
        "<IIQQQQQQ", prog, e_phoff)
    assert (p_type, p_flags) == (1, 5)  # PT_LOAD, r-x
    return (e_type, e_machine, e_entry), (p_vaddr, p_filesz, p_align)


@pytest.mark.parametrize("machine, elf_machine", [("x86_64", 0x3E), ("aarch64", 0xB7)])
def test_pause_programs_are_static_elfs(machine, elf_machine):
    prog = pause.program(machine)
    (e_type, e_machine, entry), (vaddr, filesz, align) = elf_header(prog)
    assert (e_type, e_machine) == (2, elf_machine)  # ET_EXEC
    assert filesz == len(prog) < 512 and vaddr <= entry < vaddr + filesz
    assert vaddr % align == 0 and entry % 4 == 0


def test_pause_under_qemu_aarch64(tmp_path):
    """arm64's pause, run by qemu-user (install.sh --dev installs it): its three
    sigactions, then it sleeps in ppoll until a SIGTERM ends it with status 0."""
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if not qemu:
        pytest.skip("needs Debian's qemu-user (install.sh --dev)")
    path = tmp_path / "pause"
    path.write_bytes(pause.program("aarch64"))
    os.chmod(path, 0o755)
    log = tmp_path / "strace"
    with open(log, "w") as err:
        p = subprocess.Popen([qemu, "-strace", str(path)], stderr=err)
    try:
        deadline = time.monotonic() + 30
        while "ppoll(" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        calls = log.read_text()
        for sig in ("SIGCHLD", "SIGTERM", "SIGINT"):
            assert f"rt_sigaction({sig}," in calls and "= 0" in calls, calls
        assert "ppoll(" in calls, calls
        p.terminate()
        assert p.wait(30) == 0, log.read_text()
        assert "exit_group(0)" in log.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_pause_is_a_static_elf(tmp_path):
    """This machine's own pause, run for real."""
    assert len(pause.program("x86_64")) == 288  # (the program the pods here have run)
    if pause.supported():
        path = tmp_path / "pause"
        path.write_bytes(pause.program())
        os.chmod(path, 0o755)
        p = subprocess.Popen([str(path)])
        try:
            # SIGTERM only once its handler is in place (SigCgt bit 15): sent between the
            # exec and the program's first instructions, it would kill it with the default action
            deadline = time.monotonic() + 10
            while True:
                with open(f"/proc/{p.pid}/status") as f:
                    status = f.read()
                caught = int(status.split("SigCgt:")[1].split()[0], 16)
                if caught & (1 << (signal.SIGTERM - 1)) or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            p.terminate()
            assert p.wait(10) == 0  # SIGTERM: exit 0
        finally:
            if p.poll() is None:
                p.kill()
        assert "Seccomp" in status


def test_pause_image_ref_is_content_addressed():
    assert pause.image_ref() == pause.image_ref()
    assert pause.image_ref().startswith("localhost/pybox-pause:")


def test_resolv_conf():
    dns = api_pb2.DNSConfig(servers=["10.0.0.10", "10.0.0.11"], searches=["a.b", "b"],
                            options=["ndots:5", "edns0"])
    assert resolv_conf(dns) == ("search a.b b\nnameserver 10.0.0.10\nnameserver 10.0.0.11\n"
                                "options ndots:5 edns0\n")


def test_resolv_conf_refuses_smuggled_lines():
    for bad in (api_pb2.DNSConfig(searches=["a\nnameserver 6.6.6.6"]),
                api_pb2.DNSConfig(servers=["1.1.1.1 x"]), api_pb2.DNSConfig(options=[""])):
        with pytest.raises(BadRequest):
            resolv_conf(bad)


def test_security_options_rules(tmp_path):
    SP = api_pb2.SecurityProfile
    assert security_options(None) == ["seccomp=unconfined"]
    assert security_options(SP(profile_type=SP.RuntimeDefault)) == []
    assert security_options(None, "runtime/default", no_new_privs=True) == ["no-new-privileges"]
    assert security_options(SP(profile_type=SP.Unconfined)) == ["seccomp=unconfined"]
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert security_options(None, f"localhost/{profile}") == \
        ['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']
    for bad in ("/abs/no-prefix", "something"):
        with pytest.raises(BadRequest):
            security_options(None, bad)
    with pytest.raises(BadRequest):
        security_options(SP(profile_type=SP.RuntimeDefault, localhost_ref="/x"))


def test_user_spec():
    assert user_spec(api_pb2.Int64Value(value=0), None) == "0"
    assert user_spec(api_pb2.Int64Value(value=5), api_pb2.Int64Value(value=6)) == "5:6"
    assert user_spec(None, None, "nobody") == "nobody"
    with pytest.raises(BadRequest):
        user_spec(None, api_pb2.Int64Value(value=6))


def test_label_selector():
    assert matches({"a": "1", "b": "2"}, {"a": "1"}.items())
    assert not matches({"a": "1"}, {"a": "2"}.items())
    assert matches({}, {}.items())


def test_record_names_and_labels():
    pod = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name="web", namespace="default", uid="u-1", attempt=2), labels={"app": "x"})
    c = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="nginx", attempt=1))
    assert meta.sandbox_name(pod) == "k8s_POD_web_default_u-1_2"
    assert meta.container_name(c, pod) == "k8s_nginx_web_default_u-1_1"
    labels = meta.sandbox_labels(pod)
    assert labels["app"] == "x" and labels[meta.KIND] == "sandbox"
    assert labels["io.kubernetes.pod.uid"] == "u-1"


def test_rootfs_propagation_as_dockerd():
    def bind(*opts):
        return {"type": "bind", "source": "/x", "destination": "/y", "options": list(opts)}

    assert rootfs_propagation([bind("rbind", "rprivate")]) == ""
    assert rootfs_propagation([bind("rbind", "rslave")]) == "rslave"
    assert rootfs_propagation([bind("rbind", "rslave"), bind("rbind", "rshared")]) == "shared"
    assert rootfs_propagation([{"type": "tmpfs", "options": ["rshared"]}]) == ""


def test_cri_socket_flags_and_keys(tmp_path):
    empty = tmp_path / "daemon.json"
    empty.write_text("{}")
    conf = ["--config-file", str(empty)]
    # beside the Docker API socket, in the exec root: a private pyboxd gets its own
    assert parse_args(conf).cri_socket_path == "/run/pybox/cri.sock"
    assert parse_args(conf + ["--exec-root", "/run/other"]).cri_socket_path == \
        "/run/other/cri.sock"
    assert parse_args(conf + ["--cri-socket", ""]).cri_socket_path == ""  # off
    assert parse_args(conf + ["--cri-socket", "unix:///x/c.sock"]).cri_socket_path == "/x/c.sock"
    c = parse_args(conf + ["--cni-conf-dir", "/n", "--cni-bin-dir", "/a", "--cni-bin-dir", "/b",
                           "--pod-infra-container-image", "registry.k8s.io/pause:3.9"])
    assert (c.cni_conf_dir, c.cni_bin_dirs, c.pod_infra_container_image) == \
        ("/n", ["/a", "/b"], "registry.k8s.io/pause:3.9")
    keyed = tmp_path / "keys.json"
    keyed.write_text('{"cri-socket": "", "cni-bin-dirs": ["/c"]}')
    c = parse_args(["--config-file", str(keyed)])
    assert (c.cri_socket_path, c.cni_bin_dirs) == ("", ["/c"])
    with pytest.raises(DaemonConfigError, match="specified both as a flag and in the "
                                                "configuration file: cri-socket"):
        parse_args(["--config-file", str(keyed), "--cri-socket", "/y"])


def test_cri_stream_idle_timeout_flag_and_key(tmp_path):
    """containerd's stream_idle_timeout: a Go duration, 4h by default, 0 for never."""
    empty = tmp_path / "daemon.json"
    empty.write_text("{}")
    conf = ["--config-file", str(empty)]
    assert parse_args(conf).cri_stream_idle_timeout == 4 * 3600
    assert parse_args(conf + ["--cri-stream-idle-timeout", "1m30s"]).cri_stream_idle_timeout == 90
    assert parse_args(conf + ["--cri-stream-idle-timeout", "0"]).cri_stream_idle_timeout == 0
    keyed = tmp_path / "keys.json"
    keyed.write_text('{"cri-stream-idle-timeout": "30m"}')
    assert parse_args(["--config-file", str(keyed)]).cri_stream_idle_timeout == 1800
    with pytest.raises(DaemonConfigError, match='missing unit in duration "5"'):
        parse_args(conf + ["--cri-stream-idle-timeout", "5"])
    with pytest.raises(DaemonConfigError, match="negative"):
        parse_args(conf + ["--cri-stream-idle-timeout=-1s"])
    keyed.write_text('{"cri-stream-idle-timeout": 30}')
    with pytest.raises(DaemonConfigError, match="want a string"):
        parse_args(["--config-file", str(keyed)])
