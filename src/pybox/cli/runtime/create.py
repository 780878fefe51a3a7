"""pybox-runtime create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot]
[--no-new-keyring] [--preserve-fds N] ID"""

from __future__ import annotations

import os

from pybox.runtime import container

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions
    from pybox.runtime.records import CreateOptions


def create_options(ctx: Context, opts: CommandOptions) -> CreateOptions:
    """create's (and run's) flags as container.create's keyword arguments."""
    listen = os.environ.get("LISTEN_FDS", "")
    return {"listen_fds": int(listen) if listen.isdigit() else 0,
            "pid_file": opts.get("pid_file"), "no_pivot": opts.get("no_pivot", False),
            "no_new_keyring": opts.get("no_new_keyring", False),
            "preserve_fds": opts.get("preserve_fds", 0),
            "systemd_cgroup": ctx.systemd_cgroup,
            "console_socket": opts.get("console_socket")}


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    container.create(ctx.root, args[0], opts.get("bundle") or ".", **create_options(ctx, opts))
    return 0
