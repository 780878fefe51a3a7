"""Fixtures for real containers: a busybox root filesystem built once per run from
Debian's busybox-static, a fresh bundle per test, and a runtime wrapper with its
own --root so tests never see (or touch) anyone else's containers."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from pybox.images.rootfs import build_busybox_rootfs
from pybox.oci.defaults import default_spec

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")


def runtime_command():
    """The installed fast launcher when it runs this checkout, else python -m."""
    launcher = shutil.which("pybox-runtime")
    if launcher:
        with open(launcher) as f:
            if SRC in f.read():
                return [launcher]
    return [sys.executable, "-m", "pybox.cli.runtime"]


class Runtime:
    """pybox-runtime with a private --root; remembers ids to force-delete."""

    def __init__(self, root):
        self.root = root
        self.cmd = runtime_command()
        self.ids = []

    def __call__(self, *args, check=True, timeout=60, **kw):
        """Run the runtime; output is captured through files, not pipes: a
        detached container inherits the runtime's stdio, and a pipe would stay
        open (and the call hang) for as long as the container lives."""
        kw.setdefault("text", True)
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(self.cmd + ["--root", self.root] + list(args),
                                  timeout=timeout, stdout=out, stderr=err, **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read(), err.read()
        if check and proc.returncode != 0:
            raise AssertionError(f"pybox-runtime {' '.join(args)} failed "
                                 f"({proc.returncode}): {proc.stderr}")
        return proc

    def new_id(self):
        cid = f"pybox-test-{uuid.uuid4().hex[:12]}"
        self.ids.append(cid)
        return cid

    def state(self, cid):
        return json.loads(self("state", cid).stdout)

    def cleanup(self):
        for cid in self.ids:
            self("delete", "--force", cid, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    return build_busybox_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs"))


class Bundle:
    def __init__(self, path, rootfs_src):
        self.path = path
        self.rootfs = os.path.join(path, "rootfs")
        # hard links: cheap, and each test may create mount points freely
        shutil.copytree(rootfs_src, self.rootfs, symlinks=True, copy_function=os.link)
        self.config = default_spec()
        self.config["process"]["terminal"] = False
        self.config["root"]["readonly"] = False

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def set_args(self, *args):
        self.process["args"] = list(args)
        return self

    def sh(self, script):
        return self.set_args("/bin/sh", "-c", script)

    def write(self):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f, indent=2)
        return self.path


@pytest.fixture
def bundle(tmp_path, busybox_rootfs):
    return Bundle(str(tmp_path / "bundle"), busybox_rootfs)


@pytest.fixture
def rt(tmp_path):
    r = Runtime(str(tmp_path / "state"))
    yield r
    r.cleanup()


def host_mounts_mentioning(path):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if path in line]
