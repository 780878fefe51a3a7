"""POST /build, /build/prune and /build/cancel as dockerd 20.10 serves them
(api/server/router/build, api/server/backend/build) with its classic builder.

The query is decoded as dockerd's newImageBuildOptions (its words and its
statuses: a build argument, label or ulimit that is not JSON is a 400, a bad
``shmsize``, ``version`` or tag a 500), X-Registry-Config is base64 (URL
alphabet) JSON of auth configs, one that does not decode ignored as dockerd
ignores it.  The context (pybox.build.context) is read whole from the body
before anything is answered; then the builder (pybox.build.builder) runs and
its output is the JSON message stream: ``{"stream": ...}``, ``{"aux": {"ID":
...}}`` (API >= 1.30), "Successfully built ID" and "Successfully tagged NAME"
(the builder's), and on an error ``{"errorDetail": {"code": N, "message":
...}, "error": ...}`` (the code a failing RUN's exit code, which the docker
CLI exits with).  As dockerd, an error before the first message is an HTTP
error reply instead (the 200 goes out with the first message), and with
``q`` the messages are held back: only the image ID is sent, or, on an
error, what was held and the error.

A client that goes away mid-build (docker build's Ctrl-C closes the
connection) cancels it: a watcher notices the hang-up (as Go's server cancels
a request's context on EOF) and sets the builder's cancel Event, which stops
the running step and removes its container; the context directory goes in
any case.

``version=2`` asks for BuildKit, which dockerd 20.10 always has (its
``features.buildkit`` only changes what _ping advertises) and pyboxd has not:
after the query's other checks, as dockerd parses ``version`` last, it is
refused in words that say what to do.  BuildKit clients (docker CLIs before
23 with DOCKER_BUILDKIT=1) first open a client session on ``POST /session``:
it is upgraded as dockerd's session manager does and held, so the client
goes on to the build and shows its refusal; the refusal ends the session the
build names, which the client waits on.
"""

from __future__ import annotations

import base64
import binascii
import socket
import threading
from collections.abc import Callable
from typing import Any

from pybox.api import schema
from pybox.api.server import ClientGone, Request, Response, Router, parse_bool
from pybox.build import cache as build_cache
from pybox.build import context as build_context
from pybox.build.builder import BuildOptions, build
from pybox.engine.engine import Engine
from pybox.errors import BadRequest, BuildError, PyboxError
from pybox.formats import fastjson
from pybox.images import reference

WATCH_INTERVAL = 0.2  # seconds between two looks for a client gone mid-build
SESSION_IDLE = 300.0  # seconds a BuildKit session may stay silent before pyboxd closes it
# what dockerd's session manager sends first on an upgraded /session: the HTTP/2
# client preface and an empty SETTINGS frame (it is the session's gRPC client)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SESSION_WAIT = 5.0  # seconds a version=2 build waits for the session it names to connect
_sessions: dict[str, socket.socket] = {}  # the upgraded /session connections, by their UUID
_sessions_changed = threading.Condition()


# -- the query ----------------------------------------------------------------------------------
def _arg(req: Request, name: str) -> str:
    """A query value as Go's FormValue gives it: the FIRST one (docker-py sends
    ``dockerfile`` twice for a Dockerfile from outside the context: its
    private name, then its text)."""
    values = req.args(name)
    return values[0] if values else ""


def _flag(req: Request, name: str) -> bool:
    return parse_bool(_arg(req, name))


def _json_arg(req: Request, name: str, what: str, check: Callable[[Any], bool],
              go_type: str) -> Any:
    """A JSON query value (dockerd's json.Unmarshal of it): 400 "error reading
    WHAT: ..." with Go's words when it is no JSON or not of the type."""
    raw = _arg(req, name)
    if not raw:
        return None
    try:
        value = schema.loads(raw)
    except schema.Empty:
        value = None
    except BadRequest as e:
        detail = str(e).removeprefix("invalid JSON: ")
        raise BadRequest(f"{what}: {detail}" if what else detail) from None
    if value is not None and not check(value):
        kind = {dict: "object", list: "array", str: "string", bool: "bool"}.get(
            type(value), "number")
        detail = f"json: cannot unmarshal {kind} into Go value of type {go_type}"
        raise BadRequest(f"{what}: {detail}" if what else detail)
    return value


