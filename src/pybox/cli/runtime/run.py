"""pybox-runtime run [-d] [--bundle DIR] [--pid-file F] ... ID

In the foreground, waits for the container, forwards signals to it, deletes it
and exits with its status (128+N when it was killed by signal N)."""

from pybox.cli.runtime.create import create_options
from pybox.runtime import container


def run(ctx, opts, args):
    return container.run(ctx.root, args[0], opts.get("bundle") or ".",
                         detach=opts.get("detach", False), **create_options(ctx, opts))
