"""``pybox-runtime``: runc's command line, as containerd (go-runc), podman (conmon)
and docker call it.

    pybox-runtime [global options] COMMAND [command options] ARGS...

A small declarative parser instead of argparse: argparse and gettext cost ~3 ms
of start-up on every call, and callers run the runtime for every container
operation.  It accepts what urfave/cli (runc's parser) accepts: ``--flag value``,
``--flag=value``, single-dash long flags (``-bundle``), boolean ``--flag`` and
``--flag=true|false``, options before positional arguments, ``--`` to stop.
Each command lives in its own module, imported only when that command runs.
"""

from __future__ import annotations

import os
import sys

from pybox import OCI_VERSION, __version__
from pybox.errors import PyboxError, UsageError
from pybox.runtime import log as logmod

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.runtime.options import CommandOptions, GlobalOptions, OptionTable

PROG = "pybox-runtime"

# name -> (destination, kind); kind: "str", "bool", "int", "list"
GLOBAL_OPTIONS = {
    "root": ("root", "str"),
    "log": ("log", "str"),
    "log-format": ("log_format", "str"),
    "debug": ("debug", "bool"),
    "systemd-cgroup": ("systemd_cgroup", "bool"),
    "rootless": ("rootless", "str"),
    "criu": ("criu", "str"),
    "help": ("help", "bool"),
    "h": ("help", "bool"),
    "version": ("version", "bool"),
    "v": ("version", "bool"),
}

_CREATE_OPTS = {
    "bundle": ("bundle", "str"), "b": ("bundle", "str"),
    "pid-file": ("pid_file", "str"),
    "console-socket": ("console_socket", "str"),
    "pidfd-socket": ("pidfd_socket", "str"),
    "no-pivot": ("no_pivot", "bool"),
    "no-new-keyring": ("no_new_keyring", "bool"),
    "preserve-fds": ("preserve_fds", "int"),
}


class Command:
    """One command: the module that runs it, its help, flags and argument count."""

    def __init__(self, module: str, summary: str, usage: str, options: OptionTable | None = None,
                 min_args: int = 1, max_args: int | None = 1) -> None:
        self.module = module
        self.summary = summary
        self.usage = usage
        self.options = dict(options or {})
        self.options.setdefault("help", ("help", "bool"))
        self.options.setdefault("h", ("help", "bool"))
        self.min_args = min_args
        self.max_args = max_args  # None: unlimited (exec's command)


