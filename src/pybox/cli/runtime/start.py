"""pybox-runtime start ID"""

from pybox.runtime.container import Container


def run(ctx, opts, args) -> int:
    Container.load(ctx.root, args[0]).start()
    return 0
