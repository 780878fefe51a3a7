"""pybox-runtime delete [--force] ID"""

from pybox.errors import ContainerNotFound
from pybox.runtime.container import Container


def run(ctx, opts, args) -> int:
    force = opts.get("force", False)
    try:
        c = Container.load(ctx.root, args[0])
    except ContainerNotFound:
        if force:
            return 0  # runc: delete --force of a missing container is not an error
        raise
    c.delete(force=force)
    return 0
