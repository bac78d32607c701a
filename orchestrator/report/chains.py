"""Checking hash-chained timelines offline: every break found and located (incident, entry,
expected vs found) and named for what it most likely was: an edit, a deletion, an insertion, a
reordering, or the newest entries dropped. Pure: it reads entries, never the store."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from orchestrator.timeline import GENESIS_HASH, EntryDraft, TimelineEntry, chain, entry_from_json

# One link of a chain as the checks need it: (seq, prev_hash, stored hash, the hash its content
# gives now).
Link = tuple[int, str, str, str]


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
    links = [(e.seq, e.prev_hash, e.hash, content_hash(e)) for e in entries]
    return verify_links(number, links, checkpointed)


def verify_links(
    number: int, given: Sequence[Link], checkpointed: tuple[int, str] | None = None
) -> list[Break]:
    """verify_incident's checks over links whose content hash is already worked out."""
    breaks: list[Break] = []
    seqs = [link[0] for link in given]
    in_order = given
    if any(after <= before for before, after in itertools.pairwise(seqs)):
        if seqs != sorted(seqs):
            breaks.append(Break(number, None, "reordered", "entries in seq order", _shown(seqs)))
        in_order = sorted(given, key=lambda link: link[0])
    previous_hash, previous_seq = GENESIS_HASH, 0
    seen: set[int] = set()
    for seq, prev_hash, stored, recomputed in in_order:
        if seq in seen:
            breaks.append(Break(number, seq, "inserted", "one entry", "two with this seq"))
            continue
        seen.add(seq)
        if seq > previous_seq + 1:
            missing = f"{previous_seq + 1}" + (f"..{seq - 1}" if seq - 1 > previous_seq + 1 else "")
            breaks.append(Break(number, seq, "deleted", f"entries {missing} before it", "none"))
        if recomputed != stored:
            breaks.append(Break(number, seq, "edited", f"hash {stored[:16]}", recomputed[:16]))
        elif prev_hash != previous_hash and seq == previous_seq + 1:
            # Its own hash fits its content, but it no longer follows its predecessor: an entry
            # before it was rewritten with a fresh hash, or this one was put in from elsewhere.
            breaks.append(
                Break(number, seq, "relinked", f"prev_hash {previous_hash[:16]}", prev_hash[:16])
            )
        previous_hash, previous_seq = stored, seq
    if checkpointed is not None:
        breaks.extend(_against_checkpoint(number, given, checkpointed, previous_seq))
    return breaks


# A timeline row as the store keeps it, read as text (store/evidence.py `stored_chains`):
# seq, kind, actor JSON, occurred_at and recorded_at as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC,
# data JSON, prev_hash, hash, and whether the two JSON texts are valid JSON.
StoredRow = tuple[int, str, str, str, str, str, str, str, bool]


def verify_stored(
    number: int, rows: Sequence[StoredRow], checkpointed: tuple[int, str] | None = None
) -> list[Break]:
    """verify_incident over rows read as text, which is how a whole store is verified fast."""
    links = [(row[0], row[6], row[7], stored_content_hash(number, row)) for row in rows]
    return verify_links(number, links, checkpointed)


def stored_content_hash(number: int, row: StoredRow) -> str:
    """The hash a stored row's content gives.

    The store writes JSON with sorted keys and no spaces, which is what the canonical form
    holds, so the canonical bytes are the stored texts spliced into place: no parsing. The
    splice is only trusted when it cannot be ambiguous: both JSON texts valid (each is then one
    self-delimiting value) and no quote or backslash in the plain strings; and only when its
    hash is the stored one. Anything else (an edit, JSON written some other way) is worked out
    the exact way, by parsing."""
    spliced = spliced_hash(number, row)
    if spliced is not None and spliced == row[7]:
        return spliced
    return _parsed_content_hash(number, row)


def spliced_hash(number: int, row: StoredRow) -> str | None:
    """The hash of the stored texts spliced into the canonical layout, or None when the splice
    could be ambiguous."""
    seq, kind, actor, occurred, recorded, data, prev_hash, _, valid_json = row
    if not valid_json or occurred[10:11] != " " or recorded[10:11] != " ":
        return None  # (the space is the one character the splice drops)
    plain = f"{kind}{occurred}{recorded}{prev_hash}"
    if '"' in plain or "\\" in plain:
        return None
    # One f-string encoded once: a byte template took eight encodes a row, which was a
    # quarter of the hashing time over millions of entries.
    body = (
        f'{{"actor":{actor},"data":{data},"incident":{number},"kind":"{kind}",'
        f'"occurred_at":"{occurred[:10]}T{occurred[11:]}+00:00","prev":"{prev_hash}",'
        f'"recorded_at":"{recorded[:10]}T{recorded[11:]}+00:00","seq":{seq}}}'
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _parsed_content_hash(number: int, row: StoredRow) -> str:
    seq, kind, actor, occurred, recorded, data, prev_hash, stored, _ = row
    try:
        entry = entry_from_json(
            {
                "incident": number,
                "seq": seq,
                "kind": kind,
                "actor": orjson.loads(actor),
                "occurred_at": _stored_instant(occurred),
                "recorded_at": _stored_instant(recorded),
                "data": orjson.loads(data),
                "prev_hash": prev_hash,
                "hash": stored,
            }
        )
        return content_hash(entry)
    except (ValueError, KeyError, TypeError) as err:  # orjson's decode error is a ValueError
        return f"(unreadable: {err})"


def _stored_instant(text: str) -> str:
    """The store's UTC time text as ISO; ValueError unless it is exactly the store's format."""
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC)
    return moment.isoformat(timespec="microseconds")


def _against_checkpoint(
    number: int, given: Sequence[Link], checkpointed: tuple[int, str], last_seq: int
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
    at_head = [link[2] for link in given if link[0] == seq]
    if at_head and at_head[0] != head_hash:
        return [
            Break(
                number,
                seq,
                "edited",
                f"hash {head_hash[:16]} (signed checkpoint)",
                at_head[0][:16],
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
