"""Registry routes: ``POST /images/NAME/push`` and ``POST /auth`` (docker push,
docker login).  Pull is ``POST /images/create?fromImage=`` in images.py, which
calls ``engine.pull``; all three live in pybox.engine.pull."""

from pybox.engine import pull as registry


def register(router, engine):
    @router.route("POST", "/images/{name*}/push")
    def push(req, resp, name):
        registry.push(engine, req, resp, name)

    @router.route("POST", "/auth")
    def auth(req, resp):
        registry.login(engine, req, resp)
