"""Postmortem action items: their model, and the Markdown table people edit them in."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "TABLE_COLUMNS",
    "ActionItem",
    "ActionItemStatus",
    "ActionItemType",
    "ActionItemsError",
    "ImportPlan",
    "TableRow",
    "parse_action_items",
    "plan_import",
]


class ActionItemType(StrEnum):
    PREVENT = "prevent"  # stops it happening again
    MITIGATE = "mitigate"  # makes it hurt less when it does
    DETECT = "detect"  # finds it sooner
    PROCESS = "process"  # how people respond


class ActionItemStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    WONTFIX = "wontfix"

    @property
    def is_closed(self) -> bool:
        return self in (ActionItemStatus.DONE, ActionItemStatus.WONTFIX)


@dataclass(frozen=True)
class ActionItem:
    id: int
    incident_number: int
    title: str
    owner: str
    due: dt.date | None
    type: ActionItemType
    status: ActionItemStatus
    created_at: dt.datetime
    link: str = ""
    closed_at: dt.datetime | None = None
    closed_by: str = ""
    evidence: str = ""  # the link that shows it done: a merged change, a runbook page

    def is_overdue(self, today: dt.date) -> bool:
        return not self.status.is_closed and self.due is not None and self.due < today

    def template_view(self) -> dict[str, Any]:
        """What report templates (postmortem, drill report) are given of an item."""
        return {
            "id": self.id,
            "incident": self.incident_number,
            "title": self.title,
            "owner": self.owner,
            "due": self.due.isoformat() if self.due else "",
            "type": self.type.value,
            "status": self.status.value,
            "link": self.link,
            "evidence": self.evidence,
            "closed": self.status.is_closed,
        }


# The table the postmortem carries, in this column order; `id` is optional when reading.
TABLE_COLUMNS = ("title", "owner", "due", "type", "status", "link")
_SECTION = re.compile(r"^##\s+action items\s*$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^:?-{3,}:?$")


class ActionItemsError(ValueError):
    """A row of the action items table that cannot be read; `line` is 1-based in the file."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class TableRow:
    line: int
    title: str
    owner: str
    due: dt.date | None
    type: ActionItemType
    status: ActionItemStatus
    link: str = ""
    id: int | None = None
    columns: frozenset[str] = frozenset(TABLE_COLUMNS)  # those the table has; others keep


def _cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    # `\|` is a pipe inside a cell (what the md_cell filter writes), not a column break.
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _table_lines(markdown: str) -> list[tuple[int, str]]:
    """The numbered lines of the first table under the `## Action items` heading."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line.strip())), None)
    if start is None:
        return []
    table: list[tuple[int, str]] = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        text = line.strip()
        if text.startswith("## "):
            break
        if text.startswith("|"):
            table.append((number, text))
        elif table:
            break  # the table ended; text after it is prose
    return table


def parse_action_items(markdown: str) -> list[TableRow]:
    """The rows of the postmortem's action items table; empty when it has none.

    The header names the columns (any order; `title` is required, `id` optional), so a team
    may reorder them. Blank and placeholder rows (no title) are skipped."""
    table = _table_lines(markdown)
    if not table:
        return []
    header_line, header_text = table[0]
    header = [cell.lower() for cell in _cells(header_text)]
    if "title" not in header:
        raise ActionItemsError(header_line, "the action items table needs a 'title' column")
    unknown = sorted(set(header) - {*TABLE_COLUMNS, "id"})
    if unknown:
        raise ActionItemsError(header_line, f"unknown column(s): {', '.join(unknown)}")
    rows: list[TableRow] = []
    for number, text in table[1:]:
        cells = _cells(text)
        if all(_SEPARATOR.match(cell) for cell in cells if cell):
            continue
        values = dict(zip(header, cells, strict=False))
        if not values.get("title"):
            continue
        rows.append(_row(number, values))
    return rows


def _row(line: int, values: dict[str, str]) -> TableRow:
    due_text = values.get("due", "")
    try:
        due = dt.date.fromisoformat(due_text) if due_text else None
    except ValueError:
        raise ActionItemsError(line, f"due {due_text!r} is not a date (YYYY-MM-DD)") from None
    kind_text = (values.get("type") or ActionItemType.PREVENT.value).lower()
    status_text = (values.get("status") or ActionItemStatus.OPEN.value).lower().replace(" ", "_")
    try:
        kind = ActionItemType(kind_text)
    except ValueError:
        known = ", ".join(t.value for t in ActionItemType)
        raise ActionItemsError(line, f"type {kind_text!r} is not one of {known}") from None
    try:
        status = ActionItemStatus(status_text)
    except ValueError:
        known = ", ".join(s.value for s in ActionItemStatus)
        raise ActionItemsError(line, f"status {status_text!r} is not one of {known}") from None
    id_text = values.get("id", "").lstrip("#")
    if id_text and not id_text.isdigit():
        raise ActionItemsError(line, f"id {id_text!r} is not a number")
    return TableRow(
        line=line,
        title=values["title"],
        owner=values.get("owner", ""),
        due=due,
        type=kind,
        status=status,
        link=values.get("link", ""),
        id=int(id_text) if id_text else None,
        columns=frozenset(values) & frozenset(TABLE_COLUMNS),
    )


def _same_title(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


@dataclass(frozen=True)
class ImportPlan:
    """What importing a table changes: rows to add, and stored items with changed fields."""

    added: list[TableRow] = field(default_factory=list)
    changed: list[tuple[ActionItem, dict[str, Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed)


def plan_import(
    incident_number: int, rows: Sequence[TableRow], existing: Sequence[ActionItem]
) -> ImportPlan:
    """Matches rows to the incident's stored items, by id when the table has one, else by title
    (case and spacing aside). Items missing from the table are left alone: nothing is deleted
    by an import; an item that will not be done is closed as wontfix."""
    plan = ImportPlan()
    by_id = {item.id: item for item in existing}
    matched: set[int] = set()
    for row in rows:
        if row.id is not None:
            item = by_id.get(row.id)
            if item is None or item.incident_number != incident_number:
                raise ActionItemsError(
                    row.line, f"action item {row.id} is not one of incident #{incident_number}'s"
                )
        else:
            item = next(
                (i for i in existing if i.id not in matched and _same_title(i.title, row.title)),
                None,
            )
        if item is None:
            plan.added.append(row)
            continue
        if item.id in matched:
            raise ActionItemsError(row.line, f"action item {item.id} is listed twice")
        matched.add(item.id)
        changes = {
            name: getattr(row, name)
            for name in TABLE_COLUMNS
            if name in row.columns and getattr(row, name) != getattr(item, name)
        }
        if changes:
            plan.changed.append((item, changes))
    return plan
