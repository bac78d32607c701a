"""The Store contract, run against every backend: SQLite (file and :memory:) and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from orchestrator.actions import Action, ActionResult
from orchestrator.incident.model import Actor, ActorKind, Incident, Severity, Status
from orchestrator.report.chains import spliced_hash, verify_incident, verify_stored
from orchestrator.store.engine import alembic_config, head_revision, is_current, upgrade
from orchestrator.store.protocols import (
    AlertRecord,
    ConcurrentUpdateError,
    DeadLetter,
    Disposition,
    OutboxStatus,
    Store,
    SyncTransaction,
    Timer,
    TimerStatus,
)
from orchestrator.store.schema import metadata
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import GENESIS_HASH, EntryDraft, Kind

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
LEASE = dt.timedelta(seconds=30)
SYSTEM = Actor(ActorKind.SYSTEM, "orchestrator")
ALICE = Actor(ActorKind.SLACK, "U123", "alice")


class AbortError(Exception):
    """Raised inside a transaction to make it roll back."""


def make_incident(number: int, **changes: Any) -> Incident:
    base = Incident(
        number=number,
        title=f"Checkout errors #{number}",
        status=Status.TRIGGERED,
        severity=Severity.SEV2,
        max_severity=Severity.SEV2,
        playbook="checkout",
        playbook_version="3",
        group_key="service=checkout",
        group_labels={"service": "checkout"},
        declared_at=T0,
        updated_at=T0,
        service="checkout",
        team="payments",
        summary="5xx over 2%",
        firing=frozenset({"fp-b", "fp-a"}),
        links={"slack": "C0123"},
    )
    return dataclasses.replace(base, **changes)


def note(text: str, at: dt.datetime = T0, actor: Actor = SYSTEM) -> EntryDraft:
    return EntryDraft(Kind.NOTE, actor, at, {"text": text, "nested": {"n": 1.5, "l": [1, "x"]}})


def action(key: str, number: int, name: str = "slack.post") -> Action:
    return Action(key=key, name=name, params={"text": f"hello {key}"}, incident_number=number)


def timer(key: str, number: int, kind: str = "escalation", due: dt.datetime = T0) -> Timer:
    return Timer(key=key, incident_number=number, kind=kind, due_at=due, payload={"step": 1})


async def open_incident(store: SqlStore, **changes: Any) -> Incident:
    async with store.transaction() as txn:
        incident = make_incident(await txn.allocate_incident_number(), **changes)
        await txn.insert_incident(incident)
    return incident


def is_memory(store: SqlStore) -> bool:
    return store.engine.url.database in (None, "", ":memory:")


def test_sql_store_implements_the_seam(store: SqlStore) -> None:
    seam: Store = store  # mypy checks every method's signature here
    assert seam is store


# Schema and migrations


async def test_open_twice_migrates_once_and_keeps_data(store: SqlStore, store_url: str) -> None:
    incident = await open_incident(store)
    await store.open()  # already open: nothing happens
    if is_memory(store):
        return  # a second :memory: store would be a different database
    second = SqlStore(store_url)
    await second.open()
    try:
        assert await second.get_incident(incident.number) == incident
        async with second.transaction() as txn:
            assert await txn.allocate_incident_number() == incident.number + 1
    finally:
        await second.close()


async def test_migrated_schema_matches_metadata(store: SqlStore) -> None:
    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    with store.engine.connect() as conn:
        assert differences(conn) == []


async def test_the_head_revision_is_alembic_s_own(store: SqlStore) -> None:
    # Opening a store skips alembic when the schema is at head_revision(), which is read off
    # the file names: it must be the revision alembic itself would upgrade to.
    with store.engine.begin() as conn:
        config = alembic_config(conn)
        assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
        assert is_current(conn)
        command.downgrade(config, "-1")
        assert not is_current(conn)
        upgrade(conn)
        assert is_current(conn)


async def test_migrations_downgrade_to_nothing_and_back(store: SqlStore) -> None:
    def tables(conn: Connection) -> set[str]:
        return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}

    def downgrade(conn: Connection) -> None:
        command.downgrade(alembic_config(conn), "base")

    with store.engine.begin() as conn:
        assert tables(conn) == set(metadata.tables)
        downgrade(conn)
        assert tables(conn) == set()
        upgrade(conn)
        assert tables(conn) == set(metadata.tables)
    assert (await open_incident(store)).number == 1


# Incidents


async def test_incidents_insert_get_and_list(store: SqlStore) -> None:
    first = await open_incident(store)
    second = await open_incident(store, status=Status.RESOLVED, resolved_at=T0, is_drill=True)
    assert (first.number, second.number) == (1, 2)

    assert await store.get_incident(1) == first
    assert await store.get_incident(2) == second
    assert await store.get_incident(99) is None
    assert await store.list_incidents() == [second, first]
    assert await store.list_incidents(limit=1) == [second]
    assert await store.list_incidents(frozenset({Status.TRIGGERED})) == [first]
    assert await store.list_incidents(frozenset()) == []


async def test_update_incident_checks_the_revision(store: SqlStore) -> None:
    incident = await open_incident(store)
    async with store.transaction() as txn:
        locked = await txn.get_incident_for_update(incident.number)
        assert locked == incident
        acked = dataclasses.replace(
            incident, status=Status.ACKNOWLEDGED, acknowledged_at=T0, revision=1
        )
        await txn.update_incident(acked)
    assert await store.get_incident(incident.number) == acked

    stale = dataclasses.replace(incident, title="stale writer", revision=1)
    with pytest.raises(ConcurrentUpdateError):
        async with store.transaction() as txn:
            await txn.update_incident(stale)
    assert await store.get_incident(incident.number) == acked

    async with store.transaction() as txn:
        assert await txn.get_incident_for_update(404) is None


async def test_latest_incident_for_group(store: SqlStore) -> None:
    older = await open_incident(store, declared_at=T0)
    newer = await open_incident(store, declared_at=T0 + dt.timedelta(hours=1))
    await open_incident(store, group_key="service=search", declared_at=T0 + dt.timedelta(hours=2))
    async with store.transaction() as txn:
        assert await txn.latest_incident_for_group("service=checkout") == newer
        assert await txn.latest_incident_for_group("service=none") is None
    assert older.number < newer.number


async def test_incident_numbers_are_gap_free_across_rollbacks(store: SqlStore) -> None:
    async with store.transaction() as txn:
        assert await txn.allocate_incident_number() == 1

    async def allocate_then_fail() -> None:
        async with store.transaction() as txn:
            assert await txn.allocate_incident_number() == 2
            raise AbortError

    with pytest.raises(AbortError):
        await allocate_then_fail()
    async with store.transaction() as txn:
        assert await txn.allocate_incident_number() == 2


async def test_concurrent_transactions_take_turns(store: SqlStore) -> None:
    async def allocate() -> int:
        async with store.transaction() as txn:
            number = await txn.allocate_incident_number()
            await asyncio.sleep(0)  # let the other tasks try to interleave
            await txn.insert_incident(make_incident(number))
            return number

    numbers = await asyncio.gather(*(allocate() for _ in range(20)))
    assert sorted(numbers) == list(range(1, 21))


@pytest.mark.backends("sqlite-file", "sqlite-memory")  # PostgreSQL connections nest freely
async def test_sqlite_refuses_to_nest_instead_of_hanging(store: SqlStore) -> None:
    async with store.transaction():
        with pytest.raises(RuntimeError, match="already has a transaction"):
            await store.claim_due_actions(T0, 10, LEASE)
    if is_memory(store):
        async with store.transaction():
            with pytest.raises(RuntimeError, match="already has a transaction"):
                await store.list_incidents()
    else:
        async with store.transaction():
            assert await store.list_incidents() == []


# Timeline


async def test_timeline_is_hash_chained(store: SqlStore) -> None:
    incident = await open_incident(store)
    async with store.transaction() as txn:
        first = await txn.append_timeline(
            incident.number, [note("one"), note("two", actor=ALICE)], T0
        )
        assert await txn.append_timeline(incident.number, [], T0) == []
    async with store.transaction() as txn:
        later = await txn.append_timeline(
            incident.number, [note("three", at=T0.astimezone(PLUS_TWO))], T0
        )

    assert [e.seq for e in first + later] == [1, 2, 3]
    assert first[0].prev_hash == GENESIS_HASH
    assert later[0].prev_hash == first[1].hash
    stored = await store.timeline(incident.number)
    assert stored == first + later
    assert verify_incident(stored[0].incident_number, stored) == []
    assert await store.timeline(404) == []


async def test_receive_times_never_run_backwards_along_a_chain(store: SqlStore) -> None:
    incident = await open_incident(store)
    later, earlier = T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=1)
    async with store.transaction() as txn:
        await txn.append_timeline(incident.number, [note("clock ahead")], later)
    async with store.transaction() as txn:
        (entry,) = await txn.append_timeline(incident.number, [note("clock stepped back")], earlier)
    assert entry.recorded_at == later
    assert entry.occurred_at == T0  # the source's own time is kept as given
    stored = await store.timeline(incident.number)
    assert [e.recorded_at for e in stored] == [later, later]
    assert verify_incident(stored[0].incident_number, stored) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE timeline SET data = '{}' WHERE seq = 1",
        "DELETE FROM timeline WHERE seq = 1",
        "DELETE FROM timeline",
    ],
)
async def test_the_database_refuses_to_change_the_timeline(store: SqlStore, statement: str) -> None:
    incident = await open_incident(store)
    async with store.transaction() as txn:
        await txn.append_timeline(incident.number, [note("immutable")], T0)

    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(sa.text(statement))
    entries = await store.timeline(incident.number)
    assert [e.data["text"] for e in entries] == ["immutable"]
    assert verify_incident(entries[0].incident_number, entries) == []


# Alerts and dead letters


async def test_alerts_are_recorded_once(store: SqlStore) -> None:
    incident = await open_incident(store)
    record = AlertRecord(
        alert_id="am:abc",
        source="alertmanager",
        fingerprint="abc",
        status="firing",
        labels={"service": "checkout", "ünïcode": "✓"},
        starts_at=T0 - dt.timedelta(minutes=3),
        received_at=T0,
        disposition=Disposition.OPENED,
        playbook="checkout",
        incident_number=incident.number,
    )
    unmatched = AlertRecord(
        alert_id="am:def",
        source="alertmanager",
        fingerprint="def",
        status="firing",
        labels={},
        starts_at=T0,
        received_at=T0 + dt.timedelta(seconds=1),
        disposition=Disposition.UNMATCHED,
    )
    async with store.transaction() as txn:
        assert await txn.seen_alerts(["am:abc"]) == set()
        await txn.record_alerts([record])
        await txn.record_alerts([unmatched])
        assert await txn.seen_alerts(["am:abc"]) == {"am:abc"}
    async with store.transaction() as txn:
        assert await txn.seen_alerts(["am:abc"]) == {"am:abc"}
        assert await txn.seen_alerts(["am:zzz"]) == set()
    with pytest.raises(sa.exc.IntegrityError):
        async with store.transaction() as txn:
            await txn.record_alerts([record])

    assert await store.list_alerts() == [record, unmatched]
    assert await store.list_alerts(incident.number) == [record]


async def test_dead_letters_keep_the_exact_bytes(store: SqlStore) -> None:
    invalid_utf8 = b'{"labels": "\xff\xfe\x00\xc3("}\r\n'
    huge = bytes(range(256)) * 4200  # a little over 1 MiB, every byte value
    letters = [
        DeadLetter("file.jsonl:12", "labels: not valid UTF-8", invalid_utf8, T0),
        DeadLetter(
            "kafka:alerts/3@1042",
            "body too large",
            huge,
            T0.astimezone(PLUS_TWO),
            headers={"content-type": "application/json"},
        ),
        DeadLetter("http:/v1/alerts", "empty body", b"", T0),
    ]
    async with store.transaction() as txn:
        ids = [await txn.record_dead_letter(letter) for letter in letters]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3

    stored = await store.list_dead_letters()
    assert stored == [dataclasses.replace(d, id=i) for d, i in zip(letters, ids, strict=True)][::-1]
    assert stored[1].raw == huge
    assert type(stored[2].raw) is bytes
    assert await store.list_dead_letters(limit=1) == stored[:1]
    assert await store.get_dead_letter(ids[1]) == stored[1]
    assert await store.get_dead_letter(max(ids) + 1) is None


# Outbox


async def test_enqueue_skips_keys_already_present(store: SqlStore) -> None:
    incident = await open_incident(store)
    n = incident.number
    async with store.transaction() as txn:
        assert await txn.enqueue_actions([action("a", n), action("b", n)], T0) == [
            action("a", n),
            action("b", n),
        ]
    later = T0 + dt.timedelta(minutes=1)
    async with store.transaction() as txn:
        new = await txn.enqueue_actions([action("b", n), action("c", n), action("c", n)], later)
        assert new == [action("c", n)]
        assert await txn.enqueue_actions([], later) == []

    items = await store.list_actions(n)
    assert [item.action.key for item in items] == ["a", "b", "c"]
    assert items[0].action == action("a", n)
    assert (items[0].status, items[0].attempts, items[0].last_error) == (
        OutboxStatus.PENDING,
        0,
        "",
    )
    assert items[2].created_at == items[2].next_attempt_at == later
    assert items[0].delivered_at is None
    assert items[0].result == {}
    assert await store.list_actions(404) == []
    assert await store.list_actions() == items


async def test_claim_takes_a_lease(store: SqlStore) -> None:
    n = (await open_incident(store)).number
    other = (await open_incident(store)).number  # another incident: not held up behind `first`
    async with store.transaction() as txn:
        await txn.enqueue_actions([action("first", n)], T0)
        await txn.enqueue_actions([action("second", other)], T0 + dt.timedelta(seconds=5))
        await txn.enqueue_actions(
            [action("later", n, "pagerduty.trigger")], T0 + dt.timedelta(hours=1)
        )

    assert await store.claim_due_actions(T0 - dt.timedelta(seconds=1), 10, LEASE) == []
    now = T0 + dt.timedelta(seconds=10)
    assert await store.claim_due_actions(now, 0, LEASE) == []
    claimed = await store.claim_due_actions(now, 1, LEASE)
    assert [item.action.key for item in claimed] == ["first"]
    claimed = await store.claim_due_actions(now, 10, LEASE)
    assert [item.action.key for item in claimed] == ["second"]
    assert await store.claim_due_actions(now + LEASE - dt.timedelta(seconds=1), 10, LEASE) == []

    expired = now + LEASE
    reclaimed = await store.claim_due_actions(expired, 10, LEASE)
    assert [item.action.key for item in reclaimed] == ["first", "second"]
    assert await store.claim_due_actions(expired, 10, LEASE) == []


async def test_one_incidents_actions_in_a_lane_go_out_in_order(store: SqlStore) -> None:
    n = (await open_incident(store)).number
    async with store.transaction() as txn:
        await txn.enqueue_actions(
            [
                action("open", n, "slack.open_channel"),
                action("page", n, "pagerduty.trigger"),
                action("post", n),
            ],
            T0,
        )
        await txn.enqueue_actions([action("update", n, "slack.update")], T0)
    await txn_later(store, [action("resolved", n)], T0 + dt.timedelta(seconds=1))

    now = T0 + dt.timedelta(seconds=5)
    # One per lane: Slack's first action holds the rest of Slack back; PagerDuty goes ahead.
    claimed = await store.claim_due_actions(now, 10, LEASE)
    assert sorted(item.action.key for item in claimed) == ["open", "page"]
    await store.finish_action("page", ActionResult.success("paged"), now, None, [])
    # While `open` waits for a retry, the lane stays blocked behind it.
    retry = ActionResult.failure("HTTP 503", retryable=True)
    await store.finish_action("open", retry, now, now + dt.timedelta(minutes=1), [])
    assert await store.claim_due_actions(now, 10, LEASE) == []

    later = now + dt.timedelta(minutes=1)
    order = []
    while claimed := await store.claim_due_actions(later, 10, LEASE):
        assert len(claimed) == 1
        order.append(claimed[0].action.key)
        await store.finish_action(order[-1], ActionResult.success("ok"), later, None, [])
    assert order == ["open", "post", "update", "resolved"]
    # A failure that is final does not block what comes after it.
    await txn_later(store, [action("a", n), action("b", n)], later)
    [first] = await store.claim_due_actions(later, 10, LEASE)
    await store.finish_action(first.action.key, ActionResult.failure("400"), later, None, [])
    [second] = await store.claim_due_actions(later, 10, LEASE)
    assert (first.action.key, second.action.key) == ("a", "b")

    await store.finish_action("b", ActionResult.success("ok"), later, None, [])
    assert await store.incident_for_result("slack.post", "ts", "1.5") is None
    done = ActionResult.success("posted", ts="1.5", channel="C9")
    # Enqueued at the same instant as `a` and `b` in another transaction: still after them.
    await txn_later(store, [action("c", n)], later)
    [posted] = await store.claim_due_actions(later, 10, LEASE)
    await store.finish_action(posted.action.key, done, later, None, [])
    assert await store.incident_for_result("slack.post", "ts", "1.5") == n
    assert await store.incident_for_result("slack.post", "channel", "C9") == n
    assert await store.incident_for_result("slack.update", "ts", "1.5") is None
    assert await store.incident_for_result("slack.post", "ts", "1.6") is None
    delivered = await store.delivered_actions(n)
    assert [d.key for d in delivered] == ["page", "open", "post", "update", "resolved", "b", "c"]
    assert await store.delivered_actions(404) == []


async def txn_later(store: SqlStore, actions: list[Action], at: dt.datetime) -> None:
    async with store.transaction() as txn:
        await txn.enqueue_actions(actions, at)


async def test_finish_action_delivered(store: SqlStore) -> None:
    incident = await open_incident(store)
    async with store.transaction() as txn:
        await txn.enqueue_actions([action("page", incident.number, "pagerduty.trigger")], T0)
    await store.claim_due_actions(T0, 10, LEASE)

    done = T0 + dt.timedelta(seconds=2)
    result = ActionResult.success("paged", dedup_key="page")
    drafts = [EntryDraft(Kind.ACTION_SUCCEEDED, SYSTEM, done, {"key": "page"})]
    await store.finish_action("page", result, done, None, drafts)

    [item] = await store.list_actions(incident.number)
    assert (item.status, item.attempts, item.delivered_at) == (OutboxStatus.DELIVERED, 1, done)
    assert item.result == {"dedup_key": "page"}
    entries = await store.timeline(incident.number)
    assert [(e.kind, e.recorded_at) for e in entries] == [(Kind.ACTION_SUCCEEDED, done)]
    assert await store.claim_due_actions(done + LEASE * 10, 10, LEASE) == []

    # A dispatcher whose lease had expired reports late: the delivery stands.
    late = ActionResult.failure("timeout", retryable=True)
    await store.finish_action("page", late, done, done + LEASE, [note("late")])
    [item] = await store.list_actions(incident.number)
    assert (item.status, item.attempts) == (OutboxStatus.DELIVERED, 1)
    assert len(await store.timeline(incident.number)) == 2


async def test_finish_action_retry_then_fail(store: SqlStore) -> None:
    incident = await open_incident(store)
    n = incident.number
    async with store.transaction() as txn:
        await txn.append_timeline(n, [note("declared")], T0)
        await txn.enqueue_actions([action("post", n)], T0)
    await store.claim_due_actions(T0, 10, LEASE)

    retry_at = T0 + dt.timedelta(minutes=5)
    failure = ActionResult.failure("HTTP 503", retryable=True)
    retrying = [EntryDraft(Kind.ACTION_RETRYING, SYSTEM, T0, {"error": "HTTP 503"})]
    await store.finish_action("post", failure, T0, retry_at, retrying)

    [item] = await store.list_actions(n)
    assert (item.status, item.attempts, item.last_error) == (OutboxStatus.PENDING, 1, "HTTP 503")
    assert item.next_attempt_at == retry_at
    # The lease is released, but the item waits for its retry time.
    assert await store.claim_due_actions(retry_at - dt.timedelta(seconds=1), 10, LEASE) == []
    [again] = await store.claim_due_actions(retry_at, 10, LEASE)
    assert again.attempts == 1

    gave_up = [EntryDraft(Kind.ACTION_FAILED, SYSTEM, retry_at, {"error": "HTTP 400"})]
    await store.finish_action("post", ActionResult.failure("HTTP 400"), retry_at, None, gave_up)
    [item] = await store.list_actions(n)
    assert (item.status, item.attempts, item.last_error) == (OutboxStatus.FAILED, 2, "HTTP 400")
    assert await store.claim_due_actions(retry_at + LEASE * 10, 10, LEASE) == []

    entries = await store.timeline(n)
    assert [e.kind for e in entries] == [Kind.NOTE, Kind.ACTION_RETRYING, Kind.ACTION_FAILED]
    assert verify_incident(entries[0].incident_number, entries) == []


async def test_finish_unknown_action_raises(store: SqlStore) -> None:
    with pytest.raises(KeyError):
        await store.finish_action("missing", ActionResult.success(), T0, None, [])


# Timers


async def test_timers_schedule_cancel_claim_and_fire_once(store: SqlStore) -> None:
    incident = await open_incident(store)
    n = incident.number
    escalate = timer("esc", n, "escalation", T0 + dt.timedelta(minutes=5))
    ack = timer("ack", n, "ack_timeout", T0 + dt.timedelta(minutes=1))
    other = timer("other", n, "reminder")
    async with store.transaction() as txn:
        assert await txn.schedule_timers([escalate, ack]) == [escalate, ack]
    async with store.transaction() as txn:
        assert await txn.schedule_timers([ack, other]) == [other]
    assert [t.key for t in await store.list_timers(n)] == ["other", "ack", "esc"]

    async with store.transaction() as txn:
        cancelled = await txn.cancel_timers(n, frozenset({"escalation"}), T0)
        assert await txn.cancel_timers(n, frozenset(), T0) == []
    assert cancelled == [dataclasses.replace(escalate, status=TimerStatus.CANCELLED)]

    now = T0 + dt.timedelta(minutes=10)
    claimed = await store.claim_due_timers(now, 10, LEASE)
    assert [t.key for t in claimed] == ["other", "ack"]
    assert await store.claim_due_timers(now, 10, LEASE) == []
    # The lease expires before anyone marks "ack" fired: it is claimed again but fires once.
    assert [t.key for t in await store.claim_due_timers(now + LEASE, 1, LEASE)] == ["other"]
    async with store.transaction() as txn:
        assert await txn.mark_timer_fired("ack", now)
        assert not await txn.mark_timer_fired("ack", now)
        assert not await txn.mark_timer_fired("esc", now)
        assert not await txn.mark_timer_fired("missing", now)

    async with store.transaction() as txn:
        rest = await txn.cancel_timers(n, None, now)
    assert rest == [dataclasses.replace(other, status=TimerStatus.CANCELLED)]
    statuses = {t.key: t.status for t in await store.list_timers()}
    assert statuses == {
        "ack": TimerStatus.FIRED,
        "esc": TimerStatus.CANCELLED,
        "other": TimerStatus.CANCELLED,
    }
    assert await store.claim_due_timers(now + LEASE * 10, 10, LEASE) == []


async def test_next_timer_due(store: SqlStore) -> None:
    assert await store.next_timer_due() is None
    incident = await open_incident(store)
    n = incident.number
    soon = timer("soon", n, "ack_timeout", T0 + dt.timedelta(minutes=1))
    later = timer("later", n, "escalation", T0 + dt.timedelta(minutes=5))
    async with store.transaction() as txn:
        await txn.schedule_timers([later, soon])
    assert await store.next_timer_due() == soon.due_at

    # Claimed, "soon" can next be claimed when its lease runs out.
    claim_at = soon.due_at + dt.timedelta(seconds=10)
    assert [t.key for t in await store.claim_due_timers(claim_at, 10, LEASE)] == ["soon"]
    assert await store.next_timer_due() == claim_at + LEASE
    async with store.transaction() as txn:
        assert await txn.mark_timer_fired("soon", claim_at)
    assert await store.next_timer_due() == later.due_at
    async with store.transaction() as txn:
        await txn.cancel_timers(n, None, claim_at)
    assert await store.next_timer_due() is None


async def test_overdue_timers_for_the_auditor(store: SqlStore) -> None:
    assert await store.overdue_timers(T0) == (0, None)
    n = (await open_incident(store)).number
    first = timer("first", n, "escalation", T0 - dt.timedelta(minutes=10))
    second = timer("second", n, "reminder", T0 - dt.timedelta(minutes=3))
    later = timer("later", n, "escalation", T0 + dt.timedelta(minutes=3))
    async with store.transaction() as txn:
        await txn.schedule_timers([later, second, first])
    assert await store.overdue_timers(T0) == (2, first.due_at)
    assert await store.overdue_timers(T0 - dt.timedelta(minutes=5)) == (1, first.due_at)
    async with store.transaction() as txn:
        assert await txn.mark_timer_fired("first", T0)
    assert await store.overdue_timers(T0) == (1, second.due_at)  # fired ones are done


# Time and atomicity


async def test_timestamps_come_back_aware_utc(store: SqlStore) -> None:
    local = T0.astimezone(PLUS_TWO)
    incident = await open_incident(store, declared_at=local, updated_at=local, closed_at=local)
    async with store.transaction() as txn:
        await txn.append_timeline(incident.number, [note("tz", at=local)], local)
        await txn.enqueue_actions([action("a", incident.number)], local)
        await txn.schedule_timers([timer("t", incident.number, due=local)])
    stored = await store.get_incident(incident.number)
    assert stored is not None
    [entry] = await store.timeline(incident.number)
    [item] = await store.list_actions()
    [stored_timer] = await store.list_timers()
    values = [
        stored.declared_at,
        stored.updated_at,
        stored.closed_at,
        entry.occurred_at,
        entry.recorded_at,
        item.created_at,
        item.next_attempt_at,
        stored_timer.due_at,
    ]
    for value in values:
        assert value == T0
        assert value is not None
        assert value.tzinfo is dt.UTC
    assert verify_incident(entry.incident_number, [entry]) == []


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    naive = dt.datetime(2026, 3, 1, 12, 0)
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        async with store.transaction() as txn:
            await txn.insert_incident(make_incident(1, declared_at=naive))
    assert await store.list_incidents() == []


async def test_rollback_leaves_nothing_behind(store: SqlStore) -> None:
    async def write_everything_then_fail() -> None:
        async with store.transaction() as txn:
            incident = make_incident(await txn.allocate_incident_number())
            await txn.insert_incident(incident)
            await txn.append_timeline(incident.number, [note("gone")], T0)
            await txn.enqueue_actions([action("a", incident.number)], T0)
            await txn.schedule_timers([timer("t", incident.number)])
            await txn.record_dead_letter(DeadLetter("x", "y", b"z", T0))
            await txn.record_alerts(
                [AlertRecord("id", "src", "fp", "firing", {}, T0, T0, Disposition.OPENED)]
            )
            raise AbortError

    with pytest.raises(AbortError):
        await write_everything_then_fail()

    assert await store.list_incidents() == []
    assert await store.timeline(1) == []
    assert await store.list_actions() == []
    assert await store.list_timers() == []
    assert await store.list_dead_letters() == []
    assert await store.list_alerts() == []
    assert await store.claim_due_actions(T0, 10, LEASE) == []
    async with store.transaction() as txn:
        assert await txn.allocate_incident_number() == 1


async def test_rows_must_belong_to_an_incident(store: SqlStore) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        async with store.transaction() as txn:
            await txn.enqueue_actions([action("orphan", 404)], T0)
    assert await store.list_actions() == []


# Concurrency between processes


@pytest.mark.backends("sqlite-file", "postgres")  # a :memory: database cannot be shared
async def test_concurrent_claimers_never_share_a_key(store: SqlStore, store_url: str) -> None:
    # One action per incident: one incident's actions in a lane go out one at a time anyway.
    keys = [f"k{i:03}" for i in range(60)]
    numbers = [(await open_incident(store)).number for _ in keys]
    async with store.transaction() as txn:
        await txn.enqueue_actions([action(k, n) for k, n in zip(keys, numbers, strict=True)], T0)

    other = SqlStore(store_url)
    await other.open()
    try:

        async def drain(claimer: SqlStore) -> list[str]:
            got: list[str] = []
            while batch := await claimer.claim_due_actions(T0, 4, LEASE):
                got += [item.action.key for item in batch]
            return got

        results = await asyncio.gather(drain(store), drain(other), drain(store), drain(other))
    finally:
        await other.close()

    everything = [key for result in results for key in result]
    assert sorted(everything) == keys  # each key exactly once
    if store.engine.dialect.name == "postgresql":
        # Row locks let both claim side by side. (SQLite's file lock may let one store drain
        # everything while the other waits, which is fair enough for an embedded database.)
        assert results[0] + results[2]
        assert results[1] + results[3]


# The one-hop path the pipeline uses


async def test_run_commits_what_the_work_wrote(store: SqlStore) -> None:
    def work(txn: SyncTransaction) -> int:
        number = txn.allocate_incident_number()
        txn.insert_incident(make_incident(number))
        txn.append_timeline(number, [note("in one hop")], T0)
        return number

    number = await store.run(work)
    assert number == 1
    assert [e.data["text"] for e in await store.timeline(number)] == ["in one hop"]


async def test_run_rolls_back_when_the_work_raises(store: SqlStore) -> None:
    def work(txn: SyncTransaction) -> None:
        txn.insert_incident(make_incident(txn.allocate_incident_number()))
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await store.run(work)
    assert await store.list_incidents() == []
    assert (await open_incident(store)).number == 1  # the number was given back


async def test_a_commit_that_fails_leaves_the_store_usable(store: SqlStore) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await store.run(lambda txn: txn.enqueue_actions([action("orphan", 404)], T0))
    incident = await open_incident(store)
    await store.run(lambda txn: txn.enqueue_actions([action("fine", incident.number)], T0))
    assert [item.action.key for item in await store.list_actions()] == ["fine"]


async def test_a_batch_looks_up_and_records_alerts_together(store: SqlStore) -> None:
    incident = await open_incident(store)
    records = [
        AlertRecord(
            f"a{i}",
            "alertmanager",
            f"fp{i}",
            "firing",
            {"alertname": "X"},
            T0,
            T0,
            Disposition.GROUPED,
            "db",
            incident.number,
        )
        for i in range(3)
    ]
    await store.run(lambda txn: txn.record_alerts(records[:2]))
    seen = await store.run(lambda txn: txn.seen_alerts(["a0", "a1", "a2", "a0"]))
    assert seen == {"a0", "a1"}
    assert await store.run(lambda txn: txn.seen_alerts([])) == set()
    await store.run(lambda txn: txn.record_alerts([]))
    assert [r.alert_id for r in await store.list_alerts()] == ["a0", "a1"]


async def test_appends_within_one_transaction_keep_one_chain(store: SqlStore) -> None:
    def work(txn: SyncTransaction) -> None:
        number = txn.allocate_incident_number()
        txn.insert_incident(make_incident(number))
        txn.append_timeline(number, [note("first")], T0)
        txn.append_timeline(number, [note("second"), note("third")], T0)

    await store.run(work)
    await store.run(lambda txn: txn.append_timeline(1, [note("later")], T0))
    entries = await store.timeline(1)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert verify_incident(entries[0].incident_number, entries) == []


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"])
async def test_a_sqlite_file_store_creates_its_folder(tmp_path: Path, scheme: str) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    created = SqlStore(f"{scheme}:///{path}")
    await created.open()
    try:
        assert (await open_incident(created)).number == 1
    finally:
        await created.close()
    assert path.is_file()


async def test_held_writes_keep_stored_keys_and_write_the_rest(store: SqlStore) -> None:
    # The bulk writes at commit (COPY and pipelined statements on PostgreSQL, executemany on
    # SQLite) must keep the same promises as the one-by-one calls: a key already stored (a
    # redelivered decision's action or timer) is left as it is, the rest all land.
    incident = await open_incident(store, policy={"levels": [{"after": "PT5M"}]})
    n = incident.number
    async with store.transaction() as txn:
        await txn.enqueue_actions([action("sent", n, "pagerduty.trigger")], T0)
        await txn.schedule_timers([timer("due", n, due=T0)])

    def work(txn: SyncTransaction) -> None:
        txn.queue_actions([action("sent", n, "slack.post"), action("new", n)], T0)
        txn.queue_timers([timer("due", n, due=T0 + LEASE), timer("later", n, due=T0 + LEASE)])
        txn.append_timeline(n, [note("one"), note("two")], T0)
        renamed = dataclasses.replace(incident, title="renamed", revision=incident.revision + 1)
        txn.update_incident(renamed)

    await store.run(work)
    actions = {item.action.key: item.action.name for item in await store.list_actions()}
    assert actions == {"sent": "pagerduty.trigger", "new": "slack.post"}
    due = {stored.key: stored.due_at for stored in await store.list_timers()}
    assert due == {"due": T0, "later": T0 + LEASE}
    entries = await store.timeline(n)
    assert [e.data["text"] for e in entries] == ["one", "two"]
    assert verify_incident(n, entries) == []
    stored = await store.get_incident(n)
    assert stored is not None
    assert (stored.title, stored.revision) == ("renamed", incident.revision + 1)
    assert stored.policy == incident.policy


async def test_a_stale_held_update_is_refused_at_commit(store: SqlStore) -> None:
    incident = await open_incident(store)
    async with store.transaction() as txn:
        first = dataclasses.replace(incident, title="first", revision=incident.revision + 1)
        await txn.update_incident(first)

    def stale(txn: SyncTransaction) -> None:
        # Written from the same old copy: its revision check finds the row moved on.
        txn.update_incident(dataclasses.replace(incident, title="stale", revision=first.revision))

    with pytest.raises(ConcurrentUpdateError):
        await store.run(stale)
    stored = await store.get_incident(incident.number)
    assert stored is not None
    assert stored.title == "first"


async def test_chains_read_as_text_are_the_exact_bytes_their_hashes_cover(
    store: SqlStore,
) -> None:
    # Verifying a whole store splices the stored JSON and times into the canonical layout
    # instead of parsing them. That holds only if every backend hands back its text as
    # written: sorted keys, no spaces, UTF-8, times in UTC to the microsecond.
    first = await open_incident(store)
    second = await open_incident(store)
    odd = Actor(ActorKind.SLACK, "U9", "Zoë “quoted” <&>")
    local = dt.datetime(2026, 3, 1, 14, 0, 0, 7, tzinfo=PLUS_TWO)
    async with store.transaction() as txn:
        await txn.append_timeline(first.number, [note("plain")], T0)
        drafts = [
            EntryDraft(
                Kind.NOTE, odd, local, {"z": {"b": [1, 2.5, None]}, "a": "naïve 🚨", "n": 10**12}
            ),
            note("second", at=T0 + dt.timedelta(microseconds=1)),
        ]
        await txn.append_timeline(second.number, drafts, T0 + dt.timedelta(seconds=1))

    chains = [(number, rows) async for number, rows in store.stored_chains(page=1)]
    assert [(number, len(rows)) for number, rows in chains] == [
        (first.number, 1),
        (second.number, 2),
    ]
    for number, rows in chains:
        assert [spliced_hash(number, row) for row in rows] == [row[7] for row in rows]
        assert verify_stored(number, rows) == []
