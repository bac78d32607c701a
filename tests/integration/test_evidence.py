"""Evidence you can prove: an exported archive verifies offline, and every way of tampering
with a copy (edit, delete, insert, reorder, drop the newest) is detected and located; so is a
forced edit of the live store and a forged or deleted checkpoint."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sqlite3
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from samples import db_alert

from orchestrator import evidence_export
from orchestrator.clock import ManualClock
from orchestrator.evidence import take_checkpoint, verify_archive, verify_store
from orchestrator.evidence_export import export_archive
from orchestrator.incident.events import NoteAdded, StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.report.action_items import ActionItemType
from orchestrator.report.checkpoints import public_hex, signing_key
from orchestrator.store.postmortems import NewActionItem
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
KEY = signing_key("42" * 32)
PUBLIC = public_hex(KEY)
ALICE = Actor(ActorKind.CLI, "alice", "alice")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """Three incidents with acks, notes and a resolution, and a signed checkpoint."""
    opened = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'evidence.db'}")
    await opened.open()
    clock = ManualClock(T0)
    pipeline = Pipeline(opened, load_playbooks(REPO / "playbooks"), clock)
    for service in ("orders-db", "billing-db", "users-db"):
        await pipeline.ingest_bytes(db_alert(service, starts_at=T0), "test")
        clock.advance(dt.timedelta(minutes=1))
    await pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
    await pipeline.apply(2, NoteAdded("failing over", ALICE))
    await pipeline.apply(2, StatusChange(Status.RESOLVED, ALICE))
    fix = NewActionItem("add a read replica", "ana", dt.date(2026, 4, 1), ActionItemType.MITIGATE)
    await opened.save_postmortem(2, "# Postmortem\n\nThe disk filled up.\n", ALICE, clock.now())
    await opened.add_action_item(2, fix, ALICE, clock.now())
    await take_checkpoint(opened, KEY, clock)
    try:
        yield opened
    finally:
        await opened.close()


async def exported(store: SqlStore, tmp_path: Path) -> Path:
    path = tmp_path / "evidence.zip"
    with path.open("wb") as sink:
        manifest = await export_archive(store, sink, ManualClock(T0), trusted_key=PUBLIC)
    assert manifest["verification"]["ok"], manifest["verification"]
    assert manifest["counts"]["incidents"] == 3
    return path


def rewrite(path: Path, name: str, change: Callable[[list[str]], list[str]]) -> Path:
    """A copy of the archive with one file's lines changed, the manifest left as it was
    (and, separately, a copy whose manifest was rewritten to match: see the test)."""
    tampered = path.with_name(f"tampered-{name.replace('/', '-')}.zip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == name:
                data = ("\n".join(change(data.decode().splitlines())) + "\n").encode()
            target.writestr(item, data)
    return tampered


def refresh_manifest(path: Path) -> None:
    """What a careful forger does: recompute the manifest's hashes after tampering."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w") as target:
        manifest = json.loads(source.read("manifest.json"))
        for item in source.namelist():
            if item != "manifest.json":
                data = source.read(item)
                manifest["files"][item]["sha256"] = hashlib.sha256(data).hexdigest()
                target.writestr(item, data)
        target.writestr("manifest.json", json.dumps(manifest))
    path.write_bytes(buffer.getvalue())


