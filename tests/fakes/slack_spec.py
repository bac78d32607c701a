"""How the fake Slack reads a call's arguments, and checks them against Slack's published spec.

The spec is Slack's Swagger 2.0 file, kept outside the repository in a shared
`vendor-specs` folder. It is old: it lists only the parameters each method had when it was
published, and newer methods (bookmarks.add, apps.connections.open) are absent. Absent methods
pass unchecked rather than failing, so the check catches real mistakes without inventing rules.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import Request

SPECS_ENV = "ORCH_VENDOR_SPECS"
SPEC_FILE = Path("slack") / "slack_web_openapi_v2.json"
# Slack reads the token from the Authorization header, so its presence in the spec says nothing.
IGNORED_PARAMETERS = frozenset({"token"})
MAX_PAGE = 1000
Json = dict[str, Any]
T = TypeVar("T")


class SlackError(Exception):
    """Ends a method with Slack's `{"ok": false, "error": ...}` answer."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: Json = {"ok": False, "error": error, **extra}


class Args:
    """A call's arguments, read the way Slack reads them whether they came as form or JSON."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value)

    def need(self, name: str, error: str) -> str:
        value = self.text(name)
        if not value:
            raise SlackError(error)
        return value

    def flag(self, name: str) -> bool:
        return self.values.get(name) in (True, 1, "1", "true")

    def number(self, name: str, default: int) -> int:
        value = self.values.get(name)
        try:
            return default if value in (None, "") else int(value)
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments") from None

    def blocks(self, name: str) -> list[Json] | None:
        """Blocks arrive as a list in JSON bodies and as a JSON string in forms."""
        value = self.values.get(name)
        if value in (None, ""):
            return None
        try:
            decoded = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            raise SlackError(f"invalid_{name}") from None
        if not isinstance(decoded, list) or not all(isinstance(b, dict) for b in decoded):
            raise SlackError(f"invalid_{name}")
        return decoded


def page(items: list[T], args: Args, default_limit: int) -> tuple[list[T], str]:
    """One page of `items` and the next cursor ("" on the last page), as Slack paginates."""
    limit = min(args.number("limit", default_limit) or default_limit, MAX_PAGE)
    start = 0
    if cursor := args.text("cursor"):
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except ValueError:
            raise SlackError("invalid_cursor") from None
    end = start + limit
    following = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return items[start:end], following


async def decode_body(request: Request) -> Json:
    """The body's arguments: slack_sdk posts JSON for chat.* and forms (or nothing) otherwise."""
    body = await request.body()
    if not body:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            decoded = json.loads(body)
        except json.JSONDecodeError:
            raise SlackError("invalid_json") from None
        if not isinstance(decoded, dict):
            raise SlackError("invalid_json")
        return decoded
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


@dataclass(frozen=True)
class Operation:
    """What the spec says a method accepts: every parameter name, and those it requires."""

    known: frozenset[str]
    required: frozenset[str]


@dataclass(frozen=True)
class SlackSpec:
    """Slack's Web API methods indexed by name, or no methods with the reason the check is off."""

    operations: Mapping[str, Operation] = field(default_factory=dict)
    skipped_reason: str | None = None

    def __contains__(self, method: object) -> bool:
        return method in self.operations

    def check(self, method: str, params: Mapping[str, Any]) -> list[str]:
        """Problems with a call's arguments, worded like Slack's `invalid_arguments` messages.

        The spec places parameters in the query, the form or a header, but Slack reads a
        method's arguments from any of them (slack_sdk sends the same method either way), so
        only the names are compared."""
        operation = self.operations.get(method)
        if operation is None:
            return []
        names = set(params) - IGNORED_PARAMETERS
        missing = sorted(operation.required - names)
        unknown = sorted(names - operation.known)
        return [f"[ERROR] missing required field: {name}" for name in missing] + [
            f"[ERROR] unknown field: {name}" for name in unknown
        ]


def vendor_specs_dir() -> Path:
    """The shared `vendor-specs` folder: $ORCH_VENDOR_SPECS, else next to the repository."""
    configured = os.environ.get(SPECS_ENV, "")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "vendor-specs"


def load_spec(specs_dir: Path | None = None) -> SlackSpec:
    """The indexed spec from `specs_dir` (default: `vendor_specs_dir()`), parsed once per
    process because the file is over a megabyte and every fake server would load it."""
    return _load((specs_dir or vendor_specs_dir()).resolve())


@functools.cache
def _load(specs_dir: Path) -> SlackSpec:
    if not specs_dir.is_dir():
        return SlackSpec(
            skipped_reason=f"vendor specs folder {specs_dir} is missing (set {SPECS_ENV})"
        )
    path = specs_dir / SPEC_FILE
    if not path.is_file():
        return SlackSpec(skipped_reason=f"Slack spec {path} is missing")
    document = json.loads(path.read_text(encoding="utf-8"))
    return SlackSpec(operations=_index(document))


def _index(document: Mapping[str, Any]) -> dict[str, Operation]:
    operations: dict[str, Operation] = {}
    for path, verbs in document.get("paths", {}).items():
        known: set[str] = set()
        required: set[str] = set()
        # Each path has a single verb in Slack's file; merging them keeps a future file working.
        for operation in verbs.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                name = parameter.get("name")
                if not isinstance(name, str) or name in IGNORED_PARAMETERS:
                    continue
                known.add(name)
                if parameter.get("required") is True:
                    required.add(name)
        operations[path.removeprefix("/")] = Operation(frozenset(known), frozenset(required))
    return operations
