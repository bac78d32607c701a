"""Reads a scenario file into a validated Scenario, or refuses with file:line:column per problem."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from orchestrator.drill.retime import message_time
from orchestrator.drill.scenario import RecordedAlerts, Scenario, cross_problems
from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.normalize import NormalizeError, split_stream
from orchestrator.playbook.loader import (
    PlaybookLoadError,
    Problem,
    position,
    validation_problems,
    yaml_mapping,
)


class ScenarioError(PlaybookLoadError):
    """Every problem found in a scenario file, each with its file:line:column."""


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    text: str  # the file as written: kept with the drill's record
    sha256: str
    recordings: dict[str, list[bytes]]  # alerts_file path as written → its payloads


def parse_scenario(text: str, file: str, folder: Path | None = None) -> LoadedScenario:
    doc, problems = yaml_mapping(text, file, "a drill scenario")
    if problems:
        raise ScenarioError(problems)
    try:
        scenario = Scenario.model_validate(doc)
    except ValidationError as err:
        raise ScenarioError(validation_problems(file, doc, err)) from None

    def at(loc: tuple[int | str, ...], message: str) -> Problem:
        line, col = position(doc, loc)
        return Problem(file, line + 1, col + 1, message)

    problems = [at(loc, message) for loc, message in cross_problems(scenario)]
    recordings: dict[str, list[bytes]] = {}
    for loc, recorded in _recorded_files(scenario):
        name = recorded.file
        fmt = SourceFormat(recorded.format) if recorded.format else None
        if name in recordings:
            continue
        path = (folder or Path.cwd()) / name
        if not path.is_file():
            problems.append(at(loc, f"no such file {name!r} (paths are relative to the scenario)"))
            continue
        messages = list(split_stream(path.read_bytes()))
        recordings[name] = [raw for _, raw in messages]
        if not messages:
            problems.append(at(loc, f"{name} holds no alert messages"))
        for line, raw in messages:
            try:
                message_time(raw, fmt)
            except NormalizeError as err:
                problems.append(at(loc, f"{name}:{line}: {err}"))
    if problems:
        raise ScenarioError(problems)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedScenario(scenario, Path(file), text, digest, recordings)


def _recorded_files(
    scenario: Scenario,
) -> Iterator[tuple[tuple[int | str, ...], RecordedAlerts]]:
    """(where it is written, path as written) of every alerts_file, contingencies included:
    the runner replays a contingency's recording from `recordings` like any other."""
    for index, inject in enumerate(scenario.injects):
        if inject.alerts_file is not None:
            yield ("injects", index, "alerts_file", "file"), inject.alerts_file
    for index, item in enumerate(scenario.expected):
        for j, inject in enumerate(item.contingency):
            if inject.alerts_file is not None:
                loc = ("expected", index, "contingency", j, "alerts_file", "file")
                yield loc, inject.alerts_file


def load_scenario(path: Path) -> LoadedScenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError([Problem(str(path), 1, 1, f"cannot read: {err}")]) from None
    return parse_scenario(text, str(path), path.parent)


def scenario_files(folder: Path) -> list[Path]:
    return sorted(p for pattern in ("*.yaml", "*.yml") for p in folder.glob(pattern))
