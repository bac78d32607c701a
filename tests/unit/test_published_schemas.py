"""The JSON Schemas committed under docs/schemas/ are the ones the code publishes, and they hold."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

from orchestrator.drill.scenario import scenario_json_schema
from orchestrator.ingest.normalize import native_alert_schema
from orchestrator.playbook.model import playbook_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"


def test_committed_playbook_schema_is_current() -> None:
    committed = json.loads((SCHEMAS / "playbook.schema.json").read_text())
    assert committed == playbook_json_schema(), (
        "regenerate: orchestrator playbooks schema > docs/schemas/playbook.schema.json"
    )


def test_committed_native_alert_schema_is_current() -> None:
    committed = json.loads((SCHEMAS / "native-alert.schema.json").read_text())
    assert committed == native_alert_schema(), (
        "regenerate: orchestrator alerts schema > docs/schemas/native-alert.schema.json"
    )


def test_committed_drill_scenario_schema_is_current() -> None:
    committed = json.loads((SCHEMAS / "drill-scenario.schema.json").read_text())
    assert committed == scenario_json_schema(), (
        "regenerate: orchestrator drill schema > docs/schemas/drill-scenario.schema.json"
    )


def test_every_shipped_playbook_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(playbook_json_schema())
    for path in sorted((ROOT / "playbooks").glob("*.yaml")):
        document = YAML(typ="safe").load(path.read_text())
        errors = [error.message for error in validator.iter_errors(document)]
        assert errors == [], f"{path.name}: {errors}"


def test_the_native_example_validates_against_its_schema() -> None:
    document = json.loads((ROOT / "examples" / "native-alert.json").read_text())
    jsonschema.Draft202012Validator(native_alert_schema()).validate(document)


def _as_json(value: Any) -> Any:
    """A safe-loaded YAML document as JSON would hold it: YAML reads an unquoted timestamp as a
    datetime (or date), which a scenario file means as its ISO 8601 string."""
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def test_every_shipped_drill_scenario_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(scenario_json_schema())
    files = sorted((ROOT / "playbooks" / "drills").glob("*.yaml"))
    assert len(files) >= 3, "playbooks/drills/ should ship at least three scenarios"
    for path in files:
        document = _as_json(YAML(typ="safe").load(path.read_text()))
        errors = [error.message for error in validator.iter_errors(document)]
        assert errors == [], f"{path.name}: {errors}"


def test_the_settings_table_in_operations_md_is_current() -> None:
    from orchestrator.cli.config import markdown_table  # noqa: PLC0415
    from orchestrator.settings import settings_table  # noqa: PLC0415

    page = (ROOT / "docs" / "operations.md").read_text()
    committed = page.split("<!-- settings:begin -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert committed == markdown_table(settings_table()), (
        "regenerate the table in docs/operations.md: orchestrator config settings --markdown"
    )
