"""pybox-runtime ps [--format table|json] ID [ps options]

json: the host pids of the container's processes.  table: the host's ps(1)
(options default to -ef) with only the container's processes, as runc does."""

from __future__ import annotations

import subprocess
import sys

from pybox.errors import PyboxError, UsageError
from pybox.formats import fastjson
from pybox.runtime.container import Container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    fmt = opts.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format {fmt!r}: use table or json")
    c = Container.load(ctx.root, args[0])
    pids = c.processes()
    if fmt == "json":
        sys.stdout.write(fastjson.dumps(pids) + "\n")
        return 0
    ps_args = args[1:]
    if ps_args[:1] == ["--"]:
        ps_args = ps_args[1:]
    try:
        out = subprocess.run(["ps"] + (ps_args or ["-ef"]), capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyboxError(f"ps failed: {getattr(e, 'stderr', '') or e}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyboxError("ps output has no PID column (add -o pid)")
    col = header.index("PID")
    wanted = {str(p) for p in pids}
    keep = [lines[0]] + [ln for ln in lines[1:] if len(ln.split()) > col
                         and ln.split()[col] in wanted]
    sys.stdout.write("\n".join(keep) + "\n")
    return 0
