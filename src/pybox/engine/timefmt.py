"""The daemon's reading of docker's --since/--until values: pybox.formats' rule
(timetypes.GetTimestamp) with dockerd's answer to a bad one, a 400.  Every other
time format is pybox.formats.times'."""

from pybox.errors import BadRequest
from pybox.formats import times


def parse_timestamp(value: object, now: float | None = None) -> float:
    """Unix seconds from a since/until query value; 0.0 for none; BadRequest
    (timetypes.GetTimestamp's words) for inf, nan, 1e400, a malformed time."""
    try:
        return times.parse_timestamp(value, now)
    except ValueError as e:
        raise BadRequest(str(e)) from None
