"""/networks endpoints: list, inspect, create, remove, connect, disconnect,
prune, in docker's JSON shapes, over pybox.engine.networking."""

from pybox.api import schema
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.errors import BadRequest

# dockerd's acceptedNetworkFilters (list) and the prune filters
LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


def register(router: Router, engine: Engine) -> None:
    r = router
    net = engine.network

    @r.route("GET", "/networks")
    def list_networks(req: Request, resp: Response) -> None:
        filters = req.filters()
        schema.check_filters(filters, LIST_FILTERS)
        resp.json(engine.networks(filters))

    @r.route("POST", "/networks/create")
    def create(req: Request, resp: Response) -> None:
        body = schema.read_json(req, schema.NETWORK_CREATE)
        nid, warning = engine.create_network(body)
        resp.json({"Id": nid, "Warning": warning}, 201)

    @r.route("POST", "/networks/prune")
    def prune(req: Request, resp: Response) -> None:
        resp.json({"NetworksDeleted": engine.prune_networks(req.filters())})

    @r.route("GET", "/networks/{id}")
    def inspect(req: Request, resp: Response, id: str) -> None:
        resp.json(engine.inspect_network(id))

    @r.route("DELETE", "/networks/{id}")
    def remove(req: Request, resp: Response, id: str) -> None:
        engine.remove_network(id)
        resp.empty(204)

    @r.route("POST", "/networks/{id}/connect")
    def connect(req: Request, resp: Response, id: str) -> None:
        body = schema.read_json(req, schema.NETWORK_CONNECT)
        if not body.get("Container"):
            raise BadRequest("a container is required")
        net.connect(id, body["Container"], body.get("EndpointConfig") or {})
        resp.empty(200)

    @r.route("POST", "/networks/{id}/disconnect")
    def disconnect(req: Request, resp: Response, id: str) -> None:
        body = schema.read_json(req, schema.NETWORK_DISCONNECT)
        if not body.get("Container"):
            raise BadRequest("a container is required")
        net.disconnect(id, body["Container"], force=bool(body.get("Force")))
        resp.empty(200)
