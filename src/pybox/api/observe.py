"""Observing and changing containers over HTTP: top, stats, update, changes,
export, commit, archive (docker cp), prune, system df.  The work is the
engine's (pybox.engine.observe, commit, archive); here are the requests'
arguments and docker's answers."""

import tempfile

from pybox.api import build, schema
from pybox.api.server import Request, Response, Router
from pybox.engine import archive, observe
from pybox.engine import commit as commits
from pybox.engine.engine import Engine
from pybox.errors import BadRequest
from pybox.formats import fastjson


def register(router: Router, engine: Engine) -> None:
    r = router

    @r.route("GET", "/containers/{id}/top")
    def top(req: Request, resp: Response, id: str) -> None:
        ps_args = req.arg("ps_args")
        if ps_args and "\x00" in ps_args:  # not an argument list ps can be given
            raise BadRequest(f"invalid ps_args: {ps_args!r}")
        resp.json(observe.top(engine, engine.get(id), ps_args))

    @r.route("GET", "/containers/{id}/stats")
    def stats(req: Request, resp: Response, id: str) -> None:
        c = engine.get(id)
        stream = req.flag("stream", default=True)
        docs = observe.stats_stream(engine, c, stream, one_shot=req.flag("one-shot"),
                                    cancelled=req.client_gone)
        if not stream:
            resp.json(next(docs))
            return
        write, end = resp.stream(200, "application/json")
        for doc in docs:
            write(fastjson.dumps(doc).encode() + b"\n")
            if req.client_gone():
                return
        end()

    @r.route("POST", "/containers/{id}/update")
    def update(req: Request, resp: Response, id: str) -> None:
        body = schema.read_json(req, schema.UPDATE_CONFIG)  # typed, or a 400
        warnings = observe.update(engine, engine.get(id), body)
        resp.json({"Warnings": warnings or None})

    @r.route("GET", "/containers/{id}/changes")
    def changes(req: Request, resp: Response, id: str) -> None:
        resp.json(commits.changes(engine, id) or None)

    @r.route("GET", "/containers/{id}/export")
    def export(req: Request, resp: Response, id: str) -> None:
        with tempfile.TemporaryFile(dir=engine.data_root) as tmp:
            commits.export(engine, id, tmp)
            tmp.seek(0)
            resp.stream_file(tmp, "application/octet-stream")

    @r.route("POST", "/commit")
    def commit(req: Request, resp: Response) -> None:
        body = schema.read_commit_config(req)  # a create request's Config, typed
        repo = req.arg("repo")
        ref = None
        if repo:
            ref = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
        image_id = commits.commit(engine, req.arg("container") or "", reference=ref,
                                  changes=req.args("changes"),
                                  message=req.arg("comment") or "",
                                  author=req.arg("author") or "",
                                  pause=req.flag("pause", default=True), config=body)
        resp.json({"Id": image_id}, 201)

    def _stat(req: Request, resp: Response, id: str, head: bool) -> None:
        c = engine.get(id)
        path = req.arg("path")
        if not path:
            raise BadRequest("path is required")
        with archive.PathSource(engine, c, path) as source:
            header = ("X-Docker-Container-Path-Stat", source.header())
            if head:
                resp.send(200, headers=[header])
                return
            # streamed as it is read from the container (as dockerd)
            write, end = resp.stream(200, "application/x-tar", headers=[header])
            source.write_tar(write)
            end()

    def stat_head(req: Request, resp: Response, id: str) -> None:
        _stat(req, resp, id, True)

    def stat_get(req: Request, resp: Response, id: str) -> None:
        _stat(req, resp, id, False)

    r.add("HEAD", "/containers/{id}/archive", stat_head)
    r.add("GET", "/containers/{id}/archive", stat_get)

    @r.route("PUT", "/containers/{id}/archive")
    def put_archive(req: Request, resp: Response, id: str) -> None:
        c = engine.get(id)
        path = req.arg("path")
        if not path:
            raise BadRequest("path is required")
        # the body is extracted as it arrives, never held whole
        archive.extract(engine, c, path, req.body_chunks(),
                        no_overwrite_dir_non_dir=req.flag("noOverwriteDirNonDir"),
                        copy_uid_gid=req.flag("copyUIDGID"))
        resp.send(200)

    @r.route("POST", "/containers/prune")
    def prune(req: Request, resp: Response) -> None:
        resp.json(observe.prune_containers(engine, req.filters()))

    @r.route("GET", "/system/df")
    def df(req: Request, resp: Response) -> None:
        usage = observe.disk_usage(engine)
        usage["BuildCache"] = build.cache_records(engine)  # the builder's, above the engine
        resp.json(usage)
