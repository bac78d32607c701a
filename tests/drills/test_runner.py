"""The drill runner on small scenarios: contingency injects, unavailable responders, live safety
refusals, pause / resume / ENDEX, and drills left out of the operational metrics."""

from __future__ import annotations

import asyncio
import datetime as dt

from playing import play, runner_for
from playing import small_scenario as scenario

from orchestrator.clock import SystemClock
from orchestrator.drill.clocks import ScaledClock
from orchestrator.drill.loader import parse_scenario
from orchestrator.drill.record import RunState
from orchestrator.drill.safety import REFUSED
from orchestrator.report.metrics import incident_metrics
from orchestrator.store.protocols import OutboxStatus
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind


async def test_a_missed_deadline_fires_its_contingency_injects(store: SqlStore) -> None:
    played = await play(
        store,
        scenario(
            """
expected:
  - id: ack
    action: acknowledge
    deadline: 3m
    contingency:
      - at: 1m
        chat: {from: VP, text: "Is anyone on this?"}
      - at: 2m
        alert:
          labels:
            alertname: PostgresDown
            env: prod
            service: billing-db
            cluster: eu-west-1
            severity: critical
"""
        ),
    )
    (score,) = played.run.result["scores"]
    assert score["outcome"] == "missed"
    assert score["contingency_fired"] is True
    lines = [line for line in played.runner.log if line.kind == "contingency"]
    assert [(line.offset, line.text.split(":")[0]) for line in lines] == [
        (240.0, "chat from VP"),
        (300.0, "alert opened #2 (database-unavailable)"),
    ]
    # The contingency's alert went through the real pipeline: a second drill incident.
    assert played.run.result["incidents"] == [1, 2]
    notes = [e for e in await store.timeline(1) if e.kind == Kind.NOTE]
    assert [e.data["text"] for e in notes] == ["[EXERCISE] VP: Is anyone on this?"]
    # The players hear it where they work: a post in the drill's channel.
    (said,) = [
        a for a in played.sandbox.delivered if a.params.get("text") == "VP: Is anyone on this?"
    ]
    assert said.name == "slack.post"
    assert said.params["incident"]["is_drill"] is True


async def test_a_met_deadline_fires_no_contingency(store: SqlStore) -> None:
    played = await play(
        store,
        scenario(
            """
expected:
  - id: ack
    action: acknowledge
    deadline: 3m
    contingency: [{chat: {from: VP, text: "Is anyone on this?"}}]
script:
  - {role: primary, at: 1m, do: acknowledge}
"""
        ),
    )
    assert played.outcomes == {"ack": "met"}
    assert played.log("contingency") == []


async def test_an_unavailable_responder_lets_escalation_reach_the_next_level(
    store: SqlStore,
) -> None:
    played = await play(
        store,
        scenario(
            """
expected:
  - {id: ack, action: acknowledge, by: secondary, deadline: 15m}
  - {id: escalated, action: escalation, level: 1, deadline: 10m}
script:
  - {role: primary, at: 1m, do: acknowledge}
  - {role: secondary, on: {observed: escalation, level: 1}, delay: 2m, do: acknowledge}
"""
        ).replace(
            "players: {primary: Ana, secondary: Ben}",
            "players: {primary: Ana, secondary: Ben}\n"
            "  unavailable: [{role: primary, from: 0s, reason: asleep}]",
        ),
    )
    assert played.log("skipped") == ["Ana (primary) is unavailable (asleep): no response"]
    assert played.outcomes == {"ack": "met", "escalated": "met"}
    # The playbook's first escalation level went out through the sandbox: PagerDuty level 2.
    escalations = [a for a in played.sandbox.delivered if a.name == "pagerduty.escalate"]
    assert escalations[0].params["level"] == 2
    acked = [e for e in await store.timeline(1) if e.kind == Kind.INCIDENT_ACKNOWLEDGED]
    assert [(e.actor.name, e.occurred_at) for e in acked] == [
        ("Ben", dt.datetime(2026, 3, 2, 18, 37, tzinfo=dt.UTC))
    ]


