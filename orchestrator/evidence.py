"""Compliance evidence from the store: signed checkpoints of the chain heads, verification of
the live store, and the export archive of SPEC §5 (streamed, page by page), which an auditor
verifies offline with `orchestrator evidence verify --archive`."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.clock import Clock
from orchestrator.report.chains import Break, vanished, verify_incident, verify_stored
from orchestrator.report.checkpoints import (
    GENESIS,
    Checkpoint,
    make_checkpoint,
    verify_checkpoints,
)
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import TimelineEntry, entry_from_json

# Entries recorded this long before the previous checkpoint are looked at again: replicas'
# clocks differ a little, and a head checkpointed twice costs nothing.
OVERLAP = dt.timedelta(minutes=5)


async def take_checkpoint(store: SqlStore, key: Ed25519PrivateKey, clock: Clock) -> Checkpoint:
    """Signs the heads of every chain that moved since the previous checkpoint."""
    last = await store.last_checkpoint()
    since = last.created_at - OVERLAP if last is not None else None
    heads = await store.chain_heads(touched_since=since)
    checkpoint = make_checkpoint(
        number=last.number + 1 if last else 1,
        created_at=clock.now(),
        heads=heads,
        previous=last.digest if last else GENESIS,
        key=key,
    )
    await store.add_checkpoint(checkpoint)
    return checkpoint


@dataclass
class Verification:
    chains: int = 0
    entries: int = 0
    checkpoints: int = 0
    breaks: list[Break] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # checkpoints, files, register gaps

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chains": self.chains,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "breaks": [b.__dict__ for b in self.breaks],
            "problems": self.problems,
        }


async def verify_store(
    store: SqlStore,
    trusted_key: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Every chain in the store against itself and against the signed checkpoints."""
    checkpoints = await store.list_checkpoints()
    heads, problems = verify_checkpoints(checkpoints, trusted_key)
    result = Verification(checkpoints=len(checkpoints), problems=problems)
    expected = 1
    async for number, rows in store.stored_chains():
        if number != expected:
            result.problems.append(
                f"incident register: numbers {expected}..{number - 1} are missing"
            )
        expected = number + 1
        result.chains += 1
        result.entries += len(rows)
        result.breaks += verify_stored(number, rows, heads.pop(number, None))
        if progress is not None:
            progress(1)
    result.breaks += vanished(heads)  # the heads no incident in the store claimed
    return result


def check_register(register: list[list[Any]], verification: Verification) -> None:
    numbers = [int(row[0]) for row in register]
    for before, after in itertools.pairwise(numbers):
        if (gap := register_gap(before, after)) is not None:
            verification.problems.append(gap)


def register_gap(before: int, after: int) -> str | None:
    """The problem when incident `after` does not follow `before` in the register."""
    if after == before + 1:
        return None
    return f"incident register: numbers {before + 1}..{after - 1} are missing"


def verify_archive(path: Path, trusted_key: str | None = None) -> Verification:
    """The archive checked offline: every file against the manifest, every chain against
    itself and the signed checkpoints, the incident register for gaps."""
    with zipfile.ZipFile(path) as zip_file:
        manifest = json.loads(zip_file.read("manifest.json"))
        result = Verification()
        names = set(zip_file.namelist()) - {"manifest.json"}
        for name in sorted(names | set(manifest["files"])):
            listed = manifest["files"].get(name)
            if name not in names:
                result.problems.append(f"{name}: listed in the manifest but missing")
            elif listed is None:
                result.problems.append(f"{name}: in the archive but not in the manifest")
            elif hashlib.sha256(zip_file.read(name)).hexdigest() != listed["sha256"]:
                result.problems.append(f"{name}: its SHA-256 differs from the manifest's")
        checkpoints = [
            Checkpoint.from_json(json.loads(line))
            for line in zip_file.read("checkpoints.jsonl").decode().splitlines()
            if line.strip()
        ]
        heads, problems = verify_checkpoints(checkpoints, trusted_key)
        result.checkpoints = len(checkpoints)
        result.problems += problems
        numbers = sorted(
            int(name.split("/")[1]) for name in names if name.endswith("/timeline.jsonl")
        )
        for number in numbers:
            entries = _read_chain(zip_file, number, result)
            result.chains += 1
            result.entries += len(entries)
            result.breaks += verify_incident(number, entries, heads.get(number))
        register = [[n] for n in numbers]
        check_register(register, result)
    return result


def _read_chain(
    zip_file: zipfile.ZipFile, number: int, result: Verification
) -> list[TimelineEntry]:
    entries = []
    lines = zip_file.read(f"incidents/{number}/timeline.jsonl").decode().splitlines()
    for index, line in enumerate(lines, start=1):
        try:
            entries.append(entry_from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            result.problems.append(
                f"incidents/{number}/timeline.jsonl:{index}: unreadable entry ({err})"
            )
    return entries
