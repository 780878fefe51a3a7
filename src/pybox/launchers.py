"""Fast launchers for the commands whose start-up time callers pay on every use.

pip's console-script wrappers run Python with site processing (.pth files, the
venv's site-packages scan) and import ``re``: 10-25 ms here before our code runs.
The runtime is executed by containerd, podman and pyboxd for every container
operation, and runc does a whole ``run`` in ~30 ms, so ``install.sh`` replaces
those wrappers with these: ``python -IS`` (isolated, no site) plus an explicit
sys.path holding exactly the directories pybox and its dependencies live in.

    python -m pybox.launchers BINDIR      # write BINDIR/pybox-runtime, ...
"""

import os
import sys

ENTRY_POINTS = {
    "pybox-runtime": "pybox.cli.runtime",
    "pybox": "pybox.cli.pybox",
    "pyboxd": "pybox.cli.pyboxd",
}

TEMPLATE = """#!{python} -IS
# pybox launcher, written by `python -m pybox.launchers` (see pybox/launchers.py):
# no site processing, an explicit path, so start-up costs only what pybox imports;
# no cyclic GC (a short-lived process); and no interpreter finalisation at exit
# (module teardown costs milliseconds and has nothing left to clean up).
import gc, os, sys
gc.disable()
sys.path.insert(0, {pkg_dir!r})
sys.path.extend({site_dirs!r})
from {module} import main
rc = main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(rc or 0)
"""


def search_path() -> list[str]:
    """The directory holding the pybox package, then the environment's
    site-packages and, for a venv made with --system-site-packages, Debian's
    dist-packages (python3-seccomp lives there): what site processing would
    have added, computed once at install time."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [here]
    for p in sys.path:
        if p.endswith(("site-packages", "dist-packages")) and p not in paths \
                and os.path.isdir(p):
            paths.append(p)
    return paths


def write_launchers(bindir: str, python: str | None = None) -> list[str]:
    python = python or sys.executable
    paths = search_path()
    written = []
    for name, module in ENTRY_POINTS.items():
        target = os.path.join(bindir, name)
        tmp = target + ".tmp"
        with open(tmp, "w") as f:
            f.write(TEMPLATE.format(python=python, pkg_dir=paths[0], site_dirs=paths[1:],
                                    module=module))
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m pybox.launchers BINDIR\n")
        return 2
    for path in write_launchers(argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
