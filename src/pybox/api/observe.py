"""Observing and changing containers: top, stats, update, changes, export,
commit, archive (docker cp), prune, system df."""

import tempfile

from pybox.errors import BadRequest
from pybox.formats import fastjson


def commit_config(body, container_config):
    """The image config of a commit: the request's Config over the container's
    (moby's merge, the same rules as a create over its image).  Docker's commit
    keeps what the container ran with -- its Cmd, Env, --health-cmd, labels --
    also when the client sends no Config (the docker CLI never does); taking
    only the parent image's config lost all of it."""
    from pybox.engine.spec import merge_image_config

    return merge_image_config(body if isinstance(body, dict) else {}, container_config)


def register(router, engine) -> None:
    from pybox.engine import archive, observe

    r = router

    @r.route("GET", "/containers/{id}/top")
    def top(req, resp, id):
        ps_args = req.arg("ps_args")
        if ps_args and "\x00" in ps_args:  # not an argument list ps can be given
            raise BadRequest(f"invalid ps_args: {ps_args!r}")
        resp.json(observe.top(engine, engine.get(id), ps_args))

    @r.route("GET", "/containers/{id}/stats")
    def stats(req, resp, id) -> None:
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
    def update(req, resp, id) -> None:
        from pybox.api import schema

        body = schema.read_json(req, schema.UPDATE_CONFIG)  # typed, or a 400
        warnings = observe.update(engine, engine.get(id), body)
        resp.json({"Warnings": warnings or None})

    @r.route("GET", "/containers/{id}/changes")
    def changes(req, resp, id) -> None:
        c = engine.get(id)
        # mount points the engine made (the /etc files, volume and bind targets)
        # are not the container's changes; docker keeps them in an init layer
        hidden = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
        hidden.update(m["Destination"] for m in c.record.get("Mounts") or ())
        changes = [ch for ch in engine.images.images.diff(c.id) if ch["Path"] not in hidden]
        resp.json(changes or None)

    @r.route("GET", "/containers/{id}/export")
    def export(req, resp, id) -> None:
        c = engine.get(id)
        with archive.RootView(engine, c):
            with tempfile.TemporaryFile(dir=engine.data_root) as tmp:
                engine.images.images.export(c.id, tmp)
                tmp.seek(0)
                resp.stream_file(tmp, "application/octet-stream")

    @r.route("POST", "/commit")
    def commit(req, resp) -> None:
        from pybox.api import schema

        body = schema.read_commit_config(req)  # a create request's Config, typed
        c = engine.get(req.arg("container") or "")
        repo = req.arg("repo")
        ref = None
        if repo:
            ref = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
        pause = req.flag("pause", default=True) and engine.pause_for_commit(c)
        try:
            with archive.RootView(engine, c):
                image_id = engine.images.images.commit(
                    c.id, reference=ref, changes=req.args("changes"),
                    message=req.arg("comment") or "", author=req.arg("author") or "",
                    config=commit_config(body, c.record["Config"]))
        finally:
            if pause:
                engine.unpause_after_commit(c)
        engine.events.emit("container", "commit", c.id, engine.attributes(c))
        resp.json({"Id": image_id}, 201)

    def _stat(req, resp, id, head):
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

    r.add("HEAD", "/containers/{id}/archive", lambda req, resp, id: _stat(req, resp, id, True))
    r.add("GET", "/containers/{id}/archive", lambda req, resp, id: _stat(req, resp, id, False))

    @r.route("PUT", "/containers/{id}/archive")
    def put_archive(req, resp, id):
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
    def prune(req, resp) -> None:
        resp.json(observe.prune_containers(engine, req.filters()))

    @r.route("GET", "/system/df")
    def df(req, resp) -> None:
        resp.json(observe.disk_usage(engine))
