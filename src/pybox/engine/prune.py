"""docker's prune filters, read one way for every prune (containers, images,
networks): ``until`` and ``label!`` are prune-only and spare what they match
(created at or after until, or labelled with one of the label! values); the
other filters are the kind's list filters, which choose what may go."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pybox.engine.timefmt import parse_timestamp
from pybox.errors import BadRequest


def prune_filters(filters: Mapping[str, Any] | None,
                  allowed: tuple[str, ...] = ("until", "label", "label!"),
                  ) -> tuple[dict[str, list[str]], float | None, list[str]]:
    """docker's prune filters -> (the rest, until as unix seconds or None, the
    label! values).  ``until`` keeps what was created at or after it; an unknown
    filter is an error, as dockerd says, not ignored: ignoring ``until=24h``
    removed the containers made a moment ago along with the old ones."""
    filters = {k: list(v) for k, v in (filters or {}).items()}
    for key in filters:
        if key not in allowed:
            raise BadRequest(f"invalid filter '{key}'")
    until = None
    if "until" in filters:
        values = filters.pop("until")
        if len(values) > 1:
            raise BadRequest("more than one until filter specified")
        until = parse_timestamp(values[0])
    return filters, until, filters.pop("label!", [])


def has_labels(labels: Mapping[str, str], wanted: list[str]) -> bool:
    """Whether ``labels`` has any of ``wanted`` ("k" or "k=v")."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key in labels and (not sep or labels[key] == value):
            return True
    return False


@dataclass(frozen=True)
class Spared:
    """What a prune's until and label! filters spare."""

    until: float | None
    not_labels: list[str]

    def spares(self, created: Callable[[], float], labels: Mapping[str, str] | None) -> bool:
        """``created``: the object's creation time (unix seconds), asked only
        when an until filter was given (an odd record's time is not read
        otherwise)."""
        return (self.until is not None and created() >= self.until) or \
            (bool(self.not_labels) and has_labels(labels or {}, self.not_labels))


def read_prune_filters(filters: Mapping[str, Any] | None,
                       allowed: tuple[str, ...] = ("until", "label", "label!"),
                       ) -> tuple[dict[str, list[str]], Spared]:
    """prune_filters with its until and label! as one Spared rule."""
    rest, until, not_labels = prune_filters(filters, allowed)
    return rest, Spared(until, not_labels)
