"""Where things are: the checkout, its sources, the Python that runs pybox,
the docker 28 CLI; the pybox CLI for this checkout; the busybox image tarball
every private daemon imports (pybox builds it: no registry)."""

import os
import shutil
import subprocess
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
SRC = os.path.join(REPO, "src")
PYTHON = "/opt/pybox/bin/python" if os.path.exists("/opt/pybox/bin/python") else sys.executable
# the docker 28 CLI the project targets; Debian's docker.io brings an older one to /usr/bin
DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
IMAGE = "busybox:latest"


def pybox_argv() -> list[str]:
    """The installed fast launcher when it runs this checkout, else python -m."""
    launcher = shutil.which("pybox")
    if launcher:
        with open(launcher, errors="replace") as f:
            if SRC in f.read():
                return [launcher]
    return [PYTHON, "-m", "pybox.cli.pybox"]


def busybox_tar(directory: str) -> str:
    """DIRECTORY/busybox.tar: the busybox root filesystem pybox builds, for
    `docker import` (made once per directory)."""
    tar = os.path.join(directory, "busybox.tar")
    if not os.path.exists(tar):
        bundle = os.path.join(directory, "busybox-bundle")
        subprocess.run([PYTHON, "-m", "pybox.images.rootfs", "busybox", bundle], check=True,
                       capture_output=True, env=dict(os.environ, PYTHONPATH=SRC))
        subprocess.run(["tar", "-C", os.path.join(bundle, "rootfs"), "-cf", tar, "."],
                       check=True)
    return tar