def _int64(req: Request, name: str) -> int:
    """httputils.Int64ValueOrZero: a value that does not parse is 0."""
    raw = _arg(req, name)
    try:
        value = int(raw, 10)
    except ValueError:
        return 0
    return value if -(1 << 63) <= value < (1 << 63) else 0


def _str_map(value: Any, nullable: bool) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, str) or (nullable and v is None) for v in value.values())


def registry_config(header: str) -> dict[str, dict[str, Any]]:
    """X-Registry-Config: {registry: AuthConfig}, base64 in the URL alphabet
    (padded or not); anything that does not decode is no credentials, as
    dockerd's getAuthConfigs."""
    if not header:
        return {}
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        value = fastjson.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)}


def build_options(req: Request) -> BuildOptions:
    """BuildOptions from the query, as dockerd's newImageBuildOptions."""
    if req.args("securityopt"):
        raise BadRequest("security options are not supported on linux")
    version = _arg(req, "version") or "1"
    if version not in ("1", "2"):
        raise PyboxError(f'invalid version "{version}"')
    shm = _arg(req, "shmsize")
    shm_size = 0
    if shm:
        try:
            shm_size = int(shm, 10)
        except ValueError:
            raise PyboxError(f'strconv.ParseInt: parsing "{shm}": invalid syntax') from None
    isolation = _arg(req, "isolation")
    if isolation and isolation.lower() not in ("default",):
        raise BadRequest(f'unsupported isolation: "{isolation}"')
    ulimits = _json_arg(req, "ulimits", "error reading ulimit settings",
                        lambda v: isinstance(v, list) and all(isinstance(u, dict) or u is None
                                                              for u in v),
                        "[]*units.Ulimit") or []
    build_args = _json_arg(req, "buildargs", "error reading build args",
                           lambda v: _str_map(v, True), "map[string]*string") or {}
    labels = _json_arg(req, "labels", "error reading labels", lambda v: _str_map(v, False),
                       "map[string]string") or {}
    # (dockerd 20.10 words this one without its "error reading" prefix, as a 500)
    try:
        cache_from = _json_arg(req, "cachefrom", "",
                               lambda v: isinstance(v, list) and all(isinstance(s, str)
                                                                     for s in v),
                               "[]string") or []
    except BadRequest as e:
        raise PyboxError(str(e)) from None
    force_rm = _flag(req, "forcerm")
    rm = _arg(req, "rm")
    remove = True if force_rm or not rm else _flag(req, "rm")
    options = BuildOptions(
        tags=list(req.args("t")),
        dockerfile=_arg(req, "dockerfile"),
        build_args=build_args, target=_arg(req, "target") or None,
        no_cache=_flag(req, "nocache"), pull=_flag(req, "pull"), remove=remove,
        force_remove=force_rm, labels=labels, cache_from=cache_from,
        network_mode=_arg(req, "networkmode"), extra_hosts=req.args("extrahosts"),
        shm_size=shm_size, memory=_int64(req, "memory"), memory_swap=_int64(req, "memswap"),
        cpu_shares=_int64(req, "cpushares"), cpuset_cpus=_arg(req, "cpusetcpus"),
        cpu_period=_int64(req, "cpuperiod"), cpu_quota=_int64(req, "cpuquota"),
        ulimits=[u for u in ulimits if u is not None],
        platform=_arg(req, "platform"), quiet=_flag(req, "q"), squash=_flag(req, "squash"),
        registry_auth=registry_config(req.headers.get("x-registry-config", "")))
    if version == "2":
        _end_session(_arg(req, "session"))
        raise BadRequest("BuildKit is not supported by pyboxd: build with the classic builder "
                         "(version=1, DOCKER_BUILDKIT=0)")
    return options


def check_tags(tags: list[str]) -> list[str]:
    """dockerd's sanitizeRepoAndTags, before the build starts (a 500 with the
    reference's error): each tag parsed, none with a digest; -> the tags, empty
    ones and repeats (``me/app`` and ``me/app:latest``) dropped."""
    out: list[str] = []
    seen: set[str] = set()
    for tag in tags:
        if not tag:
            continue
        try:
            ref = reference.parse(tag)
        except PyboxError as e:
            raise PyboxError(str(e)) from None
        if ref.digest:
            raise PyboxError("build tag cannot contain a digest")
        if str(ref) not in seen:
            seen.add(str(ref))
            out.append(tag)
    return out


