"""pyboxd driven by the real clients: the docker 28 CLI and docker-py.

One private pyboxd per test session (per xdist worker; tests/support/pyboxd.py,
shared with tests/network, procview, security and crash): its own socket and data
root under /tmp/pybox-engine-*, its own exec root under /run (short: the
monitors' unix sockets live there), a busybox image imported with `docker
import`.  Every event stream create is recorded, so at the end the fixture can
check, after removing every container and stopping pyboxd with SIGTERM, that
nothing is left: no monitor process, no mount under the data root, no cgroup
named after one of its containers, no container directory.

Tests name what they make with the ``names`` fixture (unique names, removed
with `docker rm -f` when the test ends, whatever happened).  Helpers:

* ``pyboxd.docker(*args)``: the docker CLI against our pyboxd (a
  CompletedProcess with text output); ``pyboxd.cli_env`` for Popen.
* ``PtyProcess``: the docker CLI on a real pseudo-terminal (its controlling
  terminal), to type into, read the screen of, and resize.
* ``dockerd`` (only where asked for): a private Debian dockerd for comparing
  output shapes, started once, stopped at the end.
"""

import fcntl
import os
import select
import shutil
import struct
import subprocess
import termios
import time

import pytest

# the shared implementations, re-exported: tests here and in tests/security and
# tests/crash import them from this module
from support import fixtures
from support.dockerd import PrivateDockerd
from support.host import (  # noqa: F401
    CGROUP_ROOT,
    cgroup_dirs,
    fd_count,
    mounts_under,
    pids_mentioning,
    thread_count,
)
from support.paths import DOCKER, IMAGE, PYTHON, SRC, busybox_tar  # noqa: F401
from support.pyboxd import Pyboxd  # noqa: F401
from support.unixhttp import TIMEOUT, UnixHTTPConnection, api  # noqa: F401
from support.wait import settle, wait_for  # noqa: F401

# the shared fixtures, made this directory's (pytest collects a conftest's names)
pyboxd = fixtures.pyboxd
names = fixtures.names
images_made = fixtures.images_made
dockerpy = fixtures.dockerpy


# -- the docker CLI on a real terminal ---------------------------------------------------------
class PtyProcess:
    """A command whose stdio and controlling terminal is a fresh pty (what a user
    at a terminal has): type(), expect(), resize() (the kernel sends SIGWINCH to
    the foreground process group, as a terminal emulator's resize does)."""

    def __init__(self, argv, env, rows=24, cols=80):
        self.master, slave = os.openpty()
        self.set_size(rows, cols, fd=slave)
        # setsid -c: a new session whose controlling terminal is stdin (the pty)
        self.proc = subprocess.Popen(["setsid", "-c", *argv], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.output = b""

    def set_size(self, rows, cols, fd=None):
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows, cols):
        self.set_size(rows, cols)

    def type(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.master, data)

    def read_available(self, timeout=0.1):
        while True:
            r, _, _ = select.select([self.master], [], [], timeout)
            if not r:
                return
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave is closed
                return
            if not chunk:
                return
            self.output += chunk
            timeout = 0

    def expect(self, needle, timeout=20.0, since=0):
        """Wait until ``needle`` appears in the output (after offset ``since``);
        -> the offset just after it."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.output.find(needle, since)
            if i >= 0:
                return i + len(needle)
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen on the terminal; got:\n"
                                     f"{self.output[-2000:]!r}")
            self.read_available(0.1)
            if self.proc.poll() is not None:
                self.read_available(0.2)
                if self.output.find(needle, since) < 0:
                    raise AssertionError(f"the command exited ({self.proc.returncode}) "
                                         f"before {needle!r}; got:\n{self.output[-2000:]!r}")

    def wait(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.read_available(0.1)
            if time.monotonic() > deadline:
                raise AssertionError(f"still running; terminal:\n{self.output[-2000:]!r}")
        self.read_available(0.2)
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def pty_docker(pyboxd):
    """pty_docker(*args, rows=, cols=) -> a PtyProcess running the docker CLI."""
    made = []

    def run(*args, rows=24, cols=80):
        p = PtyProcess([DOCKER, *args], pyboxd.cli_env, rows, cols)
        made.append(p)
        return p

    yield run
    for p in made:
        p.close()


# -- a real dockerd, for comparing shapes ---------------------------------------------------------
class ReferenceDockerd(PrivateDockerd):
    """tests/clients' private dockerd (private paths only, no bridge, no
    iptables), its CLI answering as ``pyboxd.docker`` does: text, unchecked."""

    def docker(self, *args, input=None, timeout=TIMEOUT, check=False):
        proc = super().docker(*args, input=None if input is None else input.encode(),
                              check=check, timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(errors="replace"),
                                           proc.stderr.decode(errors="replace"))


@pytest.fixture(scope="session")
def dockerd(pyboxd):
    if not shutil.which("dockerd"):
        pytest.skip("needs Debian's dockerd (docker.io) to compare with")
    d = ReferenceDockerd()
    try:
        d.start()
        proc = d.docker("import", "-c", 'CMD ["sh"]', busybox_tar(pyboxd.base), IMAGE)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
    except BaseException:
        d.stop()
        raise
    yield d
    d.stop()
