"""pybox-runtime state ID: the runtime-spec state JSON, indented as runc prints it."""

from __future__ import annotations

import sys

from pybox.formats import fastjson
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    c = Container.load(ctx.root, args[0])
    sys.stdout.write(fastjson.dumps(c.state(), indent=2) + "\n")
    return 0
