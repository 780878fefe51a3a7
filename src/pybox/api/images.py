"""/images/... endpoints on the engine's image service (pybox.engine.images),
which does the work and emits the events."""

from pybox.api import registry, schema
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.errors import BadRequest, PyboxError
from pybox.formats import fastjson
from pybox.images import platforms, progress


def register(router: Router, engine: Engine) -> None:
    r = router
    images = engine.images

    @r.route("GET", "/images/json")
    def list_images(req: Request, resp: Response) -> None:
        filters = req.filters()
        # dockerd's acceptedImageFilterTags
        schema.check_filters(filters, {"before", "dangling", "label", "reference", "since",
                                       "until"})
        resp.json(images.list(all=req.flag("all"), filters=filters))

    @r.route("POST", "/images/prune")
    def prune(req: Request, resp: Response) -> None:
        resp.json(images.prune(req.filters()))

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
        resp.empty(201)

    @r.route("DELETE", "/images/{name*}")
    def remove(req: Request, resp: Response, name: str) -> None:
        resp.json(images.remove(name, force=req.flag("force")))

    @r.route("POST", "/images/create")
    def create(req: Request, resp: Response) -> None:
        if req.arg("fromSrc") is not None:
            src = req.arg("fromSrc")
            if src != "-":
                raise BadRequest("importing from a URL is not supported; upload the tarball")
            with images.scratch_file() as tmp:
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
        with images.scratch_file() as tmp:
            images.save(names, tmp)  # a 404 before the 200
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
        """dockerd's postImagesLoad: whatever the load itself fails with (an
        archive that is not a tar, cut short, without manifest.json) is the
        last line of a 200 JSON stream, quiet or not; the docker CLI prints it
        and exits 1."""
        with images.scratch_file() as tmp:
            for chunk in req.body_chunks():
                tmp.write(chunk)
            tmp.seek(0)
            try:
                loaded = images.load(tmp)
            except PyboxError as e:
                write, end = resp.stream(200, "application/json")
                write(fastjson.dumps(progress.error(str(e))).encode() + b"\n")
                end()
                return
        write, end = resp.stream(200, "application/json")
        for item in loaded:
            if item["RepoTags"]:
                for tag in item["RepoTags"]:
                    write(fastjson.dumps({"stream": f"Loaded image: {tag}\n"}).encode() + b"\n")
            else:
                write(fastjson.dumps({"stream": f"Loaded image ID: {item['Id']}\n"}).encode()
                      + b"\n")
        end()
