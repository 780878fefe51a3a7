"""pybox-runtime pause ID: freeze every process of the container."""

from __future__ import annotations

from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    Container.load(ctx.root, args[0]).pause()
    return 0
