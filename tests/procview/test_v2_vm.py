"""The /proc view on a real cgroup v2 host: the tests of the view's kernel side
(test_kernel_view.py: a real cgroup read through View, pybox-runtime containers
with the FUSE server's files, sysinfo answered through seccomp notify, a
SIGKILLed server re-serving) and the fake-tree unit tests, run again inside the
cgroup v2 VM of tests/v2vm (Debian's 6.1 kernel under qemu TCG, cgroup2 only,
every controller enabled, fuse.ko loaded from the initramfs).

Why not the pyboxd tests (test_procview.py) too: the VM has no network, no
docker CLI and a read-only 9p root; test_kernel_view.py covers the same v2 code
paths (cgroupview's v2 readers, the renderers on v2 values, the server, the
re-serve) without the engine, whose v2 handling tests/cgroups' bridge covers.

Fails when the inner run fails or the VM is not on cgroup v2; skips only where
qemu cannot run.  PYBOX_V2VM_TIMEOUT bounds the VM (default 1200 s); the VM
runner is tests/support/v2vm.py."""

import pytest

from support.v2vm import marks, run_pytest_in_vm

INNER_TESTS = ["tests/procview/test_kernel_view.py", "tests/unit/test_procview_cgroups.py"]

pytestmark = marks(pytest.mark.procview)


def test_procview_on_a_cgroup_v2_vm(capsys):
    # setup.sh each time (idempotent, ~1 s): it rebuilds the initramfs when its
    # module list changed -- fuse.ko is in it for this test
    result = run_pytest_in_vm(INNER_TESTS, capsys, label=" (procview)", always_set_up=True)
    assert result.is_cgroup_v2, f"the VM was not on cgroup v2: {result.facts}\n{result.console}"
    assert result.returncode == 0, (f"the /proc view tests failed on cgroup v2 (pytest exit "
                                    f"{result.returncode}):\n{result.output[-20000:]}")
    # every test ran: none skipped for want of FUSE in the VM
    assert "skipped" not in result.output.splitlines()[-1], result.output[-3000:]
