"""The blameless-language check: phrasing that asks who was at fault rather than what happened.

A postmortem that names culprits teaches people to hide mistakes, and the next one is written
from less information. Each rule below is a pattern and what to write instead. The check is a
prompt for the author, not a proof: it matches words, not intent, so it errs towards asking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RULES", "Rule", "blame_phrases"]

# Who a sentence may blame: pronouns, roles, @handles, and the incident's people by name.
_PEOPLE = (
    r"(?:@[\w.-]+|\b(?:I|we|you|he|she|they|someone|somebody|nobody"
    r"|(?:the|an?|our|their)\s+(?:engineer|developer|dev|operator|on-?call(?:er)?|admin"
    r"|intern|contractor|sre|dba|reviewer|responder|team|person))\b{names})"
)


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str  # a regular expression; `{who}` stands for a person (see _PEOPLE)
    suggestion: str


RULES: tuple[Rule, ...] = (
    Rule(
        "person caused",
        r"{who}\s+(?:caused|broke|triggered)\b",
        "describe the mechanism: what change or condition started it, and how",
    ),
    Rule(
        "person failed to",
        r"{who}\s+(?:failed|forgot|neglected|didn'?t bother)\s+to\b",
        "say what the system or process did not provide (a check, an alert, a step)",
    ),
    Rule(
        "person's mistake",
        r"{who}(?:'s)?\s+(?:mistake|error|fault|screw-?up)\b",
        "describe the action and what made it reasonable at the time",
    ),
    Rule(
        "human error",
        r"\b(?:human|operator|user|pilot)\s+error\b",
        "human error is where an inquiry starts: name the conditions that made the error likely",
    ),
    Rule(
        "should have",
        r"\b(?:should|ought\s+to)\s*(?:n'?t|not)?\s+have\b|\bshould(?:n'?t)?'ve\b",
        "hindsight: say what would have helped (an alert, a guard, a runbook step)",
    ),
    Rule(
        "judgement of a person",
        r"\b(?:careless(?:ly|ness)?|negligen(?:t|ce)|sloppy|lazy|incompetent|reckless(?:ly)?"
        r"|stupid|dumb|inattentive)\b",
        "describe what happened and the pressures at the time, not a character",
    ),
    Rule(
        "fault and blame",
        r"\b(?:fault\s+of|at\s+fault|(?:is|was|were|are)\s+to\s+blame|blame[ds]?|culprit)\b",
        "ask how the system allowed it; a postmortem has contributing factors, not culprits",
    ),
    Rule(
        "why did a person",
        r"\bwhy\s+did(?:n'?t)?\s+{who}",
        "ask how: 'how did the tooling let this through?' invites an answer 'why did you' does not",
    ),
)


def _compiled(names: tuple[str, ...]) -> list[tuple[Rule, re.Pattern[str]]]:
    extra = "".join(f"|\\b{re.escape(name)}\\b" for name in names if name.strip())
    who = _PEOPLE.format(names=extra)
    return [(rule, re.compile(rule.pattern.format(who=who), re.IGNORECASE)) for rule in RULES]


def _without_code(line: str) -> str:
    # Quoted commands and log lines are evidence, not the author's phrasing.
    return re.sub(r"`[^`]*`", lambda m: " " * len(m.group()), line)


def blame_phrases(text: str, names: Iterable[str] = ()) -> list[tuple[int, str, str]]:
    """(line number, the phrase as written, what to write instead) for each finding, in order.

    `names` are the incident's people (responders, the commander), so "alice forgot to" is
    caught as well as "the on-call forgot to". Fenced code blocks and `inline code` are skipped.
    """
    rules = _compiled(tuple(sorted({n.strip() for n in names if len(n.strip()) > 1})))
    findings: list[tuple[int, str, str]] = []
    fenced = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        line = _without_code(raw)
        hits: list[tuple[int, str, str]] = []
        for rule, pattern in rules:
            hits.extend(
                (match.start(), match.group(), rule.suggestion) for match in pattern.finditer(line)
            )
        for _, phrase, suggestion in sorted(hits):
            findings.append((number, " ".join(phrase.split()), suggestion))
    return findings
