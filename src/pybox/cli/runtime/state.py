"""pybox-runtime state ID: the runtime-spec state JSON, indented as runc prints it."""

import sys

from pybox.formats import fastjson
from pybox.runtime.container import Container


def run(ctx, opts, args) -> int:
    c = Container.load(ctx.root, args[0])
    sys.stdout.write(fastjson.dumps(c.state(), indent=2) + "\n")
    return 0
