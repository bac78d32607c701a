"""Every shipped scenario plays through the shipped playbooks with its scripted players and
comes out as designed: the outcome of each expected action, the objectives' ratings, what
the playbooks did, and that all of it is the drill's and nothing else's."""

from __future__ import annotations

import datetime as dt

import pytest
from playing import SHIPPED, play

from orchestrator.drill.loader import load_scenario
from orchestrator.store.sql import SqlStore
from orchestrator.timers import TimerStatus

EXPECTED = {
    "db-failover-peak": {
        "outcomes": {
            "channel-opened": "met",
            "escalated": "met",
            "acknowledged": "met",
            "commander": "met",
            "customer-update": "late",
            "mitigated": "met",
            "resolved": "met",
        },
        "score": {"points": 13, "max": 14},
        "ratings": ["met", "partially met", "met"],
        "incidents": 1,
        "playbooks": {"pages": 1, "channels": 1, "escalations": 1, "refused": 0},
        "contingencies": 1,
    },
    "security-data-exposure": {
        "outcomes": {
            "acknowledged": "met",
            "commander": "met",
            "sev1": "met",
            "dpo-engaged": "missed",
            "contained": "met",
        },
        "score": {"points": 10, "max": 12},
        "ratings": ["met", "met", "not met", "not rated"],
        "incidents": 1,
        "playbooks": {"pages": 2, "channels": 1, "escalations": 3, "refused": 0},
        "contingencies": 1,
    },
    "alert-storm-dead-monitoring": {
        "outcomes": {
            "first-ack": "met",
            "storm-escalated": "met",
            "commander": "met",
            "monitoring-called-out": "late",
            "resolved-by-hand": "late",
        },
        "score": {"points": 6, "max": 9},
        "ratings": ["met", "partially met", "not met"],
        "incidents": 5,
        "playbooks": {"pages": 5, "channels": 5, "escalations": 8, "refused": 0},
        "contingencies": 1,
    },
}


def test_every_shipped_scenario_has_its_expectations_here() -> None:
    assert len(SHIPPED) >= 3
    assert {load_scenario(path).scenario.id for path in SHIPPED} == set(EXPECTED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
async def test_shipped_scenario_plays_as_designed(store: SqlStore, path: object) -> None:
    assert hasattr(path, "stem")
    played = await play(store, path)  # type: ignore[arg-type]
    result = played.run.result
    expected = EXPECTED[result["scenario"]["id"]]
    assert played.outcomes == expected["outcomes"]
    assert result["score"] == expected["score"]
    assert [o["rating"] for o in result["objectives"]] == expected["ratings"]
    assert result["playbooks"] == expected["playbooks"]
    assert len(played.log("contingency")) == expected["contingencies"]
    assert played.run.state.value == "ended"
    assert result["endex"]["by"] == "schedule"

    # Everything the drill recorded is flagged and carries the run's id.
    incidents = await store.drill_incidents(played.run.id)
    assert [i.number for i in incidents] == result["incidents"]
    assert len(incidents) == expected["incidents"]
    assert all(i.is_drill and i.drill_id == played.run.id for i in incidents)
    assert all(i.group_key.startswith(f"drill:{played.run.id}:") for i in incidents)
    for incident in incidents:
        assert not incident.status.is_open  # ENDEX leaves nothing running
        for item in await store.list_actions(incident.number):
            assert item.action.is_drill
            assert item.action.drill_id == played.run.id
        for timer in await store.list_timers(incident.number):
            assert timer.drill_id == played.run.id
            assert timer.status is not TimerStatus.PENDING
        for alert in await store.list_alerts(incident.number):
            assert alert.alert_id.startswith(f"drill:{played.run.id}:")

    # Late and missed expected actions became corrective actions, tracked like a postmortem's.
    items = await store.list_action_items(incident_number=incidents[0].number)
    assert [item.id for item in items] == result["corrective_actions"]
    short = [s for s in result["scores"] if s["outcome"] != "met"]
    assert len(items) == len(short)


async def test_recorded_alerts_are_replayed_on_the_scenario_clock(store: SqlStore) -> None:
    played = await play(store, next(p for p in SHIPPED if p.stem == "db-failover-peak"))
    (incident,) = await store.drill_incidents(played.run.id)
    replayed = [a for a in await store.list_alerts(incident.number) if a.source == "alertmanager"]
    firing = sorted(a.starts_at for a in replayed if a.status == "firing")
    start = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
    # The recording's first message (from 2025) lands on the inject's offset, +6m, and the
    # rest keep their spacing: the second alert started 89.625 s after the first.
    assert firing == [
        start + dt.timedelta(minutes=6),
        start + dt.timedelta(minutes=6, seconds=89.625),
    ]
    (resolved,) = [a for a in replayed if a.status == "resolved"]
    assert resolved.starts_at == firing[1]
