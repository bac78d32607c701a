"""Each incident's canonical timestamps, kept as a fold over its timeline (report/timestamps.py)
so that metrics over a year read one row per incident instead of every entry.

The folds are derived data: the timeline stays the record. Before metrics are read, every fold
is brought up to its timeline's newest entry, reading only the entries it has not seen and only
of the kinds a fold looks at; `rebuild` starts them all again from the first entry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestrator.incident.model import Status
from orchestrator.report.metrics import STATUS_FIGURE, figures_json
from orchestrator.report.timestamps import (
    FOLDED_KINDS,
    CanonicalTimestamps,
    TimestampFold,
    stamps_from_json,
    stamps_json,
)
from orchestrator.store.schema import incidents, timeline, timestamp_folds

T = TypeVar("T")
PAGE = 500  # incidents brought up to date in one transaction

_FOLDED = sorted(str(kind) for kind in FOLDED_KINDS)


class FoldQueries:
    """Mixed into SqlStore; `_run` is its one-hop helper."""

    _sqlite: bool

    async def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        raise NotImplementedError

    async def refresh_folds(
        self, *, rebuild: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> list[int]:
        """Brings every incident's fold up to its timeline; returns the incidents that moved.
        `progress(done, total)` after each page."""
        stale = await self._run(partial(_stale, rebuild=rebuild), write=False)
        upsert = _upsert(postgres=not self._sqlite, rebuild=rebuild)
        for first in range(0, len(stale), PAGE):
            page = stale[first : first + PAGE]
            await self._run(partial(_fold_page, page, upsert, rebuild), write=True)
            if progress is not None:
                progress(first + len(page), len(stale))
        return stale

    async def folded_timestamps(
        self, declared_from: dt.datetime | None, declared_to: dt.datetime | None
    ) -> list[tuple[CanonicalTimestamps, str, bool]]:
        """(timestamps, team, is_drill) of every incident declared in [from, to), as folded:
        call refresh_folds first for figures up to the newest entry."""
        rows = await self._folded((timestamp_folds.c.stamps,), declared_from, declared_to)
        return [(stamps_from_json(stamps), team, is_drill) for stamps, team, is_drill in rows]

    async def folded_figures(
        self,
        declared_from: dt.datetime | None,
        declared_to: dt.datetime | None,
        numbers: Sequence[int] | None = None,
    ) -> list[tuple[int, list[Any], str, bool]]:
        """(number, figures, team, is_drill) likewise, only of `numbers` when given: what
        metrics_from_figures reads, a fraction of the cost of the timestamps for a report that
        needs only durations."""
        return await self._folded(
            (timestamp_folds.c.incident_number, timestamp_folds.c.figures),
            declared_from,
            declared_to,
            numbers,
        )

    async def claim_over(self) -> list[tuple[list[Any], str, bool]]:
        """(figures, team, is_drill) of the folded incidents that are over and not yet
        observed, now marked observed: each is claimed once, whichever replicas ask, for the
        service's histograms. Call refresh_folds first."""
        return await self._run(_claim_over, write=True)

    async def _folded(
        self,
        columns: tuple[sa.ColumnElement[Any], ...],
        declared_from: dt.datetime | None,
        declared_to: dt.datetime | None,
        numbers: Sequence[int] | None = None,
    ) -> list[Any]:
        query = sa.select(*columns, incidents.c.team, incidents.c.is_drill).join(
            incidents, incidents.c.number == timestamp_folds.c.incident_number
        )
        if numbers is not None:
            query = query.where(timestamp_folds.c.incident_number.in_(list(numbers)))
        if declared_from is not None:
            query = query.where(timestamp_folds.c.declared_at >= declared_from)
        if declared_to is not None:
            query = query.where(timestamp_folds.c.declared_at < declared_to)
        query = query.order_by(timestamp_folds.c.incident_number)
        return await self._run(lambda conn: list(conn.execute(query).all()), write=False)


def _stale(conn: Connection, rebuild: bool) -> list[int]:
    """The incidents whose fold is missing or behind their timeline. Only numbers: the folds'
    state is read a page at a time by those that need it (most do not)."""
    folds = timestamp_folds
    joined = incidents.outerjoin(folds, folds.c.incident_number == incidents.c.number)
    query = sa.select(incidents.c.number).select_from(joined)
    if not rebuild:
        newer = (
            sa.select(timeline.c.seq)
            .where(timeline.c.incident_number == incidents.c.number, timeline.c.seq > folds.c.seq)
            .exists()
        )
        query = query.where(sa.or_(folds.c.incident_number.is_(None), newer))
    return list(conn.execute(query.order_by(incidents.c.number)).scalars())