# -- the stream ---------------------------------------------------------------------------------
class BuildStream:
    """The JSON message stream of one build: the builder's BuildOutput.

    The 200 goes out with the first message (an error before it is an HTTP
    error reply); with ``quiet`` messages are held back.  A write that finds
    the client gone sets ``cancel`` and drops the rest.  Thread-safe."""

    def __init__(self, resp: Response, cancel: threading.Event, *, quiet: bool,
                 want_aux: bool) -> None:
        self.resp = resp
        self.cancel = cancel
        self.quiet = quiet
        self.want_aux = want_aux
        self.lock = threading.Lock()
        self.held: list[bytes] = []
        self._write: Callable[[bytes], None] | None = None
        self._end: Callable[[], None] | None = None
        self.gone = False

    @property
    def started(self) -> bool:
        return self._write is not None

    def _send(self, message: dict[str, Any], hold: bool = True) -> None:
        data = fastjson.dumps(message).encode() + b"\n"
        with self.lock:
            if self.quiet and hold:
                self.held.append(data)
                return
            self._emit(data)

    def _emit(self, data: bytes) -> None:  # with the lock held
        if self.gone:
            return
        try:
            if self._write is None:
                self._write, self._end = self.resp.stream(200, "application/json")
            self._write(data)
        except ClientGone:
            self.gone = True
            self.cancel.set()

    def stream(self, text: str) -> None:
        self._send({"stream": text})

    def aux(self, data: dict[str, Any]) -> None:
        if self.want_aux:
            self._send({"aux": data})

    def progress(self, message: dict[str, Any]) -> None:
        """One of docker's progress messages as it is (a URL context's
        download, a FROM's pull): held back with ``q`` as dockerd's are."""
        self._send(message)

    def finish(self, image_id: str) -> None:
        if self.quiet:
            self._send({"stream": image_id + "\n"}, hold=False)
        self.end()

    def fail(self, error: PyboxError) -> None:
        """The error as dockerd's errf writes it: the held messages first
        (with q), then the error line -- or, when nothing went out yet, an
        HTTP error reply."""
        with self.lock:
            if self.quiet and self.held:
                for data in self.held:
                    self._emit(data)
                self.held.clear()
            if not self.started:
                if not self.gone:
                    self.resp.error(error.http_status, str(error))
                return
            detail: dict[str, Any] = {"message": str(error)}
            if isinstance(error, BuildError) and error.code:
                detail = {"code": error.code, "message": str(error)}
            self._emit(fastjson.dumps({"errorDetail": detail, "error": str(error)}).encode()
                       + b"\n")
        self.end()

    def end(self) -> None:
        with self.lock:
            if self.gone:
                return
            if self._end is None:
                self._write, self._end = self.resp.stream(200, "application/json")
            try:
                self._end()
            except ClientGone:
                self.gone = True


def _watch_client(req: Request, cancel: threading.Event, done: threading.Event) -> None:
    """Set ``cancel`` when the client hangs up before the build is done."""
    while not done.wait(WATCH_INTERVAL):
        if req.client_gone():
            cancel.set()
            return


def _version_at_least(version: str | None, wanted: tuple[int, ...]) -> bool:
    if not version:
        return True
    try:
        return tuple(int(x) for x in version.split(".")) >= wanted
    except ValueError:
        return True


def run_build(engine: Engine, req: Request, resp: Response) -> None:
    """POST /build: options, context, build, stream (see the module's doc)."""
    options = build_options(req)
    if options.squash:
        raise BadRequest("squash is only supported with experimental mode")
    options.tags = check_tags(options.tags)
    cancel = threading.Event()
    out = BuildStream(resp, cancel, quiet=options.quiet,
                      want_aux=_version_at_least(req.version, (1, 30)))
    error: PyboxError | None = None
    image_id = ""
    with build_context.open_context(engine.data_root, req.body_chunks(),
                                    remote=_arg(req, "remote"),
                                    dockerfile=options.dockerfile,
                                    progress=out.progress) as ctx:
        options.dockerfile = ctx.dockerfile
        options.dockerfile_content = ctx.dockerfile_content
        options.type_bits = ctx.type_bits
        done = threading.Event()
        watcher = threading.Thread(target=_watch_client, args=(req, cancel, done),
                                   name="build-client-watch", daemon=True)
        watcher.start()
        try:
            # (the builder tags the image and says "Successfully built/tagged")
            image_id = build(engine, options, ctx.context_dir, out, cancel, files=ctx.files)
        except PyboxError as e:
            error = e
        finally:
            done.set()
            watcher.join()
    # the context is gone before the reply ends
    if error is not None:
        out.fail(error)
    else:
        out.finish(image_id)


