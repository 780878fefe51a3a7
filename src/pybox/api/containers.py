"""/containers/... and /exec/... endpoints: docker's JSON shapes and stream
semantics on top of pybox.engine (see ../shared/docs/docker-api/README.md for
what the clients send and expect)."""

import socket
from typing import cast

from pybox.api import schema, websocket
from pybox.api.server import Handler, PrefixedSocket, Request, Response, Router
from pybox.engine import spec as specmod
from pybox.engine.attach import attach_detach_keys, stdcopy
from pybox.engine.engine import Engine
from pybox.engine.timefmt import parse_timestamp
from pybox.errors import BadRequest, Conflict, NotFound
from pybox.formats import fastjson

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


# dockerd's acceptedPsFilterTags
LIST_FILTERS = {"ancestor", "before", "exited", "health", "id", "isolation", "label", "name",
                "network", "publish", "since", "status", "volume", "expose", "is-task"}


def _client_socket(sock: socket.socket, trailing: bytes) -> socket.socket:
    """A hijacked connection for the engine: a PrefixedSocket (the bytes h11
    had read ahead come first) stands in for the socket, forwarding the rest."""
    return cast(socket.socket, PrefixedSocket(sock, trailing))


def register(router: Router, engine: Engine) -> None:
    r = router

    @r.route("GET", "/containers/json")
    def list_containers(req: Request, resp: Response) -> None:
        filters = req.filters()
        schema.check_filters(filters, LIST_FILTERS)
        limit = schema.atoi(req, "limit")
        items = engine.list(all_=req.flag("all"), limit=-1 if limit is None else limit,
                            size=req.flag("size"), filters=filters)
        resp.json([schema.render(item, schema.SUMMARY) for item in items])

    @r.route("POST", "/containers/create")
    def create(req: Request, resp: Response) -> None:
        body = schema.read_create(req)  # typed as dockerd types it, or a 400
        # --platform (API 1.41+): parsed before anything, checked against the image
        platform = specmod.parse_platform(req.arg("platform") or "") \
            if req.api_at_least((1, 41)) else None
        if not req.api_at_least((1, 43)):  # dockerd: Annotations came with API 1.43
            (body.get("HostConfig") or {}).pop("Annotations", None)
        cid, warnings = engine.create(body, name=req.arg("name") or None, platform=platform)
        resp.json({"Id": cid, "Warnings": warnings}, 201)

    @r.route("GET", "/containers/{id}/json")
    def inspect(req: Request, resp: Response, id: str) -> None:
        resp.json(schema.render(engine.inspect(id, size=req.flag("size")),
                                schema.CONTAINER_JSON))

    @r.route("POST", "/containers/{id}/start")
    def start(req: Request, resp: Response, id: str) -> None:
        if len(req.body()) > 7:  # dockerd: no start options in a body since API 1.24
            raise BadRequest("starting container with non-empty request body was deprecated "
                             "since API v1.22 and removed in v1.24")
        engine.start(id)
        resp.empty(204)

    @r.route("POST", "/containers/{id}/stop")
    def stop(req: Request, resp: Response, id: str) -> None:
        engine.stop(id, timeout=schema.atoi(req, "t"))
        resp.empty(204)

    @r.route("POST", "/containers/{id}/restart")
    def restart(req: Request, resp: Response, id: str) -> None:
        engine.restart(id, timeout=schema.atoi(req, "t"))
        resp.empty(204)

    @r.route("POST", "/containers/{id}/kill")
    def kill(req: Request, resp: Response, id: str) -> None:
        engine.kill(id, req.arg("signal") or None)
        resp.empty(204)

    @r.route("POST", "/containers/{id}/pause")
    def pause(req: Request, resp: Response, id: str) -> None:
        engine.pause(id)
        resp.empty(204)

    @r.route("POST", "/containers/{id}/unpause")
    def unpause(req: Request, resp: Response, id: str) -> None:
        engine.unpause(id)
        resp.empty(204)

    @r.route("DELETE", "/containers/{id*}")  # a link's name is PARENT/ALIAS
    def remove(req: Request, resp: Response, id: str) -> None:
        if req.flag("link"):  # docker rm --link: the legacy link only (engine/networking.py)
            engine.network.remove_link(id)
        else:
            engine.remove(id, force=req.flag("force"), volumes=req.flag("v"))
        resp.empty(204)

    @r.route("POST", "/containers/{id}/rename")
    def rename(req: Request, resp: Response, id: str) -> None:
        name = req.arg("name")
        if not name:
            raise BadRequest("a new name is required")
        engine.rename(id, name)
        resp.empty(204)

    @r.route("POST", "/containers/{id}/wait")
    def wait(req: Request, resp: Response, id: str) -> None:
        condition = req.arg("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadRequest(f'invalid condition: "{condition}"')
        # 404 before the 200 headers; the exits so far counted before them too:
        # the 200 is the CLI's signal to start, and a container that exited
        # before the wait was parked made a next-exit wait hang forever
        since = engine.exit_count(id)
        # parked, not a thread: a wait may last as long as its container runs
        write, end = resp.stream(200, "application/json", long_lived=False)

        def done(code: int, error: str | None) -> None:  # may hold the container's lock
            result = fastjson.dumps({"Error": {"Message": error} if error else None,
                                     "StatusCode": code}).encode() + b"\n"

            def finish() -> None:
                write(result)
                end()

            resp.resume(finish)

        resp.park(engine.wait_parked(id, condition, done, since))

    @r.route("POST", "/containers/{id}/resize")
    def resize(req: Request, resp: Response, id: str) -> None:
        engine.resize(id, schema.uint32_arg(req, "h", "height"),
                      schema.uint32_arg(req, "w", "width"))
        resp.send(200)

    @r.route("POST", "/containers/{id}/attach")
    def attach(req: Request, resp: Response, id: str) -> None:
        attach_detach_keys(req.arg("detachKeys"))  # dockerd's first check (400)
        c = engine.get(id)
        if c.state.paused:
            raise Conflict(f"container {id} is paused, unpause the container before attach")
        tty = bool(c.config.get("Tty"))
        stream = req.flag("stream")
        logs = req.flag("logs")
        def hijack() -> socket.socket:
            # dockerd: the multiplexed media type from API 1.42 (the framing is the same)
            media = RAW if tty or not req.api_at_least((1, 42)) else MULTIPLEXED
            return _client_socket(*resp.hijack(media))

        if not stream and not logs:  # dockerd: the upgrade, then the end
            hijack().shutdown(socket.SHUT_WR)
            return
        if not stream:
            engine.attach_logs(id, hijack(), stdout=req.flag("stdout"), stderr=req.flag("stderr"))
            return
        # the 101 goes out once the session is registered: the CLI sends start as
        # soon as it has it, and the program's first output must not be missed
        engine.attach(id, hijack, stdin=req.flag("stdin"), stdout=req.flag("stdout"),
                      stderr=req.flag("stderr"), logs=logs,
                      detach_keys=req.arg("detachKeys"))

    websocket.register(r, engine)  # GET /containers/{id}/attach/ws

    @r.route("GET", "/containers/{id}/logs")
    def logs(req: Request, resp: Response, id: str) -> None:
        c = engine.get(id)
        stdout, stderr = req.flag("stdout"), req.flag("stderr")
        if not stdout and not stderr:
            raise BadRequest("You must choose at least one stream")
        tty = bool(c.config.get("Tty"))
        # a container without a json-file log is a 400 here, before the 200
        entries = engine.logs(id, stdout=stdout, stderr=stderr, follow=req.flag("follow"),
                              since=parse_timestamp(req.arg("since")),
                              until=parse_timestamp(req.arg("until")),
                              tail=req.arg("tail", "all"), timestamps=req.flag("timestamps"),
                              cancelled=req.client_gone, details=req.flag("details"))
        close = getattr(entries, "close", None)  # a generator's: its files, its follow
        write, end = resp.stream(200, RAW if tty else MULTIPLEXED)
        try:
            for stream, data in entries:
                write(data if tty else stdcopy(stream, data))
        finally:
            if close is not None:
                close()
        end()

    # -- exec -------------------------------------------------------------------
    @r.route("POST", "/containers/{id}/exec")
    def exec_create(req: Request, resp: Response, id: str) -> None:
        body = schema.read_json(req, schema.EXEC_OPTIONS)
        if not body.get("Cmd"):
            raise BadRequest("No exec command specified")
        resp.json({"Id": engine.exec_create(id, body)}, 201)

    @r.route("POST", "/exec/{id}/start")
    def exec_start(req: Request, resp: Response, id: str) -> None:
        body = schema.read_json(req, schema.EXEC_START)
        e = engine.get_exec(id)
        e.check_container()  # (dockerd's ExecExists: before the hijack)
        detach = bool(body.get("Detach"))
        if detach:  # (without Upgrade, not detached: dockerd's raw 200, as the hijack gives)
            e.start(None, detach=True)
            resp.send(200)
            return
        # the START request's Tty frames the stream (dockerd's router), whatever
        # the exec was created with
        tty = bool(body.get("Tty"))
        sock, trailing = resp.hijack(RAW if tty or not req.api_at_least((1, 42))
                                     else MULTIPLEXED)
        client = _client_socket(sock, trailing)
        # dockerd: the start's ConsoleSize only with its Tty, from API 1.42
        size = body.get("ConsoleSize") if tty and req.api_at_least((1, 42)) else None
        try:
            e.start(client, detach=False, tty=tty, console_size=size)
        except Exception as err:  # noqa: BLE001 - the stream is all the client has
            msg = f"{err}\r\n".encode()  # dockerd: on stdout
            try:
                client.sendall(msg if tty else stdcopy(1, msg))
            except OSError:
                pass
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    @r.route("POST", "/exec/{id}/resize")
    def exec_resize(req: Request, resp: Response, id: str) -> None:
        engine.get_exec(id).resize(schema.uint32_arg(req, "h", "height"),
                                   schema.uint32_arg(req, "w", "width"))
        resp.send(200)

    @r.route("GET", "/exec/{id}/json")
    def exec_inspect(req: Request, resp: Response, id: str) -> None:
        resp.json(engine.get_exec(id).inspect())

    # -- unknown object kinds docker inspect probes ------------------------------------
    def missing(kind: str) -> Handler:
        def handler(req: Request, resp: Response, name: str) -> None:
            raise NotFound(f"{kind} {name} not found")
        return handler

    r.add("GET", "/networks/{name}", missing("network"))  # (plugins: api/swarm.py)
