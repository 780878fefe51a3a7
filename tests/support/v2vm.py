"""Run a test subset again inside the cgroup v2 VM of tests/v2vm (Debian's
kernel under qemu TCG, cgroup2 only, every controller enabled), with the host's
Python on the host's files (read-only through 9p).  tests/cgroups and
tests/procview use it; each asserts what its own run must show.

Skips only where qemu cannot run (and inside the VM itself);
PYBOX_V2VM_TIMEOUT bounds the VM (default 1200 s); PYBOX_V2VM_NO_SETUP=1:
never run tests/v2vm/setup.sh from a test."""

import fcntl
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO

REPO_ROOT = Path(REPO)
VM_DIR = REPO_ROOT / "tests" / "v2vm"
VM_TIMEOUT = float(os.environ.get("PYBOX_V2VM_TIMEOUT", "1200"))
PYTEST_NO_TESTS_COLLECTED = 5
SETUP_LOCK = "/run/lock/pybox-v2vm-setup.lock"
_MODULE = "pybox_tests_v2vm"


def load_vm():
    """tests/v2vm/vm.py, imported by path (once)."""
    if _MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE, VM_DIR / "vm.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[_MODULE]


vm = load_vm()


def marks(*more) -> list:
    """The v2vm marker, and a pytest-timeout above the VM's own bound (the
    project-wide 300 s would cut a TCG run short)."""
    out = [pytest.mark.v2vm, *more]
    if importlib.util.find_spec("pytest_timeout"):
        out.append(pytest.mark.timeout(VM_TIMEOUT + 120))
    return out


def _set_up(always: bool) -> None:
    """Run the idempotent setup.sh: ``always`` (it rebuilds the initramfs when
    its module list changed, ~1 s otherwise), or only when the cache or qemu is
    missing (on a fresh machine, CI's included, the first bridge to run sets
    the VM up)."""
    if os.environ.get("PYBOX_V2VM_NO_SETUP") or os.geteuid() != 0:
        return
    if not always:
        try:
            vm.load_artifacts()
            if vm.find_qemu():
                return
        except vm.VMNotSetUp:
            pass
    # one setup at a time on the machine: the bridges (tests/cgroups, procview,
    # cri) run in parallel workers, and on a fresh machine two setup.sh would
    # download and unpack the same kernel into the same cache side by side
    os.makedirs(os.path.dirname(SETUP_LOCK), exist_ok=True)
    with open(SETUP_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["sh", str(VM_DIR / "setup.sh")], check=False, timeout=1200,
                       stdin=subprocess.DEVNULL, capture_output=always)


def run_pytest_in_vm(tests, capsys, label: str = "", extra_args=(), always_set_up=False):
    """Boot the VM and run ``pytest TESTS -m 'not v2vm'`` there, its output
    streamed into this run's -> the VM's result (exit status, output, facts)."""
    if os.environ.get("PYBOX_V2VM"):
        pytest.skip("already inside the v2 VM")
    _set_up(always_set_up)
    reason = vm.unavailable_reason()
    if reason:
        pytest.skip(f"qemu cannot run here: {reason}")
    vm.load_artifacts()  # a missing kernel after setup is a failure, not a skip
    argv = [sys.executable, "-m", "pytest", *tests, "-m", "not v2vm",
            "-p", "no:cacheprovider", "-q", *extra_args]
    env = {
        # The repo is the host's, read-only through 9p: nothing may be written into it.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPYCACHEPREFIX": "/tmp/pybox-v2vm-pycache",
        "PYTEST_ADDOPTS": "--basetemp=/tmp/pybox-v2vm-pytest",
    }
    with capsys.disabled():
        print(f"\n--- v2 VM{label}: {shlex.join(argv)} (in {REPO_ROOT})", flush=True)
        result = vm.run_vm(argv, timeout=VM_TIMEOUT, env=env, cwd=REPO_ROOT, stream=sys.stdout)
        print(f"--- v2 VM: kernel {result.kernel_release}, {result.facts.get('fstype')}, "
              f"controllers {' '.join(result.controllers)}; boot {result.boot_seconds:.1f}s, "
              f"run {result.run_seconds:.1f}s, exit {result.returncode}", flush=True)
    return result
