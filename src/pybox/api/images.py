"""/images/... endpoints on pybox.images (through the engine's ImageService)."""

import tempfile
from typing import Any

from pybox.api import registry, schema
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.engine.observe import has_labels, prune_filters
from pybox.errors import BadRequest, ImageError
from pybox.formats import fastjson
from pybox.images import platforms


def register(router: Router, engine: Engine) -> None:
    r = router
    images = engine.images.images  # the store's facade

    @r.route("GET", "/images/json")
    def list_images(req: Request, resp: Response) -> None:
        filters = req.filters()
        # dockerd's acceptedImageFilterTags
        schema.check_filters(filters, {"before", "dangling", "label", "reference", "since",
                                       "until"})
        resp.json(images.list(all=req.flag("all"), filters=filters))

    @r.route("POST", "/images/prune")
    def prune(req: Request, resp: Response) -> None:
        filters = req.filters()
        dangling = filters.pop("dangling", ["true"])
        all_ = any(v.lower() in ("false", "0") for v in dangling)
        # until and label! are prune-only filters (list does not know them):
        # images created at or after until, or labelled label!, are kept
        filters, until, not_labels = prune_filters(filters)

        def keep(summary: dict[str, Any]) -> bool:
            return (until is not None and summary["Created"] >= until) or \
                (bool(not_labels) and has_labels(summary.get("Labels") or {}, not_labels))

        result = images.prune(all=all_, filters=filters or None, keep=keep)
        for item in result.get("ImagesDeleted") or ():
            if "Deleted" in item:
                engine.events.emit("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        resp.json(result)

    @r.route("POST", "/build/prune")
    def build_prune(req: Request, resp: Response) -> None:
        resp.json({"CachesDeleted": None, "SpaceReclaimed": 0})  # no build cache (no builds)

    @r.route("GET", "/images/{name*}/json")
    def inspect(req: Request, resp: Response, name: str) -> None:
        resp.json(images.inspect(name))

    @r.route("GET", "/images/{name*}/history")
    def history(req: Request, resp: Response, name: str) -> None:
        resp.json(images.history(name))

    @r.route("POST", "/images/{name*}/tag")
    def tag(req: Request, resp: Response, name: str) -> None:
        repo = req.arg("repo")
        if not repo:
            raise BadRequest("repository name must have at least one component")
        target = repo if not req.arg("tag") else f"{repo}:{req.arg('tag')}"
        images.tag(name, target)
        engine.events.emit("image", "tag", images.resolve(name), {"name": target})
        resp.empty(201)

    @r.route("DELETE", "/images/{name*}")
    def remove(req: Request, resp: Response, name: str) -> None:
        result = images.remove(name, force=req.flag("force"))
        for item in result:
            if "Untagged" in item:
                engine.events.emit("image", "untag", item["Untagged"], {"name": item["Untagged"]})
            if "Deleted" in item:
                engine.events.emit("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        resp.json(result)

    @r.route("POST", "/images/create")
    def create(req: Request, resp: Response) -> None:
        if req.arg("fromSrc") is not None:
            src = req.arg("fromSrc")
            if src != "-":
                raise BadRequest("importing from a URL is not supported; upload the tarball")
            with tempfile.TemporaryFile(dir=images.root) as tmp:
                for chunk in req.body_chunks():
                    tmp.write(chunk)
                tmp.seek(0)
                repo = req.arg("repo") or None
                tag = req.arg("tag")
                if repo and tag:
                    repo = f"{repo}:{tag}"
                image_id = images.import_(tmp, reference=repo, changes=req.args("changes"),
                                          # dockerd's Comment when -m is not given
                                          message=req.arg("message") or "Imported from -")
            engine.events.emit("image", "import", image_id, {"name": repo or image_id})
            write, end = resp.stream(200, "application/json")
            write(fastjson.dumps({"status": image_id}).encode() + b"\n")
            end()
            return
        if req.arg("fromImage"):
            if req.arg("platform"):  # dockerd parses it first: a 400, not a pull
                platforms.parse(req.arg("platform"))
            registry.pull(engine, req, resp)
            return
        raise BadRequest("fromImage or fromSrc is required")

    def save(req: Request, resp: Response, names: list[str]) -> None:
        if not names:
            raise BadRequest("no image names given")
        for n in names:
            images.resolve(n)  # 404 before the 200
        with tempfile.TemporaryFile(dir=images.root) as tmp:
            images.save(names, tmp)
            tmp.seek(0)
            resp.stream_file(tmp, "application/x-tar")

    @r.route("GET", "/images/get")
    def save_many(req: Request, resp: Response) -> None:
        save(req, resp, req.args("names"))

    @r.route("GET", "/images/{name*}/get")
    def save_one(req: Request, resp: Response, name: str) -> None:
        save(req, resp, [name])

    @r.route("POST", "/images/load")
    def load(req: Request, resp: Response) -> None:
        with tempfile.TemporaryFile(dir=images.root) as tmp:
            for chunk in req.body_chunks():
                tmp.write(chunk)
            tmp.seek(0)
            try:
                loaded = images.load(tmp)
            except ImageError as e:
                raise BadRequest(str(e)) from None
        write, end = resp.stream(200, "application/json")
        for item in loaded:
            if item["RepoTags"]:
                for tag in item["RepoTags"]:
                    write(fastjson.dumps({"stream": f"Loaded image: {tag}\n"}).encode() + b"\n")
            else:
                write(fastjson.dumps({"stream": f"Loaded image ID: {item['Id']}\n"}).encode()
                      + b"\n")
            engine.events.emit("image", "load", item["Id"], {"name": item["Id"]})
        end()
