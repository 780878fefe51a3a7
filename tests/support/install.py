"""Debian packages the tests need (docker.io, podman, conmon...), installed
with apt-get when running as root and missing; otherwise a skip that says why."""

import fcntl
import os
import shutil
import subprocess

import pytest

# one lock for every directory that installs (tests/clients and tests/compat may
# run in two xdist workers at once): never two apt-get runs, nor two writers of
# the temporary policy-rc.d
APT_LOCKS = ("/tmp/pybox-clients-apt.lock", "/tmp/pybox-compat-apt.lock")


def _present(binary: str) -> bool:
    """On PATH, or (an absolute path: a CNI plugin in /usr/lib/cni) there."""
    return os.path.exists(binary) if binary.startswith("/") else bool(shutil.which(binary))


def ensure_installed(binaries: dict[str, str]) -> None:
    """{binary: Debian package}: install what is missing, or skip saying why."""
    missing = sorted({pkg for binary, pkg in binaries.items() if not _present(binary)})
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"needs {' '.join(missing)} (apt-get install as root)")
    locks = []
    try:
        for path in APT_LOCKS:
            locks.append(open(path, "a"))
            fcntl.flock(locks[-1], fcntl.LOCK_EX)
        missing = sorted({pkg for binary, pkg in binaries.items() if not _present(binary)})
        if missing:
            error = _apt_install(missing)
            if error:
                pytest.skip(f"cannot install {' '.join(missing)}: {error}")
    finally:
        for lock in reversed(locks):
            lock.close()


def _apt_install(packages: list[str]) -> str | None:
    """apt-get install without starting services: docker.io's postinst would
    otherwise start a system dockerd (and containerd) through invoke-rc.d."""
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# pybox tests: no service starts during apt-get\nexit 101\n")
        os.chmod(policy, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=600", *packages]  # wait for other apt users
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                           timeout=600)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return (proc.stderr.strip().splitlines() or ["apt-get failed"])[-1]
        return None
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    finally:
        if made_policy:
            os.unlink(policy)
