"""pybox-runtime pause ID: freeze every process of the container."""

from pybox.runtime.container import Container


def run(ctx, opts, args) -> int:
    Container.load(ctx.root, args[0]).pause()
    return 0
