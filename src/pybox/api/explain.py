"""GET /containers/{id}/explain: pybox's extension of the Docker API, the kernel
objects behind a container (pybox.engine.explain); ``pybox explain`` reads it."""


def register(router, engine) -> None:
    @router.route("GET", "/containers/{id}/explain")
    def explain(req, resp, id) -> None:
        from pybox.engine.explain import explain as build

        resp.json(build(engine, id))
