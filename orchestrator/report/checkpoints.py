"""Signed checkpoints over the timeline's chain heads: a hash chain proves no entry was edited
inside it, but not that its newest entries were not cut off; an Ed25519 signature over every
chain's head, taken from time to time and itself chained, does. Pure: keys come in as values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64

Heads = Mapping[int, tuple[int, str]]  # incident → (seq, hash) of its newest entry


@dataclass(frozen=True)
class Checkpoint:
    number: int  # 1, 2, 3 …: a missing number is a deleted checkpoint
    created_at: dt.datetime
    heads: dict[int, tuple[int, str]]  # the chains whose head moved since the previous one
    previous: str  # the previous checkpoint's digest (GENESIS for the first)
    digest: str
    signature: str  # hex, Ed25519 over the digest
    public_key: str  # hex, raw Ed25519 public key

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "created_at": self.created_at.astimezone(dt.UTC).isoformat(),
            "heads": {str(n): [seq, h] for n, (seq, h) in sorted(self.heads.items())},
            "previous": self.previous,
            "digest": self.digest,
            "signature": self.signature,
            "public_key": self.public_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Checkpoint:
        heads = data["heads"]
        assert isinstance(heads, Mapping)
        return cls(
            number=int(str(data["number"])),
            created_at=dt.datetime.fromisoformat(str(data["created_at"])),
            heads={int(n): (int(v[0]), str(v[1])) for n, v in heads.items()},
            previous=str(data["previous"]),
            digest=str(data["digest"]),
            signature=str(data["signature"]),
            public_key=str(data["public_key"]),
        )


def digest_of(number: int, created_at: dt.datetime, heads: Heads, previous: str) -> str:
    body = {
        "number": number,
        "created_at": created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "heads": {str(n): [seq, h] for n, (seq, h) in sorted(heads.items())},
        "previous": previous,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def signing_key(secret: str) -> Ed25519PrivateKey:
    """The key from settings: a PEM private key, or the 32-byte seed in hex."""
    text = secret.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the evidence signing key must be an Ed25519 key")
        return key
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise ValueError("the evidence signing key is neither PEM nor hex") from None
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 seed is 32 bytes, this one is {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def make_checkpoint(
    number: int,
    created_at: dt.datetime,
    heads: Heads,
    previous: str,
    key: Ed25519PrivateKey,
) -> Checkpoint:
    digest = digest_of(number, created_at, heads, previous)
    return Checkpoint(
        number=number,
        created_at=created_at,
        heads=dict(heads),
        previous=previous,
        digest=digest,
        signature=key.sign(bytes.fromhex(digest)).hex(),
        public_key=public_hex(key),
    )


def verify_checkpoints(
    checkpoints: Iterable[Checkpoint], trusted_key: str | None = None
) -> tuple[dict[int, tuple[int, str]], list[str]]:
    """The newest head each checkpoint sequence vouches for, and the problems found in the
    sequence itself (a bad signature, a broken link, a missing checkpoint). `trusted_key` is
    the public key the auditor was given; without it the checkpoints' own key is used, which
    proves consistency but not who signed."""
    heads: dict[int, tuple[int, str]] = {}
    problems: list[str] = []
    previous, expected_number = GENESIS, 1
    for cp in sorted(checkpoints, key=lambda c: c.number):
        where = f"checkpoint {cp.number}"
        if cp.number != expected_number:
            problems.append(f"{where}: expected checkpoint {expected_number} before it: deleted")
        if cp.previous != previous:
            problems.append(f"{where}: links to {cp.previous[:16]}, previous is {previous[:16]}")
        recomputed = digest_of(cp.number, cp.created_at, cp.heads, cp.previous)
        if recomputed != cp.digest:
            problems.append(f"{where}: content does not match its digest: edited")
        key_hex = trusted_key or cp.public_key
        if trusted_key is not None and cp.public_key != trusted_key:
            problems.append(f"{where}: signed by another key ({cp.public_key[:16]})")
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
                bytes.fromhex(cp.signature), bytes.fromhex(cp.digest)
            )
        except (InvalidSignature, ValueError):
            problems.append(f"{where}: the signature does not verify")
        for number, head in cp.heads.items():
            if number not in heads or head[0] >= heads[number][0]:
                heads[number] = head
        previous, expected_number = cp.digest, cp.number + 1
    return heads, problems
