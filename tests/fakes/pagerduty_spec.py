"""Checks requests to the fake PagerDuty against PagerDuty's published OpenAPI 3 descriptions."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

# jsonschema ships no type information and the project adds no stub packages.
from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPECS_ENV = "ORCH_VENDOR_SPECS"
REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_FILE = "events-v2.openapiv3.json"
REST_FILE = "rest.openapiv3.json"

Api = Literal["events", "rest"]
_FILES: dict[Api, str] = {"events": EVENTS_FILE, "rest": REST_FILE}


def specs_folder() -> Path:
    """The folder holding PagerDuty's descriptions: `$ORCH_VENDOR_SPECS/pagerduty`, or the
    shared vendor-specs checkout next to the repository."""
    override = os.environ.get(SPECS_ENV)
    base = Path(override) if override else REPO_ROOT.parent / "shared" / "vendor-specs"
    return base / "pagerduty"


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _allow_nullable(node: Any) -> None:
    """OpenAPI 3.0's `nullable: true` is not JSON Schema; spell it as a null type so the
    draft-4 validator accepts the nulls the description allows."""
    if isinstance(node, dict):
        for value in node.values():
            _allow_nullable(value)
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"].append(None)
    elif isinstance(node, list):
        for value in node:
            _allow_nullable(value)


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    placeholders: int


@dataclass
class _Spec:
    """One loaded description: the document, a registry resolving its `$ref`s, and its paths
    indexed by segment count so a lookup scans a handful of templates, not all of them."""

    uri: str
    document: dict[str, Any]
    base_path: str
    registry: Registry[Any]
    routes: dict[int, list[_Route]]
    validators: dict[str, Draft4Validator] = field(default_factory=dict)

    def route(self, path: str) -> _Route | None:
        matches = [r for r in self.routes.get(path.count("/"), []) if r.pattern.fullmatch(path)]
        # A literal segment beats a placeholder: /incidents/count is not /incidents/{id}.
        return min(matches, key=lambda r: r.placeholders, default=None)

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def validator(self, pointer: str) -> Draft4Validator:
        if pointer not in self.validators:
            schema = {"$ref": self.uri + pointer}
            self.validators[pointer] = Draft4Validator(schema, registry=self.registry)
        return self.validators[pointer]


@functools.cache
def _load(path: Path) -> _Spec:
    """Parses and indexes one description once per process (the REST one is 2.7 MB)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    _allow_nullable(document)
    uri = path.resolve().as_uri()
    registry: Registry[Any] = Registry().with_resource(uri, DRAFT4.create_resource(document))
    routes: dict[int, list[_Route]] = {}
    for template in document["paths"]:
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        route = _Route(template, re.compile(regex), template.count("{"))
        routes.setdefault(template.count("/"), []).append(route)
    base_path = urlsplit(document["servers"][0]["url"]).path.rstrip("/")
    return _Spec(uri, document, base_path, registry, routes)


def _error_text(where: str, error: Any) -> str:
    location = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{where}: {location}: {error.message}"


