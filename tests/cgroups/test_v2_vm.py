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

The VM runner (set-up, skips, the inner pytest's command line) is
tests/support/v2vm.py, shared with tests/procview/test_v2_vm.py.
"""

from __future__ import annotations

import os
import shlex
import warnings

import pytest

from support.v2vm import PYTEST_NO_TESTS_COLLECTED, marks, run_pytest_in_vm

# pybox-runtime itself on cgroup v2: lifecycle, limits (cgroup2 files, the eBPF
# device program), what a container sees of /sys/fs/cgroup, pause/update/events, exec
RUNTIME_TESTS_ON_V2 = ["tests/runtime/test_lifecycle.py", "tests/runtime/test_resources.py",
                       "tests/runtime/test_isolation.py", "tests/runtime/test_commands.py",
                       "tests/runtime/test_exec.py", "tests/runtime/test_update_kill.py"]

pytestmark = marks()


def test_cgroup_suite_passes_on_cgroup_v2_vm(capsys: pytest.CaptureFixture[str]) -> None:
    """Boot the v2 VM and require the cgroup test subset to pass inside it."""
    result = run_pytest_in_vm(["tests/cgroups", *RUNTIME_TESTS_ON_V2], capsys,
                              extra_args=shlex.split(os.environ.get("PYBOX_V2VM_PYTEST_ARGS", "")))
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
