"""Build the v2 test VM's initramfs from busybox-static and Debian's kernel modules.

Why this exists: the VM boots Debian's stock kernel, whose virtio, 9p and overlay
drivers are loadable modules, so the initramfs has to carry them and load them in
dependency order before the host's root can be mounted over virtio-9p.  Everything
is done in pure Python (ELF .modinfo parsing instead of kmod's ``modinfo``, a newc
cpio writer instead of ``cpio``) so that a fresh Debian 12 machine needs nothing
beyond what ``setup.sh`` installs, and no root privileges are needed to create the
``/dev/console`` node inside the archive.

Command line (used by setup.sh)::

    python3 tests/v2vm/initramfs.py --kernel-root DIR --busybox PATH --output FILE
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# What the boot needs: the PCI transport for virtio, 9p over virtio for the host's
# root and the job share, overlayfs for the writable tmpfs layer.  Their
# dependencies (virtio, virtio_ring, 9pnet, netfs, fscache, ...) are resolved from
# each module's own "depends=" field, so a kernel that splits or merges them
# differently still works.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

# Loaded too, best effort: the cgroup enforcement tests make loop devices (io.max
# throttling) and may select the BFQ scheduler (io.bfq.weight).  The host's root,
# seen through 9p, has no /lib/modules for this kernel, so they cannot be
# modprobed later.
# fuse: the /proc view (tests/procview).  bridge, veth: the CRI tests' pods on the CNI
# bridge plugin (tests/cri/test_v2_vm.py); nf_tables, nft_compat and the xt_ matches
# portmap's iptables-nft rules use (comment, addrtype, mark, multiport, nat, MASQUERADE)
# with nft_chain_nat for its nat chains; crc32c_generic first: libcrc32c (nf_tables',
# nf_conntrack's) asks the crypto API for "crc32c" (a softdep, not in "depends=").
EXTRA_MODULES = ("loop", "bfq", "fuse", "bridge", "veth", "crc32c_generic",
                 "nf_tables", "nft_compat", "nft_chain_nat", "xt_comment", "xt_addrtype",
                 "xt_mark", "xt_multiport", "xt_nat", "xt_MASQUERADE")

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


def module_name(path: Path) -> str:
    """The kernel's name for a module file: basename without suffix, '-' as '_'."""
    name = path.name
    for suffix in MODULE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("-", "_")


def read_module_bytes(path: Path) -> bytes:
    """The uncompressed ELF image of a module.

    Debian's later kernels ship .ko.xz (or .ko.zst); busybox insmod may not
    decompress them, so they are decompressed here, on the host.
    """
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return data


def modinfo(elf: bytes) -> dict[str, str]:
    """Parse the key=value strings of an ELF64 module's .modinfo section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not an ELF64 object")
    endian = "<" if elf[5] == 1 else ">"
    (shoff,) = struct.unpack_from(endian + "Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from(endian + "IIQQQQ", elf, base)
        return name, offset, size

    _, strtab_off, _ = section(shstrndx)
    for index in range(shnum):
        name_off, offset, size = section(index)
        end = elf.index(b"\0", strtab_off + name_off)
        if elf[strtab_off + name_off : end] == b".modinfo":
            info: dict[str, str] = {}
            for entry in elf[offset : offset + size].split(b"\0"):
                key, sep, value = entry.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, value)
            return info
    return {}


def index_modules(modules_dir: Path) -> dict[str, Path]:
    """Map every module name under lib/modules/<release> to its file."""
    found: dict[str, Path] = {}
    for path in sorted(modules_dir.rglob("*")):
        if path.name.endswith(MODULE_SUFFIXES) and path.is_file():
            found.setdefault(module_name(path), path)
    return found


def builtin_modules(modules_dir: Path) -> set[str]:
    """Names the kernel has built in (modules.builtin), which need no loading."""
    listing = modules_dir / "modules.builtin"
    if not listing.exists():
        return set()
    return {module_name(Path(line.strip())) for line in listing.read_text().splitlines() if line.strip()}


def resolve_load_order(
    wanted: tuple[str, ...], available: dict[str, Path], builtin: set[str], *, required: bool
) -> list[str]:
    """Modules to insmod, dependencies first (a depth-first post-order walk)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, needed: bool) -> None:
        name = name.replace("-", "_")
        if name in order or name in builtin or name in visiting:
            return
        if name not in available:
            if needed:
                raise FileNotFoundError(f"kernel module {name!r} is neither built in nor shipped")
            return
        visiting.add(name)
        depends = modinfo(read_module_bytes(available[name])).get("depends", "")
        for dep in filter(None, depends.split(",")):
            visit(dep, True)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name, required)
    return order


class CpioWriter:
    """A minimal "newc" (SVR4, no CRC) cpio writer, the format the kernel unpacks."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.inode = 1000

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self.inode += 1
        encoded = name.encode() + b"\0"
        fields = (
            self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0,
        )
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.buffer.write(header + encoded)
        self.buffer.write(b"\0" * (-self.buffer.tell() % 4))
        self.buffer.write(data)
        self.buffer.write(b"\0" * (-self.buffer.tell() % 4))

    def directory(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buffer.getvalue()


def kernel_release(kernel_root: Path) -> str:
    """The single lib/modules/<release> directory of an unpacked linux-image package."""
    releases = [p.name for p in (kernel_root / "lib/modules").iterdir() if p.is_dir()]
    if len(releases) != 1:
        raise RuntimeError(f"expected one kernel release under {kernel_root}/lib/modules, found {releases}")
    return releases[0]


def build(kernel_root: Path, busybox: Path, output: Path) -> list[str]:
    """Write the gzip-compressed initramfs to ``output``; return the module load order."""
    release = kernel_release(kernel_root)
    modules_dir = kernel_root / "lib/modules" / release
    available = index_modules(modules_dir)
    builtin = builtin_modules(modules_dir)
    boot = resolve_load_order(BOOT_MODULES, available, builtin, required=True)
    extra = [m for m in resolve_load_order(EXTRA_MODULES, available, builtin, required=False)
             if m not in boot]

    cpio = CpioWriter()
    for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
                      "lower", "rw", "newroot", "modules"):
        cpio.directory(directory)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", (HERE / "init.sh").read_bytes(), 0o755)
    cpio.file("stage2.sh", (HERE / "stage2.sh").read_bytes(), 0o755)
    for name in boot + extra:
        cpio.file(f"modules/{name}.ko", read_module_bytes(available[name]))
    cpio.file("modules/boot.order", "".join(f"{m}\n" for m in boot).encode())
    cpio.file("modules/extra.order", "".join(f"{m}\n" for m in extra).encode())
    cpio.file("release", f"{release}\n".encode())

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=output.parent, prefix=".initramfs-", delete=False) as tmp:
        tmp.write(gzip.compress(cpio.finish(), compresslevel=6))
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, output)
    return boot + extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel-root", type=Path, required=True,
                        help="the unpacked linux-image package (holds boot/ and lib/modules/)")
    parser.add_argument("--busybox", type=Path, default=Path("/bin/busybox"),
                        help="a statically linked busybox binary")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if shutil.which("file") and b"statically linked" not in subprocess.run(
        ["file", "-L", str(args.busybox)], capture_output=True).stdout:
        print(f"warning: {args.busybox} does not look statically linked", file=sys.stderr)
    order = build(args.kernel_root, args.busybox, args.output)
    print(f"initramfs {args.output}: modules {' '.join(order)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
