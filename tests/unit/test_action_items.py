"""The action items table of a postmortem: reading it, matching rows to stored items, and the
business days an overdue postmortem is counted in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestrator.report.action_items import (
    ActionItem,
    ActionItemsError,
    ActionItemStatus,
    ActionItemType,
    parse_action_items,
    plan_import,
)
from orchestrator.report.postmortem_policy import business_days_between

CREATED = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


# --- the action items table ---------------------------------------------------------------------


TABLE = """# Postmortem

## Action items
<!-- generated -->

| title | owner | due | type | status | link |
| --- | --- | --- | --- | --- | --- |
| Add replica lag alert | ana | 2026-04-01 | detect | open | https://t/1 |
| Automate failover \\| drill | bo | 2026-05-01 | prevent | in progress | |
| | | | | | |

Closed:
- | not | a | row |
"""


def stored(item_id: int, title: str, **changes: Any) -> ActionItem:
    values: dict[str, Any] = {
        "id": item_id,
        "incident_number": 7,
        "title": title,
        "owner": "ana",
        "due": dt.date(2026, 4, 1),
        "type": ActionItemType.DETECT,
        "status": ActionItemStatus.OPEN,
        "created_at": CREATED,
        "link": "https://t/1",
    }
    return ActionItem(**{**values, **changes})


def test_action_items_table_is_parsed() -> None:
    first, second = parse_action_items(TABLE)
    assert (first.title, first.owner, first.due, first.type, first.status, first.link) == (
        "Add replica lag alert",
        "ana",
        dt.date(2026, 4, 1),
        ActionItemType.DETECT,
        ActionItemStatus.OPEN,
        "https://t/1",
    )
    assert second.title == "Automate failover | drill"
    assert second.status is ActionItemStatus.IN_PROGRESS
    assert (first.line, second.line) == (8, 9)
    assert parse_action_items("# Nothing here\n") == []


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("| x | a | 1 April | detect | open | |", "due '1 April' is not a date"),
        ("| x | a | | fix | open | |", "type 'fix' is not one of prevent, mitigate"),
        ("| x | a | | detect | closed | |", "status 'closed' is not one of open"),
    ],
)
def test_action_items_table_errors(row: str, reason: str) -> None:
    text = (
        "## Action items\n\n"
        "| title | owner | due | type | status | link |\n|---|---|---|---|---|---|\n"
    )
    with pytest.raises(ActionItemsError) as caught:
        parse_action_items(text + row + "\n")
    assert caught.value.line == 5
    assert reason in caught.value.reason


def test_import_plan_adds_new_titles_and_updates_changed_rows() -> None:
    existing = [stored(1, "add replica  lag alert"), stored(2, "Old item", owner="cy")]
    plan = plan_import(7, parse_action_items(TABLE), existing)
    assert [row.title for row in plan.added] == ["Automate failover | drill"]
    assert plan.changed == [(existing[0], {"title": "Add replica lag alert"})]
    unchanged = [
        stored(1, "Add replica lag alert"),
        stored(
            2,
            "Automate failover | drill",
            owner="bo",
            due=dt.date(2026, 5, 1),
            type=ActionItemType.PREVENT,
            status=ActionItemStatus.IN_PROGRESS,
            link="",
        ),
    ]
    assert not plan_import(7, parse_action_items(TABLE), unchanged)


def test_import_plan_matches_an_id_column() -> None:
    text = "## Action items\n\n| id | title | status |\n|---|---|---|\n| 2 | Renamed | done |\n"
    existing = [stored(2, "Old title")]
    plan = plan_import(7, parse_action_items(text), existing)
    assert plan.changed == [
        (existing[0], {"title": "Renamed", "status": ActionItemStatus.DONE})
    ]  # columns the table does not have are left as they are
    with pytest.raises(ActionItemsError, match="not one of incident #7's"):
        plan_import(7, parse_action_items(text.replace("| 2 |", "| 9 |")), existing)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-03-06", "2026-03-09", 1),  # Friday to Monday
        ("2026-03-02", "2026-03-02", 0),
        ("2026-03-02", "2026-03-16", 10),
        ("2026-03-07", "2026-03-08", 0),  # a weekend
        ("2026-03-09", "2026-03-02", 0),
    ],
)
def test_business_days_between(start: str, end: str, days: int) -> None:
    assert business_days_between(dt.date.fromisoformat(start), dt.date.fromisoformat(end)) == days