def _claim_over(conn: Connection) -> list[tuple[list[Any], str, bool]]:
    folds = timestamp_folds
    unobserved = conn.execute(
        sa.select(folds.c.incident_number, folds.c.figures, incidents.c.team, incidents.c.is_drill)
        .join(incidents, incidents.c.number == folds.c.incident_number)
        .where(sa.not_(folds.c.observed))
        # Rows another replica is claiming (or folding) now are left to it: no waiting on
        # each other's locks, and no deadlock between two claims taking them in turn.
        .with_for_update(of=folds, skip_locked=True)
    ).all()
    over = {row[0]: row for row in unobserved if not Status(row[1][STATUS_FIGURE]).is_open}
    if not over:
        return []
    # Marked only if still unobserved: a replica that read them before this one's commit
    # (SQLite takes turns; PostgreSQL's rows are locked above) finds nothing left to mark.
    claimed = conn.execute(
        folds.update()
        .where(folds.c.incident_number.in_(list(over)), sa.not_(folds.c.observed))
        .values(observed=True)
        .returning(folds.c.incident_number)
    ).scalars()
    return [(over[number][1], over[number][2], over[number][3]) for number in sorted(claimed)]


def _fold_page(page: Sequence[int], upsert: Any, rebuild: bool, conn: Connection) -> None:
    folds = {number: TimestampFold(number) for number in page}
    numbers: sa.BindParameter[list[int]] = sa.bindparam("numbers", expanding=True)
    if not rebuild:
        stored = conn.execute(
            sa.select(timestamp_folds.c.incident_number, timestamp_folds.c.state).where(
                timestamp_folds.c.incident_number.in_(numbers)
            ),
            {"numbers": list(page)},
        )
        for number, state in stored:
            folds[number] = TimestampFold.from_json(state)
    after = min(fold.seq for fold in folds.values())
    entries = conn.execute(
        sa.select(
            timeline.c.incident_number,
            timeline.c.seq,
            timeline.c.kind,
            timeline.c.occurred_at,
            timeline.c.recorded_at,
            timeline.c.data,
        )
        .where(
            timeline.c.incident_number.in_(numbers),
            timeline.c.seq > after,
            # A fold dates an incident by its first entry if the triggered one is missing.
            sa.or_(timeline.c.kind.in_(_FOLDED), timeline.c.seq == 1),
        )
        .order_by(timeline.c.incident_number, timeline.c.seq),
        {"numbers": list(folds)},
    )
    for number, seq, kind, occurred_at, recorded_at, data in entries:
        fold = folds[number]
        if seq > fold.seq:
            fold.step(seq, kind, occurred_at, recorded_at, data)
    heads = conn.execute(
        sa.select(timeline.c.incident_number, sa.func.max(timeline.c.seq))
        .where(timeline.c.incident_number.in_(numbers))
        .group_by(timeline.c.incident_number),
        {"numbers": list(folds)},
    )
    for number, newest in heads:
        folds[number].seq = max(folds[number].seq, newest)
    values = []
    for fold in folds.values():
        if not fold.seq:  # an incident without entries has nothing to fold yet
            continue
        stamps = fold.result()
        values.append(
            {
                "incident_number": fold.number,
                "seq": fold.seq,
                "declared_at": stamps.declared_at,
                "state": fold.as_json(),
                "stamps": stamps_json(stamps),
                "figures": figures_json(stamps),
            }
        )
    if values:
        conn.execute(upsert, values)


def _upsert(postgres: bool, rebuild: bool) -> Any:
    insert = (postgresql.insert if postgres else sqlite.insert)(timestamp_folds)
    return insert.on_conflict_do_update(
        index_elements=[timestamp_folds.c.incident_number],
        set_={
            "seq": insert.excluded.seq,
            "declared_at": insert.excluded.declared_at,
            "state": insert.excluded.state,
            "stamps": insert.excluded.stamps,
            "figures": insert.excluded.figures,
        },
        # Two refreshes at once (the service's and a CLI's): the further one wins, never the
        # one that read less. A rebuild replaces what is there.
        where=None if rebuild else timestamp_folds.c.seq < insert.excluded.seq,
    )
