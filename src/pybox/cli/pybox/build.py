"""``pybox build`` and ``pybox builder prune``: the docker CLI's legacy
builder client (cli/command/image/build.go), against pyboxd or dockerd.

The context is sent as the docker CLI sends it: a directory is walked in
lexical order and streamed as a tar (never built whole in memory or on disk:
a 100 MB context costs one chunk), owners 0:0, its ``.dockerignore`` applied
with docker's pattern rules (pybox.build.dockerignore) except that the
Dockerfile and .dockerignore are always sent (the daemon reads, then drops,
them); a Dockerfile from outside the context (``-f ../x``) or from stdin
(``-f -``) goes into the tar under a private name ``.dockerfile.<hex>``,
which is added to the .dockerignore sent (as docker's
AddDockerfileToBuildContext does) so the daemon takes it out of the context
again.  ``-`` reads the context from stdin: a tar (plain or
compressed) sent as is, or else a Dockerfile alone.  A URL (git or http) is
passed to the daemon as ``remote`` (the docker CLI fetches it itself).

The daemon's JSON stream is printed as the docker CLI prints it: ``stream``
text to stdout, an error to stderr with the exit status its ``code`` gives
(a failing RUN's), ``-q`` the image ID only, ``--iidfile`` the ID from the
``aux`` message.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import sys
import tarfile
import zlib
from collections.abc import Iterator

from pybox.build import dockerignore
from pybox.cli.pybox.common import confirm, parse_filters
from pybox.cli.pybox.container_opts import parse_ulimit
from pybox.cli.pybox.credentials import DockerConfig
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.units import mem_swap_bytes
from pybox.errors import ClientError, RegistryError
from pybox.formats.registryauth import host_of
from pybox.formats.sizes import human_size as go_human_size
from pybox.formats.sizes import ram_in_bytes

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import IO, Any

    from pybox.cli.pybox import Cli
    from pybox.cli.pybox.client import Response

CHUNK = 1 << 20
TAR_MAGIC_OFFSET = 257
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
URL_PREFIXES = ("http://", "https://", "git://", "git@", "github.com/")


class _Sink(io.RawIOBase):
    """What tarfile writes, collected until the generator hands it on."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _zero_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class ContextTar:
    """The tar of a context directory as chunks, counting what was sent."""

    def __init__(self, root: str, patterns: list[str],
                 extra: list[tuple[str, bytes]]) -> None:
        self.root = root
        self.matcher = dockerignore.PatternMatcher(patterns)
        self.extra = extra  # (name, content) added at the end (a Dockerfile, .dockerignore)
        self.sent = 0

    def _walk(self) -> Iterator[tuple[str, str]]:
        """(host path, name in the tar): what docker sends of the directory,
        parents first, in lexical order (pybox.build.dockerignore.walk)."""
        if not self.root:  # no directory: the extra files only
            return
        override = {name for name, _ in self.extra}
        try:
            for rel, _is_dir in dockerignore.walk(self.root, self.matcher):
                if rel not in override:
                    yield os.path.join(self.root, rel), rel
        except OSError as e:
            raise ClientError(f"error checking context: '{e.strerror}'.") from None

    def chunks(self) -> Iterator[bytes]:
        sink = _Sink()
        tar = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                           bufsize=CHUNK)
        for full, name in self._walk():
            try:
                info = tar.gettarinfo(full, arcname=name)
            except OSError as e:
                raise ClientError(f"error checking context: '{e.strerror}'.") from None
            info = _zero_owner(info)
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if sink.size >= CHUNK:
                data = sink.take()
                self.sent += len(data)
                sink.size = 0
                yield data
        for name, content in self.extra:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            tar.addfile(_zero_owner(info), io.BytesIO(content))
        tar.close()
        data = sink.take()
        self.sent += len(data)
        yield data