# -- prune --------------------------------------------------------------------------------------
def _bytes_arg(req: Request, name: str) -> int:
    raw = _arg(req, name)
    if not raw:
        return 0
    try:
        return int(raw, 10)
    except ValueError:
        raise PyboxError(f'{name} is in bytes and expects an integer, got {raw}: '
                         f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


def cache_id(image_id: str) -> str:
    """A cache entry's ID as docker system df -v lists it (BuildCache's)."""
    return image_id.removeprefix("sha256:")[:25]


def cache_records(engine: Engine) -> list[dict[str, Any]]:
    """GET /system/df's BuildCache."""
    return build_cache.cache_usage(engine)


def _hold_session(sock: socket.socket, uuid: str) -> None:
    """Keep an upgraded /session open, reading and dropping what the client
    sends, until it closes it, the build naming it ends it (_end_session) or
    it is silent for SESSION_IDLE (the server closes it when the handler
    returns)."""
    with _sessions_changed:
        if uuid:
            _sessions[uuid] = sock
            _sessions_changed.notify_all()
    try:
        sock.settimeout(SESSION_IDLE)
        sock.sendall(H2_PREFACE)
        while sock.recv(1 << 16):
            pass
    except OSError:
        pass  # gone, reset, ended, or silent too long
    finally:
        with _sessions_changed:
            if _sessions.get(uuid) is sock:
                del _sessions[uuid]


def _end_session(uuid: str) -> None:
    """A refused version=2 build's session: waited for as dockerd waits for it
    (the client dials it beside the build request), then ended -- the docker
    CLI's session goes on serving until the daemon closes it, as dockerd does
    when the build it was for is over."""
    if not uuid:
        return
    with _sessions_changed:
        _sessions_changed.wait_for(lambda: uuid in _sessions, SESSION_WAIT)
        sock = _sessions.get(uuid)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def register(router: Router, engine: Engine) -> None:
    r = router

    @r.route("POST", "/build")
    def post_build(req: Request, resp: Response) -> None:
        run_build(engine, req, resp)

    @r.route("POST", "/build/prune")
    def prune(req: Request, resp: Response) -> None:
        # the classic builder's cache is its intermediate images (pybox.build.cache);
        # filters and keep-storage are read (a bad one refused as dockerd does) but
        # select nothing there: every entry is unused cache
        req.filters()
        _bytes_arg(req, "keep-storage")
        deleted, reclaimed = build_cache.prune_cache(engine, all=_flag(req, "all"))
        resp.json({"CachesDeleted": [cache_id(i) for i in deleted] or None,
                   "SpaceReclaimed": reclaimed})

    @r.route("POST", "/session")
    def session(req: Request, resp: Response) -> None:
        # BuildKit's client session (docker 18.09-22.x CLIs open one, then POST
        # /build?version=2): upgraded as dockerd's session manager does, so the
        # client goes on to the build, whose refusal says what to do (a 404 here
        # left the docker CLI saying only "failed to dial gRPC: unable to
        # upgrade to h2c, received 404"); pyboxd never uses the session
        proto = req.headers.get("upgrade", "")
        if not proto:
            raise BadRequest("no upgrade proto in request")
        if proto != "h2c":
            raise BadRequest(f"protocol {proto} not supported")
        sock, _ = resp.hijack(None, (("Connection", "Upgrade"), ("Upgrade", "h2c")),
                              b"Switching Protocols")
        _hold_session(sock, req.headers.get("x-docker-expose-session-uuid", ""))

    @r.route("POST", "/build/cancel")
    def cancel(req: Request, resp: Response) -> None:
        # only BuildKit's builds have IDs to cancel (dockerd's Cancel is BuildKit's)
        if not req.arg("id"):
            raise PyboxError("build ID not provided")
        resp.empty(200)
