"""Root filesystems built from what the host already has: no registry needed.

``busybox``: Debian's busybox-static binary plus a link per applet, the minimal
/etc files programs expect (passwd, group, hosts...) and the directories the
runtime-spec's default mounts use.  A static binary has no shared libraries, so
nothing else is copied.

    python -m pybox.images.rootfs busybox DIR              # DIR/rootfs + config.json
    python -m pybox.images.rootfs busybox DIR -- echo hi   # with that command
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from pybox.formats import fastjson
from pybox.oci.defaults import default_spec

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

ETC_FILES = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\n"
              "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "group": "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "hostname": "pybox\n",
    "resolv.conf": "",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
        "var", "run", "home")


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path) and _is_static(path):
            return path
    raise FileNotFoundError("a static busybox is needed: apt-get install busybox-static")


def _is_static(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    # A dynamically linked ELF names its interpreter (PT_INTERP "/lib64/ld-...").
    return head[:4] == b"\x7fELF" and b"/ld-linux" not in head and b"ld.so" not in head


def build_busybox_rootfs(dest: str) -> str:
    """Create (or refresh) a busybox root filesystem in ``dest``."""
    busybox = find_busybox()
    for d in DIRS:
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    target = os.path.join(dest, "bin", "busybox")
    shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        link = os.path.join(dest, applet)
        if os.path.lexists(link) or applet.endswith("/busybox"):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(target, os.path.dirname(link)), link)
    for name, text in ETC_FILES.items():
        with open(os.path.join(dest, "etc", name), "w") as f:
            f.write(text)
    return dest


def make_bundle(bundle: str, args: Sequence[str] | None = None, terminal: bool = False) -> str:
    """A runnable OCI bundle: BUNDLE/rootfs (busybox) and BUNDLE/config.json."""
    os.makedirs(bundle, exist_ok=True)
    build_busybox_rootfs(os.path.join(bundle, "rootfs"))
    spec = default_spec()
    spec["process"]["terminal"] = terminal
    spec["process"]["args"] = list(args or ["sh"])
    spec["root"]["readonly"] = False
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(fastjson.dumps(spec, indent=2) + "\n")
    return bundle


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "busybox":
        sys.stderr.write("usage: python -m pybox.images.rootfs busybox BUNDLE [-- CMD...]\n")
        return 2
    args = argv[3:] if len(argv) > 2 and argv[2] == "--" else None
    print(make_bundle(argv[1], args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