async def test_an_export_verifies_offline(store: SqlStore, tmp_path: Path) -> None:
    path = await exported(store, tmp_path)
    result = verify_archive(path, PUBLIC)
    assert result.ok, (result.breaks, result.problems)
    assert (result.chains, result.checkpoints) == (3, 1)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        register = archive.read("incidents.csv").decode().splitlines()
    assert {"alerts.csv", "incidents.csv", "checkpoints.jsonl", "README.md"} <= names
    assert {
        f"incidents/{n}/{f}"
        for n in (1, 2, 3)
        for f in ("timeline.jsonl", "notifications.csv", "playbook.json")
    } <= names
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert [row.split(",")[0] for row in register[1:]] == ["1", "2", "3"]  # gap-free
    assert manifest["criteria"]["alerts.csv"] == "CC7.2, CC7.3"
    with zipfile.ZipFile(path) as archive:
        postmortem = archive.read("incidents/2/postmortem.md").decode()
        items = archive.read("incidents/2/action_items.csv").decode().splitlines()
    assert "The disk filled up." in postmortem
    assert "draft, not approved" in postmortem.splitlines()[0]
    assert items[1].split(",")[1:5] == ["add a read replica", "ana", "2026-04-01", "mitigate"]
    assert "incidents/1/postmortem.md" not in names  # none was written for #1


TIMELINE = "incidents/2/timeline.jsonl"


