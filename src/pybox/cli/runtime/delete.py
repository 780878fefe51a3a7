"""pybox-runtime delete [--force] ID"""

from __future__ import annotations

from pybox.errors import ContainerNotFound
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    force = opts.get("force", False)
    try:
        c = Container.load(ctx.root, args[0])
    except ContainerNotFound:
        if force:
            return 0  # runc: delete --force of a missing container is not an error
        raise
    c.delete(force=force)
    return 0
