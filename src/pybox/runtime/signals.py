"""Signal names as runc accepts them: KILL, SIGKILL, kill, 9, RTMIN+3."""

from __future__ import annotations

from pybox.errors import UsageError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal  # the C module, loaded at start-up: signal.py's enums cost time


def _table() -> tuple[dict[str, int], int, int]:
    names: dict[str, int] = {}
    for attr in dir(_signal):
        if attr.startswith("SIG") and not attr.startswith("SIG_") and attr not in (
                "SIGRTMIN", "SIGRTMAX"):
            names[attr[3:]] = getattr(_signal, attr)
    return names, _signal.SIGRTMIN, _signal.SIGRTMAX


def parse_signal(text: str) -> int:
    raw = text.strip()
    if raw.isdigit():
        sig = int(raw)
    else:
        names, rtmin, rtmax = _table()
        name = raw.upper()
        if name.startswith("SIG"):
            name = name[3:]
        if name in names:
            sig = names[name]
        elif name.startswith("RTMIN") or name.startswith("RTMAX"):
            base = rtmin if name.startswith("RTMIN") else rtmax
            off = name[5:]
            try:
                sig = base + (int(off) if off else 0)
            except ValueError:
                raise UsageError(f"unknown signal {text!r}") from None
            if not rtmin <= sig <= rtmax:
                raise UsageError(f"unknown signal {text!r}")
        else:
            raise UsageError(f"unknown signal {text!r}")
    if not 0 < sig < 65:
        raise UsageError(f"invalid signal number {sig}")
    return sig
