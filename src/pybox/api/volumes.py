"""/volumes endpoints (docker's local driver, in pybox.engine.volumes)."""

from pybox.api import schema
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.errors import BadRequest

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
        driver = body.get("Driver") or "local"
        if driver != "local":
            raise BadRequest(f"volume driver {driver!r} is not supported (local only)")
        doc = volumes.create(body.get("Name") or None, labels=body.get("Labels"),
                             options=body.get("DriverOpts"))
        engine.events.emit("volume", "create", doc["Name"], {"driver": "local"})
        resp.json(doc, 201)

    @r.route("POST", "/volumes/prune")
    def prune(req: Request, resp: Response) -> None:
        filters = req.filters()
        schema.check_filters(filters, PRUNE_FILTERS)
        all_ = any(v.lower() in ("true", "1") for v in filters.pop("all", []))
        deleted, reclaimed = volumes.prune(filters, all_=all_)
        for name in deleted:
            engine.events.emit("volume", "destroy", name, {"driver": "local"})
        resp.json({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})

    @r.route("GET", "/volumes/{name}")
    def inspect(req: Request, resp: Response, name: str) -> None:
        resp.json(volumes.get(name))

    @r.route("DELETE", "/volumes/{name}")
    def remove(req: Request, resp: Response, name: str) -> None:
        volumes.remove(name, force=req.flag("force"))
        engine.events.emit("volume", "destroy", name, {"driver": "local"})
        resp.empty(204)
