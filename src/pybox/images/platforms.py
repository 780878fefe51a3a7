"""Platforms (``linux/arm64/v8``) as docker and containerd name and match them.

A registry's manifest list / OCI index has one manifest per platform; a pull
picks the one for the host (or for ``--platform``).  The host's platform is the
kernel's machine name in Go's GOARCH spelling (``x86_64`` -> ``amd64``), because
that is how images name it.  Matching follows containerd's default matcher
closely enough for real indexes: the OS and architecture must be equal; a
wanted variant must be equal (arm64's ``v8`` is the same as none); without a
wanted variant the entry without one (or the lowest) wins.
"""

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pybox.errors import InvalidReference

# uname -m -> (GOARCH, variant)
_MACHINES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"), "i386": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""), "loongarch64": ("loong64", ""),
}
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64",
                 "armhf": "arm", "armel": "arm", "i386": "386"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def matches(self, entry: Mapping[str, Any]) -> bool:
        """Does an index entry's ``platform`` object fit this platform?"""
        if (entry.get("os") or "") != self.os:
            return False
        if normalise_arch(entry.get("architecture") or "") != self.architecture:
            return False
        if not self.variant:
            return True
        return _variant(self.architecture, entry.get("variant") or "") == \
            _variant(self.architecture, self.variant)


def _variant(arch: str, variant: str) -> str:
    if arch == "arm64" and variant in ("", "v8", "8"):
        return "v8"
    if arch == "arm" and variant in ("", "v7", "7"):
        return "v7"
    return variant


def normalise_arch(arch: str) -> str:
    return _ARCH_ALIASES.get(arch, arch)


def host_platform() -> Platform:
    """The platform of this machine, as an image would name it."""
    arch, variant = _MACHINES.get(os.uname().machine, (os.uname().machine, ""))
    return Platform("linux", arch, variant)


def parse(text: str | None) -> Platform:
    """``linux``, ``linux/arm64``, ``linux/arm/v7``, ``arm64`` (OS: linux) -> Platform;
    None or "" -> the host's.  Raises InvalidReference with containerd's wording."""
    if not text:
        return host_platform()
    parts = text.strip().lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidReference(f'"{text}": unknown operating system or architecture: '
                               "invalid argument")
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            host = host_platform()
            return Platform(parts[0], host.architecture, host.variant)
        return Platform("linux", normalise_arch(parts[0]))
    variant = parts[2] if len(parts) == 3 else ""
    arch = normalise_arch(parts[1])
    if arch == "arm64" and variant == "8":
        variant = "v8"
    return Platform(parts[0], arch, variant)


def select(manifests: Iterable[Any], wanted: Platform) -> dict[str, Any] | None:
    """The index entry (descriptor dict) for ``wanted``, or None.  Among several
    that fit, the one whose variant is the wanted one (or, with none wanted, the
    entry without a variant, else the lowest variant) comes first."""
    fitting = [m for m in manifests
               if isinstance(m, dict) and wanted.matches(m.get("platform") or {})]
    if not fitting:
        return None

    def rank(entry: dict[str, Any]) -> tuple[bool, bool, str]:
        variant = (entry.get("platform") or {}).get("variant") or ""
        exact = variant == wanted.variant
        return (not exact, variant != "", variant)

    return sorted(fitting, key=rank)[0]


def describe(entry_platform: Mapping[str, Any] | None) -> str:
    """``linux/amd64`` from an index entry's or a config's fields."""
    p = entry_platform or {}
    text = f"{p.get('os', '')}/{p.get('architecture', '')}"
    return f"{text}/{p['variant']}" if p.get("variant") else text
