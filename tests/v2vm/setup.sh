#!/bin/sh
# Idempotent setup of the pybox cgroup v2 test VM (tests/v2vm/vm.py).
#
# Installs qemu from Debian, downloads Debian's current kernel package and a static
# busybox and unpacks them into the cache WITHOUT installing them (the host keeps
# its own kernel and busybox untouched; busybox-static would otherwise replace the
# busybox package), then builds the initramfs.  Safe to call on every CI run: when
# everything is in place it does no network access and takes well under a second.
#
#   sudo tests/v2vm/setup.sh            # cache in /var/cache/pybox-v2vm
#   PYBOX_V2VM_CACHE=DIR tests/v2vm/setup.sh
#
# Needs root (apt-get) and only the Debian registry.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${PYBOX_V2VM_CACHE:-/var/cache/pybox-v2vm}
PYTHON=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive

log() { echo "v2vm setup: $*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; exit 1; fi
}

apt_updated=no
apt_update_once() {
    if [ $apt_updated = no ]; then
        as_root apt-get update -q
        apt_updated=yes
    fi
}

apt_install() {
    as_root apt-get install -y -q --no-install-recommends "$@" || {
        apt_update_once
        as_root apt-get install -y -q --no-install-recommends "$@"
    }
}

# 1. qemu (and python3 for the harness itself, should the machine lack it).
missing=""
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
command -v "$PYTHON" >/dev/null || { missing="$missing python3"; PYTHON=python3; }
if [ -n "$missing" ]; then
    log "installing$missing"
    apt_install $missing
fi

as_root mkdir -p "$CACHE"
as_root chmod 0755 "$CACHE"

# 2. Which kernel package is current: linux-image-amd64 depends on exactly one
#    linux-image-<abi>-amd64.  With no apt lists yet, update them first.
resolve_kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
KPKG=$(resolve_kernel_package)
if [ -z "$KPKG" ]; then
    apt_update_once
    KPKG=$(resolve_kernel_package)
fi
if [ -z "$KPKG" ] && [ -f "$CACHE/vm.json" ]; then
    # Offline and already set up: keep what is there.
    KPKG=$(sed -n 's/.*"package": *"\([^"]*\)".*/\1/p' "$CACHE/vm.json")
fi
[ -n "$KPKG" ] || { log "cannot resolve the kernel package behind linux-image-amd64"; exit 1; }

# apt-get download + dpkg-deb -x into DEST, once.  Every step checks its status
# explicitly: callers use it in "if !", where set -e does not apply.
fetch_unpacked() {  # package dest
    pkg=$1 dest=$2
    [ -f "$dest/.unpacked" ] && return 0
    log "downloading $pkg"
    work=$(mktemp -d "$CACHE/.dl-XXXXXX") || return 1
    if (cd "$work" && as_root apt-get download -q -o APT::Sandbox::User=root "$pkg") \
        && as_root mkdir -p "$work/root" \
        && as_root dpkg-deb -x "$work"/*.deb "$work/root" \
        && as_root rm -rf "$dest" \
        && as_root mv "$work/root" "$dest" \
        && as_root touch "$dest/.unpacked"; then
        as_root rm -rf "$work"
        return 0
    fi
    as_root rm -rf "$work"
    return 1
}

KROOT="$CACHE/$KPKG"
if ! fetch_unpacked "$KPKG" "$KROOT"; then
    # Stale package lists name a kernel the archive no longer serves: refresh, retry.
    apt_update_once
    KPKG=$(resolve_kernel_package)
    KROOT="$CACHE/$KPKG"
    fetch_unpacked "$KPKG" "$KROOT"
fi
BBROOT="$CACHE/busybox-static"
fetch_unpacked busybox-static "$BBROOT" || { apt_update_once; fetch_unpacked busybox-static "$BBROOT"; }

KERNEL=$(ls "$KROOT"/boot/vmlinuz-* | head -n1)
RELEASE=${KERNEL##*/vmlinuz-}
BUSYBOX="$BBROOT/bin/busybox"
INITRAMFS="$CACHE/initramfs-$RELEASE.img"

# 3. The initramfs, rebuilt only when its inputs (kernel, busybox, our scripts) change.
STAMP=$(cat "$HERE/initramfs.py" "$HERE/init.sh" "$HERE/stage2.sh" | cksum | cut -d' ' -f1)
STAMP="$STAMP-$KPKG-$(cksum < "$BUSYBOX" | cut -d' ' -f1)"
if [ ! -f "$INITRAMFS" ] || [ "$(cat "$INITRAMFS.stamp" 2>/dev/null)" != "$STAMP" ]; then
    log "building $INITRAMFS"
    as_root "$PYTHON" "$HERE/initramfs.py" --kernel-root "$KROOT" --busybox "$BUSYBOX" --output "$INITRAMFS"
    echo "$STAMP" | as_root tee "$INITRAMFS.stamp" >/dev/null
fi

MANIFEST=$(printf '{"package": "%s", "release": "%s", "kernel": "%s", "initramfs": "%s", "busybox": "%s"}' \
    "$KPKG" "$RELEASE" "$KERNEL" "$INITRAMFS" "$BUSYBOX")
if [ "$(cat "$CACHE/vm.json" 2>/dev/null)" != "$MANIFEST" ]; then
    echo "$MANIFEST" | as_root tee "$CACHE/vm.json.tmp" >/dev/null
    as_root mv "$CACHE/vm.json.tmp" "$CACHE/vm.json"
fi
# Older kernels and initramfs images this script unpacked before are no longer used.
for old in "$CACHE"/linux-image-*-amd64 "$CACHE"/initramfs-*.img "$CACHE"/initramfs-*.img.stamp; do
    case "$old" in
        "$KROOT"|"$INITRAMFS"|"$INITRAMFS.stamp") ;;
        *) [ -e "$old" ] && { log "removing unused $old"; as_root rm -rf "$old"; } ;;
    esac
done
log "ready: kernel $RELEASE ($KPKG), qemu $(qemu-system-x86_64 --version | head -n1 | cut -d' ' -f4)"
