"""Postmortems and action items through the real CLI, on a SQLite file, with the shipped
playbooks: draft, edit, import, check, action items, approve, overdue, and the timeline."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
STREAM = REPO / "examples" / "alertmanager-stream.jsonl"
SUMMARY_PLACEHOLDER = "_What happened and what it meant for users, in two or three sentences._"
POORLY_PLACEHOLDER = "_Where the response was slowed or confused._"
EMPTY_ROW = "| | | | | | |\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    cli = Cli(tmp_path / "x.db")
    cli.json("ingest", str(STREAM))
    # Incident 5 (security-incident, SEV2: a postmortem is always required) gets a response.
    cli.ok("ack", "5", "--as", "alice")
    cli.ok("commander", "5", "bob", "--as", "alice")
    cli.ok("note", "5", "blocked the source IP", "--as", "bob")
    cli.ok("resolve", "5", "--as", "bob")
    return cli


def kinds(cli: Cli, number: int, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
    return [e for e in cli.json("timeline", str(number)) if e["kind"].startswith(prefix)]


FOLLOW_UP = ("postmortem.", "action_item.")


def test_draft_edit_import_check_items_approve(cli: Cli, tmp_path: Path) -> None:
    draft = tmp_path / "pm.md"
    cli.ok("postmortem", "draft", "5", "--out", str(draft))
    text = draft.read_text()
    assert text.startswith("# Postmortem: incident #5 — Security: SuspiciousLogin on admin-portal")
    assert "| Status | **draft** |" in text
    assert "| alice | responder | cli |" in text
    assert "| bob | incident commander | cli |" in text
    assert "| bob | blocked the source IP |" in text
    assert "| page | pagerduty.trigger |" in text
    assert "- Playbook: security-incident, version " in text
    assert kinds(cli, 5, FOLLOW_UP) == []  # drafting records nothing

    # People write the summary, a finding and two action items, and import it.
    edited = (
        text.replace(SUMMARY_PLACEHOLDER, "An admin account was used from an unknown network.")
        .replace(POORLY_PLACEHOLDER, "bob forgot to rotate the admin key.")
        .replace(
            EMPTY_ROW,
            "| Rotate admin keys weekly | carol | 2020-01-10 | prevent | open | https://t/1 |\n"
            "| Alert on admin login from new ASN | dave | 2099-01-01 | detect | in progress | |\n"
            + EMPTY_ROW,
        )
    )
    draft.write_text(edited)
    imported = cli.json("postmortem", "import", "5", str(draft), "--as", "alice")
    assert imported == {
        "incident": 5,
        "status": "draft",
        "added": ["Rotate admin keys weekly", "Alert on admin login from new ASN"],
        "updated": [],
        "blameless_findings": 1,
    }
    check = cli("postmortem", "check", "5")
    assert check.exit_code == 1
    assert "bob forgot to" in check.stdout
    (finding,) = json.loads(cli("postmortem", "check", "5", "--json").stdout)
    assert finding["line"] == edited.splitlines().index("bob forgot to rotate the admin key.") + 1

    # Rephrased blamelessly, and sent for review: nothing changes in the action items.
    fixed = edited.replace(
        "bob forgot to rotate the admin key.", "Key rotation was a manual step with no reminder."
    )
    draft.write_text(fixed)
    again = cli.json("postmortem", "import", "5", str(draft), "--review", "--as", "alice")
    assert (again["status"], again["added"], again["updated"]) == ("in_review", [], [])
    assert "reads blameless" in cli.ok("postmortem", "check", "5").stdout

    # Action items: list, filter, add, close.
    items = cli.json("actions", "list")
    assert [(i["id"], i["incident_number"], i["status"]) for i in items] == [
        (1, 5, "open"),
        (2, 5, "in_progress"),
    ]
    assert [i["id"] for i in cli.json("actions", "list", "--overdue")] == [1]
    assert [i["id"] for i in cli.json("actions", "list", "--owner", "dave")] == [2]
    assert cli.json("actions", "list", "--incident", "4") == []
    added = cli.json(
        "actions", "add", "5", "--title", "Runbook for key rotation", "--owner", "erin",
        "--due", "2027-01-01", "--type", "process", "--as", "carol",
    )  # fmt: skip
    assert (added["id"], added["type"], added["due"]) == (3, "process", "2027-01-01")
    closed = cli.json("actions", "close", "1", "--evidence", "https://git/pr/9", "--as", "carol")
    assert (closed["status"], closed["closed_by"], closed["evidence"]) == (
        "done",
        "carol",
        "https://git/pr/9",
    )
    assert closed["closed_at"] is not None
    twice = cli("actions", "close", "1", "--evidence", "https://git/pr/9")
    assert twice.exit_code == 1
    assert "already done" in twice.stderr
    assert cli.json("actions", "list", "--overdue") == []
    assert "Rotate admin keys weekly" in cli.ok("actions", "list").stdout

    # The stored postmortem, refreshed: the written text stays, the table follows the store.
    refreshed = cli.ok("postmortem", "draft", "5").stdout
    assert "An admin account was used from an unknown network." in refreshed
    assert "| Status | **in review** |" in refreshed
    assert "| Rotate admin keys weekly | carol | 2020-01-10 | prevent | done | https://t/1 |" in (
        refreshed
    )
    assert "| Runbook for key rotation | erin | 2027-01-01 | process | open |  |" in refreshed
    assert "- Rotate admin keys weekly: done, evidence https://git/pr/9" in refreshed

    # An edited row updates its item; its status moving to wontfix closes it.
    draft.write_text(
        refreshed.replace(
            "| Runbook for key rotation | erin | 2027-01-01 | process | open |  |",
            "| Runbook for key rotation | erin | 2027-01-01 | process | wontfix | https://t/3 |",
        ).replace("| dave | 2099-01-01 |", "| frank | 2099-01-01 |")
    )
    updated = cli.json("postmortem", "import", "5", str(draft), "--as", "alice")
    assert (updated["added"], sorted(updated["updated"])) == (
        [],
        ["Alert on admin login from new ASN", "Runbook for key rotation"],
    )
    by_id = {i["id"]: i for i in cli.json("actions", "list", "--incident", "5")}
    assert by_id[2]["owner"] == "frank"
    assert (by_id[3]["status"], by_id[3]["evidence"], by_id[3]["closed_by"]) == (
        "wontfix",
        "https://t/3",
        "alice",
    )

    # Approval covers the text as stored; approving twice is refused.
    approved = cli.json("postmortem", "approve", "5", "--as", "lead")
    assert (approved["status"], approved["approved_by"]) == ("approved", "lead")
    assert cli("postmortem", "approve", "5", "--as", "lead").exit_code == 1
    assert "| Status | **approved** by lead at " in cli.ok("postmortem", "draft", "5").stdout

    entries = kinds(cli, 5, FOLLOW_UP)
    assert [e["kind"] for e in entries] == [
        "postmortem.updated",
        "action_item.added",
        "action_item.added",
        "postmortem.updated",
        "action_item.added",
        "action_item.closed",
        "postmortem.updated",
        "action_item.updated",
        "action_item.closed",
        "postmortem.approved",
    ]
    assert [e["actor"]["id"] for e in entries][4:6] == ["carol", "carol"]
    assert entries[5]["data"] | {"title": ""} == {
        "id": 1,
        "title": "",
        "status": "done",
        "evidence": "https://git/pr/9",
    }
    assert entries[7]["data"]["changes"] == {"owner": ["dave", "frank"]}
    stored = draft.read_text()
    assert entries[-1]["data"]["sha256"] == hashlib.sha256(stored.encode()).hexdigest()
    assert entries[-1]["actor"]["id"] == "lead"

    html = tmp_path / "pm.html"
    cli.ok("postmortem", "draft", "5", "--format", "html", "--out", str(html))
    page = html.read_text()
    assert "<h2>Summary</h2>\n<p>An admin account was used from an unknown network.</p>" in page
    assert '<td class="status">approved</td>' in page


def test_overdue_postmortems(cli: Cli, tmp_path: Path) -> None:
    resolved = dt.datetime.fromisoformat(
        cli.json("incidents", "show", "5")["incident"]["resolved_at"]
    )
    later = (resolved + dt.timedelta(days=30)).isoformat()
    # Database incidents 3 (SEV1) and 4 (SEV2) match `max_severity <= SEV2 or data_loss`, the
    # security incident 5 `always`; the SLO incidents have no postmortem policy, 6 is open.
    late = cli.json("postmortem", "overdue", "--as-of", later)
    assert [(i["incident"], i["postmortem"]) for i in late] == [(3, None), (4, None), (5, None)]
    # 30 days are 20 business days and the weekdays among the 2 left over (today's date decides).
    assert {i["business_days"] for i in late} <= {20, 21, 22}
    assert cli.json("postmortem", "overdue", "--as-of", resolved.isoformat()) == []
    assert cli.json("postmortem", "overdue", "--as-of", later, "--days", "30") == []

    draft = tmp_path / "pm.md"
    cli.ok("postmortem", "draft", "5", "--out", str(draft))
    cli.ok("postmortem", "import", "5", str(draft))
    assert [i["postmortem"] for i in cli.json("postmortem", "overdue", "--as-of", later)] == [
        None,
        None,
        "draft",
    ]
    cli.ok("postmortem", "approve", "5", "--as", "lead")
    assert [i["incident"] for i in cli.json("postmortem", "overdue", "--as-of", later)] == [3, 4]
    table = cli.ok("postmortem", "overdue", "--as-of", later).stdout
    assert "Overdue postmortems" in table
    assert "max_severity <= SEV2 or data_loss" in table

    # A changed text is no longer what was approved: back to draft, and overdue again.
    draft.write_text(draft.read_text() + "\n## Addendum\n\nOne more thing.\n")
    assert cli.json("postmortem", "import", "5", str(draft))["status"] == "draft"
    assert [i["incident"] for i in cli.json("postmortem", "overdue", "--as-of", later)] == [
        3,
        4,
        5,
    ]


def test_teams_override_the_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, own)
    (own / "templates" / "postmortem.md.j2").write_text(
        "# Review of #{{ incident.number }}\n\n## Story\n\n{{ written.get('story', 'tbd') }}\n"
    )
    cli = Cli(tmp_path / "x.db", own)
    cli.json("playbooks", "validate", str(own))
    cli.json("ingest", str(STREAM))
    assert cli.ok("postmortem", "draft", "1").stdout == "# Review of #1\n\n## Story\n\ntbd\n"
    (own / "templates" / "postmortem.md.j2").unlink()
    missing = cli("postmortem", "draft", "1")
    assert missing.exit_code == 1
    assert "no postmortem.md.j2 in" in missing.stderr
    (own / "templates" / "postmortem.md.j2").write_text("{{ incident.nope }}")
    broken = cli("postmortem", "draft", "1")
    assert broken.exit_code == 1
    assert "templates/postmortem.md.j2 does not render" in broken.stderr


def test_errors_are_one_line(cli: Cli, tmp_path: Path) -> None:
    assert "no incident #99" in cli("postmortem", "draft", "99").stderr
    assert "no stored postmortem" in cli("postmortem", "approve", "5", "--as", "x").stderr
    assert "no stored postmortem" in cli("postmortem", "check", "5").stderr
    bad = tmp_path / "bad.md"
    bad.write_text("## Action items\n\n| title | due |\n|---|---|\n| x | soon |\n")
    result = cli("postmortem", "import", "5", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:5: due 'soon' is not a date" in result.stderr
    due = cli(
        "actions", "add", "5", "--title", "t", "--owner", "o", "--due", "x", "--type", "detect"
    )
    assert "--due 'x' is not a date" in due.stderr
    assert "no action item 42" in cli("actions", "close", "42", "--evidence", "e").stderr