def _edit(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["data"]["text"] = "nothing happened"  # rewrite history
    entry["actor"]["id"] = "mallory"
    return [*lines[:2], json.dumps(entry), *lines[3:]]


def _insert(lines: list[str]) -> list[str]:
    forged = json.loads(lines[1])
    return [*lines[:2], json.dumps(forged), *lines[2:]]


CASES: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "edit a field": (_edit, "edited"),
    "delete an entry": (lambda lines: lines[:3] + lines[4:], "deleted"),
    "insert an entry": (_insert, "inserted"),
    "reorder entries": (lambda lines: [lines[1], lines[0], *lines[2:]], "reordered"),
    "drop the newest": (lambda lines: lines[:-2], "truncated"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_kind_of_tampering_is_detected(
    store: SqlStore, tmp_path: Path, case: str
) -> None:
    change, kind = CASES[case]
    path = await exported(store, tmp_path)
    tampered = rewrite(path, TIMELINE, change)
    plain = verify_archive(tampered, PUBLIC)
    assert not plain.ok
    assert any(TIMELINE in problem for problem in plain.problems)  # the manifest's hash
    # Even with the manifest recomputed, the chain itself gives it away, and says where.
    refresh_manifest(tampered)
    careful = verify_archive(tampered, PUBLIC)
    assert careful.problems == []
    assert careful.breaks
    assert {b.incident for b in careful.breaks} == {2}
    assert kind in {b.kind for b in careful.breaks}, [str(b) for b in careful.breaks]


async def test_a_forged_or_missing_checkpoint_is_detected(store: SqlStore, tmp_path: Path) -> None:
    clock = ManualClock(T0 + dt.timedelta(hours=1))
    await take_checkpoint(store, KEY, clock)
    path = await exported(store, tmp_path)

    def forge(lines: list[str]) -> list[str]:
        first = json.loads(lines[0])
        first["heads"]["2"][0] = 2  # claim the chain was shorter
        return [json.dumps(first), *lines[1:]]

    forged = rewrite(path, "checkpoints.jsonl", forge)
    refresh_manifest(forged)
    problems = verify_archive(forged, PUBLIC).problems
    assert "checkpoint 1: content does not match its digest: edited" in problems
    dropped = rewrite(path, "checkpoints.jsonl", lambda lines: lines[1:])
    refresh_manifest(dropped)
    problems = verify_archive(dropped, PUBLIC).problems
    assert "checkpoint 2: expected checkpoint 1 before it: deleted" in problems
    other_key = public_hex(signing_key("17" * 32))
    assert any("signed by another key" in p for p in verify_archive(path, other_key).problems)


async def test_a_forced_edit_of_the_store_is_detected(store: SqlStore, tmp_path: Path) -> None:
    assert (await verify_store(store, PUBLIC)).ok
    database = store.engine.url.database
    assert database is not None
    with sqlite3.connect(database) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE timeline SET data = '{}' WHERE incident_number = 2 AND seq = 3")
        # Someone with the database file drops the guard and edits anyway; then deletes the
        # newest entries of another chain.
        conn.execute("DROP TRIGGER timeline_no_update")
        conn.execute("DROP TRIGGER timeline_no_delete")
        conn.execute(
            'UPDATE timeline SET data = \'{"text": "all fine"}\' '
            "WHERE incident_number = 2 AND seq = 3"
        )
        conn.execute(
            "DELETE FROM timeline WHERE incident_number = 1 AND seq > "
            "(SELECT max(seq) - 2 FROM timeline WHERE incident_number = 1)"
        )
        # And removes incident 3 altogether, its chain with it.
        conn.execute("DELETE FROM timeline WHERE incident_number = 3")
        conn.execute("DELETE FROM incidents WHERE number = 3")
    result = await verify_store(store, PUBLIC)
    found = {(b.incident, b.seq, b.kind) for b in result.breaks}
    assert (2, 3, "edited") in found
    assert (1, None, "truncated") in found
    assert (3, None, "deleted") in found  # a signed checkpoint saw its chain
    assert all(b.incident in (1, 2, 3) for b in result.breaks)


async def test_an_export_over_many_pages_has_each_follow_up_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Actions, postmortems and action items are read a page of incidents at a time; each
    incident's land in its own folder, once, whichever page it is on."""
    monkeypatch.setattr(evidence_export, "PAGE", 2)
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'pages.db'}")
    await store.open()
    clock = ManualClock(T0)
    pipeline = Pipeline(store, load_playbooks(REPO / "playbooks"), clock)
    for n in range(1, 8):
        await pipeline.ingest_bytes(db_alert(f"db-{n}", starts_at=T0), "test")
        clock.advance(dt.timedelta(minutes=1))
    postmortems = {1, 3, 4, 7}
    items = {3: 2, 4: 1, 6: 3, 7: 1}  # incident: how many action items
    for n in postmortems:
        await store.save_postmortem(n, f"# Postmortem of {n}\n", ALICE, clock.now())
    for n, count in items.items():
        for k in range(count):
            fix = NewActionItem(f"fix {n}.{k}", "ana", None, ActionItemType.PREVENT)
            await store.add_action_item(n, fix, ALICE, clock.now())
    await take_checkpoint(store, KEY, clock)
    path = tmp_path / "pages.zip"
    try:
        with path.open("wb") as sink:
            manifest = await export_archive(store, sink, clock, trusted_key=PUBLIC)
    finally:
        await store.close()
    assert manifest["counts"]["incidents"] == 7
    assert verify_archive(path, PUBLIC).ok
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert len(names) == len(set(names))  # no member written twice
        for n in range(1, 8):
            folder = f"incidents/{n}"
            notifications = archive.read(f"{folder}/notifications.csv").decode().splitlines()
            assert len(notifications) > 1  # the playbook's pages and messages
            if n in postmortems:
                text = archive.read(f"{folder}/postmortem.md").decode()
                assert text.count("# Postmortem of") == 1
                assert f"# Postmortem of {n}\n" in text
            else:
                assert f"{folder}/postmortem.md" not in names
            if n in items:
                rows = archive.read(f"{folder}/action_items.csv").decode().splitlines()[1:]
                assert [row.split(",")[1] for row in rows] == [
                    f"fix {n}.{k}" for k in range(items[n])
                ]
            else:
                assert f"{folder}/action_items.csv" not in names


async def test_an_export_reports_a_gap_in_the_register(store: SqlStore, tmp_path: Path) -> None:
    database = store.engine.url.database
    assert database is not None
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TRIGGER timeline_no_delete")
        for table in ("timeline", "outbox"):
            conn.execute(f"DELETE FROM {table} WHERE incident_number = 2")
        conn.execute("DELETE FROM incidents WHERE number = 2")
    with io.BytesIO() as sink:
        manifest = await export_archive(store, sink, ManualClock(T0), trusted_key=PUBLIC)
    problems = manifest["verification"]["problems"]
    assert "incident register: numbers 2..2 are missing" in problems
