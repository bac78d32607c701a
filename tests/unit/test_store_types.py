"""UtcDateTime on SQLite writes exactly the text SQLAlchemy's own DATETIME wrote, so rows
stored before the fast path compare and sort the same."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.dialects import sqlite

from orchestrator.store.schema import UtcDateTime

DIALECT = sqlite.dialect()
MOMENTS = [
    dt.datetime(2026, 1, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(1999, 12, 31, 0, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=14))),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_same_text_as_sqlalchemy_and_back(moment: dt.datetime) -> None:
    ours = UtcDateTime().bind_processor(DIALECT)
    theirs = sqlite.DATETIME().bind_processor(DIALECT)
    read = UtcDateTime().result_processor(DIALECT, None)
    assert ours is not None
    assert theirs is not None
    assert read is not None
    utc = moment.astimezone(dt.UTC)
    assert ours(moment) == theirs(utc.replace(tzinfo=None))
    assert read(ours(moment)) == utc
    assert read(ours(moment)).tzinfo is dt.UTC
    assert ours(None) is None
    assert read(None) is None


def test_naive_times_are_refused() -> None:
    ours = UtcDateTime().bind_processor(DIALECT)
    assert ours is not None
    with pytest.raises(ValueError, match="naive datetime"):
        ours(dt.datetime(2026, 1, 1))
