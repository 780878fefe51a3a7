"""pybox-runtime kill [--all] ID [SIGNAL]   (SIGNAL: KILL, SIGKILL, 9; default TERM)"""

from pybox.runtime.container import Container
from pybox.runtime.signals import parse_signal


def run(ctx, opts, args) -> int:
    sig = parse_signal(args[1] if len(args) > 1 else "TERM")
    Container.load(ctx.root, args[0]).kill(sig, all_processes=opts.get("all", False))
    return 0
