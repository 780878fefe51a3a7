"""Device access rules: what a list of runtime-spec rules means, and how to get there.

Both cgroup versions need the *effective* rule set, not the list as written: the
spec's list is applied in order, a later rule overriding earlier ones, and a
type-"a" rule resets everything before it.  ``DeviceState`` replays the list the
way the v1 kernel does (a default - allow or deny - plus exceptions keyed by
type/major/minor, each with an access subset).

v1: the state is reached by writes to devices.allow / devices.deny.  Going from
the cgroup's current devices.list to the target must never widen access in
between, so (as runc's emulator does) a change of default writes the wildcard
first, then only the exceptions; otherwise it removes lost access before adding
new.  Exceptions are written in the order they first appear in the spec's list
(runc sorts them by number): the kernel appends new entries to devices.list, so
the list then shows the rules "in the listed order", which the runtime-spec asks
for and the OCI validation test linux_cgroups_devices checks.

v2: ebpf.py turns the same state into a BPF_PROG_TYPE_CGROUP_DEVICE program.
"""

from __future__ import annotations

from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    DeviceKey = tuple[str, int, int]  # (type, major, minor); -1 is a wildcard
    Rule = tuple[bool, str, int, int, str]  # (allow, type, major, minor, access)

WILDCARD = -1
_ORDER = "rwm"


def _access(text: str) -> str:
    """Normalise an access string to the canonical "rwm" order (empty -> "")."""
    return "".join(ch for ch in _ORDER if ch in text)


class DeviceState:
    """default_allow plus exceptions: (type, major, minor) -> access, in insertion order."""

    def __init__(self, default_allow: bool = True,
                 exceptions: Mapping[DeviceKey, str] | None = None) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[DeviceKey, str] = dict(exceptions or {})

    def copy(self) -> DeviceState:
        return DeviceState(self.default_allow, self.exceptions)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DeviceState) and self.default_allow == other.default_allow
                and self.exceptions == other.exceptions)

    def __repr__(self) -> str:
        return f"DeviceState(default_allow={self.default_allow}, {self.exceptions})"

    def apply(self, allow: bool, kind: str, major: int, minor: int, access: str,
              field: str = "linux.resources.devices") -> None:
        """Apply one rule (after normalize_rule)."""
        if kind == "a":
            self.default_allow = allow
            self.exceptions = {}
            return
        key = (kind, major, minor)
        if allow != self.default_allow:
            old = self.exceptions.get(key, "")
            self.exceptions[key] = _access(old + access)
            return
        # The rule agrees with the default: it removes access from an exception.
        # The v1 kernel only removes exact entries, so a rule that would punch a
        # hole in a wider wildcard exception cannot be expressed: refuse it.
        for wider in ((kind, WILDCARD, minor), (kind, major, WILDCARD), (kind, WILDCARD, WILDCARD)):
            if wider == key:
                continue
            if set(self.exceptions.get(wider, "")) & set(access):
                raise CgroupError(
                    f"{field}: rule {format_rule(kind, major, minor, access)} "
                    f"({'allow' if allow else 'deny'}) cannot be expressed: it would punch a "
                    f"hole in the wider rule {format_rule(*wider, self.exceptions[wider])}",
                    errno=22)
        left = _access("".join(ch for ch in self.exceptions.get(key, "") if ch not in access))
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    def allows(self, kind: str, major: int, minor: int, access: str) -> bool:
        """Would the v1 kernel let ``access`` to this device through?  (Used by
        tests and by ebpf.py's self-check.)"""
        for (t, ma, mi), acc in self.exceptions.items():
            if t != kind or (ma != WILDCARD and ma != major) or (mi != WILDCARD and mi != minor):
                continue
            if self.default_allow:
                if set(access) & set(acc):
                    return False
            elif set(access) <= set(acc):
                return True
        return self.default_allow


def normalize_rule(rule: dict[str, Any]) -> Rule:
    """A runtime-spec device rule -> (allow, type, major, minor, access).

    Missing type means "a" (all), missing major/minor mean any (-1), missing or
    empty access means "rwm" (as docker and runc treat it)."""
    kind = rule.get("type") or "a"
    major = rule.get("major")
    minor = rule.get("minor")
    major = WILDCARD if major is None else major
    minor = WILDCARD if minor is None else minor
    access = _access(rule.get("access") or "rwm")
    return bool(rule.get("allow")), kind, major, minor, access


def state_from_rules(rules: Iterable[dict[str, Any]] | None, start: DeviceState | None = None,
                     field: str = "linux.resources.devices") -> DeviceState:
    """Replay runtime-spec rules on top of ``start`` (default: allow everything,
    which is what a new cgroup starts with)."""
    state = start.copy() if start is not None else DeviceState(True)
    for i, rule in enumerate(rules or ()):
        allow, kind, major, minor, access = normalize_rule(rule)
        state.apply(allow, kind, major, minor, access, field=f"{field}[{i}]")
    return state


def format_rule(kind: str, major: int, minor: int, access: str) -> str:
    ma = "*" if major == WILDCARD else str(major)
    mi = "*" if minor == WILDCARD else str(minor)
    return f"{kind} {ma}:{mi} {access}"


def parse_devices_list(text: str) -> DeviceState:
    """v1 devices.list -> DeviceState.  "a *:* rwm" means allow-all (blacklist
    mode with no exceptions); any other list is a whitelist."""
    state = DeviceState(False)
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        kind, numbers, access = line.split()
        if kind == "a":
            return DeviceState(True)
        ma, _, mi = numbers.partition(":")
        major = WILDCARD if ma == "*" else int(ma)
        minor = WILDCARD if mi == "*" else int(mi)
        key = (kind, major, minor)
        state.exceptions[key] = _access(state.exceptions.get(key, "") + access)
    return state


def v1_transition(current: DeviceState, target: DeviceState) -> list[tuple[str, str]]:
    """Writes that take a v1 devices cgroup from ``current`` to ``target``.

    Returns a list of (file, line) with file "devices.allow" or "devices.deny".
    """
    writes: list[tuple[str, str]] = []
    old = current.exceptions
    if current.default_allow or current.default_allow != target.default_allow:
        # Blacklist mode cannot be edited safely (v1 lists only "a *:* rwm" for
        # it), and a change of default wipes the exceptions anyway.
        writes.append(("devices.allow" if target.default_allow else "devices.deny", "a"))
        old = {}
    # An exception is an allow in whitelist mode and a deny in blacklist mode.
    add_exception = "devices.deny" if target.default_allow else "devices.allow"
    remove_exception = "devices.allow" if target.default_allow else "devices.deny"
    for key, acc in old.items():
        dropped = "".join(ch for ch in acc if ch not in target.exceptions.get(key, ""))
        if dropped:
            writes.append((remove_exception, format_rule(*key, dropped)))
    for key, acc in target.exceptions.items():
        added = "".join(ch for ch in acc if ch not in old.get(key, ""))
        if added:
            writes.append((add_exception, format_rule(*key, added)))
    return writes
