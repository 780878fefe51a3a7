"""GET /containers/{id}/explain: pybox's extension of the Docker API, the kernel
objects behind a container (pybox.engine.explain); ``pybox explain`` reads it."""

from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.engine.explain import explain as build


def register(router: Router, engine: Engine) -> None:
    @router.route("GET", "/containers/{id}/explain")
    def explain(req: Request, resp: Response, id: str) -> None:
        resp.json(build(engine, id))
