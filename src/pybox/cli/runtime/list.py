"""pybox-runtime list [--format table|json] [--quiet]"""

from __future__ import annotations

import os
import sys

from pybox.errors import PyboxError, UsageError
from pybox.formats import fastjson
from pybox.oci.state import list_ids
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions
    from pybox.runtime.records import StateDocument


def _owner(path: str) -> str:
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    import pwd  # noqa: PLC0415 -- only for a container that exists

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    fmt = opts.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format {fmt!r}: use table or json")
    states: list[StateDocument] = []
    for cid in list_ids(ctx.root):
        try:
            c = Container.load(ctx.root, cid)
        except PyboxError:
            continue  # removed meanwhile, or not ours
        s = c.state()
        s["owner"] = _owner(c.dir.path)
        states.append(s)
    if opts.get("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif fmt == "json":
        sys.stdout.write(fastjson.dumps(states) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(5)]
        out = ["".join(r[i].ljust(widths[i]) for i in range(5)) + r[5] for r in rows]
        sys.stdout.write("\n".join(out) + "\n")
    return 0
