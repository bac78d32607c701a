"""Prometheus-style durations (`30s`, `1h30m`, `2w`) for the timing fields of a playbook.

The grammar is Prometheus' `model.ParseDuration`: units y, w, d, h, m, s, ms from largest to
smallest, each at most once, no spaces or signs, and a bare `0`. A year is 365 days, as there.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DurationError", "format_duration", "parse_duration"]

_UNITS: dict[str, timedelta] = {
    "y": timedelta(days=365),
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_ORDER = list(_UNITS)
_PART = re.compile(r"([0-9]+)(ms|[a-zA-Z]*)")
_EXPECTED = "expected a duration like 30s, 5m, 1h30m"


class DurationError(ValueError):
    """A duration that does not parse or cannot be written; str() is a one-line reason."""


def parse_duration(text: str) -> timedelta:
    if text == "0":
        return timedelta(0)
    if not text:
        raise DurationError(f"'': {_EXPECTED}")
    if text.startswith("-"):
        raise DurationError(f"{text!r}: durations cannot be negative")
    total = timedelta(0)
    last_rank = -1
    pos = 0
    while pos < len(text):
        part = _PART.match(text, pos)
        if part is None:
            raise DurationError(f"{text!r}: {_EXPECTED}")
        number, unit = part.groups()
        if not unit and part.end() == len(text):
            raise DurationError(f"{text!r}: {number} needs a unit, e.g. {number}s or {number}m")
        if not unit:
            raise DurationError(f"{text!r}: {_EXPECTED}")
        if unit not in _UNITS:
            raise DurationError(f"{text!r}: unknown unit {unit!r}; use one of {', '.join(_ORDER)}")
        rank = _ORDER.index(unit)
        if rank <= last_rank:
            raise DurationError(
                f"{text!r}: units must go from largest to smallest ({' '.join(_ORDER)}),"
                " each at most once"
            )
        last_rank = rank
        try:
            total += int(number) * _UNITS[unit]
        except (OverflowError, ValueError):
            raise DurationError(f"{text!r}: duration is too large") from None
        pos = part.end()
    return total


def format_duration(value: timedelta) -> str:
    """The canonical text `parse_duration` reads back to the same value: 5400s gives "1h30m"."""
    if value < timedelta(0):
        raise DurationError(f"{value}: durations cannot be negative")
    if value % _UNITS["ms"]:
        raise DurationError(f"{value}: durations are written in whole milliseconds")
    if not value:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, value = divmod(value, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
