"""The Docker Engine API, pyboxd's own API (API version 1.44): HTTP/1.1 on unix
sockets (server.py), one module per resource (containers and exec, images,
system).  It maps requests onto pybox.engine and pybox errors onto docker's
status codes (each error class's ``http_status``) and JSON error shapes."""

from pybox.api import (
    build,
    containers,
    explain,
    images,
    networks,
    observe,
    plugins,
    registry,
    swarm,
    system,
    volumes,
)
from pybox.api.server import Router
from pybox.engine.engine import Engine


def build_router(engine: Engine) -> Router:
    router = Router()
    system.register(router, engine)
    swarm.register(router)  # swarm mode: answered as a dockerd not part of a swarm
    plugins.register(router, engine)  # managed plugins: the store, no plugin runtime
    networks.register(router, engine)  # before containers: its /networks/{name} 404 stub
    explain.register(router, engine)  # pybox's own: GET /containers/{id}/explain
    containers.register(router, engine)
    images.register(router, engine)
    build.register(router, engine)  # POST /build, /build/prune, /build/cancel
    volumes.register(router, engine)
    observe.register(router, engine)
    registry.register(router, engine)  # push, auth
    return router
