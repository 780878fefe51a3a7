"""pybox-runtime exec [options] ID COMMAND [ARGS...]  |  exec -p process.json ID

Without -p, the process starts from the container's own config.json process
(env, user, cwd, capabilities, rlimits, no_new_privs) with the flags applied on
top, as runc does.  Foreground exec returns the process's exit status."""

from __future__ import annotations

import copy
import os

from pybox.errors import UsageError
from pybox.formats import fastjson
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def parse_user(text: str) -> dict[str, int]:
    uid, _, gid = text.partition(":")
    try:
        out = {"uid": int(uid)}
        if gid:
            out["gid"] = int(gid)
    except ValueError:
        raise UsageError(f"invalid --user {text!r}: use UID[:GID] (numbers)") from None
    return out


def build_process(container: Container, opts: CommandOptions, command: list[str],
                  ) -> dict[str, Any]:
    if opts.get("process"):
        path = opts["process"]
        try:
            with open(path, "rb") as f:
                process: dict[str, Any] = fastjson.loads(f.read())
        except OSError as e:
            raise UsageError(f"cannot read process file {path}: {e.strerror}") from None
        except ValueError as e:
            raise UsageError(f"process file {path} is not valid JSON: {e}") from None
        if command:
            raise UsageError("give either --process or a command, not both")
    else:
        if not command:
            raise UsageError("exec needs a command (or --process FILE)")
        process = copy.deepcopy(container.config.get("process") or {})
        process["args"] = command
        process.pop("consoleSize", None)
    if opts.get("tty"):
        process["terminal"] = True
    elif not opts.get("process"):
        process["terminal"] = False
    if opts.get("env"):
        process["env"] = list(process.get("env") or []) + opts["env"]
    if opts.get("cwd"):
        process["cwd"] = opts["cwd"]
    if opts.get("user"):
        user = dict(process.get("user") or {"uid": 0, "gid": 0})
        user.update(parse_user(opts["user"]))
        process["user"] = user
    if opts.get("additional_gids"):
        try:
            gids = [int(g) for g in opts["additional_gids"]]
        except ValueError:
            raise UsageError("--additional-gids takes numbers") from None
        process.setdefault("user", {"uid": 0, "gid": 0})["additionalGids"] = gids
    if opts.get("cap"):
        caps = process.setdefault("capabilities", {})
        for name in opts["cap"]:
            name = name if name.startswith("CAP_") else "CAP_" + name.upper()
            for kind in ("bounding", "effective", "permitted", "ambient"):
                caps.setdefault(kind, [])
                if name not in caps[kind]:
                    caps[kind].append(name)
    if opts.get("no_new_privs"):
        process["noNewPrivileges"] = True
    if opts.get("apparmor"):
        process["apparmorProfile"] = opts["apparmor"]
    return process


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    cid, command = args[0], args[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    c = Container.load(ctx.root, cid)
    process = build_process(c, opts, command)
    preserve = opts.get("preserve_fds", 0)
    listen = os.environ.get("LISTEN_FDS")
    if listen and listen.isdigit():
        preserve += int(listen)
    return c.exec(process, detach=opts.get("detach", False), pid_file=opts.get("pid_file"),
                  console_socket=opts.get("console_socket"), preserve_fds=preserve)
