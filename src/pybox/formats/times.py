"""Timestamps as docker writes and reads them.

Writing: Go's RFC3339Nano (``2024-01-02T03:04:05.1234Z``: trailing zeros of
the fraction dropped; the runtime's state and log lines), moby's
RFC3339NanoFixed (always nine digits: json-file log entries, the daemon's
Created/StartedAt/FinishedAt, ``docker events``), the local-time forms the docker
CLI prints (``2024-01-02T04:04:05+01:00``, Go's ``time.Time.String()``).

Reading: RFC 3339 with any fraction and Z or an offset (``parse_rfc3339``), and
docker's ``--since``/``--until`` values (timetypes.GetTimestamp): a Go duration
back from now, unix seconds, or a date/time -- on the client's side
(``get_timestamp``, turned into the ``seconds.nanoseconds`` sent on the wire)
and on the daemon's (``parse_timestamp``, which reads what the client sent).

No ``datetime`` or ``calendar``: plain arithmetic on the civil calendar keeps
this module import-free beyond ``time`` (the runtime writes timestamps on its
start-up path).
"""

import time

from pybox.formats.durations import go_duration

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, which docker prints for "never"
MAX_TIMESTAMP = float(1 << 63)  # Go's int64 seconds (timetypes.ParseTimestamps)
_NS = 10**9


def _zone(offset: int) -> str:
    """Go's ``Z07:00``: ``Z`` for UTC, else ``+hh:mm``."""
    if offset == 0:
        return "Z"
    sign = "+" if offset > 0 else "-"
    offset = abs(offset)
    return f"{sign}{offset // 3600:02d}:{offset // 60 % 60:02d}"


def rfc3339_nano(ns: int | None = None) -> str:
    """Go's time.RFC3339Nano in UTC (``...05.1234Z``, no fraction when whole);
    now when ``ns`` (nanoseconds since the epoch) is None."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, _NS)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        return f"{stamp}.{frac:09d}".rstrip("0") + "Z"
    return stamp + "Z"


def rfc3339_nano_fixed(ns: int | None = None, local: bool = False) -> str:
    """moby's RFC3339NanoFixed (always nine fraction digits), UTC or ``local``;
    now when ``ns`` is None."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, _NS)
    if local:
        t = time.localtime(secs)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}" + _zone(t.tm_gmtoff)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def rfc3339_local(unix_seconds: float) -> str:
    """Go's time.RFC3339 in local time, whole seconds (``docker history``'s CreatedAt)."""
    t = time.localtime(unix_seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + _zone(t.tm_gmtoff)


def go_time_string(unix_seconds: float) -> str:
    """Go's time.Time.String() in local time: ``2006-01-02 15:04:05 -0700 MST``."""
    t = time.localtime(unix_seconds)
    offset = t.tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + \
        f" {sign}{offset // 3600:02d}{offset // 60 % 60:02d} {t.tm_zone}"


# -- reading ----------------------------------------------------------------------

def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _number(text: str, start: int, width: int) -> int:
    part = text[start:start + width]
    if len(part) != width or not part.isascii() or not part.isdigit():
        raise ValueError(f"invalid time: {text!r}")
    return int(part)


def _parse_time(text: str) -> tuple[tuple[int, int, int, int, int, int], int, int | None]:
    """``YYYY-MM-DD[(T|t| )hh:mm[:ss[.fraction]]][Z|±hh:mm|±hhmm]`` ->
    ((year, month, day, hour, minute, second), nanoseconds, UTC offset in
    seconds or None when the text names no zone).  ValueError otherwise."""
    year, month, day = _number(text, 0, 4), _number(text, 5, 2), _number(text, 8, 2)
    if text[4:5] != "-" or text[7:8] != "-":
        raise ValueError(f"invalid time: {text!r}")
    hour = minute = second = ns = 0
    pos = 10
    if pos < len(text) and text[pos] in "Tt ":
        hour, minute = _number(text, 11, 2), _number(text, 14, 2)
        if text[13:14] != ":":
            raise ValueError(f"invalid time: {text!r}")
        pos = 16
        if text[pos:pos + 1] == ":":
            second = _number(text, 17, 2)
            pos = 19
            if text[pos:pos + 1] == ".":
                end = pos + 1
                while end < len(text) and text[end] in "0123456789":
                    end += 1
                digits = text[pos + 1:end]
                if not digits:
                    raise ValueError(f"invalid time: {text!r}")
                ns = int(digits[:9].ljust(9, "0"))
                pos = end
    zone: int | None = None
    rest = text[pos:]
    if rest in ("Z", "z"):
        zone = 0
    elif rest:
        if rest[0] not in "+-" or len(rest) not in (5, 6) or (len(rest) == 6 and rest[3] != ":"):
            raise ValueError(f"invalid time: {text!r}")
        zh, zm = _number(rest, 1, 2), _number(rest, len(rest) - 2, 2)
        zone = (zh * 3600 + zm * 60) * (1 if rest[0] == "+" else -1)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)
            and hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"invalid time: {text!r}")
    return (year, month, day, hour, minute, second), ns, zone


def _utc_seconds(fields: tuple[int, int, int, int, int, int]) -> int:
    year, month, day, hour, minute, second = fields
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def parse_rfc3339(text: str | None) -> float:
    """RFC 3339 (any fraction; ``Z``, an offset, or none for UTC) -> unix seconds;
    0.0 for no text and for Go's zero time (``0001-01-01T00:00:00Z``).
    ValueError for anything else."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    fields, ns, zone = _parse_time(text)
    return _utc_seconds(fields) - (zone or 0) + ns / _NS


def _wire(t: float) -> str:
    seconds = int(t)
    return f"{seconds}.{int(round((t - seconds) * 1e9)):09d}"


def get_timestamp(value: str, now: float | None = None) -> str:
    """The docker CLI's --since/--until (timetypes.GetTimestamp) -> the value sent
    on the wire: a Go duration back from now and a date/time (local time when it
    names no zone) become ``seconds.nanoseconds``; unix seconds (``1700000000``,
    ``1700000000.5``) pass as they are.  ValueError with docker's words."""
    now = time.time() if now is None else now
    text = str(value)
    if text != "0":
        try:
            return _wire(now - go_duration(text) / 1e9)
        except ValueError:
            pass
    whole, _, frac = text.partition(".")
    if whole.isdigit() and (not frac or frac.isdigit()):
        return text
    try:
        fields, ns, zone = _parse_time(text)
    except ValueError:
        raise ValueError(f'failed to parse value as time or duration: "{text}"') from None
    if zone is None:  # local time, as Go's time.ParseInLocation(..., time.Local)
        seconds = time.mktime((*fields, 0, 0, -1))
    else:
        seconds = _utc_seconds(fields) - zone
    return _wire(seconds + ns / _NS)


def parse_timestamp(value: object, now: float | None = None) -> float:
    """The daemon's reading of --since/--until (what ``get_timestamp`` sent, or a
    value an API client wrote itself): unix seconds (possibly fractional), an
    RFC 3339 time, or a Go duration back from now; 0.0 for none.  Anything else --
    inf, nan, 1e400, seconds past an int64, a malformed time -- is a ValueError
    with timetypes.GetTimestamp's words, never a float that breaks the caller."""
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
        if out is None:
            try:
                out = (time.time() if now is None else now) - go_duration(text) / 1e9
            except ValueError:
                pass
    if out is None or not -MAX_TIMESTAMP < out < MAX_TIMESTAMP:  # nan fails both
        raise ValueError(f'failed to parse value as time or duration: "{text[:64]}"')
    return out
