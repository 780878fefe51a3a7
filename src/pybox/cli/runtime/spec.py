"""pybox-runtime spec [--bundle DIR] [--rootless]: write a default config.json."""

from __future__ import annotations

import os

from pybox.errors import UsageError
from pybox.formats import fastjson
from pybox.oci.defaults import default_spec

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    bundle = opts.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise UsageError(f"File {path} exists. Remove it first")
    if not os.path.isdir(bundle):
        raise UsageError(f"bundle directory {bundle} does not exist")
    data = fastjson.dumps(default_spec(rootless=opts.get("rootless", False)), indent=2)
    with open(path, "x") as f:
        f.write(data + "\n")
    return 0
