#!/bin/sh
# install.sh [--dev] -- install pybox on a Debian 12 machine (run as root).
#
#   - Debian packages pybox needs at run time (python3, python3-venv, busybox-static)
#     and, with --dev, the reference runtimes and tools the tests and benchmarks
#     compare against (runc, crun, ...);
#   - a virtual environment at $PYBOX_PREFIX (default /opt/pybox) on Debian's
#     /usr/bin/python3, with pybox installed into it (editable with --dev, so the
#     checkout is what runs) and its pinned dependencies;
#   - fast launchers in $PYBOX_BINDIR (default /usr/local/bin): `python -IS`
#     without site processing (see src/pybox/launchers.py);
#   - an image that needs no network in the engine's store: pybox/busybox:latest
#     (also tagged busybox:latest), and an example runtime bundle at
#     /var/lib/pybox/bundles/busybox (busybox-static rootfs).
# Idempotent: run it again after pulling.
set -eu

DEV=0
for arg in "$@"; do
  case $arg in
    --dev) DEV=1 ;;
    *) echo "usage: $0 [--dev]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PYBOX_PREFIX:-/opt/pybox}
BINDIR=${PYBOX_BINDIR:-/usr/local/bin}
export DEBIAN_FRONTEND=noninteractive

# fuse3 + python3-pyfuse3 (libfuse3, trio): the /proc view's FUSE server
PKGS="python3 python3-venv python3-dev python3-seccomp busybox-static nftables python3-nftables fuse3 python3-pyfuse3"
if [ "$DEV" = 1 ]; then
  # reference runtimes and tools for tests, conformance and benchmarks
  # containernetworking-plugins + iptables (its portmap): the CRI tests' pod networks (tests/cri)
  PKGS="$PKGS runc crun tini uidmap hyperfine umoci skopeo docker-compose conntrack buildah openssl git"
  PKGS="$PKGS containernetworking-plugins iptables"
  # the daemons the tests compare against or drive: dockerd (tests/clients, the build
  # corpus), containerd (tests/compat's RuntimeClass), podman, qemu (the cgroup v2 VM),
  # docker-registry (tests/registry, tests/cri); file for the pause's ELF check; qemu-user
  # runs the arm64 pause (tests/cri/test_units.py)
  PKGS="$PKGS docker.io containerd podman qemu-system-x86 qemu-user file"
  # in Debian 12, not in every later release: installed where the release has it
  OPTIONAL="docker-registry"
fi
missing=""
for p in $PKGS ${OPTIONAL:-}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -q >/dev/null
  wanted=""
  for p in $missing; do
    case " ${OPTIONAL:-} " in
      *" $p "*) apt-cache show "$p" >/dev/null 2>&1 || { echo "install.sh: $p: not in this release, its tests skip" >&2; continue; } ;;
    esac
    wanted="$wanted $p"
  done
  [ -z "$wanted" ] || apt-get install -y -q --no-install-recommends $wanted >/dev/null
fi

# the /proc view needs /dev/fuse (the module is not loaded on every machine)
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || echo "install.sh: no /dev/fuse: containers get the host's /proc files (the /proc view is off)" >&2

if [ ! -x "$PREFIX/bin/python3" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$PREFIX"
fi
PIP="$PREFIX/bin/python3 -m pip --disable-pip-version-check -q"
if [ "$DEV" = 1 ]; then
  $PIP install -e "$HERE[test]"
else
  $PIP install "$HERE"
fi
"$PREFIX/bin/python3" -m pybox.launchers "$BINDIR" >/dev/null

# An image that needs no network, in the engine's store: pybox/busybox:latest
# (Debian's busybox-static), also tagged busybox:latest for docker habits.
"$PREFIX/bin/python3" - <<'PY'
from pybox.images.build import build_busybox_image
from pybox.images.service import Images

images = Images.open("/var/lib/pybox")
try:
    images.resolve("busybox:latest")
except Exception:
    images.tag(build_busybox_image(images), "busybox:latest")
PY

BUNDLE=/var/lib/pybox/bundles/busybox
if [ ! -f "$BUNDLE/config.json" ]; then
  "$PREFIX/bin/python3" -m pybox.images.rootfs busybox "$BUNDLE" -- \
    /bin/sh -c 'echo "hello from a pybox container: pid $$ on host $(hostname), $(grep -c . /proc/mounts) mounts"' >/dev/null
fi
echo "pybox installed: $BINDIR/pybox-runtime ($("$BINDIR/pybox-runtime" --version | head -1))"
