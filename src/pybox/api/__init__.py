"""The Docker Engine API, pyboxd's own API (API version 1.44): HTTP/1.1 on unix
sockets (server.py), one module per resource (containers and exec, images,
system).  It maps requests onto pybox.engine and pybox errors onto docker's
status codes and JSON error shapes."""


def build_router(engine):
    from pybox.api import containers, explain, images, networks, observe, system, volumes
    from pybox.api.server import Router

    router = Router()
    system.register(router, engine)
    networks.register(router, engine)  # before containers: its /networks/{name} 404 stub
    explain.register(router, engine)  # pybox's own: GET /containers/{id}/explain
    containers.register(router, engine)
    images.register(router, engine)
    volumes.register(router, engine)
    observe.register(router, engine)
    from pybox.api import registry  # push, auth; importing it gives Engine.pull

    registry.register(router, engine)
    return router
