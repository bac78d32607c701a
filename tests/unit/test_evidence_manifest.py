"""The streamed manifest is the JSON `json.dumps(indent=2, sort_keys=True)` writes, down to the
byte when the spooled members come in sorted order; spools read back what was written, in
memory or (past their limit) on disk."""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import pytest

from orchestrator import evidence_manifest
from orchestrator.evidence_manifest import Spool, SpooledObject, manifest_chunks


def spooled(members: dict[str, Any]) -> SpooledObject:
    result = SpooledObject()
    for key, value in members.items():
        result.add(key, value)
    return result


def test_the_streamed_manifest_is_what_json_dumps_writes() -> None:
    files = {
        "a.csv": {"sha256": "ab" * 32, "bytes": 10},
        "incidents/1/timeline.jsonl": {"sha256": "cd" * 32, "bytes": 0},
        'é\n"quoted"': {"sha256": "", "bytes": 1},
    }
    heads = {"1": "ef" * 32, "10": "", "2": "01" * 32}
    fixed = {
        "counts": {"incidents": 3, "entries": 7},
        "criteria": {"a.csv": "CC7.2"},
        "period": {"from": None, "to": "2026-10-01T00:00:00+00:00"},
        "verification": {"ok": True, "breaks": [], "problems": ["x"]},
        "generator": "incident-orchestrator 0.1.0",
    }
    with closing(spooled(files)) as file_list, closing(spooled(heads)) as head_list:
        streamed = "".join(manifest_chunks(fixed, {"files": file_list, "chain_heads": head_list}))
    whole = {**fixed, "files": files, "chain_heads": heads}
    assert streamed == json.dumps(whole, indent=2, sort_keys=True)
    with closing(SpooledObject()) as nothing:
        empty = "".join(manifest_chunks(fixed, {"chain_heads": nothing}))
    assert empty == json.dumps({**fixed, "chain_heads": {}}, indent=2, sort_keys=True)


def test_spooled_members_keep_the_order_they_came_in() -> None:
    with closing(spooled({"2": "b", "10": "c", "1": "a"})) as heads:
        text = "".join(manifest_chunks({}, {"chain_heads": heads}))
    assert list(json.loads(text)["chain_heads"].items()) == [("2", "b"), ("10", "c"), ("1", "a")]


def test_a_spool_past_its_memory_limit_reads_back_from_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(evidence_manifest, "IN_MEMORY", 100)
    monkeypatch.setattr(evidence_manifest, "CHUNK", 7)
    lines = [f"row {n},ü\n" for n in range(200)]
    with closing(Spool()) as spool:
        for line in lines:
            spool.write(line)
        assert "".join(spool.chunks()) == "".join(lines)
        assert list(spool.lines()) == lines
