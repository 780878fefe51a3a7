"""pybox-runtime create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot]
[--no-new-keyring] [--preserve-fds N] ID"""

import os

from pybox.runtime import container


def create_options(ctx, opts):
    listen = os.environ.get("LISTEN_FDS", "")
    return dict(listen_fds=int(listen) if listen.isdigit() else 0,
                pid_file=opts.get("pid_file"), no_pivot=opts.get("no_pivot", False),
                no_new_keyring=opts.get("no_new_keyring", False),
                preserve_fds=opts.get("preserve_fds", 0),
                systemd_cgroup=ctx.systemd_cgroup,
                console_socket=opts.get("console_socket"))


def run(ctx, opts, args) -> int:
    container.create(ctx.root, args[0], opts.get("bundle") or ".", **create_options(ctx, opts))
    return 0
