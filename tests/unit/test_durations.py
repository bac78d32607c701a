"""Prometheus-style durations: what parses, what does not, and the canonical text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.playbook.durations import DurationError, format_duration, parse_duration

GOOD: list[tuple[str, timedelta, str]] = [
    # text, value, canonical text
    ("0", timedelta(0), "0s"),
    ("0s", timedelta(0), "0s"),
    ("0m", timedelta(0), "0s"),
    ("0h0m0s", timedelta(0), "0s"),
    ("30s", timedelta(seconds=30), "30s"),
    ("5m", timedelta(minutes=5), "5m"),
    ("4h", timedelta(hours=4), "4h"),
    ("1h30m", timedelta(minutes=90), "1h30m"),
    ("90m", timedelta(minutes=90), "1h30m"),
    ("5400s", timedelta(seconds=5400), "1h30m"),
    ("1d", timedelta(days=1), "1d"),
    ("24h", timedelta(days=1), "1d"),
    ("2w", timedelta(weeks=2), "2w"),
    ("14d", timedelta(weeks=2), "2w"),
    ("1y", timedelta(days=365), "1y"),
    ("500ms", timedelta(milliseconds=500), "500ms"),
    ("1500ms", timedelta(milliseconds=1500), "1s500ms"),
    ("1s500ms", timedelta(milliseconds=1500), "1s500ms"),
    ("1m1ms", timedelta(minutes=1, milliseconds=1), "1m1ms"),
    (
        "1y2w3d4h5m6s7ms",
        timedelta(days=365 + 14 + 3, hours=4, minutes=5, seconds=6, milliseconds=7),
        "1y2w3d4h5m6s7ms",
    ),
    ("1w1d", timedelta(days=8), "1w1d"),
    ("007m", timedelta(minutes=7), "7m"),
    ("60s", timedelta(minutes=1), "1m"),
]


@pytest.mark.parametrize(("text", "value", "canonical"), GOOD)
def test_parses(text: str, value: timedelta, canonical: str) -> None:
    assert parse_duration(text) == value
    assert format_duration(value) == canonical
    assert parse_duration(canonical) == value


BAD: list[tuple[str, str]] = [
    # text, reason substring
    ("", "expected a duration like 30s, 5m, 1h30m"),
    ("5 min", "'5 min': expected a duration like 30s, 5m, 1h30m"),
    ("5 m", "expected a duration"),
    (" 5m", "expected a duration"),
    ("5m ", "expected a duration"),
    ("1h 30m", "expected a duration"),
    ("30", "30 needs a unit"),
    ("1h30", "30 needs a unit"),
    ("00", "needs a unit"),
    ("-5m", "cannot be negative"),
    ("+5m", "expected a duration"),
    ("5x", "unknown unit 'x'"),
    ("5min", "unknown unit 'min'"),
    ("5mm", "unknown unit 'mm'"),
    ("5M", "unknown unit 'M'"),
    ("5H", "unknown unit 'H'"),
    ("5us", "unknown unit 'us'"),
    ("1.5h", "expected a duration"),
    ("m", "expected a duration"),
    ("h1", "expected a duration"),
    ("30m1h", "units must go from largest to smallest"),
    ("1m1m", "each at most once"),
    ("1s1m", "largest to smallest"),
    ("1ms1s", "largest to smallest"),
    ("1d1w", "largest to smallest"),
    ("5m,", "expected a duration"),
    ("5m\n", "expected a duration"),
    ("\u0665m", "expected a duration"),  # non-ASCII digits are not digits here
    ("9" * 30 + "y", "too large"),
]


@pytest.mark.parametrize(("text", "reason"), BAD)
def test_rejects(text: str, reason: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert reason in message
    assert message.startswith(repr(text))
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (timedelta(seconds=-1), "cannot be negative"),
        (timedelta(microseconds=1), "whole milliseconds"),
        (timedelta(seconds=1, microseconds=500), "whole milliseconds"),
    ],
)
def test_format_rejects_what_cannot_be_written(value: timedelta, reason: str) -> None:
    with pytest.raises(DurationError, match=reason):
        format_duration(value)


@given(st.integers(min_value=0, max_value=10**14))
def test_round_trip(milliseconds: int) -> None:
    value = timedelta(milliseconds=milliseconds)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text
