"""The real `orchestrator` CLI, driven with typer's CliRunner against a temporary SQLite file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from samples import CLEAN_ENV
from typer.testing import CliRunner

from orchestrator.cli import app

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
STREAM = REPO / "examples" / "alertmanager-stream.jsonl"


def ingest_sample(cli: Cli) -> dict[str, Any]:
    summary: dict[str, Any] = cli.json("ingest", str(STREAM))
    return summary


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)  # no stray .env, and relative defaults cannot leak in
    return Cli(tmp_path / "x.db")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "10-bad.yaml").write_text("name: bad\nmatch: ['alertname=\"X\"']\nack_timeout: 5x\n")
    return folder


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("orchestrator ")


def test_run_prints_incidents_timeline_and_actions(cli: Cli) -> None:
    result = cli("run", "--input", str(STREAM))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "DRY-RUN" in out
    assert "[DRY-RUN] #1 pagerduty.trigger" in out
    assert "What happened" in out
    assert "Incidents opened" in out
    assert "Timeline of incident #" in out
    assert "Dry-run actions taken" in out
    for title in ("search-api: HighLatencyP99", "orders-db: database unavailable"):
        assert title in out
    assert "incident.triggered" in out


def test_run_json(cli: Cli) -> None:
    data = cli.json("run", "--input", str(STREAM))
    assert data["summary"]["incidents_opened"] == [1, 2, 3, 4, 5, 6]
    assert data["summary"]["dead_letters"] == 0
    assert [i["number"] for i in data["incidents"]] == [1, 2, 3, 4, 5, 6]
    assert {a["status"] for a in data["actions"]} == {"delivered"}
    assert data["summary"]["delivery_attempts"] == len(data["actions"])


def test_run_replay_fires_escalations_on_the_simulated_clock(cli: Cli) -> None:
    result = cli("run", "--replay", "--input", str(STREAM))
    assert result.exit_code == 0, result.output
    assert "Dry-run actions taken" in result.stdout
    actions = cli.json("deliveries", "list")
    names = [a["action"]["name"] for a in actions]
    # The security incidents stay unacknowledged for half an hour of stream time.
    assert "pagerduty.escalate" in names
    incidents = cli.json("incidents", "list")
    declared = sorted(i["declared_at"] for i in incidents)
    assert declared[0].startswith("2026-11-25T14:")


def test_ingest_json_counts(cli: Cli) -> None:
    summary = ingest_sample(cli)
    assert summary["payloads"] == 31
    assert summary["dead_letters"] == 0
    assert summary["truncated_alerts"] == 2
    assert summary["incidents_opened"] == [1, 2, 3, 4, 5, 6]
    assert summary["alerts"] == {
        "opened": 6,
        "grouped": 3,
        "reopened": 1,
        "resolved": 10,
        "unmatched": 4,
        "duplicate": 15,
    }
    # Again: nothing new.
    again = ingest_sample(cli)
    assert again["incidents_opened"] == []
    assert set(again["alerts"]) == {"duplicate"}


def test_ingest_from_stdin(cli: Cli) -> None:
    payload = json.dumps(
        {
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": "orders-db",
                "cluster": "c",
                "severity": "critical",
            }
        }
    )
    result = cli("ingest", "-", "--json", stdin=payload)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["payloads"] == 1
    assert summary["incidents_opened"] == [1]
    shown = cli.json("incidents", "show", "1")
    assert shown["incident"]["severity"] == "SEV1"
    assert shown["incident"]["playbook"] == "database-unavailable"


def test_ingest_missing_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("ingest", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 1
    assert "no such file" in result.stderr


def test_incidents_list_show_and_timeline(cli: Cli) -> None:
    ingest_sample(cli)
    listed = cli.json("incidents", "list")
    assert [i["number"] for i in listed] == [6, 5, 4, 3, 2, 1]  # newest first
    assert {i["status"] for i in listed} == {"resolved", "triggered"}
    only_open = cli.json("incidents", "list", "--status", "triggered")
    assert [i["number"] for i in only_open] == [6, 5]
    shown = cli.json("incidents", "show", "1")
    assert shown["incident"]["number"] == 1
    assert shown["incident"]["title"] == "search-api: HighLatencyP99"
    assert len(shown["alerts"]) == 4
    assert [a["action"]["name"] for a in shown["actions"]][:1] == ["pagerduty.trigger"]
    entries = cli.json("timeline", "1")
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[1]["kind"] == "incident.triggered"
    assert all(len(e["hash"]) == 64 for e in entries)
    table = cli("timeline", "1")
    assert table.exit_code == 0
    assert "Timeline of incident #1" in table.stdout


def test_ack_records_the_actor(cli: Cli) -> None:
    ingest_sample(cli)
    result = cli("ack", "6", "--as", "alice", "--reason", "on it")
    assert result.exit_code == 0, result.output + result.stderr
    assert "Incident #6 acknowledged." in result.stdout
    assert "pagerduty.acknowledge" in result.stdout
    entries = cli.json("timeline", "6")
    (acked,) = [e for e in entries if e["kind"] == "incident.acknowledged"]
    assert acked["actor"] == {"kind": "cli", "id": "alice", "name": "alice"}
    assert acked["data"]["reason"] == "on it"
    # The dry-run handler delivered the acknowledge action.
    delivered = [e for e in entries if e["kind"] == "action.succeeded"]
    assert any(e["data"]["action"] == "pagerduty.acknowledge" for e in delivered)


def test_resolve_and_note(cli: Cli) -> None:
    ingest_sample(cli)
    noted = cli("note", "5", "blocked the source IP", "--as", "bob")
    assert noted.exit_code == 0, noted.output
    resolved = cli.json("resolve", "5", "--as", "bob")
    assert resolved["incident"]["status"] == "resolved"
    assert [a["name"] for a in resolved["actions"]] == ["pagerduty.resolve", "slack.post"]
    entries = cli.json("timeline", "5")
    (note,) = [e for e in entries if e["kind"] == "note"]
    assert note["data"]["text"] == "blocked the source IP"
    assert note["actor"]["id"] == "bob"
    closed = cli("close", "5", "--as", "bob")
    assert closed.exit_code == 0, closed.output
    assert cli.json("incidents", "show", "5")["incident"]["status"] == "closed"


def test_commander_and_escalate(cli: Cli) -> None:
    ingest_sample(cli)
    assigned = cli("commander", "6", "ana", "--as", "bob")
    assert assigned.exit_code == 0, assigned.output + assigned.stderr
    assert "Incident #6 is commanded by ana." in assigned.stdout
    shown = cli("incidents", "show", "6")
    assert "commander" in shown.stdout
    assert "ana" in shown.stdout
    # The policy it escalates by, as snapshotted when it triggered.
    assert "escalation policy" in shown.stdout
    assert "(playbook)" in shown.stdout
    policy = cli.json("incidents", "show", "6")["incident"]["policy"]
    assert policy["source"] == "playbook"
    escalated = cli.json("escalate", "6", "--as", "bob", "--reason", "need a DBA")
    assert escalated["incident"]["number"] == 6
    entries = cli.json("timeline", "6")
    (asked,) = [e for e in entries if e["kind"] == "incident.escalated"]
    assert (asked["actor"]["id"], asked["data"]["reason"]) == ("bob", "need a DBA")
    assert [e["data"]["to"] for e in entries if e["kind"] == "commander.assigned"] == ["ana"]
    cli("ack", "6", "--as", "bob")
    refused = cli("escalate", "6", "--as", "bob")
    assert refused.exit_code == 1
    assert "no escalation level waiting" in " ".join(refused.stderr.split())


def test_correct_adds_an_entry_and_edits_none(cli: Cli) -> None:
    ingest_sample(cli)
    before = cli.json("timeline", "6")
    result = cli(
        "correct",
        "6",
        "2",
        "--reason",
        "paged by phone first",
        "--set",
        "occurred_at=2026-11-25T15:00:00+00:00",
        "--as",
        "bob",
    )
    assert result.exit_code == 0, result.output + result.stderr
    after = cli.json("timeline", "6")
    assert after[: len(before)] == before  # nothing edited
    (fix,) = [e for e in after if e["kind"] == "correction"]
    assert fix["data"]["corrects"] == 2
    assert fix["actor"]["id"] == "bob"
    refused = cli("correct", "6", "2", "--reason", "x", "--set", "status=closed")
    assert refused.exit_code == 1
    assert "not status" in refused.stderr


def test_invalid_transition_fails_clearly(cli: Cli) -> None:
    ingest_sample(cli)
    result = cli("resolve", "1", "--as", "alice")  # already resolved by its alerts
    assert result.exit_code == 1
    assert "cannot resolve incident #1: it is resolved" in " ".join(result.stderr.split())
    before = cli.json("timeline", "1")
    closed = cli("close", "5", "--as", "alice")
    assert closed.exit_code == 1
    assert "cannot close incident #5: it is triggered" in " ".join(closed.stderr.split())
    assert cli.json("timeline", "1") == before


def test_empty_note_is_refused(cli: Cli) -> None:
    ingest_sample(cli)
    result = cli("note", "1", "   ", "--as", "alice")
    assert result.exit_code == 1
    assert "a note needs some text" in result.stderr


@pytest.mark.parametrize(
    "args",
    [("timeline", "99"), ("incidents", "show", "99"), ("ack", "99", "--as", "a")],
)
def test_unknown_incident(cli: Cli, args: tuple[str, ...]) -> None:
    ingest_sample(cli)
    result = cli(*args)
    assert result.exit_code == 1
    assert "no incident #99" in result.stderr


BAD_LINES = b'{"labels": {"alertname": "X"}}\n{"labels": \n{"hello": 1}\n'


def test_deadletters_list_after_a_bad_payload(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(BAD_LINES)
    result = cli("ingest", str(bad))
    assert result.exit_code == 0, result.output
    assert "2 payload(s) went to the dead letters" in result.stderr
    assert "dead-lettered payloads" in result.stdout
    letters = cli.json("deadletters", "list")
    assert [letter["origin"] for letter in letters] == ["bad.jsonl:3", "bad.jsonl:2"]
    assert letters[1]["raw"] == '{"labels": '
    assert letters[1]["error"].startswith("$: malformed JSON")
    assert letters[0]["error"].startswith("$: unknown format")
    table = cli("deadletters", "list")
    assert table.exit_code == 0
    assert "Dead letters" in table.stdout


def test_deadletters_show_gives_back_the_exact_bytes(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"labels": {"alertname": "X"}}\n\xff\xfe{"a": 1}\n')
    assert cli("ingest", str(bad)).exit_code == 0
    (letter,) = cli.json("deadletters", "list")
    raw = cli("deadletters", "show", str(letter["id"]), "--raw")
    assert raw.exit_code == 0
    assert raw.stdout_bytes == b'\xff\xfe{"a": 1}'
    shown = cli.json("deadletters", "show", str(letter["id"]))
    assert base64.b64decode(shown["raw_base64"]) == b'\xff\xfe{"a": 1}'
    assert shown["error"] == "$: invalid UTF-8 at byte offset 0"
    assert shown["origin"] == "bad.jsonl:2"
    table = cli("deadletters", "show", str(letter["id"]))
    assert "invalid UTF-8" in table.stdout
    missing = cli("deadletters", "show", "999")
    assert missing.exit_code == 1
    assert "no dead letter 999" in missing.stderr


def test_ingest_json_output_stays_json_with_dead_letters(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(BAD_LINES)
    result = cli("ingest", str(bad), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["payloads"] == 3
    assert summary["dead_letters"] == 2


def test_deliveries_list(cli: Cli) -> None:
    run = cli.json("run", "--input", str(STREAM))
    actions = cli.json("deliveries", "list")
    assert len(actions) == len(run["actions"]) == run["summary"]["delivery_attempts"]
    assert {a["action"]["incident_number"] for a in actions} == {1, 2, 3, 4, 5, 6}
    assert {a["status"] for a in actions} == {"delivered"}
    assert all(a["attempts"] == 1 for a in actions)
    only_three = cli.json("deliveries", "list", "--incident", "3")
    assert {a["action"]["incident_number"] for a in only_three} == {3}
    keys = [a["action"]["key"] for a in only_three]
    assert "3:1:reopen:0" in keys


def test_playbooks_validate(cli: Cli) -> None:
    result = cli("playbooks", "validate", str(PLAYBOOKS))
    assert result.exit_code == 0, result.output
    assert "4 playbook(s) valid" in result.stdout
    data = cli.json("playbooks", "validate", str(PLAYBOOKS))
    assert data == {
        "ok": True,
        "playbooks": [
            "security-incident",
            "database-unavailable",
            "api-slo-burn",
            "declared-incident",
        ],
    }


def test_playbooks_validate_broken_folder(cli: Cli, broken: Path) -> None:
    result = cli("playbooks", "validate", str(broken))
    assert result.exit_code == 1
    stderr = " ".join(result.stderr.split())
    assert f"{broken / '10-bad.yaml'}:3:14: ack_timeout: '5x': unknown unit 'x'" in stderr
    assert "1 problem(s)" in stderr
    assert result.stdout == ""
    data = cli("playbooks", "validate", str(broken), "--json")
    assert data.exit_code == 1
    assert json.loads(data.stdout)["ok"] is False


def test_problem_lines_are_not_wrapped(cli: Cli, broken: Path) -> None:
    result = cli("playbooks", "validate", str(broken))
    first = result.stderr.splitlines()[0]
    # One problem per line, whole, so editors and CI problem matchers can parse it.
    assert first == (
        f"{broken / '10-bad.yaml'}:3:14: ack_timeout: '5x': unknown unit 'x'; "
        "use one of y, w, d, h, m, s, ms"
    )


def test_playbooks_schema(cli: Cli) -> None:
    result = cli("playbooks", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Incident orchestrator playbook"
    assert {"name", "match", "escalation", "on_trigger"} <= set(schema["properties"])


def test_playbooks_list(cli: Cli) -> None:
    listed = cli.json("playbooks", "list", str(PLAYBOOKS))
    assert [p["name"] for p in listed] == [
        "security-incident",
        "database-unavailable",
        "api-slo-burn",
        "declared-incident",
    ]
    assert all(p["tests"] > 0 for p in listed)


def test_playbooks_test(cli: Cli) -> None:
    result = cli("playbooks", "test", str(PLAYBOOKS))
    assert result.exit_code == 0, result.output
    assert ", 0 failed" in result.stdout
    data = cli.json("playbooks", "test", str(PLAYBOOKS))
    assert data["failed"] == 0
    assert data["passed"] == len(data["results"]) > 0


def test_refuses_to_start_on_a_bad_playbook_folder(cli: Cli, broken: Path) -> None:
    result = cli("incidents", "list", playbooks=broken)
    assert result.exit_code == 2
    assert f"{broken / '10-bad.yaml'}:3:14:" in result.stderr
    assert "refusing to start: 1 problem(s)" in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_alerts_list_gives_every_alert_a_disposition(cli: Cli) -> None:
    assert cli("ingest", str(STREAM)).exit_code == 0
    records = cli.json("alerts", "list")
    dispositions = {record["disposition"] for record in records}
    assert {"opened", "grouped", "resolved", "unmatched"} <= dispositions
    assert all(record["disposition"] for record in records)
    opened = [r for r in records if r["disposition"] == "opened"]
    assert sorted(r["incident_number"] for r in opened) == [1, 2, 3, 4, 5, 6]
    first = cli.json("alerts", "list", "--incident", "1")
    assert first
    assert all(record["incident_number"] == 1 for record in first)
    assert "Alerts" in cli("alerts", "list").stdout


def test_alerts_schema_is_the_native_format(cli: Cli) -> None:
    result = cli("alerts", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "labels" in schema["properties"]
    assert "labels" in schema["required"]


def test_evidence_commands(cli: Cli, tmp_path: Path) -> None:
    ingest_sample(cli)
    unsigned = cli("evidence", "checkpoint")
    assert unsigned.exit_code == 1
    assert "set ORCH_EVIDENCE_SIGNING_KEY" in unsigned.stderr
    cli.runner = CliRunner(env={**CLEAN_ENV, "ORCH_EVIDENCE_SIGNING_KEY": "6b" * 32})
    signed = cli.json("evidence", "checkpoint")
    assert (signed["number"], len(signed["heads"])) == (1, 6)
    public = cli("evidence", "public-key").stdout.strip()
    live = cli.json("evidence", "verify", "--public-key", public)
    assert (live["ok"], live["chains"], live["checkpoints"]) == (True, 6, 1)
    archive = tmp_path / "q.zip"
    exported = cli.json("evidence", "export", "--out", str(archive), "--public-key", public)
    assert exported["counts"]["incidents"] == 6
    assert exported["verification"]["ok"]
    offline = cli.json("evidence", "verify", "--archive", str(archive), "--public-key", public)
    assert (offline["ok"], offline["entries"]) == (True, exported["counts"]["entries"])
    other = cli("evidence", "verify", "--archive", str(archive), "--public-key", "00" * 32)
    assert other.exit_code == 1  # someone else's key: the signatures do not verify
