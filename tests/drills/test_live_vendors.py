"""A live drill against the fake Slack and PagerDuty over real HTTP, through the real vendor
handlers and the drill's safety guard: the drill opens its own channel and says everything
there under the exercise banner; a page to a service the scenario does not allow, and a post
to a channel it does not allow, never reach the vendor."""

from __future__ import annotations

from pathlib import Path

from fakes.pagerduty import FakePagerDuty
from fakes.server import serve
from fakes.slack import BOT_TOKEN, FakeSlack
from playing import PLAYBOOKS, small_scenario

from orchestrator.app import close_handlers, drill_handlers
from orchestrator.clock import SystemClock
from orchestrator.drill.clocks import ScaledClock
from orchestrator.drill.loader import parse_scenario
from orchestrator.drill.runner import DrillRunner
from orchestrator.drill.safety import SafetyGuard
from orchestrator.playbook.loader import load_playbooks
from orchestrator.settings import PagerDutyServiceSettings, Settings
from orchestrator.store.sql import SqlStore

DATA_KEY = "R0UTINGKEYDATA000000000000000001"
SANDBOX_KEY = "R0UTINGKEYSANDBOX000000000000001"
PD_TOKEN = "fake-pagerduty-rest-token"
BANNER = ":rotating_light: EXERCISE"
# Past the playbook's 15-minute escalation to #incident-commanders, which the drill may not use.
SCENARIO = small_scenario(
    duration="16m",
    injects='  - {at: 1m, chat: {from: VP Engineering, text: "Are we failing over? <!channel>"}}\n',
)


async def test_a_live_drill_touches_only_what_its_safety_block_allows(tmp_path: Path) -> None:
    pagerduty = FakePagerDuty(
        routing_keys={DATA_KEY: "Data on-call", SANDBOX_KEY: "Drill sandbox"}, api_token=PD_TOKEN
    )
    slack = FakeSlack()
    slack.add_channel("incident-commanders")
    slack.add_channel("sre-drills")
    tls = tmp_path / "tls"
    tls.mkdir()
    with slack.running() as slack_served, serve(pagerduty.app, tls_dir=tls) as pd_served:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",
            playbooks_dir=PLAYBOOKS,
            dry_run=False,
            slack_bot_token=BOT_TOKEN,
            slack_api_url=f"{slack_served.url}/api/",
            pagerduty_services={
                "data-oncall": PagerDutyServiceSettings(routing_key=DATA_KEY),
                "drill-sandbox": PagerDutyServiceSettings(routing_key=SANDBOX_KEY),
            },
            pagerduty_api_token=PD_TOKEN,
            pagerduty_from_email="dana@example.com",
            pagerduty_events_url=pd_served.url,
            pagerduty_api_url=pd_served.url,
            vendor_ca_file=pd_served.ca_file,
        )
        loaded = parse_scenario(SCENARIO, "live.yaml")
        inner = drill_handlers(settings, live=True, out=None)
        guard = SafetyGuard(inner, loaded.scenario.safety, enforce=True)
        store = SqlStore(settings.database_url)
        await store.open()
        try:
            playbooks = load_playbooks(PLAYBOOKS, known_actions=frozenset(inner))
            runner = DrillRunner(
                loaded,
                store,
                playbooks,
                dict.fromkeys(inner, guard),
                # 120 scenario seconds a second: the 16 minutes (past the playbook's
                # 15-minute escalation to #incident-commanders) take 8 seconds.
                clock=ScaledClock(SystemClock(), 120),
                live=True,
                poll=0.05,
            )
            guard.on_refusal = lambda action, reason: runner.refused(action.name, reason, True)
            run = await runner.play()
        finally:
            await close_handlers(inner.values())
            await store.close()

    # PagerDuty never heard of it: data-oncall is not the drill's to page.
    assert pagerduty.events == []
    refused = {(r["action"], r["reason"].split(" is not")[0]) for r in run.result["refusals"]}
    assert ("pagerduty.trigger", "PagerDuty service data-oncall") in refused
    assert ("slack.post", "Slack channel #incident-commanders") in refused
    assert slack.messages[slack.channel_named("incident-commanders").id] == []  # type: ignore[union-attr]

    # The drill's own channel, and everything said in it under the banner.
    (channel,) = [c for c in slack.channels.values() if c.name.startswith("drill-")]
    assert channel.name.startswith("drill-inc-1-orders-db")
    said = slack.messages[channel.id]
    assert said
    assert all(message.text.startswith(BANNER) for message in said)
    vp = [m for m in said if "Are we failing over?" in m.text]
    assert len(vp) == 1
    assert "<!channel>" not in vp[0].text  # escaped: an inject cannot ping everyone
    assert slack.violations == []
    assert pagerduty.violations == []
