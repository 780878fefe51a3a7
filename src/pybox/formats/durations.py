"""Durations as docker parses and prints them: Go's time.ParseDuration
(``1m30s``, ``100ms``, ``1.5h``) and go-units' HumanDuration (``Up 7 seconds``,
``About a minute``)."""

NANOSECOND = 1
SECOND = 10**9
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": SECOND,
          "m": 60 * SECOND, "h": 3600 * SECOND}
_NUMBER = "0123456789."


def go_duration(text: str) -> int:
    """Go's time.ParseDuration -> nanoseconds: ``1h2m3.5s``, ``-100ms``, ``0``.
    ValueError with Go's words (``time: missing unit in duration "5"``)."""
    s = orig = text
    if s in ("0", "+0", "-0"):
        return 0
    negative = s.startswith("-")
    if s[:1] in ("+", "-"):
        s = s[1:]
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        i = 0
        while i < len(s) and s[i] in _NUMBER:
            i += 1
        number, s = s[:i], s[i:]
        whole, _, frac = number.partition(".")
        if not (whole or frac) or "." in frac:
            raise ValueError(f'time: invalid duration "{orig}"')
        j = 0
        while j < len(s) and s[j] not in _NUMBER:
            j += 1
        unit, s = s[:j], s[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{orig}"')
        scale = _UNITS.get(unit)
        if scale is None:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
    if total > (1 << 63) - 1 + negative:
        raise ValueError(f'time: invalid duration "{orig}"')
    return -total if negative else total


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which docker uses for ps and images (``Up 7
    seconds``, ``About a minute``, ``2 weeks``)."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go's int(d.Hours() + 0.5), not round()
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
