"""pybox-runtime run [-d] [--bundle DIR] [--pid-file F] ... ID

In the foreground, waits for the container, forwards signals to it, deletes it
and exits with its status (128+N when it was killed by signal N)."""

from __future__ import annotations

from pybox.cli.runtime.create import create_options
from pybox.runtime import container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    return container.run(ctx.root, args[0], opts.get("bundle") or ".",
                         detach=opts.get("detach", False), **create_options(ctx, opts))
