"""`orchestrator config check` against real services: the database, the playbooks, the Kafka
test broker, and the fake Slack and PagerDuty over real HTTP; each problem named exactly, no
secret in the output."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fakes.pagerduty import FakePagerDuty
from fakes.server import serve
from fakes.slack import BOT_TOKEN, FakeSlack
from samples import CLEAN_ENV, free_port
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.engine import head_revision

REPO = Path(__file__).resolve().parents[2]
ROUTING_KEY = "R0UTINGKEYDATA000000000000000001"
PD_TOKEN = "fake-pagerduty-rest-token"


def check(env: dict[str, str], *extra: str) -> tuple[int, dict[str, Any], str]:
    runner = CliRunner(env={**CLEAN_ENV, "ORCH_PLAYBOOKS_DIR": str(REPO / "playbooks"), **env})
    result = runner.invoke(app, ["config", "check", "--json", *extra])
    output = result.stdout + result.stderr
    found = json.loads(result.stdout) if result.stdout.startswith("{") else {}
    return result.exit_code, found, output


def by_name(found: dict[str, Any]) -> dict[str, list[tuple[bool, str]]]:
    named: dict[str, list[tuple[bool, str]]] = {}
    for item in found["checks"]:
        named.setdefault(item["name"], []).append((item["ok"], item["detail"]))
    return named


def test_the_embedded_default_checks_out(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    code, found, _ = check({"ORCH_DATABASE_URL": f"sqlite+aiosqlite:///{db}"})
    assert code == 0
    checks = by_name(found)
    assert checks["database"] == [
        (True, f"empty: the first run creates the schema ({head_revision()})")
    ]
    assert checks["playbooks"][0][0] is True
    assert checks["kafka"][0][0] is True
    assert not db.exists()  # a check creates nothing


def test_an_unreachable_database_and_broker_are_named(tmp_path: Path) -> None:
    port = free_port()
    code, found, _ = check(
        {
            "ORCH_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nothing",
            "ORCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        }
    )
    assert code == 1
    checks = by_name(found)
    ((ok, detail),) = checks["database"]
    assert not ok
    assert detail.startswith("cannot connect:")
    ((ok, detail),) = checks["kafka"]
    assert not ok
    assert detail.startswith("no Kafka broker answers at 127.0.0.1:")


def test_invalid_settings_are_exit_code_2() -> None:
    code, _, output = check({"ORCH_KAFKA_TOPICS": "alerts=carrier-pigeon"})
    assert code == 2
    assert "unknown format" in output


async def test_kafka_topics_are_looked_for(kafka_bootstrap: str, kafka_topic: str) -> None:
    # The CLI runs its own event loop: in a thread, beside the fixture's.
    code, found, _ = await asyncio.to_thread(
        check, {"ORCH_KAFKA_BOOTSTRAP": kafka_bootstrap, "ORCH_KAFKA_TOPICS": kafka_topic}
    )
    assert by_name(found)["kafka"] == [(True, f"{kafka_bootstrap}: topics {kafka_topic}")]
    assert code == 0
    code, found, _ = await asyncio.to_thread(
        check,
        {"ORCH_KAFKA_BOOTSTRAP": kafka_bootstrap, "ORCH_KAFKA_TOPICS": f"{kafka_topic},nowhere"},
    )
    assert code == 1
    assert by_name(found)["kafka"] == [
        (False, f"topic 'nowhere' does not exist on {kafka_bootstrap}")
    ]


def test_slack_and_pagerduty_are_tried_without_paging_or_posting(tmp_path: Path) -> None:
    pagerduty = FakePagerDuty(routing_keys={ROUTING_KEY: "Data on-call"}, api_token=PD_TOKEN)
    service = next(iter(pagerduty.services))
    policy = pagerduty.add_escalation_policy("Data", service_ids=(service,))
    slack = FakeSlack()
    tls = tmp_path / "tls"
    tls.mkdir()
    with slack.running() as slack_served, serve(pagerduty.app, tls_dir=tls) as pd_served:
        services = {
            "data-oncall": {"routing_key": ROUTING_KEY, "escalation_policy": policy},
            "security-oncall": {"routing_key": "too-short"},
            "platform-oncall": {"routing_key": ROUTING_KEY, "escalation_policy": "PNOSUCH"},
        }
        env = {
            "ORCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'v.db'}",
            "ORCH_DRY_RUN": "false",
            "ORCH_SLACK_BOT_TOKEN": BOT_TOKEN,
            "ORCH_SLACK_API_URL": f"{slack_served.url}/api/",
            "ORCH_PAGERDUTY_SERVICES": json.dumps(services),
            "ORCH_PAGERDUTY_API_TOKEN": PD_TOKEN,
            "ORCH_PAGERDUTY_FROM_EMAIL": "ada@example.com",
            "ORCH_PAGERDUTY_EVENTS_URL": pd_served.url,
            "ORCH_PAGERDUTY_API_URL": pd_served.url,
            "ORCH_VENDOR_CA_FILE": str(pd_served.ca_file),
        }
        code, found, output = check(env)
        _, wrong, wrong_output = check({**env, "ORCH_SLACK_BOT_TOKEN": "xoxb-not-the-token"})
    assert code == 1
    checks = by_name(found)
    assert checks["slack"] == [(True, "Slack: signed in to Fake Workspace as orchestrator")]
    pd = {detail.split(":")[0]: ok for ok, detail in checks["pagerduty"]}
    assert pd["PagerDuty data-oncall"] is True
    assert pd["PagerDuty security-oncall"] is False
    assert pd[f"PagerDuty REST escalation_policies/{policy}"] is True
    assert pd["PagerDuty REST escalation_policies/PNOSUCH"] is False
    ((ok, detail),) = by_name(wrong)["slack"]
    assert not ok
    assert "invalid_auth" in detail
    # Nothing paged, nothing posted; no secret in what was printed.
    assert pagerduty.events == []
    assert slack.calls_to("chat.postMessage") == []
    for secret in (BOT_TOKEN, PD_TOKEN, ROUTING_KEY, "xoxb-not-the-token"):
        assert secret not in output
        assert secret not in wrong_output
