"""Loads playbook YAML into a validated PlaybookSet, or refuses with file:line:column per error."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from orchestrator.playbook.matchers import MatcherError, parse_matchers
from orchestrator.playbook.model import Playbook
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.playbook.validate import semantic_problems

TEMPLATE_SUFFIX = ".j2"
# Documents (postmortem.md.j2, postmortem.html.j2) share templates/ with the message templates
# but are rendered by reports, not by slack.post: a second suffix names the output format.
DOCUMENT_SUFFIXES = (".md.j2", ".html.j2")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PlaybookLoadError(Exception):
    """Every problem found, so a user fixes them all in one pass."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.preserve_quotes = True  # so a matcher error can be placed inside a quoted string
    return yaml


def _has(node: Any, segment: int | str) -> bool:
    """Whether a YAML mapping or sequence holds this key or index."""
    if isinstance(node, dict):
        return segment in node
    return isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node)


def position(node: Any, loc: Iterable[int | str], *, at_key: bool = False) -> tuple[int, int]:
    """0-based (line, column) of the YAML node a validation error's `loc` points at.

    Segments that exist only in the model (union tags, aliases repeated by pydantic) are skipped,
    and the walk stops at the deepest node that exists, so a missing field points at its parent.
    A scalar is pointed at where its value starts (or its key, with `at_key`), a mapping or
    list where its key is.
    """
    lc = getattr(node, "lc", None)
    line, col = (lc.line, lc.col) if lc is not None else (0, 0)
    for segment in loc:
        if not _has(node, segment):
            continue
        lc = getattr(node, "lc", None)
        child = node[segment]
        if lc is not None and isinstance(node, list):
            line, col = lc.item(segment)
        elif lc is not None:
            scalar = not isinstance(child, dict | list)
            line, col = lc.value(segment) if scalar and not at_key else lc.key(segment)
        node = child
    return line, col


def _matcher_problem(file: str, doc: Any, index: int) -> Problem | None:
    """Points a matcher error at its exact column inside the quoted YAML string."""
    items = doc.get("match") if isinstance(doc, dict) else None
    loc: tuple[int | str, ...] = ("match", index)
    if isinstance(items, str):
        items, loc = [items], ("match",)
        index = 0
    if not isinstance(items, list) or index >= len(items) or not isinstance(items[index], str):
        return None
    text = items[index]
    try:
        parse_matchers(text)
    except MatcherError as err:
        line, col = position(doc, loc)
        # The column counts inside the string; a quoted YAML scalar starts one character later.
        opening = 1 if isinstance(text, SingleQuotedScalarString | DoubleQuotedScalarString) else 0
        return Problem(file, line + 1, col + 1 + opening + err.column - 1, f"match: {err.reason}")
    return None


def _virtual_depth(doc: Any, loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], int]:
    """Splits a loc at the first segment that is not in the YAML (a union branch label pydantic
    adds, such as 'str-enum[Severity]'): (the real prefix, how deep the branch went past it)."""
    node = doc
    for depth, segment in enumerate(loc):
        if not _has(node, segment):
            return loc[:depth], len(loc) - depth
        node = node[segment]
    return loc, 0


def _deepest_branches(doc: Any, details: list[Any]) -> list[Any]:
    """Of a union's failed branches, keeps the one that got furthest: a severity mapping with a
    bad level should say so, not also that it is not a SEV string."""
    deepest: dict[tuple[int | str, ...], int] = {}
    for detail in details:
        prefix, depth = _virtual_depth(doc, detail["loc"])
        deepest[prefix] = max(deepest.get(prefix, 0), depth)
    return [
        detail
        for detail in details
        if _virtual_depth(doc, detail["loc"])[1] == deepest[_virtual_depth(doc, detail["loc"])[0]]
    ]


