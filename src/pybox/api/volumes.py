"""/volumes endpoints (docker's local driver, in pybox.engine.volumes)."""

from pybox.errors import BadRequest


def register(router, engine):
    r = router
    volumes = engine.volumes

    @r.route("GET", "/volumes")
    def list_volumes(req, resp):
        resp.json({"Volumes": volumes.list(req.filters()), "Warnings": []})

    @r.route("POST", "/volumes/create")
    def create(req, resp):
        body = req.json({}) or {}
        driver = body.get("Driver") or "local"
        if driver != "local":
            raise BadRequest(f"volume driver {driver!r} is not supported (local only)")
        doc = volumes.create(body.get("Name") or None, labels=body.get("Labels"),
                             options=body.get("DriverOpts"))
        engine.events.emit("volume", "create", doc["Name"], {"driver": "local"})
        resp.json(doc, 201)

    @r.route("POST", "/volumes/prune")
    def prune(req, resp):
        filters = req.filters()
        all_ = any(v.lower() in ("true", "1") for v in filters.pop("all", []))
        deleted, reclaimed = volumes.prune(filters, all_=all_)
        for name in deleted:
            engine.events.emit("volume", "destroy", name, {"driver": "local"})
        resp.json({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})

    @r.route("GET", "/volumes/{name}")
    def inspect(req, resp, name):
        resp.json(volumes.get(name))

    @r.route("DELETE", "/volumes/{name}")
    def remove(req, resp, name):
        volumes.remove(name, force=req.flag("force"))
        engine.events.emit("volume", "destroy", name, {"driver": "local"})
        resp.empty(204)
