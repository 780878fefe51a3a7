"""Helpers several command modules share: object paths, docker's "for each
name, print it or its error" loop, filters, image references, pulls."""

from __future__ import annotations

import os
import sys

from pybox.cli.pybox.client import path_escape
from pybox.cli.pybox.session import is_terminal, write_all
from pybox.errors import ClientError, DaemonError, ExitStatus
from pybox.formats import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pybox.cli.pybox import Cli
    from pybox.cli.pybox.client import Response


def container_path(name: str, suffix: str = "") -> str:
    return f"/containers/{path_escape(name)}{suffix}"


def image_path(name: str, suffix: str = "") -> str:
    return f"/images/{path_escape(name)}{suffix}"


def for_each(cli: Cli, names: list[str], action: Callable[[str], object],
             fail_summary: str | None = None) -> int:
    """Run ``action(name)`` for every name; print the name (or what ``action``
    returns, if a string) on success and ``Error response from daemon: ...`` on
    failure, as docker's stop/kill/rm/pause do; exit 1 if any failed."""
    failed = []
    for name in names:
        try:
            shown = action(name)
        except ClientError as err:
            cli.flush()
            cli.err(f"{err}\n")
            failed.append(name)
            continue
        if shown is not False:
            cli.out(f"{shown if isinstance(shown, str) else name}\n")
    if failed:
        if fail_summary:
            raise ClientError(f"Error: {fail_summary}: {', '.join(failed)}")
        raise ExitStatus(1)
    return 0


def parse_filters(items: list[str] | None) -> str | None:
    """``--filter k=v`` (repeatable) -> docker's filters JSON
    ``{"k":{"v":true}}``, keys sorted as Go marshals maps."""
    if not items:
        return None
    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ClientError("bad format of filter (expected name=value)", exit_status=125)
        filters.setdefault(key.strip().lower(), {})[value] = True
    ordered = {k: {v: True for v in sorted(filters[k])} for k in sorted(filters)}
    return fastjson.dumps(ordered)


def print_json_stream(cli: Cli, resp: Response, to_stderr: bool = False) -> dict[str, Any] | None:
    """A JSON-messages stream (pull, import, load): print status/stream lines,
    raise on an error message.  Returns the last message."""
    write = cli.err if to_stderr else cli.out
    last = None
    for message in resp.iter_json():
        last = message
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise ClientError(detail.get("message") or message.get("error"))
        if "stream" in message:
            write(message["stream"])
        elif "status" in message:
            ident = message.get("id")
            progress = message.get("progress") or ""
            text = f"{ident}: {message['status']}" if ident else message["status"]
            if progress:
                text += " " + progress
            write(text + "\n")
        elif "aux" in message:
            continue
    return last


# -- image references ---------------------------------------------------------------
def split_reference(ref: str) -> tuple[str, str, str | None, str | None]:
    """-> (domain, path, tag or None, digest or None), docker's normalisation:
    ``busybox`` -> (docker.io, library/busybox, None, None)."""
    name, at, digest = ref.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if not path or path != path.lower():
        raise ClientError(f"invalid reference format: repository name ({path}) must be "
                          "lowercase" if path else "invalid reference format",
                          exit_status=125)
    return domain, path, tag, (digest if at else None)


def normalized_name(ref: str) -> str:
    domain, path, _, _ = split_reference(ref)
    return f"{domain}/{path}"


def familiar_repository(domain: str, path: str) -> str:
    """``docker.io``, ``library/busybox`` -> ``busybox`` (docker's FamiliarName)."""
    if domain == "docker.io":
        return path[len("library/"):] if path.startswith("library/") else path
    return f"{domain}/{path}"


def familiar_name(ref: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    domain, path, tag, digest = split_reference(ref)
    name = familiar_repository(domain, path)
    if digest:
        return f"{name}@{digest}"
    return f"{name}:{tag or 'latest'}"


def registry_auth(domain: str) -> str:
    """The X-Registry-Auth header for a pull from / push to ``domain``: the
    login ``pybox login`` / ``docker login`` stored, or anonymous."""
    from pybox.cli.pybox.credentials import (  # noqa: PLC0415 -- json, subprocess, dataclasses: ~10 ms that only a pull or push pays
        registry_auth_header,
    )

    return registry_auth_header(domain)


def drain_json_stream(resp: Response) -> None:
    """Read a JSON-messages stream without printing it (``-q``); raise its error."""
    for message in resp.iter_json():
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise ClientError(detail.get("message") or message.get("error"))


def pull_image(cli: Cli, ref: str, platform: str | None = None, quiet: bool = False,
               to_stderr: bool = False, all_tags: bool = False) -> None:
    """``POST /images/create`` for ``ref`` with the stored credentials for its
    registry; ``all_tags``: ``fromImage`` without a tag (every tag)."""
    domain, path, tag, digest = split_reference(ref)
    query = {"fromImage": f"{domain}/{path}"}
    if not all_tags:
        query["tag"] = digest or tag or "latest"
    if platform:
        query["platform"] = platform
    resp = cli.client.request("POST", "/images/create", query=query,
                              headers={"X-Registry-Auth": registry_auth(domain)})
    if quiet:
        drain_json_stream(resp)
        return
    print_json_stream(cli, resp, to_stderr=to_stderr)


def is_no_such_image(err: Exception) -> bool:
    return (isinstance(err, DaemonError) and err.status == 404
            and "No such image" in (err.message or ""))


def write_stream(cli: Cli, resp: Response, output: str | None, what: str) -> None:
    """A download (export, save) to ``output``, or to stdout unless it is a terminal;
    a file is written whole or not at all."""
    if not output or output == "-":
        if is_terminal(1):
            resp.close()
            raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or "
                              "redirect")
        cli.flush()
        for data in resp.iter_body():
            write_all(1, data)
        return
    tmp = output + ".pybox-tmp"
    try:
        with open(tmp, "wb") as f:
            for data in resp.iter_body():
                f.write(data)
        os.replace(tmp, output)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ClientError(f"failed to save {what}: {err}") from None


def confirm(cli: Cli, question: str) -> bool:
    """docker's prune prompt: only ``y`` or ``yes`` goes ahead."""
    cli.out(f"{question} [y/N] ")
    cli.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")
