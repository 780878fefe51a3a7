"""Registry routes: ``POST /images/NAME/push`` and ``POST /auth`` (docker push,
docker login), ``GET /images/search`` (docker search), ``GET
/distribution/NAME/json``, and the pull of ``POST /images/create?fromImage=``
(routed in images.py).  The work is the engine's (``engine.distribution``,
pybox.engine.distribution); here are docker's credentials (X-Registry-Auth, or
an AuthConfig body decoded by type, pybox.api.schema) and its progress streams.

Streams follow dockerd: an error before the first progress line is an HTTP
error (404 for an image or platform the registry does not have, 401 for a
refused login, 400 for a bad name, 500 otherwise) -- the docker CLI prints it as
``Error response from daemon: ...`` and `docker run` exits 125; an error after
it is the stream's last line, ``{"errorDetail": {"message": ...}, "error": ...}``.
"""

import threading
from collections.abc import Callable, Mapping
from typing import Any

from pybox.api import schema
from pybox.api.server import Headers, Request, Response, Router
from pybox.engine.engine import Engine
from pybox.errors import AuthenticationError, BadRequest, NotFound, PyboxError
from pybox.formats import fastjson
from pybox.images import progress as P
from pybox.images.auth import ANONYMOUS, Credentials, decode_registry_auth


class ProgressStream:
    """docker's JSON lines on a chunked 200 reply, started by the first line
    (so an error before it can still be an HTTP status: ``refused``'s,
    refused_status by default).  ``headers`` go out with the reply either way.
    Thread-safe: layers report from their own threads."""

    def __init__(self, resp: Response, headers: Headers = (),
                 refused: Callable[[PyboxError], int] | None = None) -> None:
        self.resp = resp
        self.headers = list(headers)
        self.refused = refused or refused_status
        self.lock = threading.Lock()
        self._write: Callable[[bytes], None] | None = None
        self._end: Callable[[], None] | None = None

    @property
    def started(self) -> bool:
        return self._write is not None

    def __call__(self, message: Mapping[str, Any]) -> None:
        data = fastjson.dumps(message).encode() + b"\n"
        with self.lock:
            if self._write is None:
                self._write, self._end = self.resp.stream(200, "application/json", self.headers)
            self._write(data)

    def finish(self, error: PyboxError | None = None) -> None:
        """End the stream; with ``error`` as its last line, or, when nothing
        was sent yet, as an HTTP error reply."""
        if error is not None and not self.started:
            self.resp.send(self.refused(error),
                           fastjson.dumps({"message": str(error)}).encode() + b"\n",
                           "application/json", self.headers)
            return
        if error is not None:
            self(P.error(str(error)))
        with self.lock:
            if self._end is None:
                self._write, self._end = self.resp.stream(200, "application/json", self.headers)
            self._end()

    def run(self, work: Callable[[], object]) -> None:
        """``work()``, which reports to this stream, then the stream's end:
        the PyboxError it raised is the last line, or the HTTP reply when
        nothing was sent yet."""
        try:
            work()
        except PyboxError as e:
            self.finish(e)
            return
        self.finish()


def refused_status(error: PyboxError) -> int:
    """dockerd's status for a pull or push that fails before its first progress
    line: the client's mistake (400), something the registry or the store does
    not have, a pull refused (404), a refused login (401); anything else went
    wrong on the way (500, whatever the error's own status)."""
    if isinstance(error, (BadRequest, NotFound, AuthenticationError)):
        return error.http_status
    return 500


def _header_credentials(req: Request) -> Credentials:
    return decode_registry_auth(req.headers.get("x-registry-auth", ""))


def _lenient_credentials(req: Request) -> Credentials:
    """X-Registry-Auth for a search or a distribution inspect: dockerd ignores
    one that does not decode there ("to increase compatibility")."""
    try:
        return _header_credentials(req)
    except PyboxError:
        return ANONYMOUS


def pull(engine: Engine, req: Request, resp: Response) -> None:
    """``POST /images/create?fromImage=NAME&tag=TAG&platform=P``."""
    stream = ProgressStream(resp)
    stream.run(lambda: engine.distribution.pull(
        req.arg("fromImage") or "", req.arg("tag") or "", platform=req.arg("platform") or None,
        credentials=_header_credentials(req), progress=stream))


def register(router: Router, engine: Engine) -> None:
    @router.route("POST", "/images/{name*}/push")
    def push(req: Request, resp: Response, name: str) -> None:
        """``POST /images/NAME/push?tag=TAG``; no tag: every tag of NAME."""
        body = None
        if not req.headers.get("x-registry-auth"):
            # the old form: credentials in the body (an AuthConfig)
            body = schema.read_json(req, schema.AUTH_CONFIG)
        stream = ProgressStream(resp)

        def work() -> None:
            credentials = _header_credentials(req)
            if isinstance(body, dict):
                credentials = Credentials(username=body.get("username") or "",
                                          password=body.get("password") or "")
            engine.distribution.push(name, req.arg("tag") or "", credentials=credentials,
                                     progress=stream)
        stream.run(work)

    @router.route("GET", "/images/search")
    def search(req: Request, resp: Response) -> None:
        """``GET /images/search?term=&limit=&filters=`` (docker search)."""
        limit = 0
        raw_limit = req.arg("limit") or ""
        if raw_limit:
            try:
                limit = int(raw_limit, 10)
            except ValueError:
                raise BadRequest(f"invalid limit specified: strconv.Atoi: parsing "
                                 f"{fastjson.dumps(raw_limit)}: invalid syntax") from None
            if limit < 0:
                raise BadRequest("invalid limit specified")
        filters = req.filters()
        meta = {k.title(): v for k, v in req.headers.items() if k.lower().startswith("x-meta-")}
        resp.json(engine.distribution.search(req.arg("term") or "", limit=limit,
                                             filters=filters, credentials=_lenient_credentials(req),
                                             headers=meta))

    @router.route("GET", "/distribution/{name*}/json")
    def distribution_inspect(req: Request, resp: Response, name: str) -> None:
        """``GET /distribution/NAME/json`` (docker-py's inspect_distribution)."""
        resp.json(engine.distribution.inspect(name, _lenient_credentials(req)))

    @router.route("POST", "/auth")
    def auth(req: Request, resp: Response) -> None:
        """``POST /auth`` with docker's AuthConfig body."""
        body = schema.read_json(req, schema.AUTH_CONFIG) or {}
        credentials = Credentials(username=body.get("username") or "",
                                  password=body.get("password") or "",
                                  identity_token=body.get("identitytoken") or "",
                                  registry_token=body.get("registrytoken") or "")
        resp.json(engine.distribution.login(body.get("serveraddress") or "", credentials))
