"""End to end: the shipped playbooks and the sample stream through the pipeline on SQLite."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from otel import Metrics
from samples import db_alert as sample_alert

from orchestrator.clock import ManualClock
from orchestrator.incident.engine import TransitionError
from orchestrator.incident.events import CommanderAssigned, NoteAdded, StatusChange
from orchestrator.incident.model import Actor, ActorKind, Severity, Status
from orchestrator.ingest.normalize import MAX_PAYLOAD_BYTES, split_stream
from orchestrator.pipeline import IncidentNotFoundError, IngestReport, Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.playbook_tests import run_playbook_tests
from orchestrator.report.chains import verify_incident
from orchestrator.scheduler import EscalationAuditor, TimerService
from orchestrator.store.protocols import Disposition, OutboxStatus, TimerStatus
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
STREAM = REPO / "examples" / "alertmanager-stream.jsonl"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ALICE = Actor(ActorKind.SLACK, "U123", "alice")

# What the sample stream opens, in order: (playbook, severity, final status, title).
EXPECTED_INCIDENTS = [
    ("api-slo-burn", Severity.SEV3, Status.RESOLVED, "search-api: HighLatencyP99"),
    (
        "api-slo-burn",
        Severity.SEV2,
        Status.RESOLVED,
        "checkout-api: ErrorBudgetBurn (availability SLO)",
    ),
    ("database-unavailable", Severity.SEV1, Status.RESOLVED, "orders-db: database unavailable"),
    ("database-unavailable", Severity.SEV2, Status.RESOLVED, "billing-db: database unavailable"),
    (
        "security-incident",
        Severity.SEV2,
        Status.TRIGGERED,
        "Security: SuspiciousLogin on admin-portal",
    ),
    (
        "security-incident",
        Severity.SEV1,
        Status.TRIGGERED,
        "Security: UnusualDataEgress on customer-export",
    ),
]


async def feed(pipeline: Pipeline, data: bytes, name: str = "stream") -> list[IngestReport]:
    return [await pipeline.ingest_bytes(raw, f"{name}:{line}") for line, raw in split_stream(data)]


async def snapshot(store: SqlStore) -> dict[str, object]:
    incidents = sorted(await store.list_incidents(), key=lambda i: i.number)
    return {
        "incidents": [(i.number, i.status, i.revision) for i in incidents],
        "timelines": {i.number: len(await store.timeline(i.number)) for i in incidents},
        "outbox": sorted(item.action.key for item in await store.list_actions()),
        "alerts": len(await store.list_alerts()),
        "timers": len(await store.list_timers()),
        "dead_letters": len(await store.list_dead_letters()),
    }


async def test_sample_stream_opens_the_expected_incidents(
    pipeline: Pipeline, store: SqlStore
) -> None:
    reports = await feed(pipeline, STREAM.read_bytes())
    assert len(reports) == 31
    assert all(r.error is None for r in reports)
    assert sum(r.truncated for r in reports) == 2
    incidents = sorted(await store.list_incidents(), key=lambda i: i.number)
    assert [i.number for i in incidents] == list(range(1, len(EXPECTED_INCIDENTS) + 1))
    got = [(i.playbook, i.max_severity, i.status, i.title) for i in incidents]
    assert got == EXPECTED_INCIDENTS
    orders = incidents[2]
    assert orders.cycle == 1  # PostgresDown flapped and reopened the incident
    assert orders.firing == frozenset()
    # Security incidents resolve manually: the alerts cleared but the incidents stay open.
    assert all(i.firing == frozenset() for i in incidents[4:])
    opened = [o.incident_number for r in reports for o in r.outcomes if o.disposition == "opened"]
    assert opened == [1, 2, 3, 4, 5, 6]
    reopened = [o for r in reports for o in r.outcomes if o.disposition is Disposition.REOPENED]
    assert [(o.incident_number, o.playbook) for o in reopened] == [(3, "database-unavailable")]


async def test_every_timeline_verifies(pipeline: Pipeline, store: SqlStore) -> None:
    await feed(pipeline, STREAM.read_bytes())
    for incident in await store.list_incidents():
        entries = await store.timeline(incident.number)
        assert entries, incident.number
        assert verify_incident(entries[0].incident_number, entries) == []
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert entries[0].kind is Kind.ALERT_RECEIVED
        assert entries[1].kind is Kind.INCIDENT_TRIGGERED
        recorded = [e.recorded_at for e in entries]
        assert recorded == sorted(recorded)


async def test_chain_verification_detects_an_edit(pipeline: Pipeline, store: SqlStore) -> None:
    await feed(pipeline, STREAM.read_bytes())
    entries = await store.timeline(3)
    tampered = list(entries)
    tampered[1] = type(entries[1])(**{**entries[1].__dict__, "data": {"title": "nothing"}})
    assert [(b.seq, b.kind) for b in verify_incident(3, tampered)] == [(2, "edited")]


async def test_resends_are_duplicates_and_add_nothing(pipeline: Pipeline, store: SqlStore) -> None:
    lines = dict(split_stream(STREAM.read_bytes()))
    first = await pipeline.ingest_bytes(lines[5], "stream:5")
    assert [o.disposition for o in first.outcomes] == [Disposition.OPENED]
    before = await snapshot(store)
    # Line 9 is Alertmanager resending line 5 unchanged.
    resent = await pipeline.ingest_bytes(lines[9], "stream:9")
    assert [o.disposition for o in resent.outcomes] == [Disposition.DUPLICATE]
    again = await pipeline.ingest_bytes(lines[5], "stream:5")
    assert [o.disposition for o in again.outcomes] == [Disposition.DUPLICATE]
    assert await snapshot(store) == before


async def test_feeding_the_stream_twice_changes_nothing(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    data = STREAM.read_bytes()
    await feed(pipeline, data)
    before = await snapshot(store)
    clock.advance(dt.timedelta(minutes=1))
    second = await feed(pipeline, data)
    assert {o.disposition for r in second for o in r.outcomes} == {Disposition.DUPLICATE}
    assert await snapshot(store) == before


async def test_every_alert_has_a_disposition(pipeline: Pipeline, store: SqlStore) -> None:
    reports = await feed(pipeline, STREAM.read_bytes())
    ids = {o.alert_id for r in reports for o in r.outcomes}
    records = await store.list_alerts()
    assert {r.alert_id for r in records} == ids
    assert len(records) == len(ids)  # one row per alert
    by_disposition: dict[str, int] = {}
    for record in records:
        by_disposition[record.disposition.value] = by_disposition.get(record.disposition, 0) + 1
        if record.disposition in {Disposition.UNMATCHED, Disposition.ORPHANED}:
            assert record.incident_number is None
        else:
            assert record.incident_number is not None
            assert record.playbook is not None
    assert by_disposition == {
        "opened": 6,
        "grouped": 3,
        "reopened": 1,
        "resolved": 10,
        "unmatched": 4,
    }
    unmatched = {r.labels["alertname"] for r in records if r.disposition is Disposition.UNMATCHED}
    assert unmatched == {"Watchdog", "DiskSpaceLow"}


async def test_hostile_annotations_stay_inert(pipeline: Pipeline, store: SqlStore) -> None:
    await feed(pipeline, STREAM.read_bytes())
    texts = {
        item.action.key: item.action.params["text"]
        for item in await store.list_actions()
        if item.action.name == "slack.post"
    }
    checkout = texts["2:0:trigger:2"]  # the incident_summary template for checkout-api
    assert "&lt;!channel&gt; wake everyone up" in checkout
    assert "<!channel>" not in checkout
    login = texts["5:0:trigger:2"]
    assert "user agent '{{ 7*7 }}' {% raw %}." in login
    assert "49" not in login
    assert all("<!channel>" not in text for text in texts.values())


BAD_INPUTS = {
    "malformed-json": (b'{"labels": {"alertname": "X"', "$: malformed JSON at line 1"),
    "unknown-format": (b'{"hello": "world"}', "$: unknown format"),
    "missing-field": (
        json.dumps(
            {"version": "4", "alerts": [{"labels": {"alertname": "X"}, "startsAt": "bad"}]}
        ).encode(),
        "alerts[0].status",
    ),
    "wrong-type": (b'{"labels": {"alertname": 42}}', "labels.alertname"),
    "too-large": (
        b'{"labels": {"alertname": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}}',
        "$: payload is ",
    ),
    "invalid-utf8": (b'{"labels": {"alertname": "\xff\xfe"}}', "$: invalid UTF-8 at byte offset"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_dead_lettered_and_the_stream_continues(
    pipeline: Pipeline, store: SqlStore, case: str
) -> None:
    bad, expected_error = BAD_INPUTS[case]
    good = json.dumps(
        {"labels": {"alertname": "PostgresDown", "env": "prod", "service": "s", "cluster": "c"}}
    ).encode()
    reports = await feed(pipeline, b"\n".join([good, bad, good.replace(b'"s"', b'"t"')]), "in")
    assert [r.error is None for r in reports] == [True, False, True]
    failed = reports[1]
    assert failed.error is not None
    assert expected_error in failed.error
    assert failed.dead_letter_id is not None
    (letter,) = await store.list_dead_letters()
    assert letter.raw == bad  # the original bytes, unchanged
    assert letter.origin == "in:2"
    assert letter.error == failed.error
    assert letter.id == failed.dead_letter_id
    assert "\n" not in letter.error
    # The alerts on either side were processed.
    assert len(await store.list_incidents()) == 2


async def test_apply_records_the_actor(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    await feed(pipeline, STREAM.read_bytes())
    clock.advance(dt.timedelta(minutes=3))
    decision = await pipeline.apply(6, StatusChange(Status.ACKNOWLEDGED, ALICE, "on it"))
    assert decision.incident.status is Status.ACKNOWLEDGED
    assert [a.name for a in decision.actions] == ["pagerduty.acknowledge", "slack.post"]
    await pipeline.apply(6, NoteAdded("egress blocked at the firewall", ALICE))
    await pipeline.apply(6, StatusChange(Status.RESOLVED, ALICE))
    stored = await store.get_incident(6)
    assert stored is not None
    assert stored.status is Status.RESOLVED
    assert stored.acknowledged_at == clock.now()
    entries = await store.timeline(6)
    by_kind = {e.kind: e for e in entries}
    assert by_kind[Kind.INCIDENT_ACKNOWLEDGED].actor == ALICE
    assert by_kind[Kind.INCIDENT_ACKNOWLEDGED].data["reason"] == "on it"
    assert by_kind[Kind.NOTE].data == {"text": "egress blocked at the firewall"}
    assert by_kind[Kind.NOTE].actor == ALICE
    assert by_kind[Kind.INCIDENT_RESOLVED].actor == ALICE
    assert verify_incident(entries[0].incident_number, entries) == []
    keys = {item.action.key for item in await store.list_actions(6)}
    assert {"6:0:acknowledge:0", "6:0:resolve:0", "6:0:resolve:1"} <= keys


async def test_apply_rejects_invalid_transitions(pipeline: Pipeline, store: SqlStore) -> None:
    await feed(pipeline, STREAM.read_bytes())
    before = await snapshot(store)
    with pytest.raises(TransitionError, match="cannot acknowledge incident #1: it is resolved"):
        await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    with pytest.raises(TransitionError, match="a note needs some text"):
        await pipeline.apply(1, NoteAdded("  ", ALICE))
    with pytest.raises(IncidentNotFoundError, match="no incident #99"):
        await pipeline.apply(99, NoteAdded("hello", ALICE))
    assert await snapshot(store) == before


async def test_apply_many_is_one_transaction_in_the_order_given(
    pipeline: Pipeline, store: SqlStore
) -> None:
    await feed(pipeline, STREAM.read_bytes())
    decisions = await pipeline.apply_many(
        [
            (6, StatusChange(Status.ACKNOWLEDGED, ALICE)),
            (5, NoteAdded("looking", ALICE)),
            (6, StatusChange(Status.RESOLVED, ALICE)),  # sees the ack just before it
        ]
    )
    assert [d.incident.status for d in decisions] == [
        Status.ACKNOWLEDGED,
        Status.TRIGGERED,
        Status.RESOLVED,
    ]
    for number in (5, 6):
        entries = await store.timeline(number)
        assert verify_incident(number, entries) == []
    kinds = [e.kind for e in await store.timeline(6)]
    assert kinds.index(Kind.INCIDENT_ACKNOWLEDGED) < kinds.index(Kind.INCIDENT_RESOLVED)

    before = await snapshot(store)
    with pytest.raises(TransitionError, match="it is resolved"):
        await pipeline.apply_many(
            [(5, NoteAdded("kept?", ALICE)), (1, StatusChange(Status.ACKNOWLEDGED, ALICE))]
        )
    assert await snapshot(store) == before  # all or nothing: the note went too


def db_alert(service: str = "orders-db") -> bytes:
    return sample_alert(service, starts_at=T0)


async def test_escalation_fires_after_five_minutes(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    timers = TimerService(store, pipeline, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    assert await store.next_timer_due() == T0 + dt.timedelta(minutes=5)
    clock.advance(dt.timedelta(minutes=4, seconds=59))
    assert await timers.fire_due() == 0
    assert "pagerduty.escalate" not in [i.action.name for i in await store.list_actions(1)]
    clock.advance(dt.timedelta(seconds=2))
    assert await timers.fire_due() == 1
    names = [i.action.name for i in await store.list_actions(1)]
    assert names.count("pagerduty.escalate") == 1
    escalate = next(i for i in await store.list_actions(1) if i.action.name == "pagerduty.escalate")
    assert escalate.action.params["level"] == 2
    assert escalate.status is OutboxStatus.PENDING
    entries = await store.timeline(1)
    fired = [e for e in entries if e.kind is Kind.TIMER_FIRED]
    assert [(e.data["timer"], e.data["round"], e.data["level"]) for e in fired] == [
        ("escalation", 0, 0)
    ]
    assert fired[0].recorded_at == clock.now()
    assert await store.next_timer_due() == T0 + dt.timedelta(minutes=15)
    # Firing again does nothing: the timer is spent.
    assert await timers.fire_due() == 0
    assert verify_incident(entries[0].incident_number, entries) == []


async def test_whole_ladder_runs_its_rounds(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    timers = TimerService(store, pipeline, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    clock.advance(dt.timedelta(hours=3))
    # database-unavailable: 2 levels, repeat 2 → three rounds of two levels.
    assert await timers.fire_due() == 6
    names = [i.action.name for i in await store.list_actions(1)]
    # Each round: level 1 escalates in PagerDuty, level 2 posts to #incident-commanders.
    assert names.count("pagerduty.escalate") == 3
    assert names.count("slack.post") == 1 + 3
    fired = [e for e in await store.timeline(1) if e.kind is Kind.TIMER_FIRED]
    assert [(e.data["round"], e.data["level"]) for e in fired] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
    ]
    assert [e.recorded_at for e in fired] == [clock.now()] * 6
    assert await store.next_timer_due() is None


async def test_ack_cancels_pending_escalation(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    timers = TimerService(store, pipeline, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    clock.advance(dt.timedelta(minutes=2))
    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    entries = await store.timeline(1)
    cancelled = [e for e in entries if e.kind is Kind.TIMER_CANCELLED]
    (escalation,) = [t for t in await store.list_timers(1) if t.kind == "escalation"]
    assert [e.data["key"] for e in cancelled] == [escalation.key]
    assert cancelled[0].data["timer"] == "escalation"
    assert cancelled[0].data["reason"] == "incident acknowledged"
    assert escalation.status is TimerStatus.CANCELLED
    clock.advance(dt.timedelta(minutes=10))
    assert await timers.fire_due() == 0
    assert "pagerduty.escalate" not in [i.action.name for i in await store.list_actions(1)]
    # The ack timeout is what remains pending.
    assert await store.next_timer_due() == T0 + dt.timedelta(minutes=32)


async def test_mitigate_cancels_the_ack_timeout(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    timers = TimerService(store, pipeline, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    await pipeline.apply(1, StatusChange(Status.MITIGATED, ALICE))
    assert await store.next_timer_due() is None
    clock.advance(dt.timedelta(hours=1))
    assert await timers.fire_due() == 0
    stored = await store.get_incident(1)
    assert stored is not None
    assert stored.status is Status.MITIGATED


async def test_ack_timeout_retriggers(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    timers = TimerService(store, pipeline, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    clock.advance(dt.timedelta(minutes=30))
    assert await timers.fire_due() == 1
    stored = await store.get_incident(1)
    assert stored is not None
    assert stored.status is Status.TRIGGERED
    entries = await store.timeline(1)
    fired = next(e for e in entries if e.kind is Kind.TIMER_FIRED)
    assert fired.data["timer"] == "ack_timeout"
    back = next(e for e in entries[fired.seq :] if e.data.get("to") == "triggered")
    assert back.data["from"] == "acknowledged"
    assert entries[-1].kind is Kind.TIMER_SCHEDULED
    assert verify_incident(entries[0].incident_number, entries) == []


async def test_escalation_restarts_after_ack_timeout(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    timers = TimerService(store, pipeline, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    clock.advance(dt.timedelta(minutes=6))
    assert await timers.fire_due() == 1  # level 0 escalates once
    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    clock.advance(dt.timedelta(minutes=31))
    assert await timers.fire_due() == 1  # the ack timed out: back to triggered
    clock.advance(dt.timedelta(minutes=6))
    # The timeline says a new ladder was scheduled; it must actually escalate again.
    assert await timers.fire_due() == 1
    escalations = [i for i in await store.list_actions(1) if i.action.name == "pagerduty.escalate"]
    assert len(escalations) == 2


async def test_shipped_playbook_tests_pass() -> None:
    results = await run_playbook_tests(load_playbooks(PLAYBOOKS))
    assert len(results) == 11
    failures = {f"{r.playbook}/{r.name}": r.failures for r in results if not r.passed}
    assert failures == {}


async def test_state_changes_refresh_the_pinned_slack_summary(
    store: SqlStore, clock: ManualClock
) -> None:
    pipeline = Pipeline(
        store,
        load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES),
        clock,
        refresh_slack_summary=True,
    )
    await pipeline.ingest_bytes(db_alert(), "test")
    first = await store.list_actions(1)
    opened = {item.action.key for item in first}
    assert not any(":summary:" in key for key in opened)  # the channel opens with a summary
    (channel,) = [i.action for i in first if i.action.name == "slack.open_channel"]
    due = (T0 + dt.timedelta(minutes=5)).isoformat()
    assert channel.params["incident"]["next_escalation"] == due  # shown in that summary
    paged = next(i.action for i in first if i.action.name == "pagerduty.trigger")
    assert "next_escalation" not in paged.params["incident"]

    await pipeline.apply(1, NoteAdded("looking at replicas", ALICE))  # no state change
    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    await pipeline.apply(1, CommanderAssigned("U042", ALICE))
    refreshes = [
        item.action for item in await store.list_actions(1) if item.action.key not in opened
    ]
    summaries = [a for a in refreshes if a.name == "slack.update_summary"]
    assert [a.key for a in summaries] == ["1:summary:2", "1:summary:3"]
    assert summaries[0].params["incident"]["status"] == "acknowledged"
    assert summaries[0].params["incident"]["next_escalation"] is None  # ack cancelled it
    assert summaries[1].params["incident"]["commander"] == "U042"


async def test_escalate_fires_the_next_level_now(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock
) -> None:
    await pipeline.ingest_bytes(db_alert(), "test")
    clock.advance(dt.timedelta(minutes=1))
    await pipeline.escalate(1, ALICE, "need the DBA")
    entries = await store.timeline(1)
    asked = next(e for e in entries if e.kind is Kind.ESCALATED)
    assert asked.actor == ALICE
    assert asked.data["reason"] == "need the DBA"
    assert asked.data["due_at"] == (T0 + dt.timedelta(minutes=5)).isoformat()
    names = [i.action.name for i in await store.list_actions(1)]
    assert names.count("pagerduty.escalate") == 1
    # The ladder goes on from there: the next level is due 15 minutes into the round.
    assert await store.next_timer_due() == T0 + dt.timedelta(minutes=15)

    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    with pytest.raises(TransitionError, match="no escalation level waiting"):
        await pipeline.escalate(1, ALICE)
    with pytest.raises(IncidentNotFoundError):
        await pipeline.escalate(404, ALICE)


async def test_the_escalation_auditor_notices_overdue_timers(
    pipeline: Pipeline, store: SqlStore, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    auditor = EscalationAuditor(
        store, clock, threshold=dt.timedelta(minutes=2), meter=metrics.meter
    )
    await pipeline.ingest_bytes(db_alert(), "test")  # escalation due at T0 + 5m
    assert (await auditor.check()).healthy
    assert metrics.value("orchestrator.timers.overdue") == 0
    clock.advance(dt.timedelta(minutes=6, seconds=59))  # due, but within the threshold
    assert (await auditor.check()).healthy
    clock.advance(dt.timedelta(seconds=2))  # the scheduler is not running: 2m01s late
    with caplog.at_level(logging.WARNING, logger="orchestrator.scheduler"):
        audit = await auditor.check()
    assert (audit.healthy, audit.overdue) == (False, 1)
    assert audit.oldest_due == T0 + dt.timedelta(minutes=5)
    assert "1 timer(s) overdue by more than 0:02:00" in caplog.text
    # The same, as metrics an alerting rule can watch.
    assert metrics.value("orchestrator.timers.overdue") == 1
    assert metrics.value("orchestrator.timers.overdue.oldest_age") == 121.0
    await TimerService(store, pipeline, clock, meter=metrics.meter).fire_due()
    (lateness,) = metrics.points("orchestrator.timers.lateness")
    assert (lateness.count, lateness.sum) == (1, 121.0)  # fired 2m01s after it was due
    with caplog.at_level(logging.WARNING, logger="orchestrator.scheduler"):
        assert (await auditor.check()).healthy
    assert "no timers overdue any more" in caplog.text
    assert metrics.value("orchestrator.timers.overdue") == 0
    assert metrics.value("orchestrator.timers.overdue.oldest_age") == 0.0