class SpecChecker:
    """Answers "is this request what PagerDuty documents?" with a list of problems (empty when
    it is). Without the description files every check passes and `skipped_reason` says why."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else specs_folder()
        missing = [self.folder / name for name in _FILES.values()]
        missing = [path for path in missing if not path.is_file()]
        self.skipped_reason: str | None = None
        if missing:
            names = ", ".join(str(path) for path in missing)
            self.skipped_reason = (
                f"PagerDuty's OpenAPI descriptions were not found ({names}); "
                f"point {SPECS_ENV} at the vendor-specs folder to check requests against them"
            )

    def _spec(self, api: Api) -> _Spec:
        return _load(self.folder / _FILES[api])

    def _operation(self, api: Api, method: str, path: str) -> tuple[str, str, dict[str, Any]]:
        """(template, problem, operation): the problem is empty when the operation exists."""
        spec = self._spec(api)
        if not path.startswith(spec.base_path + "/"):
            return "", f"{method} {path}: outside the API's base path {spec.base_path!r}", {}
        route = spec.route(path.removeprefix(spec.base_path))
        if route is None:
            return "", f"{method} {path}: no such path in PagerDuty's {api} API description", {}
        operation = spec.document["paths"][route.template].get(method.lower())
        if not isinstance(operation, dict):
            return route.template, f"{method} {path}: {route.template} has no {method}", {}
        return route.template, "", operation

    def knows(self, api: Api, method: str, path: str) -> bool:
        """Whether PagerDuty documents this operation (always, when the check is skipped)."""
        return self.skipped_reason is not None or not self._operation(api, method, path)[1]

    def body_problems(self, api: Api, method: str, path: str, body: Any) -> list[str]:
        """Validates a JSON request body against the operation's requestBody schema."""
        if self.skipped_reason is not None:
            return []
        template, problem, operation = self._operation(api, method, path)
        if problem:
            return []  # request_problems reports the unknown operation
        request_body = self._spec(api).resolve(operation.get("requestBody"))
        if not isinstance(request_body, dict):
            return [] if body is None else [f"{method} {path}: takes no request body"]
        if body is None:
            required = request_body.get("required", False)
            return [f"{method} {path}: the request body is required"] if required else []
        pointer = _pointer(
            "paths", template, method.lower(), "requestBody", "content", "application/json"
        )
        validator = self._spec(api).validator(pointer + "/schema")
        return [_error_text(f"{method} {path}: body", e) for e in validator.iter_errors(body)]

    def request_problems(
        self,
        api: Api,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        *,
        has_body: bool,
    ) -> list[str]:
        """Checks a call's path, method and parameters: required ones are present, every query
        parameter is one the operation declares, and values fit their schemas."""
        if self.skipped_reason is not None:
            return []
        _template, problem, operation = self._operation(api, method, path)
        if problem:
            return [problem]
        spec = self._spec(api)
        declared = [spec.resolve(p) for p in operation.get("parameters", [])]
        where = f"{method} {path}"
        problems: list[str] = []
        given: dict[str, list[str]] = {}
        for name, value in query:
            given.setdefault(name, []).append(value)
        by_name = {p["name"]: p for p in declared if p.get("in") == "query"}
        problems += [f"{where}: unknown query parameter {n!r}" for n in given if n not in by_name]
        for parameter in declared:
            name, place = parameter["name"], parameter.get("in")
            if place == "header" and parameter.get("required"):
                # The description marks Content-Type required on every operation, GETs
                # included; PagerDuty and its own client only send it with a body.
                if name.lower() == "content-type" and not has_body:
                    continue
                if name not in headers:
                    problems.append(f"{where}: missing required header {name!r}")
            elif place == "query":
                if parameter.get("required") and name not in given:
                    problems.append(f"{where}: missing required query parameter {name!r}")
                values = given.get(name, [])
                problems += _value_problems(where, parameter, values, spec)
        return problems

    def response_problems(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Validates a REST response body against the documented response schema."""
        if self.skipped_reason is not None:
            return []
        template, problem, _operation = self._operation("rest", method, path)
        if problem:
            return [problem]
        pointer = _pointer("paths", template, method.lower(), "responses", str(status), "content")
        return self._schema_problems(
            pointer + "/application~1json/schema", body, f"{method} {path}"
        )

    def schema_problems(self, name: str, instance: Any) -> list[str]:
        """Validates an object against one of the REST description's component schemas."""
        if self.skipped_reason is not None:
            return []
        return self._schema_problems(_pointer("components", "schemas", name), instance, name)

    def _schema_problems(self, pointer: str, instance: Any, where: str) -> list[str]:
        # PagerDuty answers null for fields its description types without `nullable` (its
        # own examples do), so a null standing in for a value is not reported.
        validator = self._spec("rest").validator(pointer)
        return [
            _error_text(where, error)
            for error in validator.iter_errors(instance)
            if error.instance is not None
        ]


def _value_problems(
    where: str, parameter: Mapping[str, Any], values: list[str], spec: _Spec
) -> list[str]:
    name = parameter["name"]
    schema = spec.resolve(parameter.get("schema", {}))
    repeatable = name.endswith("[]") or schema.get("type") == "array"
    if len(values) > 1 and not repeatable:
        return [f"{where}: query parameter {name!r} given {len(values)} times"]
    if schema.get("type") == "array":
        schema = spec.resolve(schema.get("items", {}))
    problems = []
    for value in values:
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {name}={value!r} is not one of {schema['enum']}")
        if schema.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
            problems.append(f"{where}: {name}={value!r} is not an integer")
        if schema.get("type") == "boolean" and value not in ("true", "false"):
            problems.append(f"{where}: {name}={value!r} is not true or false")
    return problems
