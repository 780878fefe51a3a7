"""Command-line flags with the docker CLI's (spf13/pflag's) rules.

argparse would cost ~8 ms of imports per call and parses differently from
docker; this is the subset pflag semantics the docker CLI exposes:

* ``--name value``, ``--name=value``; booleans ``--rm``, ``--rm=false`` (a bool
  never takes the next argument);
* shorthands combine: ``-it``, ``-dit``; a value-taking shorthand eats the rest
  of the group or the next argument: ``-eFOO=1``, ``-e FOO=1``, ``-e=FOO=1``;
* ``--`` ends the flags; ``-`` alone is an argument;
* ``interspersed=False`` (run, create, exec): the first argument ends the flags,
  so ``pybox run IMG ls -l`` passes ``-l`` to ``ls``; other commands accept flags
  after their arguments (``pybox rm c1 -f``);
* which flags were given explicitly is recorded (``changed``): docker sends some
  fields only then (``StopTimeout``, ``Init``, ``Entrypoint`` reset).

Errors use docker's wording, and exit 125 as docker's flag errors do.
"""

from __future__ import annotations

from pybox.errors import ClientError, FlagError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class Flag:
    __slots__ = ("name", "short", "kind", "default", "help", "convert", "dest", "metavar",
                 "hidden")

    def __init__(self, name: str, short: str | None, kind: str, default: Any, help: str,
                 convert: Callable[[Any], Any] | None, metavar: str | None,
                 hidden: bool) -> None:
        self.name = name
        self.short = short
        self.kind = kind            # "bool", "string", "int", "list"
        self.default = default
        self.help = help
        self.convert = convert      # value -> converted (raises ValueError(msg))
        self.dest = name.replace("-", "_")
        self.metavar = metavar
        self.hidden = hidden

    @property
    def display(self) -> str:
        return f"-{self.short}, --{self.name}" if self.short else f"--{self.name}"


class Options:
    """Parsed values as attributes, plus ``args`` and ``changed``."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.changed: set[str] = set()

    def given(self, name: str) -> bool:
        return name in self.changed

    def __getattr__(self, name: str) -> Any:
        """Only for names no flag set (so an unknown one is still an AttributeError):
        the flags' values are attributes whose names the FlagSet decides."""
        raise AttributeError(name)


