"""The engine's registry side: pull (``Engine.pull``), push and login, on
pybox.images' registry client.

Importing this module gives every Engine a ``pull(req, resp)`` method, which the
``POST /images/create?fromImage=`` route calls (api/images.py); api/registry.py
routes ``POST /images/NAME/push`` and ``POST /auth`` here.  The registry
configuration is ``engine.registry_options`` (pyboxd sets it from daemon.json
and its flags; default: /etc/pybox/daemon.json or nothing), and one
``Registries`` per engine keeps connections and tokens between requests.

Streams follow dockerd: an error before the first progress line is an HTTP
error (404 for an image or platform the registry does not have, 401 for a
refused login, 500 otherwise) -- the docker CLI prints it as ``Error response
from daemon: ...`` and `docker run` exits 125; an error after it is the
stream's last line, ``{"errorDetail": {"message": ...}, "error": ...}``.
"""

import threading

from pybox.engine.engine import Engine
from pybox.errors import (
    AuthenticationError,
    BadRequest,
    ImageNotFound,
    InvalidReference,
    NotFound,
    PyboxError,
    RegistryError,
    RegistryNotFound,
)
from pybox.formats import fastjson
from pybox.images import progress as P
from pybox.images import reference as references
from pybox.images.auth import Credentials, decode_registry_auth

_LOCK = threading.Lock()


def registries(engine):
    """The engine's Registries (made on first use from its options)."""
    with _LOCK:
        found = getattr(engine, "_registries", None)
        if found is None:
            from pybox.images.registry import Registries
            from pybox.images.registry_config import RegistryOptions

            options = getattr(engine, "registry_options", None)
            if options is None:
                options = RegistryOptions.from_daemon_config()
            found = engine._registries = Registries(options)
        return found


class ProgressStream:
    """docker's JSON lines on a chunked 200 reply, started by the first line
    (so an error before it can still be an HTTP status).  Thread-safe: layers
    report from their own threads."""

    def __init__(self, resp) -> None:
        self.resp = resp
        self.lock = threading.Lock()
        self._write = self._end = None

    @property
    def started(self) -> bool:
        return self._write is not None

    def __call__(self, message) -> None:
        data = fastjson.dumps(message).encode() + b"\n"
        with self.lock:
            if self._write is None:
                self._write, self._end = self.resp.stream(200, "application/json")
            self._write(data)

    def finish(self, error=None) -> None:
        """End the stream; with ``error`` (an exception) as its last line, or,
        when nothing was sent yet, as an HTTP error reply."""
        if error is not None and not self.started:
            self.resp.error(_status(error), str(error))
            return
        if error is not None:
            self(P.error(str(error)))
        with self.lock:
            if self._end is None:
                self._write, self._end = self.resp.stream(200, "application/json")
            self._end()


def _status(error) -> int:
    if isinstance(error, (InvalidReference, BadRequest)):
        return 400
    if isinstance(error, (RegistryNotFound, ImageNotFound, NotFound)):
        return 404
    if isinstance(error, AuthenticationError) and "pull access denied" in str(error):
        return 404  # dockerd's notFoundError: the CLI says "repository does not exist"
    if isinstance(error, AuthenticationError):
        return 401
    return 500


def _credentials(req):
    return decode_registry_auth(req.headers.get("x-registry-auth", ""))


def pull(engine, req, resp) -> None:
    """``POST /images/create?fromImage=NAME&tag=TAG&platform=P``; a NAME with
    neither a tag nor a digest and no ``tag`` pulls every tag of the repository
    (dockerd's rule, what ``docker pull --all-tags`` sends)."""
    from pybox.images.pull import pull as pull_image
    from pybox.images.pull import pull_all_tags

    stream = ProgressStream(resp)
    try:
        from_image, tag = req.arg("fromImage"), req.arg("tag")
        repo = references.parse(from_image, default_tag=False)
        if not tag and not repo.tag and not repo.digest:
            result = pull_all_tags(engine.images.images, registries(engine), repo,
                                   platform=req.arg("platform") or None,
                                   credentials=_credentials(req), report=stream)
            pulled = [r["reference"] for r in result["pulled"]]
        else:
            result = pull_image(engine.images.images, registries(engine),
                                _pull_reference(from_image, tag),
                                platform=req.arg("platform") or None,
                                credentials=_credentials(req), report=stream)
            pulled = [result["reference"]]
    except PyboxError as e:
        stream.finish(e)
        return
    for ref in pulled:
        engine.events.emit("image", "pull", ref, {"name": ref})
    stream.finish()


