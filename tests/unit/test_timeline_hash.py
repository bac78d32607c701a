"""The canonical form an entry's hash covers never changes: archives exported long ago must
still verify. A golden hash pins it."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from orchestrator.incident.model import Actor, ActorKind
from orchestrator.timeline import canonical_bytes

AT = dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def test_the_canonical_form_is_pinned() -> None:
    actor = Actor(ActorKind.SLACK, "U1", "Ünïcode <&>")
    data = {
        "text": "naïve “quotes” 🚨",
        "n": 3,
        "ok": True,
        "none": None,
        "list": [1, "b"],
        "nested": {"z": 1, "a": 2},
    }
    body = canonical_bytes(7, 3, "note", actor, AT, AT, data, "f" * 64)
    assert body.startswith('{"actor":{"id":"U1","kind":"slack","name":"Ün'.encode())  # raw UTF-8
    assert b'"nested":{"a":2,"z":1}' in body  # keys sorted at every level, no spaces
    assert hashlib.sha256(body).hexdigest() == (
        "47211fdb2b35bf2171000194d29b082569edaa229e25714dfa65ff955b29deb4"
    )


def test_numbers_keep_their_shortest_form() -> None:
    actor = Actor(ActorKind.SYSTEM, "orchestrator")
    body = canonical_bytes(7, 3, "note", actor, AT, AT, {"ratio": 0.25, "big": 2**63}, "f" * 64)
    assert b'"big":9223372036854775808' in body
    assert b'"ratio":0.25' in body


def test_values_json_cannot_hold_are_refused_not_guessed() -> None:
    # A datetime inside an entry's data has no single JSON spelling: the engine writes ISO
    # text itself, and anything else is a bug to hear about, not a format to invent.
    actor = Actor(ActorKind.SYSTEM, "orchestrator")
    with pytest.raises(TypeError):
        canonical_bytes(7, 3, "note", actor, AT, AT, {"at": AT}, "f" * 64)
