"""Capability names and numbers (linux/capability.h), and mask helpers."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable

# Index = capability number.
CAPABILITY_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS = {name: i for i, name in enumerate(CAPABILITY_NAMES)}

_last_cap: int | None = None


def last_cap() -> int:
    """Highest capability this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap = int(f.read())
        except OSError:
            _last_cap = len(CAPABILITY_NAMES) - 1
    return _last_cap


def is_known(name: str) -> bool:
    return name in CAPABILITY_NUMBERS


def to_mask(names: Iterable[str]) -> int:
    """Names -> bit mask.  Unknown names raise KeyError (validated earlier);
    capabilities newer than the running kernel are left out, as runc does."""
    mask = 0
    top = last_cap()
    for name in names:
        n = CAPABILITY_NUMBERS[name]
        if n <= top:
            mask |= 1 << n
    return mask


def from_mask(mask: int) -> list[str]:
    """Bit mask -> list of names (numbers this table does not know as CAP_<n>)."""
    out = []
    n = 0
    while mask:
        if mask & 1:
            out.append(CAPABILITY_NAMES[n] if n < len(CAPABILITY_NAMES) else f"CAP_{n}")
        mask >>= 1
        n += 1
    return out
