"""Images that need no network, made from what the host already has.

    python -m pybox.images.build busybox                 # pybox/busybox:latest
    python -m pybox.images.build --bin /bin/bash --bin /usr/bin/env \\
        --cmd /bin/bash pybox/bash:latest                 # host binaries + libraries
    python -m pybox.images.build --data-root /var/lib/pybox ... [--save FILE]

``busybox``: Debian's busybox-static with a symlink per applet and the minimal
/etc files (rootfs.py); a static binary needs nothing else.

``--bin``: seed 004's recipe done properly: each binary at its own path, every
shared library ``ldd`` lists for it (and the dynamic loader) at the path ldd
prints, the minimal /etc (passwd, group, hosts, nsswitch.conf...) and the
directories the runtime's default mounts use.  ``--file SRC[:DEST]`` adds more
files (a config, a script); ``--cmd`` sets the default command, a JSON array or
shell-like words (the first --bin otherwise); ``--env K=V`` adds to the environment.

The tree becomes one layer through ``Images.import_``: the image is an ordinary
image of the store (tag, save, run, remove it like any other).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence

from pybox.errors import ImageError
from pybox.images import rootfs as rootfs_builder
from pybox.images.layers import write_tree
from pybox.images.service import DEFAULT_DATA_ROOT, Images

BUSYBOX_IMAGE = "pybox/busybox:latest"
DEFAULT_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LDD_LINE = re.compile(r"(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)")


def shared_libraries(binary: str) -> list[str]:
    """Absolute paths of the libraries (and the loader) ``ldd`` lists; [] for a
    static binary."""
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if proc.returncode != 0:
        if "not a dynamic executable" in (proc.stdout + proc.stderr):
            return []
        raise ImageError(f"ldd {binary}: {proc.stderr.strip() or proc.stdout.strip()}")
    found = []
    for line in proc.stdout.splitlines():
        if "=> not found" in line:
            raise ImageError(f"{binary}: a library it needs is missing: {line.strip()}")
        match = LDD_LINE.search(line.strip())
        if match:
            found.append(match.group(1))
    return found


def _copy_into(root: str, src: str, dest: str | None = None) -> str:
    """Copy src's content (symlinks followed) to the same absolute path in root."""
    dest = dest or src
    target = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.realpath(src), target)
    return target


def host_binaries_rootfs(root: str, binaries: Iterable[str], files: Iterable[str] = ()) -> str:
    """A root filesystem of host binaries and their ldd closure, in ``root``."""
    for d in rootfs_builder.DIRS:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    for binary in binaries:
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            raise ImageError(f"{binary}: not an executable file")
        _copy_into(root, binary, os.path.abspath(binary))
        for library in shared_libraries(binary):
            _copy_into(root, library)
    for spec in files:
        src, _, dest = spec.partition(":")
        if not os.path.exists(src):
            raise ImageError(f"--file {src}: no such file")
        _copy_into(root, src, dest or os.path.abspath(src))
    for name, text in rootfs_builder.ETC_FILES.items():
        path = os.path.join(root, "etc", name)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text)
    return root


def _import_tree(images: Images, root: str, name: str, cmd: Sequence[str] | None,
                 env: Iterable[str] = ()) -> str:
    changes = [f"ENV {DEFAULT_ENV}"] + [f"ENV {e}" for e in env]
    if cmd:
        changes.append("CMD " + json.dumps(list(cmd)))
    with tempfile.TemporaryFile(dir=images.blobs.ingest) as layer:
        write_tree(root, layer)
        layer.seek(0)
        return images.import_(layer, reference=name, changes=changes,
                              message="built by pybox.images.build from host files")


def build_busybox_image(images: Images, name: str = BUSYBOX_IMAGE) -> str:
    """pybox/busybox:latest from Debian's busybox-static; returns the image Id."""
    with tempfile.TemporaryDirectory(prefix="pybox-build-") as tmp:
        root = rootfs_builder.build_busybox_rootfs(os.path.join(tmp, "rootfs"))
        return _import_tree(images, root, name, ["sh"])


def build_host_image(images: Images, name: str, binaries: Sequence[str], *,
                     files: Iterable[str] = (), cmd: Sequence[str] | None = None,
                     env: Iterable[str] = ()) -> str:
    """An image of host binaries plus their shared libraries; returns the Id."""
    if not binaries:
        raise ImageError("at least one --bin is needed")
    with tempfile.TemporaryDirectory(prefix="pybox-build-") as tmp:
        root = host_binaries_rootfs(os.path.join(tmp, "rootfs"), binaries, files)
        return _import_tree(images, root, name, cmd or [os.path.abspath(binaries[0])], env)


def _command(text: str | None) -> list[str] | None:
    if not text:
        return None
    if text.lstrip().startswith("["):
        command: list[str] = json.loads(text)
        return command
    return shlex.split(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pybox.images.build",
                                     description="Build an image from host files.")
    parser.add_argument("--data-root", default=DEFAULT_DATA_ROOT)
    parser.add_argument("--bin", action="append", default=[], dest="binaries",
                        help="a host executable to include with its libraries")
    parser.add_argument("--file", action="append", default=[], dest="files",
                        metavar="SRC[:DEST]", help="an extra file")
    parser.add_argument("--cmd", help="the default command: a JSON array or words "
                        "split as a shell would ('/bin/sh -c \"echo hi\"')")
    parser.add_argument("--env", action="append", default=[], help="K=V")
    parser.add_argument("--save", metavar="FILE",
                        help="also write the image as a docker-archive tarball")
    parser.add_argument("name", nargs="?", help="'busybox', or the image name for --bin")
    args = parser.parse_args(argv)
    try:
        images = Images.open(args.data_root)
        if args.binaries:
            if not args.name:
                parser.error("an image NAME is needed with --bin")
            name = args.name
            image_id = build_host_image(images, name, args.binaries, files=args.files,
                                        cmd=_command(args.cmd), env=args.env)
        elif args.name in (None, "busybox"):
            name = BUSYBOX_IMAGE
            image_id = build_busybox_image(images, name)
        else:
            parser.error("give 'busybox' or --bin BINARY ... NAME")
        if args.save:
            images.save([name], args.save)
    except (ImageError, FileNotFoundError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    print(f"{name} {image_id}")
    return 0


__all__ = ["build_busybox_image", "build_host_image", "host_binaries_rootfs",
           "shared_libraries", "main"]

if __name__ == "__main__":
    sys.exit(main())
