"""Ingest's front door: raw bytes from Kafka, HTTP or files become validated, normalized Alerts.

Callers hand `normalize()` one message; anything that cannot be read raises `NormalizeError`, whose
one-line `field: reason` goes to the dead-letter store with the raw bytes. The per-format rules
live in `orchestrator.ingest.formats`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.formats.alertmanager import normalize_alertmanager
from orchestrator.ingest.formats.cloudevents import normalize_cloudevent
from orchestrator.ingest.formats.common import Normalized, NormalizeError, json_type
from orchestrator.ingest.formats.grafana import (
    GRAFANA_ALERT_KEYS,
    GRAFANA_TOP_KEYS,
    normalize_grafana,
)
from orchestrator.ingest.formats.native import native_alert_schema, normalize_native

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "NormalizeError",
    "Normalized",
    "decode_payload",
    "detect_format",
    "native_alert_schema",
    "normalize",
    "split_stream",
]

MAX_PAYLOAD_BYTES = 1024 * 1024

_NORMALIZERS: dict[SourceFormat, Callable[..., Normalized]] = {
    SourceFormat.NATIVE: normalize_native,
    SourceFormat.ALERTMANAGER: normalize_alertmanager,
    SourceFormat.GRAFANA: normalize_grafana,
    SourceFormat.CLOUDEVENTS: normalize_cloudevent,
}

_EXPECTED_FORMATS = (
    "expected a native alert (object with 'labels'), an Alertmanager webhook ('alerts' and "
    "'version'), a Grafana webhook ('alerts' and 'orgId'/'state'/'title') or a CloudEvent "
    "('specversion')"
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    # Python's json accepts NaN and Infinity; other senders' parsers, and our store, do not.
    return json.loads(text, parse_constant=_reject_constant)


def decode_payload(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, or a NormalizeError naming the size, byte offset or line/column."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise NormalizeError(
            "$", f"payload is {len(raw)} bytes, over the limit of {MAX_PAYLOAD_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NormalizeError("$", f"invalid UTF-8 at byte offset {exc.start}") from None
    text = text.removeprefix("\ufeff")
    try:
        doc = _loads(text)
    except json.JSONDecodeError as exc:
        raise NormalizeError(
            "$", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise NormalizeError("$", f"malformed JSON: {exc}") from None
    except RecursionError:
        raise NormalizeError("$", "malformed JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise NormalizeError("$", f"expected a JSON object at the top level, got {json_type(doc)}")
    return doc


def _has_grafana_alert_keys(alerts: object) -> bool:
    return isinstance(alerts, list) and any(
        isinstance(item, dict) and not GRAFANA_ALERT_KEYS.isdisjoint(item) for item in alerts
    )


def detect_format(doc: Mapping[str, Any]) -> SourceFormat:
    """Which format a decoded payload is in, from the keys only one format has."""
    if "specversion" in doc:
        return SourceFormat.CLOUDEVENTS
    if "alerts" in doc:
        if not GRAFANA_TOP_KEYS.isdisjoint(doc) or _has_grafana_alert_keys(doc["alerts"]):
            return SourceFormat.GRAFANA
        if "version" in doc:
            return SourceFormat.ALERTMANAGER
        raise NormalizeError(
            "$",
            "unknown format: has 'alerts' but neither 'version' (Alertmanager) nor "
            f"'orgId'/'state'/'title' (Grafana); {_EXPECTED_FORMATS}",
        )
    if "labels" in doc:
        return SourceFormat.NATIVE
    keys = sorted(doc)
    found = ", ".join(repr(key)[:40] for key in keys[:8]) + (", ..." if len(keys) > 8 else "")
    raise NormalizeError("$", f"unknown format: {_EXPECTED_FORMATS}; found keys: {found or 'none'}")


def normalize(
    raw: bytes, *, received_at: dt.datetime, format: SourceFormat | None = None
) -> Normalized:
    """Decode, detect (unless the transport named the format) and validate one message."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    doc = decode_payload(raw)
    chosen = format if format is not None else detect_format(doc)
    return _NORMALIZERS[chosen](doc, received_at=received_at)


def _is_json(data: bytes) -> bool:
    try:
        _loads(data.decode("utf-8").removeprefix("\ufeff"))
    except (ValueError, RecursionError):
        return False
    return True


def _is_json_object(line: bytes) -> bool:
    stripped = line.strip()
    return stripped.startswith((b"{", b"\xef\xbb\xbf{")) and _is_json(stripped)


def split_stream(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Messages in a file or stdin body: one whole JSON document, else JSON lines.

    Yields `(line_number, message_bytes)`; a whole document is `(1, data)`. Bad lines are yielded
    unchanged, so the caller dead-letters each with its line number and carries on.
    """
    if not data.strip():
        return
    if _is_json(data):
        yield 1, data
        return
    lines = data.split(b"\n")
    # A malformed pretty-printed document has no line that is a JSON object by itself; treat it as
    # one bad message rather than dozens of bad fragments.
    if not any(_is_json_object(line) for line in lines):
        yield 1, data
        return
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line.removesuffix(b"\r")
