"""pyboxd's CRI on a real cgroup v2 host: a focused subset of tests/cri run again
inside the cgroup v2 VM of tests/v2vm (Debian's 6.1 kernel under qemu TCG,
cgroup2 only, every controller enabled; bridge, veth and the netfilter modules
iptables-nft needs loaded from the initramfs, so the pods are real pods on the
conftest's CNI bridge).

Why: the development and CI hosts are cgroup v1 (hybrid), so without this the
CRI's cgroup v2 paths never run: the pod cgroup under the CgroupParent kubelet
gives (cgroupfs driver), the container resources kubelet sends (memory, cpu,
cpuset, pids, hugepages, unified) as cgroup2 files, UpdateContainerResources,
OOMKilled from memory.events, ContainerStats/PodSandboxStats from cgroup2's
stat files, devices through the eBPF device program.

Kept short (tests picked, not all of tests/cri): the whole CI suite has to stay
under 30 min.  Fails when the inner run fails, skips a test or the VM is not on
cgroup v2; skips only where qemu cannot run.  PYBOX_V2VM_TIMEOUT bounds the VM
(default 1200 s); the VM runner is tests/support/v2vm.py.
"""

import os
import shlex

from support.v2vm import marks, run_pytest_in_vm

INNER_TESTS = [
    # the pod cgroup under CgroupParent: the pause's and a container's
    "tests/cri/test_pods.py::test_cgroup_parent",
    # a pod on the CNI bridge (its IP, eth0)
    "tests/cri/test_pods.py::test_pod_network_lo_and_eth0",
    # resources as kubelet sends them, updates, unified, hugepages, OOMKilled
    "tests/cri/test_containers.py::test_update_resources",
    "tests/cri/test_containers.py::test_kubelet_resources_in_cgroup_files",
    "tests/cri/test_containers.py::test_unified_resources_on_cgroup_v2",
    "tests/cri/test_containers.py::test_hugepage_limits",
    "tests/cri/test_containers.py::test_oom_killed",
    # stats from cgroup2's files, devices through the eBPF program
    "tests/cri/test_containers.py::test_stats",
    "tests/cri/test_containers.py::test_devices_and_resources",
]

pytestmark = marks()


def test_cri_cgroups_on_a_cgroup_v2_vm(capsys):
    # setup.sh each time (idempotent, ~1 s): it rebuilds the initramfs when its
    # module list changed -- bridge, veth and nf_tables are in it for this test
    result = run_pytest_in_vm(INNER_TESTS, capsys, label=" (CRI)", always_set_up=True,
                              extra_args=["-rs", *shlex.split(
                                  os.environ.get("PYBOX_V2VM_PYTEST_ARGS", ""))])
    assert result.is_cgroup_v2, f"the VM was not on cgroup v2: {result.facts}\n{result.console}"
    assert result.returncode == 0, (f"the CRI tests failed on cgroup v2 (pytest exit "
                                    f"{result.returncode}):\n{result.output[-20000:]}")
    # every test ran: none skipped (no CNI bridge, no hugetlb, "not on v2")
    assert "skipped" not in result.output.splitlines()[-1], result.output[-3000:]
