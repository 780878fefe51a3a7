"""tests/crash: pyboxd, its monitors and pybox-runtime killed (SIGKILL) at every
crash point of pybox.crashpoints, then pyboxd started again.

One private pyboxd per test session (per xdist worker), tests/support's
(imported, not copied): its own data and exec roots, a busybox image.
Each case restarts it with PYBOX_CRASH_AT naming one point (and
PYBOX_CRASH_REPORT, where the dying process says it got there), runs the
operation that reaches the point, restarts it without the variable, and checks
(see ``check_truth``, ``follow_up`` and ``leaks`` in test_crashpoints.py):
pyboxd starts once and serves; ``docker ps -a`` and inspect tell what /proc,
the runtime and the kernel say; stop, start and rm of every container work;
nothing is left behind.  The daemon is the same for every case of a worker:
the image store and the daemon's start-up are shared, each case cleans up.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from support.fixtures import needs_root_and_docker_cli
from support.host import cgroup_dirs, mounts_under, pids_mentioning
from support.paths import DOCKER, IMAGE
from support.pyboxd import Pyboxd
from support.unixhttp import api
from support.wait import settle

CRASH_ENV = "PYBOX_CRASH_AT"
REPORT_ENV = "PYBOX_CRASH_REPORT"


class CrashPyboxd(Pyboxd):
    """A private pyboxd that can be restarted with a crash point armed."""

    def __init__(self) -> None:
        super().__init__()
        self.report = os.path.join(self.base, "crash-report")
        self.registry = None

    def registry_host(self) -> str:
        """host:port of a private docker-registry (started on first use)."""
        if self.registry is None:
            if shutil.which("docker-registry") is None:
                pytest.skip("needs Debian's docker-registry for the pull's points")
            from registry.conftest import RegistryServer  # a conftest: loaded on first use only

            self.registry = RegistryServer(self.base).start()
        return self.registry.host

    def reached(self, point: str) -> list[int]:
        """Pids of the processes that died at ``point`` (from the report)."""
        try:
            with open(self.report) as f:
                return [int(pid) for name, pid in (line.split() for line in f if line.strip())
                        if name == point]
        except (OSError, ValueError):
            return []

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop_graceful(self) -> None:
        """SIGTERM (containers keep running), wait."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            code = self.process.wait(timeout=30)
            assert code == 0, f"pyboxd exited with {code} on SIGTERM:\n{self.log_tail()}"

    def kill9(self) -> None:
        if self.alive():
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=30)

    def start_armed(self, point: str) -> bool:
        """Start with ``point`` armed -> True if it serves (False: it died at
        the point while starting, i.e. in its recovery)."""
        try:
            os.unlink(self.report)
        except FileNotFoundError:
            pass
        os.environ[CRASH_ENV] = point
        os.environ[REPORT_ENV] = self.report
        try:
            self.start()
            return True
        except RuntimeError:
            if self.reached(point):
                return False
            raise
        finally:
            del os.environ[CRASH_ENV]
            del os.environ[REPORT_ENV]

    def wait_reached(self, point: str, timeout: float = 30.0) -> bool:
        return bool(settle(lambda: self.reached(point), timeout=timeout))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A docker command whose failure is expected now and then (the daemon
        may die under it): no assertion, no hang."""
        try:
            return subprocess.run([DOCKER, *args], env=self.cli_env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, -1, "", f"timed out after {timeout} s")


@pytest.fixture(scope="session")
def crashd():
    needs_root_and_docker_cli()
    d = CrashPyboxd()
    try:
        d.start()
        d.import_busybox()
        d.ok("save", "-o", os.path.join(d.base, "busybox-saved.tar"), IMAGE)
    except BaseException:
        d.stop()
        raise
    yield d
    if d.registry is not None:
        d.registry.stop()
    if not d.alive():
        d.start()
    problems = d.stop()
    assert not problems, "\n".join(problems)


def pytest_report_header(config):
    return "tests/crash: one private pyboxd per worker, killed at each crash point"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] in ("Z", "X")
        except OSError:
            return True
    return bool(settle(gone, timeout=timeout))


__all__ = ["CrashPyboxd", "crashd", "api", "cgroup_dirs", "mounts_under", "pids_mentioning",
           "settle", "wait_gone", "time", "IMAGE"]
