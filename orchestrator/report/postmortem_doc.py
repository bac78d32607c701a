"""The postmortem as a document: rendering a template, and refreshing a stored one in place.

A postmortem's `## ` sections are of two kinds. Generated ones (the template puts a
`<!-- generated -->` comment under the heading) come from the timeline and the store, and are
rendered afresh every time. The others are written by people; when a stored postmortem is
rendered again their text is kept, found by heading, and sections people added that the
template does not know are kept too, at the end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.playbook.render import render_document

__all__ = ["GENERATED_MARK", "Section", "checkable_text", "render_postmortem", "split_sections"]

GENERATED_MARK = "<!-- generated"
_HEADING = re.compile(r"^##\s+(.+?)\s*#*\s*$")
_FENCE = ("```", "~~~")


@dataclass(frozen=True)
class Section:
    key: str  # the heading, lower case, punctuation and spacing folded: "what went well"
    title: str
    body: str
    generated: bool
    first_line: int  # 1-based line of the heading
    last_line: int  # the section's last line, blank ones included


def heading_key(title: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", title.lower()).split())


def split_sections(markdown: str) -> list[Section]:
    """The `## ` sections in order; text before the first one (the header) is not a section."""
    sections: list[Section] = []
    title: str | None = None
    start = 0
    body: list[str] = []
    fenced = False

    def close() -> None:
        if title is None:
            return
        text = "\n".join(body).strip("\n")
        generated = text.lstrip().startswith(GENERATED_MARK)
        last = start + len(body)
        sections.append(Section(heading_key(title), title, text, generated, start, last))

    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.lstrip().startswith(_FENCE):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            close()
            title, start, body = match.group(1), number, []
        else:
            body.append(line)
    close()
    return sections


def render_postmortem(
    template: str,
    context: Mapping[str, Any],
    *,
    stored: str | None = None,
    html_template: str | None = None,
) -> str:
    """Renders `template` (Markdown), or `html_template` when given, from `context`; with a
    stored postmortem, its written sections are carried into the new rendering.

    The Markdown template decides which headings it produces either way, so a team's own
    template with its own headings refreshes correctly too."""
    written: dict[str, str] = {}
    extras: list[dict[str, str]] = []
    if stored is not None:
        sections = split_sections(stored)
        written = {s.key: s.body for s in sections if not s.generated}
        fresh = render_document(template, {**context, "written": written, "extra_sections": []})
        produced = {s.key for s in split_sections(fresh)}
        extras = [
            {"title": s.title, "body": s.body}
            for s in sections
            if s.key not in produced and not s.generated and s.body
        ]
    full = {**context, "written": written, "extra_sections": extras}
    if html_template is not None:
        return render_document(html_template, full, html=True)
    return render_document(template, full)


def checkable_text(markdown: str) -> str:
    """The text people wrote, for the blameless check, with everything else blanked so line
    numbers still point into the file: the generated header and sections (quoting the
    timeline's notes is the record, not the author's phrasing) and HTML comments."""
    lines = markdown.splitlines()
    keep = [False] * len(lines)
    for section in split_sections(markdown):
        if not section.generated:
            for index in range(section.first_line - 1, section.last_line):
                keep[index] = True
    text = "\n".join(line if keep[i] else "" for i, line in enumerate(lines))
    return re.sub(r"<!--.*?-->", lambda m: re.sub(r"[^\n]", " ", m.group()), text, flags=re.S)
