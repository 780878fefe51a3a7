"""docker's time formats: RFC3339Nano parsing, human durations ("Up 7 seconds",
"About a minute"), and --since/--until values."""

import time


def parse_rfc3339(text):
    """RFC3339(Nano) UTC -> unix seconds (float); 0 for the zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    import calendar  # (5 ms: not on the pybox CLI's path, which shares human_duration)

    base, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def human_duration(seconds) -> str:
    """go-units HumanDuration, which docker uses for ps and images (``Up 7
    seconds``, ``About a minute``, ``2 weeks``); the pybox CLI's tables too."""
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


MAX_TIMESTAMP = float(1 << 63)  # Go's int64 seconds (timetypes.ParseTimestamps)


def parse_timestamp(value, now=None):
    """docker's --since/--until on the wire: unix seconds (possibly fractional),
    an RFC3339 time, or a duration relative to now ("10m").  Anything else --
    inf, nan, 1e400, seconds past an int64, a malformed time -- is a 400 with
    timetypes.GetTimestamp's words, never a float that breaks the caller."""
    if value in (None, "", "0"):
        return 0.0
    text = str(value)
    out = None
    try:
        out = float(text)
    except ValueError:
        if "T" in text:
            try:
                out = parse_rfc3339(text)
            except (ValueError, OverflowError):
                pass
        units = {"s": 1, "m": 60, "h": 3600}
        if out is None and text[-1:] in units:
            try:
                out = (now or time.time()) - float(text[:-1]) * units[text[-1]]
            except ValueError:
                pass
    if out is None or not -MAX_TIMESTAMP < out < MAX_TIMESTAMP:  # nan fails both
        from pybox.errors import BadRequest

        raise BadRequest(f'failed to parse value as time or duration: "{text[:64]}"')
    return out