COMMANDS = {
    "create": Command("create", "create a container", "create [options] <container-id>",
                      _CREATE_OPTS),
    "start": Command("start", "start the user program of a created container",
                     "start <container-id>"),
    "state": Command("state", "output the state of a container", "state <container-id>"),
    "kill": Command("kill", "send a signal to the container's init process",
                    "kill [--all] <container-id> [signal]",
                    {"all": ("all", "bool"), "a": ("all", "bool")}, 1, 2),
    "delete": Command("delete", "delete the container's resources",
                      "delete [--force] <container-id>",
                      {"force": ("force", "bool"), "f": ("force", "bool")}),
    "run": Command("run", "create and start a container", "run [options] <container-id>",
                   dict(_CREATE_OPTS, **{"detach": ("detach", "bool"), "d": ("detach", "bool"),
                                         "keep": ("keep", "bool")})),
    "exec": Command("exec", "run a new process inside a container",
                    "exec [options] <container-id> <command> [args...] | exec -p process.json "
                    "<container-id>",
                    {"process": ("process", "str"), "p": ("process", "str"),
                     "tty": ("tty", "bool"), "t": ("tty", "bool"),
                     "detach": ("detach", "bool"), "d": ("detach", "bool"),
                     "pid-file": ("pid_file", "str"),
                     "console-socket": ("console_socket", "str"),
                     "env": ("env", "list"), "e": ("env", "list"),
                     "cwd": ("cwd", "str"),
                     "user": ("user", "str"), "u": ("user", "str"),
                     "additional-gids": ("additional_gids", "list"),
                     "g": ("additional_gids", "list"),
                     "cap": ("cap", "list"), "c": ("cap", "list"),
                     "no-new-privs": ("no_new_privs", "bool"),
                     "preserve-fds": ("preserve_fds", "int"),
                     "process-label": ("process_label", "str"),
                     "apparmor": ("apparmor", "str"),
                     "ignore-paused": ("ignore_paused", "bool")}, 1, None),
    "pause": Command("pause", "suspend all processes of a container (cgroup freezer)",
                     "pause <container-id>"),
    "resume": Command("resume", "resume a paused container", "resume <container-id>"),
    "ps": Command("ps", "show the processes of a container",
                  "ps [--format table|json] <container-id> [ps options]",
                  {"format": ("format", "str"), "f": ("format", "str")}, 1, None),
    "events": Command("events", "stream a container's stats and OOM events as JSON lines",
                      "events [--stats] [--interval DURATION] <container-id>",
                      {"stats": ("stats", "bool"), "interval": ("interval", "str")}),
    "update": Command("update", "change a running container's resource limits",
                      "update [-r resources.json|-] [--memory M ...] <container-id>",
                      dict({"resources": ("resources", "str"), "r": ("resources", "str")},
                           **{name: (name.replace("-", "_"), "str") for name in (
                               "blkio-weight", "cpu-period", "cpu-quota", "cpu-share",
                               "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus",
                               "cpuset-mems", "cpu-idle", "kernel-memory",
                               "kernel-memory-tcp", "memory", "memory-reservation",
                               "memory-swap", "pids-limit", "l3-cache-schema",
                               "mem-bw-schema")})),
    "features": Command("features", "show what this runtime supports (runtime-spec features)",
                        "features", {}, 0, 0),
    "list": Command("list", "list containers started by this runtime with the given root",
                    "list [--format table|json] [--quiet]",
                    {"format": ("format", "str"), "f": ("format", "str"),
                     "quiet": ("quiet", "bool"), "q": ("quiet", "bool")}, 0, 0),
    "spec": Command("spec", "create a new specification file (config.json)",
                    "spec [--bundle DIR] [--rootless]",
                    {"bundle": ("bundle", "str"), "b": ("bundle", "str"),
                     "rootless": ("rootless", "bool")}, 0, 0),
}
ALIASES = {"ls": "list"}

_TRUE = ("1", "t", "true", "yes")
_FALSE = ("0", "f", "false", "no")


def _parse_options(argv: list[str], i: int, table: OptionTable, out: Any,
                   stop_at_positional: bool = True) -> int:
    """Consume options from argv[i:] into out (a GlobalOptions or CommandOptions,
    written by the table's destination names); return the index of the first
    positional argument."""
    n = len(argv)
    while i < n:
        arg = argv[i]
        if arg == "--":
            return i + 1
        if not arg.startswith("-") or arg == "-":
            return i
        name, eq, value = arg.lstrip("-").partition("=")
        spec = table.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: {arg.split('=')[0]}")
        dest, kind = spec
        if kind == "bool":
            if eq:
                low = value.lower()
                if low not in _TRUE + _FALSE:
                    raise UsageError(f"invalid boolean value {value!r} for {arg}")
                out[dest] = low in _TRUE
            else:
                out[dest] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= n:
                raise UsageError(f"flag needs an argument: -{name}")
            value = argv[i + 1]
            i += 2
        else:
            i += 1
        if kind == "int":
            try:
                out[dest] = int(value)
            except ValueError:
                raise UsageError(f"invalid value {value!r} for flag -{name}: "
                                 "must be an integer") from None
        elif kind == "list":
            out.setdefault(dest, []).append(value)
        else:
            out[dest] = value
    return i