async def test_an_unavailable_inject_silences_a_player_for_a_while(store: SqlStore) -> None:
    played = await play(
        store,
        scenario(
            injects="""
  - at: 1m
    unavailable: {role: secondary, for: 10m, reason: "in a meeting"}
""",
            body="""
script:
  - {role: secondary, at: 5m, do: acknowledge}
  - {role: secondary, at: 12m, do: acknowledge}
""",
        ),
    )
    assert played.log("skipped") == ["Ben (secondary) is unavailable (in a meeting): no response"]
    assert [line.offset for line in played.runner.log if line.kind == "response"] == [720.0]


async def test_live_mode_refuses_what_the_safety_block_does_not_allow(store: SqlStore) -> None:
    loaded = parse_scenario(scenario("", duration="1m"), "live.yaml")
    # 600 scenario seconds a second: the minute of drill takes a tenth of a second.
    runner, sandbox = runner_for(
        store, loaded, live=True, clock=ScaledClock(SystemClock(), 600), poll=0.01
    )
    run = await runner.play()
    assert run.mode.value == "live"
    # The playbook pages data-oncall and posts nowhere but its own channel: the page is
    # refused and logged, the drill's own (renamed) channel is opened.
    delivered = [a.name for a in sandbox.delivered]
    assert "pagerduty.trigger" not in delivered
    (opened,) = [a for a in sandbox.delivered if a.name == "slack.open_channel"]
    assert opened.params["name"].startswith("drill-inc-1-orders-db")
    refusals = run.result["refusals"]
    assert [r["action"] for r in refusals] == ["pagerduty.trigger"]
    assert "data-oncall" in refusals[0]["reason"]
    (page,) = [i for i in await store.list_actions(1) if i.action.name == "pagerduty.trigger"]
    assert page.status is OutboxStatus.FAILED
    assert REFUSED in page.last_error
    failed = [e for e in await store.timeline(1) if e.kind == Kind.ACTION_FAILED]
    assert any(REFUSED in str(e.data["error"]) for e in failed)


async def test_a_live_drill_pauses_resumes_and_ends_on_the_facilitator_s_word(
    store: SqlStore,
) -> None:
    loaded = parse_scenario(scenario("", duration="4h"), "live.yaml")
    runner, _ = runner_for(
        store, loaded, live=True, clock=ScaledClock(SystemClock(), 600), poll=0.01
    )
    under_way = asyncio.Event()
    runner.on_log = lambda line: under_way.set() if line.kind == "observed" else None
    playing = asyncio.create_task(runner.play())
    await asyncio.wait_for(under_way.wait(), 10)
    assert runner.run is not None
    run_id = runner.run.id
    await store.set_drill_state(run_id, RunState.PAUSED)
    await asyncio.sleep(0.1)
    await store.set_drill_state(run_id, RunState.RUNNING)
    await asyncio.sleep(0.05)
    await store.set_drill_state(run_id, RunState.ENDED)
    run = await asyncio.wait_for(playing, 10)
    controls = [line.text for line in runner.log if line.kind == "control"]
    assert controls[1] == "paused by the facilitator"
    assert controls[2].startswith("resumed after ")
    assert controls[-1] == "ENDEX (facilitator)"
    assert run.result["endex"]["by"] == "facilitator"
    assert run.result["endex"]["offset"] < 4 * 3600
    assert run.state is RunState.ENDED
    # ENDEX closed the drill's incident and left nothing of it to fire.
    (incident,) = await store.drill_incidents(run_id)
    assert not incident.status.is_open
    assert await store.next_timer_due(run_id) is None


async def test_drills_are_left_out_of_the_operational_metrics(store: SqlStore) -> None:
    played = await play(
        store,
        scenario(
            """
script:
  - {role: primary, at: 2m, do: acknowledge}
  - {role: primary, at: 20m, do: resolve}
"""
        ),
    )
    await store.refresh_folds()
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    until = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    measured = [
        incident_metrics(stamps, team=team, is_drill=drill)
        for stamps, team, drill in await store.folded_timestamps(since, until)
    ]
    assert [m.excluded for m in measured] == ["drill"]
    assert played.run.result["incidents"] == [1]
