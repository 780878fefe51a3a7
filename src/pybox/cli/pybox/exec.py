"""``pybox exec``: the docker CLI's sequence (README "docker exec"):

    GET /containers/{name}/json          (is it there, is it running)
    POST /containers/{name}/exec         {"User",..,"Cmd"} -> {"Id"}
    POST /exec/{id}/start                {"Detach":false,"Tty":b} + Upgrade -> 101
      with -t: POST /exec/{id}/resize right away and on SIGWINCH
    ... stream until EOF ...
    GET /exec/{id}/json                  -> ExitCode = our exit status

``-d``: start with {"Detach":true} and no upgrade (200), nothing printed.
"""

from __future__ import annotations

import os

from pybox.cli.pybox.common import container_path
from pybox.cli.pybox.container_opts import env_value, parse_env_file
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.session import (
    DEFAULT_DETACH_KEYS,
    RawTerminal,
    SignalCatcher,
    detach_key_bytes,
    is_terminal,
    pump,
    terminal_size,
)
from pybox.errors import ClientError, ExitStatus

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.pybox import Cli


def cmd_exec(cli: Cli, argv: list[str], command: str) -> int:

    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER COMMAND [ARG...]",
                 "Execute a command in a running container", interspersed=False, min_args=2)
    fs.add("detach", "d", "bool", help="Detached mode: run command in the background")
    fs.add("detach-keys", help="Override the key sequence for detaching a container")
    fs.add("env", "e", "list", help="Set environment variables")
    fs.add("env-file", kind="list", help="Read in a file of environment variables")
    fs.add("interactive", "i", "bool", help="Keep STDIN open even if not attached")
    fs.add("privileged", kind="bool", help="Give extended privileges to the command")
    fs.add("tty", "t", "bool", help="Allocate a pseudo-TTY")
    fs.add("user", "u", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")")
    fs.add("workdir", "w", help="Working directory inside the container")
    opts = fs.parse(argv)
    name, cmd = opts.args[0], opts.args[1:]
    client = cli.client
    if opts.tty and opts.interactive and not opts.detach and not is_terminal(0):
        raise ClientError("the input device is not a TTY")
    keys = None
    if opts.tty and opts.interactive and not opts.detach:
        try:
            keys = detach_key_bytes(opts.detach_keys or DEFAULT_DETACH_KEYS)
        except ValueError as err:
            raise ClientError(str(err)) from None
    env = []
    for path in opts.env_file:
        env.extend(parse_env_file(path, os.environ))
    env.extend(env_value(e, os.environ) for e in opts.env)
    client.get_json(container_path(name, "/json"))
    stdin = opts.interactive and not opts.detach
    body = {"User": opts.user, "Privileged": opts.privileged, "Tty": opts.tty,
            "ConsoleSize": None, "AttachStdin": stdin,
            "AttachStderr": not opts.detach, "AttachStdout": not opts.detach,
            "Detach": opts.detach, "DetachKeys": opts.detach_keys, "Env": env or None,
            "WorkingDir": opts.workdir, "Cmd": cmd}
    size = terminal_size(1) if opts.tty and not opts.detach and is_terminal(1) else None
    if client.at_least("1.42") and size:
        body["ConsoleSize"] = list(size)
    else:
        del body["ConsoleSize"]     # a nil pointer with omitempty in docker's ExecOptions
    created = client.request("POST", container_path(name, "/exec"), json=body).json() or {}
    exec_id = created.get("Id")
    if not exec_id:
        raise ClientError("exec ID empty")
    start_body = {"Detach": opts.detach, "Tty": opts.tty}
    if client.at_least("1.42") and size:
        start_body["ConsoleSize"] = list(size)
    if opts.detach:
        client.request("POST", f"/exec/{exec_id}/start", json=start_body).read()
        return 0
    stream = client.hijack(f"/exec/{exec_id}/start", json=start_body)
    if not stdin:
        stream.close_write()
    raw = None
    signals = None
    stdout_tty = is_terminal(1)

    def resize() -> None:
        size = terminal_size(1)
        if size:
            try:
                client.request("POST", f"/exec/{exec_id}/resize",
                               query={"h": size[0], "w": size[1]}).read()
            except ClientError:
                pass

    try:
        if opts.tty and stdout_tty:
            resize()
            signals = SignalCatcher(("WINCH",))
        if opts.tty and stdin and is_terminal(0):
            raw = RawTerminal(0)
        cli.flush()
        result = pump(stream, tty=opts.tty, stdin_fd=0 if stdin else None, detach_keys=keys,
                      signals=signals, on_signals=lambda nums: resize())
        stream.close()
    finally:
        if raw is not None:
            raw.restore()
        if signals is not None:
            signals.close()
    if result == "detached":  # as docker exec: the message, exit status 1
        raise ClientError("read escape sequence")
    info = client.get_json(f"/exec/{exec_id}/json") or {}
    status = info.get("ExitCode") or 0
    if info.get("Running"):
        status = 0
    if status:
        raise ExitStatus(int(status))
    return 0