def parse(argv: list[str]) -> tuple[GlobalOptions, str | None, CommandOptions, list[str]]:
    """-> (global_options, command_name or None, command_options, positionals)"""
    g: GlobalOptions = {}
    i = _parse_options(argv, 0, GLOBAL_OPTIONS, g)
    if i >= len(argv):
        return g, None, {}, []
    name = ALIASES.get(argv[i], argv[i])
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise UsageError(f"no such command: {argv[i]!r} (see '{PROG} --help')")
    opts: CommandOptions = {}
    j = _parse_options(argv, i + 1, cmd.options, opts)
    args = list(argv[j:])
    if cmd.max_args is not None and len(args) > cmd.min_args:
        # runc accepts flags after the id too (e.g. `kill ID --all` is not allowed,
        # but `delete ID --force` is common in scripts): parse trailing options.
        rest = []
        k = 0
        while k < len(args):
            if args[k].startswith("-") and len(args[k]) > 1 and not _is_number(args[k]):
                k = _parse_options(args, k, cmd.options, opts)
                continue
            rest.append(args[k])
            k += 1
        args = rest
    if opts.get("help"):
        return g, name, opts, args
    if len(args) < cmd.min_args or (cmd.max_args is not None and len(args) > cmd.max_args):
        if cmd.min_args == cmd.max_args:
            want = f"exactly {cmd.min_args}"
        elif cmd.max_args is None:
            want = f"at least {cmd.min_args}"
        else:
            want = f"{cmd.min_args} to {cmd.max_args}"
        raise UsageError(f'"{name}" requires {want} argument(s); usage: {PROG} {cmd.usage}')
    return g, name, opts, args


def _is_number(s: str) -> bool:
    return s.lstrip("-").isdigit()


def usage_text() -> str:
    lines = [f"usage: {PROG} [global options] COMMAND [options] ARGS...", "",
             "An OCI runtime compatible with runc's command line.", "", "commands:"]
    for name, cmd in COMMANDS.items():
        lines.append(f"   {name:<10} {cmd.summary}")
    lines += ["", "global options:",
              "   --root DIR            state directory (default /run/pybox-runtime)",
              "   --log FILE            log file (default: stderr)",
              "   --log-format FORMAT   text or json (default text)",
              "   --debug               log debug messages",
              "   --systemd-cgroup      cgroupsPath is slice:prefix:name (needs systemd)",
              "   --version, -v         print the version", ""]
    return "\n".join(lines)


def version_text() -> str:
    v = sys.version_info
    return (f"{PROG} version {__version__}\nspec: {OCI_VERSION}\n"
            f"python: {v.major}.{v.minor}.{v.micro}\n")


class Context:
    """What every command gets: the global options, applied."""

    def __init__(self, g: GlobalOptions) -> None:
        from pybox.runtime.container import default_root  # noqa: PLC0415 -- not for --help/--version

        self.root = os.path.abspath(g.get("root") or default_root())
        self.debug = bool(g.get("debug"))
        self.systemd_cgroup = bool(g.get("systemd_cgroup"))
        self.rootless = g.get("rootless") or "auto"
        self.log_path = g.get("log")
        self.log_format = g.get("log_format") or "text"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    try:
        g, name, opts, args = parse(argv)
        fmt = g.get("log_format") or "text"
        if fmt not in ("text", "json"):
            raise UsageError(f"invalid log-format {fmt!r}: use text or json")
        logmod.current = logmod.Log(g.get("log"), fmt, bool(g.get("debug")), PROG)
        if g.get("version"):
            sys.stdout.write(version_text())
            return 0
        if name is None or g.get("help"):
            sys.stdout.write(usage_text())
            return 0 if g.get("help") or name is None and not argv else 1
        cmd = COMMANDS[name]
        if opts.get("help"):
            sys.stdout.write(f"usage: {PROG} {cmd.usage}\n\n{cmd.summary}\n")
            return 0
        ctx = Context(g)
        if ctx.systemd_cgroup:
            _check_systemd()
        module = __import__(f"pybox.cli.runtime.{cmd.module}", fromlist=["run"])
        code: int = module.run(ctx, opts, args) or 0
        return code
    except PyboxError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    logmod.current.error(message)
    sys.stderr.write(f"{PROG}: {message}\n")
    return 1


def _check_systemd() -> None:
    """--systemd-cgroup asks for cgroups managed through systemd's D-Bus API; we
    map slice:prefix:name onto cgroupfs paths ourselves, which is only sound when
    systemd is running to own them (and refused where it is not)."""
    if not os.path.isdir("/run/systemd/system"):
        raise UsageError("--systemd-cgroup: systemd is not running on this host "
                         "(no /run/systemd/system); use the default cgroupfs driver")
