"""``pybox cp`` (issue 7) on docker's archive endpoints.

container -> host: ``GET /containers/{c}/archive?path=SRC`` gives a tar (and the
``X-Docker-Container-Path-Stat`` header); it is extracted at the destination,
the top member renamed when the destination names a new file or directory.
``-`` as the destination writes the tar to stdout.

host -> container: ``HEAD`` on the destination (404 = it does not exist, so the
source is copied as that new name: the tar's top member carries the new base
name and goes into the parent), then ``PUT`` a tar (chunked) with
``noOverwriteDirNonDir=true``.  ``-`` as the source sends stdin's tar as is.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import tarfile

from pybox.cli.pybox.common import container_path
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.session import write_all
from pybox.errors import ClientError, DaemonError
from pybox.formats import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.pybox import Cli
    from pybox.cli.pybox.client import Response


def _split(arg: str) -> tuple[str | None, str]:
    """``container:path`` -> (container, path); a local path -> (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def _stat(resp: Response) -> dict[str, Any] | None:

    header = resp.headers.get("x-docker-container-path-stat")
    if not header:
        return None
    try:
        return fastjson.loads(base64.b64decode(header))
    except ValueError:
        return None


def run(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\t"
                          f"{command} [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                 "Copy files/folders between a container and the local filesystem",
                 exact_args=2)
    fs.add("archive", "a", "bool", help="Archive mode (copy all uid/gid information)")
    fs.add("follow-link", "L", "bool", help="Always follow symbol link in SRC_PATH")
    fs.add("quiet", "q", "bool", help="Suppress progress output during copy")
    opts = fs.parse(argv)
    src_ctr, src = _split(opts.args[0])
    dst_ctr, dst = _split(opts.args[1])
    if src_ctr and dst_ctr:
        raise ClientError("copying between containers is not supported")
    if not src_ctr and not dst_ctr:
        raise ClientError("must specify at least one container source")
    if src_ctr:
        return _from_container(cli, src_ctr, src, dst)
    assert dst_ctr is not None
    return _to_container(cli, src, dst_ctr, dst)


def _from_container(cli: Cli, container: str, src: str, dst: str) -> int:
    resp = cli.client.request("GET", container_path(container, "/archive"),
                              query={"path": src})
    if dst == "-":
        cli.flush()
        for data in resp.iter_body():
            write_all(1, data)
        return 0
    data = resp.read()
    stat = _stat(resp) or {}
    src_base = stat.get("name") or os.path.basename(src.rstrip("/"))
    if os.path.isdir(dst) and not src.endswith("/."):
        target_dir, rename = dst, None
    else:
        parent = os.path.dirname(os.path.abspath(dst))
        if not os.path.isdir(parent):
            raise ClientError(f"destination directory \"{parent}\" must exist")
        target_dir, rename = parent, os.path.basename(dst.rstrip("/"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        for member in members:
            if rename is not None:
                head, sep, tail = member.name.partition("/")
                if head == src_base:
                    member.name = rename + (sep + tail if sep else "")
        if hasattr(tarfile, "tar_filter"):     # Python >= 3.11.4: no absolute paths,
            tar.extractall(target_dir, members=members, filter="tar")   # no escapes
        else:
            for member in members:
                if member.name.startswith("/") or ".." in member.name.split("/"):
                    raise ClientError(f"refusing to extract {member.name!r}: outside "
                                      f"{target_dir}")
            tar.extractall(target_dir, members=members)
    return 0


def _to_container(cli: Cli, src: str, container: str, dst: str) -> int:
    client = cli.client
    if src == "-":
        client.request("PUT", container_path(container, "/archive"),
                       query={"path": dst, "noOverwriteDirNonDir": "true"},
                       body=sys.stdin.buffer, headers={"Content-Type": "text/plain"}).read()
        return 0
    if not os.path.lexists(src):
        raise ClientError(f"lstat {os.path.abspath(src)}: no such file or directory")
    try:
        resp = client.request("HEAD", container_path(container, "/archive"),
                              query={"path": dst})
        resp.read()
        stat = _stat(resp) or {}
        is_dir = bool(stat.get("mode", 0) & (1 << 31))
        exists = True
    except DaemonError as err:
        if err.status != 404:
            raise
        exists = is_dir = False
    if exists and is_dir:
        target, arcname = dst, os.path.basename(os.path.abspath(src))
    else:
        parent = os.path.dirname(dst.rstrip("/")) or "/"
        target, arcname = parent, os.path.basename(dst.rstrip("/"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        tar.add(src, arcname=arcname)
    client.request("PUT", container_path(container, "/archive"),
                   query={"path": target, "noOverwriteDirNonDir": "true"},
                   body=iter([buf.getvalue()]), headers={"Content-Type": "text/plain"}).read()
    return 0
