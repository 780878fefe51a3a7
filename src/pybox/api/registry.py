"""Registry routes: ``POST /images/NAME/push`` and ``POST /auth`` (docker push,
docker login).  Pull is ``POST /images/create?fromImage=`` in images.py, which
calls ``engine.pull``; all three live in pybox.engine.pull.  The AuthConfig
bodies are decoded by type here (pybox.api.schema) before the engine sees them."""

from typing import Any

from pybox.api import schema
from pybox.engine import pull as registry


class _Decoded:
    """The request with its JSON body already decoded and typed: what
    pybox.engine.pull reads through ``req.json()``."""

    def __init__(self, req: Any, body: dict) -> None:
        self._req, self._body = req, body

    def json(self, default: Any = None) -> Any:
        return self._body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._req, name)


def register(router, engine) -> None:
    @router.route("POST", "/images/{name*}/push")
    def push(req, resp, name) -> None:
        if not req.headers.get("x-registry-auth"):
            # the old form: credentials in the body (an AuthConfig)
            req = _Decoded(req, schema.read_json(req, schema.AUTH_CONFIG))
        registry.push(engine, req, resp, name)

    @router.route("POST", "/auth")
    def auth(req, resp) -> None:
        registry.login(engine, _Decoded(req, schema.read_json(req, schema.AUTH_CONFIG)), resp)
