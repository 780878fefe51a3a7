"""Run the cgroup test subset again inside a real cgroup v2 VM (tests/v2vm).

Why: the hosts pybox is developed and tested on are cgroup v1 (hybrid), but most
users run pure cgroup v2.  This bridge boots Debian's kernel under qemu TCG with
cgroup2 at /sys/fs/cgroup and every controller enabled, and runs
``pytest tests/cgroups`` plus the runtime's container tests there as root with the host's own Python on
the host's files (read-only through 9p), so every cgroup test also runs on v2.

It fails when the inner run fails, when the VM cannot boot, and when the VM turns
out not to be on cgroup v2 with the memory controller.  It skips only where qemu
cannot run at all.  Knobs (environment):

- PYBOX_V2VM_PYTEST_ARGS: extra inner pytest arguments, e.g. ``-k memory -x``.
- PYBOX_V2VM_TIMEOUT: seconds for the whole VM run (default 1200).
- PYBOX_V2VM_NO_SETUP=1: never run tests/v2vm/setup.sh from here.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VM_DIR = REPO_ROOT / "tests" / "v2vm"
VM_TIMEOUT = float(os.environ.get("PYBOX_V2VM_TIMEOUT", "1200"))
PYTEST_NO_TESTS_COLLECTED = 5
# pybox-runtime itself on cgroup v2: lifecycle, limits (cgroup2 files, the eBPF
# device program), what a container sees of /sys/fs/cgroup, pause/update/events, exec
RUNTIME_TESTS_ON_V2 = ["tests/runtime/test_lifecycle.py", "tests/runtime/test_resources.py",
                       "tests/runtime/test_isolation.py", "tests/runtime/test_commands.py",
                       "tests/runtime/test_exec.py", "tests/runtime/test_update_kill.py"]


def _load_vm_module():
    """Import tests/v2vm/vm.py by path: tests/ is not a package."""
    spec = importlib.util.spec_from_file_location("pybox_tests_v2vm", VM_DIR / "vm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


vm = _load_vm_module()

marks = [pytest.mark.v2vm]
if importlib.util.find_spec("pytest_timeout"):
    # The project-wide 300 s would cut a TCG run of the whole subset short.
    marks.append(pytest.mark.timeout(VM_TIMEOUT + 120))
pytestmark = marks


def _set_up_if_needed() -> None:
    """Run the idempotent setup.sh when the cache or qemu is missing and we may.

    CI calls setup.sh itself; this is for a developer's first `pytest -m v2vm`.
    """
    try:
        vm.load_artifacts()
        if vm.find_qemu():
            return
    except vm.VMNotSetUp:
        pass
    if os.environ.get("PYBOX_V2VM_NO_SETUP") or os.geteuid() != 0:
        return
    subprocess.run(["sh", str(VM_DIR / "setup.sh")], check=False, timeout=1200,
                   stdin=subprocess.DEVNULL)


def test_cgroup_suite_passes_on_cgroup_v2_vm(capsys: pytest.CaptureFixture[str]) -> None:
    """Boot the v2 VM and require the cgroup test subset to pass inside it."""
    if os.environ.get("PYBOX_V2VM"):
        pytest.skip("already inside the v2 VM")
    _set_up_if_needed()
    reason = vm.unavailable_reason()
    if reason:
        pytest.skip(f"qemu cannot run here: {reason}")
    vm.load_artifacts()  # a missing kernel after setup is a failure, not a skip

    argv = [sys.executable, "-m", "pytest", "tests/cgroups", *RUNTIME_TESTS_ON_V2,
            "-m", "not v2vm",
            "-p", "no:cacheprovider", "-q",
            *shlex.split(os.environ.get("PYBOX_V2VM_PYTEST_ARGS", ""))]
    env = {
        # The repo is the host's, read-only through 9p: nothing may be written into it.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPYCACHEPREFIX": "/tmp/pybox-v2vm-pycache",
        "PYTEST_ADDOPTS": "--basetemp=/tmp/pybox-v2vm-pytest",
    }
    with capsys.disabled():
        # Stream the inner run live into the outer one's output.
        print(f"\n--- v2 VM: {shlex.join(argv)} (in {REPO_ROOT})", flush=True)
        result = vm.run_vm(argv, timeout=VM_TIMEOUT, env=env, cwd=REPO_ROOT, stream=sys.stdout)
        print(f"--- v2 VM: kernel {result.kernel_release}, {result.facts.get('fstype')}, controllers "
              f"{' '.join(result.controllers)}; boot {result.boot_seconds:.1f}s, run "
              f"{result.run_seconds:.1f}s, exit {result.returncode}", flush=True)

    on_v2 = result.is_cgroup_v2
    assert on_v2, f"the VM was not on cgroup v2 with the memory controller: {result.facts}\n{result.console}"
    status = result.returncode
    if status == PYTEST_NO_TESTS_COLLECTED:
        warnings.warn("the v2 VM run collected no cgroup tests (pytest exit 5): nothing but the VM "
                      "itself was checked", stacklevel=1)
        return
    assert status == 0, (
        f"the cgroup tests failed on cgroup v2 (pytest exit {status}):\n"
        f"{result.output[-20000:]}")
