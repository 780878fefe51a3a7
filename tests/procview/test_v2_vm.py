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
qemu cannot run.  PYBOX_V2VM_TIMEOUT bounds the VM (default 1200 s)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VM_DIR = REPO_ROOT / "tests" / "v2vm"
VM_TIMEOUT = float(os.environ.get("PYBOX_V2VM_TIMEOUT", "1200"))
INNER_TESTS = ["tests/procview/test_kernel_view.py", "tests/unit/test_procview_cgroups.py"]


def _load_vm_module():
    spec = importlib.util.spec_from_file_location("pybox_tests_v2vm_procview", VM_DIR / "vm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


vm = _load_vm_module()
marks = [pytest.mark.v2vm, pytest.mark.procview]
if importlib.util.find_spec("pytest_timeout"):
    marks.append(pytest.mark.timeout(VM_TIMEOUT + 120))
pytestmark = marks


def test_procview_on_a_cgroup_v2_vm(capsys):
    if os.environ.get("PYBOX_V2VM"):
        pytest.skip("already inside the v2 VM")
    if os.geteuid() == 0 and not os.environ.get("PYBOX_V2VM_NO_SETUP"):
        # idempotent (~1 s): (re)builds the initramfs when its module list
        # changed -- fuse.ko is in it for this test
        subprocess.run(["sh", str(VM_DIR / "setup.sh")], check=False, timeout=1200,
                       stdin=subprocess.DEVNULL, capture_output=True)
    reason = vm.unavailable_reason()
    if reason:
        pytest.skip(f"qemu cannot run here: {reason}")
    vm.load_artifacts()
    argv = [sys.executable, "-m", "pytest", *INNER_TESTS, "-m", "not v2vm",
            "-p", "no:cacheprovider", "-q"]
    env = {"PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPYCACHEPREFIX": "/tmp/pybox-v2vm-pycache",
           "PYTEST_ADDOPTS": "--basetemp=/tmp/pybox-v2vm-pytest"}
    with capsys.disabled():
        print(f"\n--- v2 VM (procview): {' '.join(argv)}", flush=True)
        result = vm.run_vm(argv, timeout=VM_TIMEOUT, env=env, cwd=REPO_ROOT, stream=sys.stdout)
        print(f"--- v2 VM: kernel {result.kernel_release}, {result.facts.get('fstype')}, boot "
              f"{result.boot_seconds:.1f}s, run {result.run_seconds:.1f}s, exit "
              f"{result.returncode}", flush=True)
    assert result.is_cgroup_v2, f"the VM was not on cgroup v2: {result.facts}\n{result.console}"
    assert result.returncode == 0, (f"the /proc view tests failed on cgroup v2 (pytest exit "
                                    f"{result.returncode}):\n{result.output[-20000:]}")
    # every test ran: none skipped for want of FUSE in the VM
    assert "skipped" not in result.output.splitlines()[-1], result.output[-3000:]
