"""Checking hash-chained timelines offline: every break found and located (incident, entry,
expected vs found) and named for what it most likely was: an edit, a deletion, an insertion, a
reordering, or the newest entries dropped. Pure: it reads entries, never the store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.timeline import GENESIS_HASH, EntryDraft, TimelineEntry, chain


@dataclass(frozen=True)
class Break:
    incident: int
    seq: int | None  # the entry where it shows; None for the chain as a whole
    kind: str  # edited | deleted | inserted | reordered | truncated | relinked
    expected: str
    found: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "chain"
        return (
            f"incident #{self.incident} {where}: {self.kind}: "
            f"expected {self.expected}, found {self.found}"
        )


def content_hash(entry: TimelineEntry) -> str:
    """The hash the entry's own content and link give, whatever its stored hash says."""
    draft = EntryDraft(entry.kind, entry.actor, entry.occurred_at, entry.data)
    return chain(entry.incident_number, entry.seq, draft, entry.recorded_at, entry.prev_hash).hash


def verify_incident(
    number: int,
    entries: Iterable[TimelineEntry],
    checkpointed: tuple[int, str] | None = None,
) -> list[Break]:
    """Breaks in one incident's chain, in the order the entries were given (as stored or as
    exported). `checkpointed` is the (seq, hash) a signed checkpoint saw as the chain's head:
    entries missing up to it mean the newest were dropped."""
    given = list(entries)
    breaks: list[Break] = []
    seqs = [entry.seq for entry in given]
    if seqs != sorted(seqs):
        breaks.append(Break(number, None, "reordered", "entries in seq order", _shown(seqs)))
    previous_hash, previous_seq = GENESIS_HASH, 0
    seen: set[int] = set()
    for entry in sorted(given, key=lambda e: e.seq):
        if entry.seq in seen:
            breaks.append(Break(number, entry.seq, "inserted", "one entry", "two with this seq"))
            continue
        seen.add(entry.seq)
        if entry.seq > previous_seq + 1:
            missing = f"{previous_seq + 1}" + (
                f"..{entry.seq - 1}" if entry.seq - 1 > previous_seq + 1 else ""
            )
            breaks.append(
                Break(number, entry.seq, "deleted", f"entries {missing} before it", "none")
            )
        recomputed = content_hash(entry)
        if recomputed != entry.hash:
            breaks.append(
                Break(number, entry.seq, "edited", f"hash {entry.hash[:16]}", f"{recomputed[:16]}")
            )
        elif entry.prev_hash != previous_hash and entry.seq == previous_seq + 1:
            # Its own hash fits its content, but it no longer follows its predecessor: an entry
            # before it was rewritten with a fresh hash, or this one was put in from elsewhere.
            breaks.append(
                Break(
                    number,
                    entry.seq,
                    "relinked",
                    f"prev_hash {previous_hash[:16]}",
                    f"{entry.prev_hash[:16]}",
                )
            )
        previous_hash, previous_seq = entry.hash, entry.seq
    if checkpointed is not None:
        breaks.extend(_against_checkpoint(number, given, checkpointed, previous_seq))
    return breaks


def _against_checkpoint(
    number: int, given: list[TimelineEntry], checkpointed: tuple[int, str], last_seq: int
) -> list[Break]:
    seq, head_hash = checkpointed
    if last_seq < seq:
        return [
            Break(
                number,
                None,
                "truncated",
                f"entries up to {seq} (a signed checkpoint saw them)",
                f"the chain ends at {last_seq}",
            )
        ]
    at_head = [entry for entry in given if entry.seq == seq]
    if at_head and at_head[0].hash != head_hash:
        return [
            Break(
                number,
                seq,
                "edited",
                f"hash {head_hash[:16]} (signed checkpoint)",
                f"{at_head[0].hash[:16]}",
            )
        ]
    return []


def vanished(heads: Mapping[int, tuple[int, str]]) -> list[Break]:
    """Chains a signed checkpoint saw that are not there at all: `heads` left unmatched."""
    return [
        Break(
            number, None, "deleted", f"a chain of {heads[number][0]} entries (checkpointed)", "none"
        )
        for number in sorted(heads)
    ]


def _shown(seqs: list[int]) -> str:
    text = ", ".join(str(seq) for seq in seqs[:12])
    return f"[{text}{', ...' if len(seqs) > 12 else ''}]"
