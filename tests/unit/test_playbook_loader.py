"""Loading playbooks: the shipped set is valid; a broken one is refused with file:line:column."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import PlaybookLoadError, load_playbooks, parse_playbook
from orchestrator.playbook.model import Playbook, playbook_json_schema

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "playbooks"
OK = "name: db\nmatch: ['alertname=\"X\"']\n"


def problems_of(folder: Path, **kwargs: object) -> list[str]:
    with pytest.raises(PlaybookLoadError) as caught:
        load_playbooks(folder, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# The shipped playbooks


def test_shipped_playbooks_load_and_validate() -> None:
    loaded = load_playbooks(SHIPPED, known_actions=ACTION_NAMES)
    assert [p.name for p in loaded] == [
        "security-incident",
        "database-unavailable",
        "api-slo-burn",
        "declared-incident",
    ]
    for playbook in loaded:
        assert playbook.source.endswith(".yaml")
        assert len(playbook.version) == 12
        assert "incident_summary" in playbook.templates
        assert playbook.tests, f"{playbook.name} carries no test case"
        assert playbook.escalation is not None


def test_shipped_playbooks_have_no_semantic_problems() -> None:
    for path in sorted(SHIPPED.glob("*.yaml")):
        templates = {"incident_summary": (SHIPPED / "templates/incident_summary.j2").read_text()}
        playbook, problems = parse_playbook(path.read_text(encoding="utf-8"), str(path), templates)
        assert playbook is not None
        assert problems == []


def test_version_is_the_content_hash() -> None:
    one, _ = parse_playbook(OK, "a.yaml")
    two, _ = parse_playbook(OK, "b.yaml")
    three, _ = parse_playbook(OK + "owner: x\n", "a.yaml")
    assert one is not None
    assert two is not None
    assert three is not None
    assert one.version == two.version != three.version


# Broken playbooks: (content, expected "line:column: message" prefix)

BROKEN = {
    "bad-yaml-syntax": (
        "name: db\nmatch: [\n",
        "3:1: while parsing a flow node expected the node content",
    ),
    "unclosed-quote": (
        'name: db\nmatch: [\'a="b"\']\ntitle: "unclosed\n',
        "4:1: while scanning a quoted scalar found unexpected end of stream",
    ),
    "duplicate-key": (
        "name: db\nmatch: ['alertname=\"X\"']\nname: other\n",
        '3:1: while constructing a mapping found duplicate key "name"',
    ),
    "not-a-mapping": ("- a\n- b\n", "1:1: a playbook is a YAML mapping"),
    "missing-match": ("name: db\n", "1:1: match: required field is missing"),
    "bad-name": (
        "name: Bad Name\nmatch: ['a=\"b\"']\n",
        "1:7: name: String should match pattern",
    ),
    "unknown-field": (OK + "colour: red\n", "3:1: colour: unknown field"),
    "unknown-action": (
        OK + "on_trigger:\n  - slack.dance: {}\n",
        "4:5: on_trigger.0: unknown action 'slack.dance'; known actions: pagerduty.acknowledge,",
    ),
    "bad-action-param-value": (
        OK + "on_trigger:\n  - pagerduty.escalate: {level: 0}\n",
        "4:33: on_trigger.0.pagerduty.escalate.level: Input should be greater than or equal to 1",
    ),
    "bad-action-param-name": (
        OK + "on_trigger:\n  - pagerduty.trigger: {service: x, colour: red}\n",
        "4:37: on_trigger.0.pagerduty.trigger.colour: unknown field",
    ),
    "slack-post-without-body": (
        OK + "on_trigger:\n  - slack.post: {}\n",
        "4:5: on_trigger.0.slack.post: give exactly one of 'text' or 'template'",
    ),
    "escalation-action-params": (
        OK
        + "escalation:\n  levels:\n    - after: 5m\n      do: [pagerduty.escalate: {level: 99}]\n",
        "6:40: escalation.levels.0.do.0.pagerduty.escalate.level: Input should be less than or"
        " equal to 10",
    ),
    # The column points inside the quoted string, at the regex value's opening quote.
    "bad-matcher-regex": (
        "name: db\nmatch: ['alertname=~\"(\"', 'env=\"prod\"']\n",
        "2:21: match: invalid regex: missing ), unterminated subpattern",
    ),
    "bad-matcher-operator": (
        "name: db\nmatch:\n  - 'env=\"prod\"'\n  - 'alertname==\"X\"'\n",
        "4:16: match: unexpected '=': expected a label value",
    ),
    "bad-duration": (
        OK + "reopen_window: 5 minutes\n",
        "3:16: reopen_window: '5 minutes': expected a duration like 30s, 5m, 1h30m",
    ),
    "bad-duration-unit": (
        OK + "ack_timeout: 5x\n",
        "3:14: ack_timeout: '5x': unknown unit 'x'",
    ),
    "bad-severity": (
        OK + "severity: SEV9\n",
        "3:11: severity: 'SEV9' is not a severity: use SEV1 … SEV5",
    ),
    "non-increasing-escalation": (
        OK
        + "escalation:\n  levels:\n"
        + "    - {after: 15m, do: [pagerduty.escalate: {level: 2}]}\n"
        + "    - {after: 5m, do: [pagerduty.escalate: {level: 3}]}\n",
        "4:3: escalation.levels: levels must have strictly increasing 'after' (15m then 5m)",
    ),
    "equal-escalation": (
        OK
        + "escalation:\n  levels:\n"
        + "    - {after: 5m, do: [pagerduty.escalate: {level: 2}]}\n"
        + "    - {after: 300s, do: [pagerduty.escalate: {level: 3}]}\n",
        "4:3: escalation.levels: levels must have strictly increasing 'after' (5m then 5m)",
    ),
    "template-syntax-error": (
        OK + 'title: "{{ labels.service "\n',
        "3:8: title: template does not render: line 1: unexpected end of template",
    ),
    "template-unknown-incident-field": (
        OK + 'title: "{{ incident.nonexistent }}"\n',
        "3:8: title: template does not render: line 1: 'dict object' has no attribute"
        " 'nonexistent'",
    ),
    "action-template-unknown-field": (
        OK + 'on_trigger:\n  - slack.post: {text: "{{ incident.bogus }}"}\n',
        "4:24: on_trigger.0.text: template does not render: line 1: 'dict object' has no"
        " attribute 'bogus'",
    ),
    "unknown-named-template": (
        OK + "on_trigger:\n  - slack.post: {template: nope}\n",
        "4:28: unknown template 'nope' (known: none)",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_playbook_is_refused_with_location(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = write(tmp_path, "10-broken.yaml", text)
    problems = problems_of(tmp_path)
    assert problems, case
    assert problems[0].startswith(f"{path}:{expected}"), problems


@pytest.mark.parametrize("case", list(BROKEN))
def test_parse_playbook_reports_the_same_problem(case: str) -> None:
    text, expected = BROKEN[case]
    _, problems = parse_playbook(text, "test.yaml", {})
    assert str(problems[0]).startswith(f"test.yaml:{expected}")


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "10-a.yaml", OK + "colour: red\nreopen_window: soon\nseverity: SEV0\n")
    problems = problems_of(tmp_path)
    assert sorted(p.split(": ", 1)[0].rsplit(":", 2)[1:] for p in problems) == [
        ["3", "1"],
        ["4", "16"],
        ["5", "11"],
    ]


def test_problems_from_several_files_are_all_reported(tmp_path: Path) -> None:
    first = write(tmp_path, "10-a.yaml", OK.replace("db", "a") + "colour: red\n")
    second = write(tmp_path, "20-b.yaml", OK.replace("db", "b") + "ack_timeout: 5x\n")
    problems = problems_of(tmp_path)
    assert problems[0].startswith(f"{first}:3:1: ")
    assert problems[1].startswith(f"{second}:3:14: ")


def test_known_named_template_is_rendered_at_load(tmp_path: Path) -> None:
    write(tmp_path, "templates/broken.j2", "{{ incident.nope }}")
    path = write(tmp_path, "10-a.yaml", OK + "on_trigger:\n  - slack.post: {template: broken}\n")
    problems = problems_of(tmp_path)
    assert problems == [
        f"{path}:4:28: on_trigger.0.template: template does not render: line 1: "
        "'dict object' has no attribute 'nope'"
    ]


def test_two_playbooks_with_the_same_name(tmp_path: Path) -> None:
    first = write(tmp_path, "10-a.yaml", OK)
    second = write(tmp_path, "20-b.yaml", OK + "owner: someone-else\n")
    assert problems_of(tmp_path) == [f"{second}:1:1: name 'db' is already used by {first}"]


def test_action_not_known_to_the_configured_handlers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "10-a.yaml",
        OK
        + "on_trigger:\n  - slack.post: {text: hi}\n  - pagerduty.trigger: {service: x}\n"
        + "escalation:\n  levels:\n    - after: 5m\n      do:\n"
        + "        - pagerduty.escalate: {level: 2}\n",
    )
    assert problems_of(tmp_path, known_actions=frozenset({"slack.post"})) == [
        f"{path}:5:5: no configured handler delivers 'pagerduty.trigger'",
        f"{path}:10:11: no configured handler delivers 'pagerduty.escalate'",
    ]
    # Without the handler check the same folder loads.
    assert len(load_playbooks(tmp_path)) == 1


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "templates/x.j2", "ignored")
    write(tmp_path, "README.md", "not a playbook")
    assert problems_of(tmp_path) == [f"{tmp_path}:1:1: no playbooks (*.yaml) found"]


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert problems_of(missing) == [f"{missing}:1:1: playbook directory not found"]


def test_only_top_level_files_are_playbooks(tmp_path: Path) -> None:
    write(tmp_path, "20-b.yml", OK.replace("db", "second"))
    write(tmp_path, "10-a.yaml", OK)
    write(tmp_path, "drills/scenario.yaml", "id: drill-1\nnot: a playbook\n")
    write(tmp_path, "templates/weird.yaml", "- just a list\n")
    write(tmp_path, "more/05-c.yaml", OK.replace("db", "nested"))
    assert [p.name for p in load_playbooks(tmp_path)] == ["db", "second"]


def test_matcher_column_in_a_plain_list_item() -> None:
    # `  - alertname!`: the `!` is in column 14.
    _, problems = parse_playbook("name: db\nmatch:\n  - alertname!\n", "test.yaml")
    assert str(problems[0]).startswith("test.yaml:3:14: match: unexpected character '!'")


def test_matcher_column_in_a_quoted_single_string() -> None:
    # `match: 'alertname!'`: the `!` is in column 18.
    _, problems = parse_playbook("name: db\nmatch: 'alertname!'\n", "test.yaml")
    assert str(problems[0]).startswith("test.yaml:2:18: match: unexpected character '!'")


def test_matcher_column_in_quoted_list_items() -> None:
    for line in ("  - 'alertname!'", '  - "alertname!"'):
        _, problems = parse_playbook(f"name: db\nmatch:\n{line}\n", "test.yaml")
        assert str(problems[0]).startswith("test.yaml:3:15: match: unexpected character '!'")


def test_bad_severity_in_a_map_is_one_problem() -> None:
    text = OK + "severity: {from_label: severity, map: {critical: SEV0}}\n"
    _, problems = parse_playbook(text, "test.yaml")
    assert [str(p) for p in problems] == [
        "test.yaml:3:50: severity.map.critical: Input should be 'SEV1', 'SEV2', 'SEV3', 'SEV4'"
        " or 'SEV5'"
    ]


# Match order


def test_first_match_wins_unless_continue(tmp_path: Path) -> None:
    write(tmp_path, "10-audit.yaml", "name: audit\nmatch: ['team=\"x\"']\ncontinue: true\n")
    write(tmp_path, "20-first.yaml", "name: first\nmatch: ['team=\"x\"']\n")
    write(tmp_path, "30-second.yaml", "name: second\nmatch: ['team=~\"x|y\"']\n")
    loaded = load_playbooks(tmp_path)
    assert [p.name for p in loaded] == ["audit", "first", "second"]
    assert [p.name for p in loaded.match({"team": "x"})] == ["audit", "first"]
    assert [p.name for p in loaded.match({"team": "y"})] == ["second"]
    assert loaded.match({"team": "z"}) == []
    assert loaded.get("first") is not None
    assert loaded.get("missing") is None


def test_every_continue_playbook_passes_matching_on(tmp_path: Path) -> None:
    for index, name in enumerate(["a", "b", "c"]):
        write(
            tmp_path, f"{index}-{name}.yaml", f"name: {name}\nmatch: ['k=\"v\"']\ncontinue: true\n"
        )
    assert [p.name for p in load_playbooks(tmp_path).match({"k": "v"})] == ["a", "b", "c"]


def test_shipped_security_playbook_wins_over_service_playbooks() -> None:
    loaded = load_playbooks(SHIPPED)
    labels = {
        "alertname": "HighErrorRate",
        "category": "security",
        "env": "prod",
        "service": "checkout-api",
    }
    assert [p.name for p in loaded.match(labels)] == ["security-incident"]
    assert [p.name for p in loaded.match({**labels, "category": ""})] == ["api-slo-burn"]


# JSON Schema


def test_schema_describes_every_field() -> None:
    schema = playbook_json_schema()
    json.dumps(schema)  # serializable as published
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    expected = {field.alias or name for name, field in Playbook.model_fields.items()}
    assert set(schema["properties"]) == expected
    assert "continue" in schema["properties"]
    assert set(schema["required"]) == {"name", "match"}


def _resolve(schema: dict[str, object], ref: str) -> dict[str, object]:
    node: object = schema
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict)
        node = node[part]
    assert isinstance(node, dict)
    return node


def _step_names(schema: dict[str, object], phase: str) -> set[str]:
    properties = schema["properties"]
    assert isinstance(properties, dict)
    names = set()
    for option in properties[phase]["items"]["oneOf"]:
        step = _resolve(schema, option["$ref"])
        assert step["additionalProperties"] is False
        (name,) = step["properties"]  # type: ignore[misc]
        names.add(name)
    return names


def test_schema_enumerates_every_action_step() -> None:
    schema = playbook_json_schema()
    for phase in ("on_trigger", "on_acknowledge", "on_resolve"):
        assert _step_names(schema, phase) == set(ACTION_NAMES)
    defs = schema["$defs"]
    assert defs["PagerDutyEscalate"]["properties"]["level"]["minimum"] == 1
    assert defs["EscalationLevel"]["properties"]["after"]["type"] == "string"
    assert set(defs["Severity"]["enum"]) == {"SEV1", "SEV2", "SEV3", "SEV4", "SEV5"}


def _shipped_docs() -> list[dict[str, object]]:
    yaml = YAML(typ="safe")
    return [yaml.load(path.read_text(encoding="utf-8")) for path in sorted(SHIPPED.glob("*.yaml"))]


def test_shipped_playbooks_fit_the_schema_structure() -> None:
    schema = playbook_json_schema()
    properties = schema["properties"]
    for doc in _shipped_docs():
        assert set(doc) <= set(properties)
        assert set(schema["required"]) <= set(doc)
        for phase in ("on_trigger", "on_acknowledge", "on_resolve"):
            for step in doc.get(phase, []):  # type: ignore[attr-defined]
                (name,) = step
                assert name in _step_names(schema, phase)


@pytest.mark.skipif(
    importlib.util.find_spec("jsonschema") is None, reason="jsonschema not installed"
)
def test_shipped_playbooks_validate_against_the_schema() -> None:
    import jsonschema  # noqa: PLC0415

    schema = playbook_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for doc in _shipped_docs():
        jsonschema.validate(doc, schema)
