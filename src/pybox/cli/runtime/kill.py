"""pybox-runtime kill [--all] ID [SIGNAL]   (SIGNAL: KILL, SIGKILL, 9; default TERM)"""

from __future__ import annotations

from pybox.runtime.container import Container
from pybox.runtime.signals import parse_signal

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    sig = parse_signal(args[1] if len(args) > 1 else "TERM")
    Container.load(ctx.root, args[0]).kill(sig, all_processes=opts.get("all", False))
    return 0
