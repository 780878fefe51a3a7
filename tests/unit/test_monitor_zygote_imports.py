"""What the monitor zygote imports: every module it loads is in the pages each
monitor maps (PSS divides them among the zygote and its monitors; a lone
pod's monitor carries half), and objects of them the monitor touches are
copied into it.  The socket module brings enum, selectors, collections and
functools with it (~1 MiB of the zygote's 4.7 MiB, benchmarks/memory.py):
the monitor speaks through _socket alone, and syslog's TLS imports socket
only when used."""

import subprocess

from support.paths import PYTHON, SRC

# the standard library modules the socket module would bring (none of them
# needed by the monitor's own loop)
HEAVY = ("socket", "enum", "selectors", "collections", "functools", "typing", "subprocess",
         "json", "re", "signal", "threading")


def zygote_modules():
    """The modules of a zygote as zygote.start runs it (python -IS, then
    preload)."""
    code = (f"import sys; sys.path[:0] = [{SRC!r}]; from pybox.monitor import zygote; "
            "zygote.preload(); print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([PYTHON, "-IS", "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_zygote_loads_no_heavy_module():
    modules = zygote_modules()
    assert "pybox.monitor.monitor" in modules and "pybox.monitor.syslog" in modules
    assert sorted(m for m in HEAVY if m in modules) == []
