"""/networks endpoints: list, inspect, create, remove, connect, disconnect,
prune, in docker's JSON shapes, over pybox.engine.networking."""

from typing import Any

from pybox.api import schema
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.engine.observe import has_labels, prune_filters
from pybox.errors import BadRequest
from pybox.formats.times import parse_rfc3339

# dockerd's acceptedNetworkFilters (list) and the prune filters
LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


def register(router: Router, engine: Engine) -> None:
    r = router
    net = engine.network

    @r.route("GET", "/networks")
    def list_networks(req: Request, resp: Response) -> None:
        filters = req.filters()
        schema.check_filters(filters, LIST_FILTERS)
        resp.json(net.manager.list(filters))

    @r.route("POST", "/networks/create")
    def create(req: Request, resp: Response) -> None:
        body = schema.read_json(req, schema.NETWORK_CREATE)
        nid, warning = net.manager.create(body)
        rec = net.manager.get(nid)
        engine.events.emit("network", "create", nid, {"name": rec["Name"], "type": "bridge"})
        resp.json({"Id": nid, "Warning": warning}, 201)

    @r.route("POST", "/networks/prune")
    def prune(req: Request, resp: Response) -> None:
        filters, until, not_labels = prune_filters(req.filters())

        def keep(rec: dict[str, Any]) -> bool:
            if until is not None and parse_rfc3339(rec.get("Created")) >= until:
                return True
            return bool(not_labels) and has_labels(rec.get("Labels") or {}, not_labels)
        removed = net.manager.prune(filters, in_use=net.networks_in_use(), keep=keep)
        for name in removed:
            engine.events.emit("network", "destroy", name, {"name": name, "type": "bridge"})
        resp.json({"NetworksDeleted": removed})

    @r.route("GET", "/networks/{id}")
    def inspect(req: Request, resp: Response, id: str) -> None:
        resp.json(net.manager.inspect(id))

    @r.route("DELETE", "/networks/{id}")
    def remove(req: Request, resp: Response, id: str) -> None:
        rec = net.manager.remove(id)
        engine.events.emit("network", "destroy", rec["Id"],
                           {"name": rec["Name"], "type": rec["Driver"]})
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