def _pull_reference(from_image, tag):
    """dockerd's rule: ``tag`` is a tag, or a digest when it looks like one; a
    tag in ``fromImage`` itself counts when ``tag`` is empty."""
    if tag:
        ref = references.parse(from_image, default_tag=False)
        if ref.tag or ref.digest:
            raise InvalidReference(f"invalid reference format: {from_image} already has a "
                                   "tag or digest")
        separator = "@" if ":" in tag and tag.split(":", 1)[0] == "sha256" else ":"
        return references.parse(f"{from_image}{separator}{tag}")
    return references.parse(from_image)


def push(engine, req, resp, name):
    """``POST /images/NAME/push?tag=TAG``; no tag: every tag of NAME."""
    from pybox.images.push import push as push_image
    from pybox.images.push import push_repository

    stream = ProgressStream(resp)
    images = engine.images.images
    try:
        credentials = _credentials(req)
        if not req.headers.get("x-registry-auth"):
            body = req.json(default=None)
            if isinstance(body, dict):
                credentials = Credentials(username=body.get("username") or "",
                                          password=body.get("password") or "")
        tag = req.arg("tag")
        repo = references.parse_repository(name)
        if tag:
            target = repo.with_tag(tag) if not repo.tag else repo
            try:
                images.resolve(str(target))
            except ImageNotFound:
                stream({"status": f"The push refers to repository [{target.name}]"})
                raise NotFound("An image does not exist locally with the tag: "
                               f"{target.familiar_name}") from None
            push_image(images, registries(engine), target, credentials=credentials,
                       report=stream)
            pushed = [target.familiar()]
        else:
            results = push_repository(images, registries(engine), name,
                                      credentials=credentials, report=stream)
            pushed = [f"{repo.familiar_name}:{r['tag']}" for r in results]
    except PyboxError as e:
        stream.finish(e)
        return
    for ref in pushed:
        engine.events.emit("image", "push", ref, {"name": ref})
    stream.finish()


def login(engine, req, resp) -> None:
    """``POST /auth`` with docker's AuthConfig body."""
    from pybox.images.registry import login as registry_login

    body = req.json(default={}) or {}
    credentials = Credentials(username=body.get("username") or "",
                              password=body.get("password") or "",
                              identity_token=body.get("identitytoken") or "",
                              registry_token=body.get("registrytoken") or "")
    try:
        result = registry_login(registries(engine), body.get("serveraddress") or "",
                                credentials)
    except AuthenticationError as e:
        resp.error(401, str(e))
        return
    except RegistryError as e:
        resp.error(500, str(e))
        return
    resp.json(result)


def add_arguments(parser) -> None:
    """pyboxd's registry flags (dockerd's names); they add to daemon.json's lists."""
    parser.add_argument("--config-file", default="/etc/pybox/daemon.json",
                        help="daemon configuration file (docker's daemon.json keys: "
                             "insecure-registries, registry-mirrors, max-concurrent-*)")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        metavar="HOST[:PORT]|CIDR", help="registry reached over plain HTTP "
                        "or unchecked TLS (repeatable)")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                        help="mirror tried before Docker Hub (repeatable)")


def configure(engine, args) -> None:
    """Set ``engine.registry_options`` from the parsed flags and the config file
    (raises RegistryError when the file is unreadable or wrong)."""
    from pybox.images.registry_config import RegistryOptions

    engine.registry_options = RegistryOptions.from_daemon_config(
        args.config_file, insecure_registries=args.insecure_registry,
        mirrors=args.registry_mirror)


Engine.pull = pull