def validation_problems(file: str, doc: Any, error: ValidationError) -> list[Problem]:
    problems = []
    for detail in _deepest_branches(doc, error.errors(include_url=False)):
        loc = detail["loc"]
        if len(loc) == 2 and loc[0] == "match" and isinstance(loc[1], int):
            matcher = _matcher_problem(file, doc, loc[1])
            if matcher is not None:
                problems.append(matcher)
                continue
        line, col = position(doc, loc, at_key=detail["type"] == "extra_forbidden")
        path = ".".join(str(part) for part in _readable_loc(loc))
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "missing":
            message = "required field is missing"
        elif detail["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(Problem(file, line + 1, col + 1, f"{path}: {message}" if path else message))
    return problems


def _readable_loc(loc: tuple[int | str, ...]) -> list[int | str]:
    """Drops what pydantic adds to a path: the union tag it repeats (on_trigger.0.slack.post.
    slack.post.x) and branch labels such as 'str-enum[Severity]' or 'SeverityRule'."""
    out: list[int | str] = []
    for part in loc:
        if out and out[-1] == part and isinstance(part, str) and "." in part:
            continue
        if isinstance(part, str) and ("[" in part or part[:1].isupper()):
            continue
        out.append(part)
    return out


def load_templates(directory: Path) -> dict[str, str]:
    folder = directory / "templates"
    if not folder.is_dir():
        return {}
    return {
        path.name.removesuffix(TEMPLATE_SUFFIX): path.read_text(encoding="utf-8")
        for path in sorted(folder.glob(f"*{TEMPLATE_SUFFIX}"))
        if not path.name.endswith(DOCUMENT_SUFFIXES)
    }


def document_template(directory: Path, name: str) -> str | None:
    """A document template such as `postmortem.md.j2` from the playbooks' templates/ folder,
    or None when the folder has none of that name."""
    if not name.endswith(DOCUMENT_SUFFIXES):
        raise ValueError(f"{name!r} is not a document template (*.md.j2, *.html.j2)")
    path = directory / "templates" / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def yaml_mapping(text: str, file: str, what: str) -> tuple[Any, list[Problem]]:
    """The YAML document in `text` with its line numbers, or where it is not a mapping."""
    try:
        doc = _yaml().load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line, mark.column) if mark is not None else (0, 0)
        reason = " ".join(str(part) for part in (err.context, err.problem) if part)
        return None, [Problem(file, line + 1, col + 1, reason or "invalid YAML")]
    if not isinstance(doc, dict):
        return None, [Problem(file, 1, 1, f"{what} is a YAML mapping")]
    return doc, []


def parse_playbook(
    text: str, file: str, templates: dict[str, str] | None = None
) -> tuple[Playbook | None, list[Problem]]:
    """Parses one playbook document; returns it (or None) with every schema problem found."""
    doc, problems = yaml_mapping(text, file, "a playbook")
    if problems:
        return None, problems
    try:
        playbook = Playbook.model_validate(doc)
    except ValidationError as err:
        return None, validation_problems(file, doc, err)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    playbook.attach(file, version, dict(templates or {}))
    problems = []
    for loc, message in semantic_problems(playbook):
        line, col = position(doc, loc)
        problems.append(Problem(file, line + 1, col + 1, message))
    return playbook, problems


def playbook_files(directory: Path) -> list[Path]:
    """Top-level playbooks in file-name order, which is match order (prefix 10-, 20-, ...).

    Subfolders are not read: templates/ and drills/ live there, and a nested file would
    otherwise slot into the match order somewhere nobody expects."""
    return sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in directory.glob(pattern)
        if path.is_file()
    )


def load_playbooks(
    directory: Path | str, *, known_actions: frozenset[str] | None = None
) -> PlaybookSet:
    """Loads and validates every playbook, raising PlaybookLoadError if any has a problem.

    `known_actions` is what the configured handlers can deliver; None skips that check.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PlaybookLoadError([Problem(str(root), 1, 1, "playbook directory not found")])
    templates = load_templates(root)
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in playbook_files(root):
        file = str(path)
        playbook, found = parse_playbook(path.read_text(encoding="utf-8"), file, templates)
        problems.extend(found)
        if playbook is None:
            continue
        if playbook.name in seen:
            problems.append(
                Problem(
                    file, 1, 1, f"name {playbook.name!r} is already used by {seen[playbook.name]}"
                )
            )
        seen[playbook.name] = file
        if known_actions is not None:
            problems.extend(_unknown_action_problems(file, path, playbook, known_actions))
        playbooks.append(playbook)
    if not playbooks and not problems:
        problems.append(Problem(str(root), 1, 1, "no playbooks (*.yaml) found"))
    if problems:
        raise PlaybookLoadError(sorted(problems, key=lambda p: (p.file, p.line, p.column)))
    return PlaybookSet(playbooks)


def _unknown_action_problems(
    file: str, path: Path, playbook: Playbook, known_actions: frozenset[str]
) -> list[Problem]:
    doc = _yaml().load(path.read_text(encoding="utf-8"))
    problems = []
    for loc, step_name in steps_with_locations(playbook):
        if step_name not in known_actions:
            line, col = position(doc, loc)
            problems.append(
                Problem(file, line + 1, col + 1, f"no configured handler delivers {step_name!r}")
            )
    return problems


def steps_with_locations(playbook: Playbook) -> list[tuple[tuple[int | str, ...], str]]:
    out: list[tuple[tuple[int | str, ...], str]] = []
    for phase in ("on_trigger", "on_acknowledge", "on_resolve", "on_reopen", "on_ack_timeout"):
        for index, step in enumerate(getattr(playbook, phase) or []):
            out.append(((phase, index), step.name))
    if playbook.escalation is not None:
        for level_index, level in enumerate(playbook.escalation.levels):
            for index, step in enumerate(level.do):
                out.append((("escalation", "levels", level_index, "do", index), step.name))
    if playbook.reminder is not None:
        # Written or defaulted: a reminder without `do` posts to the incident channel.
        where: tuple[int | str, ...] = ("reminder",)
        for index, step in enumerate(playbook.reminder.do):
            out.append(
                (
                    (*where, "do", index) if "do" in playbook.reminder.model_fields_set else where,
                    step.name,
                )
            )
    return out
