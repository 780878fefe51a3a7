"""pybox-runtime resume ID: thaw a paused container."""

from pybox.runtime.container import Container


def run(ctx, opts, args) -> int:
    Container.load(ctx.root, args[0]).resume()
    return 0
