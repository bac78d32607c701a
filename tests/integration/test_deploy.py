"""The deployment files: the Helm chart linted and rendered by helm (built from its Go module
by .ci/run) and every rendered manifest checked against the Kubernetes schemas; the compose
file checked against the Compose Specification's JSON schema (from the compose-go module, fetched
by .ci/run) and, with the Dockerfile, held to what docs/operations.md promises of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "incident-orchestrator"
COMPOSE = REPO / "deploy" / "compose.yaml"
KUBERNETES = "1.31"


def helm() -> str:
    found = os.environ.get("ORCH_HELM") or shutil.which("helm")
    if found:
        return found
    if os.environ.get("ORCH_REQUIRE_SERVICES") == "1":
        pytest.fail("helm is not on PATH (nor ORCH_HELM) but ORCH_REQUIRE_SERVICES=1 requires it")
    pytest.skip("helm is not installed: .ci/run builds it from its Go module")


def compose_schema() -> dict[str, Any]:
    found = os.environ.get("ORCH_COMPOSE_SCHEMA")
    if not found:
        if os.environ.get("ORCH_REQUIRE_SERVICES") == "1":
            pytest.fail("ORCH_COMPOSE_SCHEMA is not set but ORCH_REQUIRE_SERVICES=1 requires it")
        pytest.skip("no Compose Specification schema: .ci/run fetches it from compose-go")
    schema: dict[str, Any] = json.loads(Path(found).read_text())
    return schema


def compose_errors(document: Any, schema: dict[str, Any]) -> list[str]:
    """Every way the document breaks the schema, as "JSON path: message", under the draft the
    schema declares. Where a oneOf/anyOf fails, the branch that came closest names the spot."""
    assert "$schema" in schema, "the Compose schema no longer declares its draft"
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    errors = []
    for error in validator_class(schema).iter_errors(document):
        closest = best_match([error])
        errors.append(f"{closest.json_path}: {closest.message}")
    return errors


def rendered(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [helm(), "template", "orchestrator", str(CHART), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def test_the_chart_lints() -> None:
    result = subprocess.run(
        [helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("with_playbooks", [False, True], ids=["image-playbooks", "own-playbooks"])
def test_every_rendered_manifest_is_valid_kubernetes(with_playbooks: bool) -> None:
    args: list[str] = []
    if with_playbooks:
        playbook = REPO / "playbooks" / "20-database-unavailable.yaml"
        template = REPO / "playbooks" / "templates" / "incident_summary.j2"
        args = [
            "--set-file",
            f"playbooks.20-database-unavailable\\.yaml={playbook}",
            "--set-file",
            f"templates.incident_summary\\.j2={template}",
        ]
    docs = rendered(*args)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    kinds = by_kind(docs)
    assert set(kinds) == (
        {"Deployment", "Service", "PodDisruptionBudget"}
        | ({"ConfigMap"} if with_playbooks else set())
    )
    deployment = kinds["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {item["name"]: item for item in container["env"]}
    assert env["ORCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "orchestrator-database",
        "key": "url",
    }
    assert "value" not in env["ORCH_DATABASE_URL"]  # a secret is never written into the chart
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    if with_playbooks:
        assert env["ORCH_PLAYBOOKS_DIR"]["value"] == "/etc/orchestrator/playbooks"
        (volume,) = [v for v in pod["volumes"] if v["name"] == "playbooks"]
        paths = sorted(item["path"] for item in volume["configMap"]["items"])
        assert paths == ["20-database-unavailable.yaml", "templates/incident_summary.j2"]


def compose_document() -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return document


def test_compose_is_valid_under_the_compose_specification() -> None:
    errors = compose_errors(compose_document(), compose_schema())
    assert not errors, "deploy/compose.yaml breaks the Compose Specification:\n" + "\n".join(errors)


def misspelled_environment(compose: dict[str, Any]) -> None:
    service = compose["services"]["orchestrator"]
    service["enviroment"] = service.pop("environment")


def unknown_depends_on_condition(compose: dict[str, Any]) -> None:
    compose["services"]["orchestrator"]["depends_on"]["postgres"]["condition"] = "service_ready"


@pytest.mark.parametrize(
    ("break_it", "path", "culprit"),
    [
        (misspelled_environment, "$.services.orchestrator", "'enviroment'"),
        (
            unknown_depends_on_condition,
            "$.services.orchestrator.depends_on.postgres.condition",
            "'service_ready'",
        ),
    ],
    ids=["misspelled-key", "bad-depends-on-condition"],
)
def test_the_compose_schema_check_rejects_a_broken_file(
    break_it: Callable[[dict[str, Any]], None], path: str, culprit: str
) -> None:
    schema = compose_schema()
    broken = compose_document()  # a fresh load: the file itself is left alone
    break_it(broken)
    errors = compose_errors(broken, schema)
    assert any(error.startswith(f"{path}: ") and culprit in error for error in errors), errors


def test_compose_runs_the_whole_stack() -> None:
    compose = compose_document()
    services = compose["services"]
    assert set(services) == {"kafka", "postgres", "otel-collector", "orchestrator"}
    orchestrator = services["orchestrator"]
    assert orchestrator["build"]["dockerfile"] == "deploy/Dockerfile"
    assert orchestrator["environment"]["ORCH_OTLP_TRACES_URL"].endswith("/v1/traces")
    assert (REPO / "deploy" / "otel-collector.yaml").is_file()


def test_the_image_is_multi_stage_and_runs_as_nobody_in_particular() -> None:
    lines = (REPO / "deploy" / "Dockerfile").read_text().splitlines()
    assert sum(line.startswith("FROM ") for line in lines) == 2
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert user != "USER root"
    assert "USER 10001:10001" in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines)
