"""What the format normalizers share: the error and result types, strict timestamps."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

from orchestrator.ingest.alert import Alert, SourceFormat

_REPR_LIMIT = 60
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?\Z",
    re.ASCII,
)

M = TypeVar("M", bound=BaseModel)


class NormalizeError(ValueError):
    """A payload that cannot become Alerts; `field` is a dotted path, `$` for the whole payload."""

    def __init__(self, field: str, reason: str) -> None:
        # Dead-letter records and logs show the message on one line, whatever the payload held.
        self.field = field
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.field}: {self.reason}")


@dataclass(frozen=True)
class Normalized:
    """The Alerts of one message, with what the sender said about the group they came in."""

    format: SourceFormat
    alerts: list[Alert]
    truncated: int = 0
    group_key: str | None = None


def short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, as the sender would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def join_path(prefix: str, loc: Sequence[int | str]) -> str:
    path = "" if prefix == "$" else prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part, ensure_ascii=False)}]"
    if path.startswith("["):
        return "$" + path
    return path or "$"


def parse_rfc3339(value: object) -> dt.datetime:
    """An RFC 3339 timestamp with an explicit offset; anything looser is the sender's bug."""
    if not isinstance(value, str):
        raise PydanticCustomError(
            "rfc3339",
            "expected an RFC 3339 timestamp string, got {found}",
            {"found": json_type(value)},
        )
    match = _RFC3339.match(value)
    if match is None:
        raise PydanticCustomError(
            "rfc3339", "not an RFC 3339 timestamp: {value}", {"value": short_repr(value)}
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        raise PydanticCustomError(
            "rfc3339",
            "timestamp has no UTC offset: {value} (add 'Z' or an offset such as '+00:00')",
            {"value": short_repr(value)},
        )
    try:
        if off_m is not None and int(off_m) > 59:
            raise ValueError(off_m)
        if zulu is not None:
            tz: dt.tzinfo = dt.UTC
        else:
            offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
            tz = dt.timezone(-offset if sign == "-" else offset)
        # Go and Alertmanager send nanoseconds; datetime holds microseconds.
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        parsed = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
        )
        # Every consumer compares in UTC; an instant outside datetime's UTC range would crash later.
        parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "rfc3339", "not an RFC 3339 timestamp: {value}", {"value": short_repr(value)}
        ) from None
    return parsed


Timestamp = Annotated[dt.datetime, BeforeValidator(parse_rfc3339)]


def _reason(error: Any, allowed_fields: Sequence[str]) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    found = json_type(error.get("input"))
    expected = {
        "string_type": "a string",
        "int_type": "an integer",
        "float_type": "a number",
        "bool_type": "a boolean",
        "dict_type": "an object",
        "model_type": "an object",
        "model_attributes_type": "an object",
        "list_type": "an array",
        "none_required": "null",
    }
    if kind == "missing":
        return "required field is missing"
    if kind in expected:
        return f"expected {expected[kind]}, got {found}"
    if kind == "literal_error":
        allowed_values = ctx.get("expected", "one of the allowed values")
        return f"expected {allowed_values}, got {short_repr(error.get('input'))}"
    if kind == "extra_forbidden":
        return f"unknown field (allowed: {', '.join(allowed_fields)})"
    if kind in {"too_short", "string_too_short"}:
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"needs at least {minimum} items"
    if kind in {"too_long", "string_too_long"}:
        unit = "characters" if kind == "string_too_long" else "items"
        return f"longer than {ctx.get('max_length')} {unit}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}, got {short_repr(error.get('input'))}"
    return str(error["msg"])


def validate(model: type[M], data: object, prefix: str = "$") -> M:
    """Validate with pydantic and report its first error as a one-line NormalizeError."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        allowed = [f.alias or name for name, f in model.model_fields.items()]
        raise NormalizeError(join_path(prefix, first["loc"]), _reason(first, allowed)) from None
