"""Managed plugins (``docker plugin ...``): moby's plugin router
(daemon/server/router/plugin/plugin_routes.go) over engine/plugins.py.

The answers are dockerd's: the statuses and words of its errors, 204 for
create and set, 200 with an empty body for enable, disable and remove, JSON
progress streams for pull, upgrade and push (an error before the stream's
first line is the reply's, after it the stream's last line), and pull's and
upgrade's Docker-Plugin-Name header.
"""

import json
from typing import Any

from pybox.api.registry import ProgressStream
from pybox.api.server import Request, Response, Router
from pybox.engine.engine import Engine
from pybox.engine.plugins import go_atoi, local_name, remote_reference
from pybox.errors import BadRequest, PyboxError
from pybox.formats import gojson
from pybox.images.auth import ANONYMOUS, Credentials, decode_registry_auth


def _credentials(req: Request) -> Credentials:
    """X-Registry-Auth; one that does not decode is ignored, as moby's
    parseHeaders ignores it."""
    try:
        return decode_registry_auth(req.headers.get("x-registry-auth", ""))
    except PyboxError:
        return ANONYMOUS


def _privileges_body(req: Request) -> list[Any] | None:
    """pull's and upgrade's body: the privileges the user accepted (a JSON
    list, compared with the plugin's; null: none)."""
    data = req.body()
    if not data.strip():
        raise PyboxError("failed to parse privileges: EOF")
    try:
        value = json.loads(data)
    except json.JSONDecodeError as e:
        text = data.decode(errors="replace")
        raise PyboxError(f"failed to parse privileges: {gojson.syntax_error(text, e, stream=True)}") from None
    except ValueError as e:
        raise PyboxError(f"failed to parse privileges: {e}") from None
    if value is not None and not isinstance(value, list):
        kind = {dict: "object", str: "string", bool: "bool"}.get(type(value), "number")
        raise PyboxError(f"failed to parse privileges: json: cannot unmarshal {kind} into "
                         "Go value of type types.PluginPrivileges")
    return value if value is not None else []


def _own_status(error: PyboxError) -> int:
    """moby's plugin router answers an error before a stream's first line
    with the error's own status."""
    return error.http_status


def _set_args(req: Request) -> list[str]:
    """set's body: a JSON list of strings (httputils.ReadJSON's errors)."""
    data = req.body()
    if not data.strip():
        raise BadRequest("got EOF while reading request body")
    try:
        value: Any = json.loads(data)
    except json.JSONDecodeError as e:
        raise BadRequest(gojson.syntax_error(data.decode(errors="replace"), e, stream=True)) from None
    except ValueError as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    if value is None:
        return []
    if not isinstance(value, list):
        kind = {dict: "object", str: "string", bool: "bool"}.get(type(value), "number")
        raise BadRequest(f"json: cannot unmarshal {kind} into Go value of type []string")
    for item in value:
        if not isinstance(item, str):
            kind = {dict: "object", list: "array", bool: "bool"}.get(type(item), "number")
            raise BadRequest(f"json: cannot unmarshal {kind} into Go value of type string")
    return value


def register(router: Router, engine: Engine) -> None:
    r = router
    plugins = engine.plugins

    @r.route("GET", "/plugins")
    def list_plugins(req: Request, resp: Response) -> None:
        resp.json(plugins.list_plugins(req.filters()))

    @r.route("GET", "/plugins/privileges")
    def privileges(req: Request, resp: Response) -> None:
        resp.json(plugins.privileges(req.arg("remote", ""), _credentials(req)))

    @r.route("POST", "/plugins/create", stream_body=True)
    def create(req: Request, resp: Response) -> None:
        plugins.create(req.arg("name", ""), req.body_chunks())
        resp.empty(204)

    def fetch(req: Request, resp: Response, name: str, upgrade: bool) -> None:
        """pull and upgrade: the local name goes out in Docker-Plugin-Name
        with whatever the answer is, as moby sets it before the fetch."""
        privileges = _privileges_body(req)
        ref, tag = remote_reference(req.arg("remote", ""))
        stream = ProgressStream(resp, [("Docker-Plugin-Name", local_name(ref, tag, name))],
                                _own_status)
        stream.run(lambda: plugins.pull(req.arg("remote", ""), name, _credentials(req), privileges,
                                        upgrade=upgrade, progress=stream))

    @r.route("POST", "/plugins/pull")
    def pull(req: Request, resp: Response) -> None:
        fetch(req, resp, req.arg("name", ""), upgrade=False)

    @r.route("GET", "/plugins/{name*}/json")
    def inspect(req: Request, resp: Response, name: str) -> None:
        resp.json(plugins.inspect(name))

    @r.route("DELETE", "/plugins/{name*}")
    def remove(req: Request, resp: Response, name: str) -> None:
        plugins.remove(name, req.flag("force"))
        resp.empty(200)

    @r.route("POST", "/plugins/{name*}/enable")
    def enable(req: Request, resp: Response, name: str) -> None:
        plugins.enable(name, go_atoi(req.arg("timeout", "")))
        resp.empty(200)

    @r.route("POST", "/plugins/{name*}/disable")
    def disable(req: Request, resp: Response, name: str) -> None:
        plugins.disable(name, req.flag("force"))
        resp.empty(200)

    @r.route("POST", "/plugins/{name*}/set")
    def set_(req: Request, resp: Response, name: str) -> None:
        plugins.set(name, _set_args(req))
        resp.empty(204)

    @r.route("POST", "/plugins/{name*}/upgrade")
    def upgrade(req: Request, resp: Response, name: str) -> None:
        fetch(req, resp, name, upgrade=True)

    @r.route("POST", "/plugins/{name*}/push")
    def push(req: Request, resp: Response, name: str) -> None:
        ref, pid = plugins.push_check(name)
        stream = ProgressStream(resp, refused=_own_status)
        stream({"status": f"The push refers to repository [{ref.familiar_name}]"})
        stream.run(lambda: plugins.push(ref, pid, _credentials(req), progress=stream))
