"""The JSON Schemas committed under docs/schemas/ are the ones the code publishes, and they hold."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

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


def test_every_shipped_playbook_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(playbook_json_schema())
    for path in sorted((ROOT / "playbooks").glob("*.yaml")):
        document = YAML(typ="safe").load(path.read_text())
        errors = [error.message for error in validator.iter_errors(document)]
        assert errors == [], f"{path.name}: {errors}"


def test_the_native_example_validates_against_its_schema() -> None:
    document = json.loads((ROOT / "examples" / "native-alert.json").read_text())
    jsonschema.Draft202012Validator(native_alert_schema()).validate(document)
