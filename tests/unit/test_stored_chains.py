"""Verifying rows read as text: the fast splice is only ever trusted when it cannot be fooled,
and everything else is decided the exact way, by parsing."""

from __future__ import annotations

import datetime as dt
import json

import orjson

from orchestrator.incident.model import Actor, ActorKind
from orchestrator.report.chains import StoredRow, spliced_hash, verify_stored
from orchestrator.timeline import GENESIS_HASH, EntryDraft, Kind, TimelineEntry, chain

AT = dt.datetime(2026, 3, 1, 12, 0, 0, 250, tzinfo=dt.UTC)
ALICE = Actor(ActorKind.SLACK, "U1", "alice")


def entry(seq: int, data: dict[str, object], prev: str = GENESIS_HASH) -> TimelineEntry:
    return chain(7, seq, EntryDraft(Kind.NOTE, ALICE, AT, data), AT, prev)


def stored(e: TimelineEntry, **texts: object) -> StoredRow:
    """The row as the store hands it back: sorted compact JSON, times as UTC text."""
    when = e.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    row = {
        "seq": e.seq,
        "kind": e.kind.value,
        "actor": orjson.dumps(e.actor.as_dict(), option=orjson.OPT_SORT_KEYS).decode(),
        "occurred": when,
        "recorded": when,
        "data": orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode(),
        "prev": e.prev_hash,
        "hash": e.hash,
        "valid": True,
    } | texts
    return tuple(row.values())  # type: ignore[return-value]


def kinds(rows: list[StoredRow]) -> list[tuple[int | None, str]]:
    return [(b.seq, b.kind) for b in verify_stored(7, rows)]


def test_rows_as_written_verify_by_splicing_alone() -> None:
    first = entry(1, {"text": "naïve 🚨", "nested": {"z": 1, "a": [1.5, None]}})
    second = entry(2, {"text": "next"}, first.hash)
    rows = [stored(first), stored(second)]
    assert [spliced_hash(7, row) for row in rows] == [first.hash, second.hash]
    assert kinds(rows) == []


def test_json_written_some_other_way_is_checked_by_its_content() -> None:
    # Spaces and another key order (a restore through another tool, rows from an older
    # version): the splice misses, parsing finds the content unchanged.
    first = entry(1, {"b": 1, "a": "x"})
    loose = stored(first, data=json.dumps({"b": 1, "a": "x"}, indent=1))
    assert spliced_hash(7, loose) != first.hash
    assert kinds([loose]) == []


def test_an_edit_is_found_either_way() -> None:
    first = entry(1, {"text": "all fine"})
    assert kinds([stored(first, data='{"text":"nothing to see"}')]) == [(1, "edited")]
    broken = stored(first, data='{"text":', valid=False)
    (found,) = verify_stored(7, [broken])
    assert (found.kind, found.found.startswith("(unreadable")) == ("edited", True)


def test_moving_text_between_columns_cannot_keep_the_hash() -> None:
    # Data holding `,"data":` invites moving its start into the actor column: the spliced
    # bytes would be identical. Neither text is valid JSON then, so the splice is not
    # trusted, and parsing fails.
    original = entry(1, {"a": 1, "data": 2})
    row = stored(original)
    actor_text, data_text = row[2], row[5]
    assert data_text == '{"a":1,"data":2}'
    moved = stored(original, actor=actor_text + ',"data":{"a":1', data="2}", valid=False)
    assert spliced_hash(7, moved) is None
    assert kinds([moved]) == [(1, "edited")]
    # The validity flag comes from the database itself (SQLite's json_valid at read time;
    # PostgreSQL's json type refuses invalid text on the way in), not from the row's writer.


def test_quotes_or_a_changed_separator_in_plain_columns_are_not_spliced() -> None:
    first = entry(1, {"text": "x"})
    quoted = stored(first, kind='note","seq":1')
    assert spliced_hash(7, quoted) is None
    assert kinds([quoted]) == [(1, "edited")]
    when = stored(first)[3]
    swapped = stored(first, occurred=when[:10] + "X" + when[11:])
    assert spliced_hash(7, swapped) is None
    assert kinds([swapped]) == [(1, "edited")]
