"""Rows a transaction writes in bulk just before it commits: a batch of alerts becomes a few
multi-row statements instead of a handful of statements per alert (docs/adr/0005)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from orchestrator.incident.model import Incident
from orchestrator.store import rows
from orchestrator.store.bulk import copy_rows, insert_new_rows, update_rows
from orchestrator.store.protocols import ConcurrentUpdateError
from orchestrator.store.schema import INCIDENT_COUNTER, counters, incidents, outbox, timeline
from orchestrator.store.schema import timers as timers_table

_INSERT_INCIDENT = sa.insert(incidents)
_UPDATE_INCIDENT = sa.update(incidents).where(
    incidents.c.number == sa.bindparam("where_number"),
    incidents.c.revision == sa.bindparam("where_revision"),
)
_SET_COUNTER = (
    sa.update(counters)
    .where(counters.c.name == INCIDENT_COUNTER)
    .values(value=sa.bindparam("value"))
)
_INSERT_ENTRY = sa.insert(timeline)


# SQLite's; PostgreSQL's rows go through bulk.insert_new_rows.
_SKIP_EXISTING = {
    table.name: sqlite.insert(table).on_conflict_do_nothing(index_elements=[table.c.key])
    for table in (outbox, timers_table)
}


@dataclass
class PendingWrites:
    """What the transaction decided to write, held until `flush`. The transaction holds the
    locks that make the deferral safe: each incident's row (or SQLite's write lock) and the
    incident counter's row, from the moment it read or bumped them."""

    counter: int | None = None  # the last incident number handed out, once it moved
    new: dict[int, Incident] = field(default_factory=dict)
    # Changed incidents, each with the revision it had when this transaction read it.
    changed: dict[int, tuple[Incident, int]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)

    def record_incident(self, incident: Incident, *, new: bool) -> None:
        if new or incident.number in self.new:
            self.new[incident.number] = incident
            return
        base = self.changed.get(incident.number, (incident, incident.revision - 1))[1]
        self.changed[incident.number] = (incident, base)

    def __bool__(self) -> bool:
        return bool(
            self.counter is not None
            or self.new
            or self.changed
            or self.entries
            or self.timers
            or self.actions
        )

    def flush(self, conn: Connection, postgres: bool) -> None:
        """Writes everything held, parents before children, and forgets it."""
        if self.counter is not None:
            conn.execute(_SET_COUNTER, {"value": self.counter})
        if self.new:
            conn.execute(_INSERT_INCIDENT, [rows.incident_values(i) for i in self.new.values()])
        if self.changed:
            self._update_changed(conn, postgres)
        if self.entries:
            if postgres:
                copy_rows(conn, timeline, self.entries)
            else:
                conn.execute(_INSERT_ENTRY, self.entries)
        for table, new_rows in ((timers_table, self.timers), (outbox, self.actions)):
            if new_rows and postgres:
                insert_new_rows(conn, table, new_rows)
            elif new_rows:
                conn.execute(_SKIP_EXISTING[table.name], new_rows)
        self.counter = None
        for held in (self.new, self.changed):
            held.clear()
        for rows_held in (self.entries, self.timers, self.actions):
            rows_held.clear()

    def _update_changed(self, conn: Connection, postgres: bool) -> None:
        values = []
        for incident, base in self.changed.values():
            values.append(
                rows.incident_changes(incident)
                | {"where_number": incident.number, "where_revision": base}
            )
        if postgres:
            updated = update_rows(conn, incidents, values, where=("number", "revision"))
        else:
            updated = conn.execute(_UPDATE_INCIDENT, values).rowcount
            if not conn.dialect.supports_sane_multi_rowcount:
                return
        # Row locks make a lost race impossible; the revision check is the belt to those braces.
        if updated != len(values):
            raise ConcurrentUpdateError(
                f"{len(values) - updated} of {len(values)} incidents changed under this transaction"
            )