class FlagSet:
    def __init__(self, command: str, usage: str, description: str = "", interspersed: bool = True,
                 min_args: int = 0, max_args: int | None = None, exact_args: int | None = None,
                 aliases: Sequence[str] = ()) -> None:
        self.command = command          # e.g. "pybox run"
        self.usage = usage              # e.g. "pybox run [OPTIONS] IMAGE [COMMAND] [ARG...]"
        self.description = description
        self.interspersed = interspersed
        self.min_args = min_args if exact_args is None else exact_args
        self.max_args = max_args if exact_args is None else exact_args
        self.aliases = aliases
        self.flags: dict[str, Flag] = {}
        self.shorts: dict[str, Flag] = {}
        self.add("help", kind="bool", help="Print usage")

    def add(self, name: str, short: str | None = None, kind: str = "string", default: Any = None,
            help: str = "", convert: Callable[[Any], Any] | None = None,
            metavar: str | None = None, hidden: bool = False) -> Flag:
        if default is None:
            default = {"bool": False, "int": 0, "list": None}.get(kind, "")
        flag = Flag(name, short, kind, default, help, convert, metavar, hidden)
        self.flags[name] = flag
        if short:
            self.shorts[short] = flag
        return flag

    # -- errors -----------------------------------------------------------------
    def flag_error(self, message: str) -> FlagError:
        return FlagError(f"{message}\n\nUsage:  {self.usage}\n\n"
                         f"Run '{self.command} --help' for more information")

    def args_error(self, message: str) -> ClientError:
        return ClientError(f"{self.command.split()[0]}: '{self.command}' {message}\n\n"
                           f"Usage:  {self.usage}\n\n"
                           f"See '{self.command} --help' for more information")

    # -- parsing ----------------------------------------------------------------
    def parse(self, argv: list[str]) -> Options:
        opts = Options()
        flag: Flag | None
        for flag in self.flags.values():
            value = flag.default
            if flag.kind == "list":
                value = list(value or [])
            setattr(opts, flag.dest, value)
        i, n = 0, len(argv)
        while i < n:
            arg = argv[i]
            if arg == "--":
                opts.args.extend(argv[i + 1:])
                break
            if not arg.startswith("-") or arg == "-":
                if not self.interspersed:
                    opts.args.extend(argv[i:])
                    break
                opts.args.append(arg)
                i += 1
                continue
            if arg.startswith("--"):
                name, eq, value = arg[2:].partition("=")
                flag = self.flags.get(name)
                if flag is None:
                    raise self.flag_error(f"unknown flag: --{name}")
                if flag.kind == "bool":
                    self._set(opts, flag, value if eq else "true", arg)
                    i += 1
                    continue
                if not eq:
                    if i + 1 >= n:
                        raise self.flag_error(f"flag needs an argument: --{name}")
                    value = argv[i + 1]
                    i += 1
                self._set(opts, flag, value, arg)
                i += 1
                continue
            # shorthand group
            j = 1
            consumed_next = False
            while j < len(arg):
                c = arg[j]
                flag = self.shorts.get(c)
                if flag is None:
                    if c == "h" and "help" in self.flags:
                        flag = self.flags["help"]
                    else:
                        raise self.flag_error(f"unknown shorthand flag: '{c}' in {arg}")
                rest = arg[j + 1:]
                if flag.kind == "bool":
                    if rest.startswith("="):
                        self._set(opts, flag, rest[1:], arg)
                        break
                    self._set(opts, flag, "true", arg)
                    j += 1
                    continue
                if rest.startswith("="):
                    value = rest[1:]
                elif rest:
                    value = rest
                else:
                    if i + 1 >= n:
                        raise self.flag_error(f"flag needs an argument: '{c}' in -{c}")
                    value = argv[i + 1]
                    consumed_next = True
                self._set(opts, flag, value, arg)
                break
            i += 2 if consumed_next else 1
        if opts.help:
            raise HelpRequested(self.help_text())
        count = len(opts.args)
        if self.min_args and count < self.min_args:
            if self.max_args == self.min_args:
                raise self.args_error(f"requires exactly {self.min_args} "
                                      f"argument{'s' if self.min_args > 1 else ''}")
            raise self.args_error(f"requires at least {self.min_args} "
                                  f"argument{'s' if self.min_args > 1 else ''}")
        if self.max_args is not None and count > self.max_args:
            if self.max_args == 0:
                raise self.args_error("accepts no arguments")
            if self.max_args == self.min_args:
                raise self.args_error(f"requires exactly {self.max_args} "
                                      f"argument{'s' if self.max_args > 1 else ''}")
            raise self.args_error(f"requires at most {self.max_args} "
                                  f"argument{'s' if self.max_args > 1 else ''}")
        return opts

    def _set(self, opts: Options, flag: Flag, raw: str, arg: str) -> None:
        value: Any
        if flag.kind == "bool":
            if raw in _TRUE:
                value = True
            elif raw in _FALSE:
                value = False
            else:
                raise self.flag_error(f'invalid argument "{raw}" for "{flag.display}" flag: '
                                      f'strconv.ParseBool: parsing "{raw}": invalid syntax')
        elif flag.kind == "int":
            try:
                value = int(raw, 10)
            except ValueError:
                raise self.flag_error(f'invalid argument "{raw}" for "{flag.display}" flag: '
                                      f'strconv.ParseInt: parsing "{raw}": invalid syntax') \
                    from None
        else:
            value = raw
        if flag.convert is not None:
            try:
                value = flag.convert(value)
            except ValueError as err:
                raise self.flag_error(f'invalid argument "{raw}" for "{flag.display}" '
                                      f'flag: {err}') from None
        if flag.kind == "list":
            getattr(opts, flag.dest).append(value)
        else:
            setattr(opts, flag.dest, value)
        opts.changed.add(flag.name)

    # -- help ---------------------------------------------------------------------
    def help_text(self) -> str:
        lines = [f"\nUsage:  {self.usage}\n"]
        if self.description:
            lines.append(self.description + "\n")
        if self.aliases:
            lines.append("Aliases:\n  " + ", ".join(self.aliases) + "\n")
        shown = [f for f in self.flags.values() if not f.hidden]
        if shown:
            lines.append("Options:")
            rows = []
            for f in sorted(shown, key=lambda f: f.name):
                left = (f"-{f.short}, " if f.short else "    ") + f"--{f.name}"
                if f.kind != "bool":
                    left += " " + (f.metavar or {"int": "int", "list": "list"}.get(f.kind,
                                                                                  "string"))
                rows.append((left, f.help))
            width = max(len(left) for left, _ in rows)
            for left, text in rows:
                lines.append(f"  {left.ljust(width)}   {text}".rstrip())
        return "\n".join(lines) + "\n"


class HelpRequested(Exception):
    """``--help``: print the text to stdout and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
