"""/volumes endpoints (docker's local driver, in pybox.engine.volumes)."""

from pybox.api import schema
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine

# dockerd's acceptedFilters for volume list and prune (and, for prune, ``name``:
# pybox's own, which scopes a prune to some volumes on a shared daemon)
LIST_FILTERS = {"dangling", "name", "driver", "label"}
PRUNE_FILTERS = {"label", "label!", "all", "name"}


def register(router: Router, engine: Engine) -> None:
    r = router
    volumes = engine.volumes

    @r.route("GET", "/volumes")
    def list_volumes(req: Request, resp: Response) -> None:
        filters = req.filters()
        schema.check_filters(filters, LIST_FILTERS)
        resp.json({"Volumes": volumes.list(filters), "Warnings": []})

    @r.route("POST", "/volumes/create")
    def create(req: Request, resp: Response) -> None:
        body = schema.read_json(req, schema.VOLUME_CREATE)
        doc = engine.create_volume(body.get("Name") or None, body.get("Driver") or "local",
                                   labels=body.get("Labels"), options=body.get("DriverOpts"))
        resp.json(doc, 201)

    @r.route("POST", "/volumes/prune")
    def prune(req: Request, resp: Response) -> None:
        filters = req.filters()
        schema.check_filters(filters, PRUNE_FILTERS)
        deleted, reclaimed = engine.prune_volumes(filters)
        resp.json({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})

    @r.route("GET", "/volumes/{name}")
    def inspect(req: Request, resp: Response, name: str) -> None:
        resp.json(volumes.get(name))

    @r.route("DELETE", "/volumes/{name}")
    def remove(req: Request, resp: Response, name: str) -> None:
        engine.remove_volume(name, force=req.flag("force"))
        resp.empty(204)