class StdinBody:
    """A context tar read from stdin, sent as it is read, counted."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head = head
        self.stream = stream
        self.sent = 0

    def chunks(self) -> Iterator[bytes]:
        data = self.head
        while data:
            self.sent += len(data)
            yield data
            data = self.stream.read(CHUNK)


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """--compress: the context tar gzip'd as it goes."""
    z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    for chunk in chunks:
        data = z.compress(chunk)
        if data:
            yield data
    yield z.flush()


def is_archive(head: bytes) -> bool:
    """docker's DetectArchiveReader: compressed, or a tar header."""
    if head.startswith(COMPRESSED_MAGIC):
        return True
    return head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar"


def _read_dockerignore(root: str) -> tuple[list[str], bytes | None]:
    try:
        with open(os.path.join(root, ".dockerignore"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], None
    except OSError as e:
        raise ClientError(f"error checking context: '{e.strerror}'.") from None
    return dockerignore.parse(data), data


def _private_name() -> str:
    return ".dockerfile." + secrets.token_hex(10)


def _registry_config() -> str:
    """X-Registry-Config: every login of the client's config, base64url JSON
    ({registry: AuthConfig}), as the docker CLI sends (``e30=`` for none)."""
    config = DockerConfig()
    try:
        data = config.load()
    except RegistryError:
        return "e30="
    out: dict[str, dict[str, str]] = {}
    for key in sorted(set(data.get("auths") or {}) | set(data.get("credHelpers") or {})):
        try:
            creds = config.get(host_of(key))
        except RegistryError:
            continue
        doc = {"serveraddress": key}
        if creds.username:
            doc["username"] = creds.username
        if creds.password:
            doc["password"] = creds.password
        if creds.identity_token:
            doc["identitytoken"] = creds.identity_token
        if len(doc) > 1:
            out[key] = doc
    raw = json.dumps(out, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _build_args(items: list[str]) -> dict[str, str | None]:
    """--build-arg K=V, or K: the value from the environment, else null."""
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        out[key] = value if eq else os.environ.get(key)
    return out


def _labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _add_flags(fs: FlagSet) -> None:
    fs.add("tag", "t", "list", help="Name and optionally a tag in the 'name:tag' format")
    fs.add("file", "f", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    fs.add("build-arg", kind="list", help="Set build-time variables")
    fs.add("target", help="Set the target build stage to build.")
    fs.add("no-cache", kind="bool", help="Do not use cache when building the image")
    fs.add("pull", kind="bool", help="Always attempt to pull a newer version of the image")
    fs.add("rm", kind="bool", default=True,
           help="Remove intermediate containers after a successful build")
    fs.add("force-rm", kind="bool", help="Always remove intermediate containers")
    fs.add("label", kind="list", help="Set metadata for an image")
    fs.add("cache-from", kind="list", help="Images to consider as cache sources")
    fs.add("network", default="default",
           help="Set the networking mode for the RUN instructions during build")
    fs.add("add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)")
    fs.add("shm-size", help="Size of /dev/shm", convert=ram_in_bytes)
    fs.add("memory", "m", help="Memory limit", convert=ram_in_bytes)
    fs.add("memory-swap", help="Swap limit equal to memory plus swap: -1 to enable "
           "unlimited swap", convert=mem_swap_bytes)
    fs.add("cpu-shares", "c", "int", help="CPU shares (relative weight)")
    fs.add("cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    fs.add("cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    fs.add("cpu-period", kind="int", help="Limit the CPU CFS (Completely Fair Scheduler) period")
    fs.add("cpu-quota", kind="int", help="Limit the CPU CFS (Completely Fair Scheduler) quota")
    fs.add("cgroup-parent", help="Set the parent cgroup for the RUN instructions during build")
    fs.add("ulimit", kind="list", help="Ulimit options", convert=parse_ulimit)
    fs.add("platform", default=os.environ.get("DOCKER_DEFAULT_PLATFORM", ""),
           help="Set platform if server is multi-platform capable")
    fs.add("quiet", "q", "bool", help="Suppress the build output and print image ID on success")
    fs.add("squash", kind="bool", help="Squash newly built layers into a single new layer")
    fs.add("iidfile", help="Write the image ID to the file")
    fs.add("isolation", help="Container isolation technology")
    fs.add("security-opt", kind="list", help="Security options")
    fs.add("compress", kind="bool", help="Compress the build context using gzip")
    fs.add("disable-content-trust", kind="bool", default=True, help="Skip image verification")


def _query(opts: Any, dockerfile: str, remote: str) -> dict[str, Any]:
    q: dict[str, Any] = {"t": list(opts.tag), "dockerfile": dockerfile, "version": "1"}
    if remote:
        q["remote"] = remote
    if opts.build_arg:
        q["buildargs"] = json.dumps(_build_args(opts.build_arg), separators=(",", ":"))
    if opts.label:
        q["labels"] = json.dumps(_labels(opts.label), separators=(",", ":"))
    if opts.cache_from:
        q["cachefrom"] = json.dumps(list(opts.cache_from), separators=(",", ":"))
    if opts.ulimit:
        q["ulimits"] = json.dumps(list(opts.ulimit), separators=(",", ":"))
    for flag, key in (("no_cache", "nocache"), ("pull", "pull"), ("force_rm", "forcerm"),
                      ("quiet", "q"), ("squash", "squash")):
        if getattr(opts, flag):
            q[key] = "1"
    if not opts.rm:
        q["rm"] = "0"
    for flag, key in (("target", "target"), ("cpuset_cpus", "cpusetcpus"),
                      ("cpuset_mems", "cpusetmems"), ("cgroup_parent", "cgroupparent"),
                      ("platform", "platform"), ("isolation", "isolation")):
        if getattr(opts, flag):
            q[key] = getattr(opts, flag)
    if opts.network and opts.network != "default":
        q["networkmode"] = opts.network
    if opts.add_host:
        q["extrahosts"] = list(opts.add_host)
    if opts.security_opt:
        q["securityopt"] = list(opts.security_opt)
    for flag, key in (("shm_size", "shmsize"), ("memory", "memory"), ("memory_swap", "memswap"),
                      ("cpu_shares", "cpushares"), ("cpu_period", "cpuperiod"),
                      ("cpu_quota", "cpuquota")):
        value = getattr(opts, flag)
        if value:
            q[key] = str(value)
    return q


def _dockerfile_path(context: str, given: str) -> tuple[str, str | None]:
    """docker's getDockerfileRelPath: -> (the path inside the context, or the
    host path of one outside it to send under a private name)."""
    if given:
        path = given if os.path.isabs(given) else os.path.abspath(given)
    else:
        path = os.path.join(context, "Dockerfile")
        if not os.path.lexists(path) and os.path.lexists(os.path.join(context, "dockerfile")):
            path = os.path.join(context, "dockerfile")
    real = os.path.realpath(path)
    if not os.path.lexists(real):
        raise ClientError(f'unable to prepare context: Cannot locate Dockerfile: "{real}"')
    rel = os.path.relpath(real, os.path.realpath(context))
    if rel == ".." or rel.startswith("../"):
        return "", real
    return rel, None


def cmd_build(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] PATH | URL | -",
                 "Build an image from a Dockerfile", exact_args=1)
    _add_flags(fs)
    opts = fs.parse(argv)
    source = opts.args[0]
    given = opts.file
    if source == "-" and given == "-":
        raise ClientError("invalid argument: can't use stdin for both build context and "
                          "dockerfile")
    remote = ""
    body: ContextTar | StdinBody | None = None
    dockerfile = given or "Dockerfile"
    if source == "-":
        head = sys.stdin.buffer.read(1024)
        if is_archive(head):
            body = StdinBody(head, sys.stdin.buffer)
        else:  # a Dockerfile alone: the context is that file only
            content = head + sys.stdin.buffer.read()
            body = ContextTar("", [], [("Dockerfile", content)])
            dockerfile = "Dockerfile"
    elif source.startswith(URL_PREFIXES):
        remote = source
    else:
        if not os.path.isdir(source):
            raise ClientError(f'unable to prepare context: path "{source}" not found')
        patterns, raw = _read_dockerignore(source)
        extra: list[tuple[str, bytes]] = []
        if given == "-":
            content = sys.stdin.buffer.read()
            dockerfile = _private_name()
            extra.append((dockerfile, content))
        else:
            rel, outside = _dockerfile_path(source, given)
            if outside is not None:
                with open(outside, "rb") as f:
                    content = f.read()
                dockerfile = _private_name()
                extra.append((dockerfile, content))
            else:
                dockerfile = rel
        if extra:
            # the private Dockerfile is named in the .dockerignore sent, so the
            # daemon drops it from the context after reading it (docker's
            # AddDockerfileToBuildContext)
            extra.append((".dockerignore", (raw or b"") + f"\n{dockerfile}\n".encode()))
        # the Dockerfile and .dockerignore always go (TrimBuildFilesFromExcludes)
        patterns = dockerignore.trim_build_files(patterns, dockerfile, bool(extra))
        body = ContextTar(source, patterns, extra)
    query = _query(opts, dockerfile, remote)
    headers = {"Content-Type": "application/x-tar", "X-Registry-Config": _registry_config()}
    chunks: Iterator[bytes] | bytes = b""
    if body is not None:
        chunks = body.chunks()
        if opts.compress and isinstance(body, ContextTar):
            chunks = _gzipped(chunks)
    resp = cli.client.request("POST", "/build", query=query, headers=headers, body=chunks)
    if body is not None and not opts.quiet:
        cli.out(f"Sending build context to Docker daemon  {go_human_size(body.sent)}\n")
    return print_build_stream(cli, resp, quiet=opts.quiet, iidfile=opts.iidfile)


def print_build_stream(cli: Cli, resp: Response, *, quiet: bool, iidfile: str) -> int:
    """The daemon's messages as the docker CLI prints them; -> the exit status."""
    if iidfile:
        try:
            os.unlink(iidfile)
        except FileNotFoundError:
            pass
    image_id = ""
    printed: list[str] = []
    for message in resp.iter_json():
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            text = detail.get("message") or message.get("error") or ""
            if quiet and printed:
                cli.err("".join(printed))
            code = detail.get("code") or 1
            raise ClientError(text, exit_status=code if isinstance(code, int) else 1)
        if "aux" in message:
            aux = message["aux"]
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            continue
        text = message.get("stream")
        if text is None and "status" in message:
            text = str(message["status"]) + "\n"
        if text is None:
            continue
        if quiet:
            printed.append(text)
            continue
        cli.out(text)
    if quiet:  # (the docker CLI's iidfile then gets what it printed, newline and all)
        image_id = "".join(printed)
        cli.out(image_id)
    if iidfile and image_id:
        try:
            with open(iidfile, "w") as f:
                f.write(image_id)
        except OSError as e:
            raise ClientError(f"Error writing iidfile {iidfile}: {e.strerror}") from None
    return 0


def cmd_builder_prune(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Remove build cache", max_args=0)
    fs.add("all", "a", "bool", help="Remove all unused build cache, not just dangling ones")
    fs.add("filter", kind="list", help="Provide filter values (e.g. \"until=24h\")")
    fs.add("force", "f", "bool", help="Do not prompt for confirmation")
    fs.add("keep-storage", help="Amount of disk space to keep for cache", convert=ram_in_bytes)
    opts = fs.parse(argv)
    warning = ("WARNING! This will remove all build cache." if opts.all
               else "WARNING! This will remove all dangling build cache.")
    if not opts.force:
        if not confirm(cli, f"{warning} Are you sure you want to continue?"):
            return 0
    query: dict[str, Any] = {"filters": parse_filters(list(opts.filter))}
    if opts.all:
        query["all"] = "1"
    if opts.keep_storage:
        query["keep-storage"] = str(opts.keep_storage)
    report = cli.client.request("POST", "/build/prune", query=query).json() or {}
    deleted = report.get("CachesDeleted") or []
    if deleted:
        cli.out("Deleted build cache objects:\n" + "".join(f"{i}\n" for i in deleted) + "\n")
    cli.out(f"Total reclaimed space: {go_human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
