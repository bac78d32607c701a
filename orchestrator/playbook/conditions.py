"""`postmortem.required_when`: a tiny boolean language over an incident's severity and flags.

    expression := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expression ")" | comparison | name
    comparison := ("max_severity" | "severity") ("<=" | "<" | ">=" | ">" | "==" | "!=") SEVn
    name       := "always" | "never" | a flag such as data_loss

Severities compare by their number, so `max_severity <= SEV2` holds for SEV1 and SEV2. A flag
holds when the incident carries it (report.postmortem_policy.incident_flags: a label or a note
tag). The text is parsed by hand, never evaluated as Python: playbooks are data.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.incident.model import Severity

__all__ = ["Condition", "ConditionError", "Facts", "parse_condition"]

SEVERITY_FIELDS = frozenset({"max_severity", "severity"})
CONSTANTS = {"always": True, "never": False}
MAX_DEPTH = 32
KEYWORDS = frozenset({"and", "or", "not"})
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}
_TOKEN = re.compile(r"(?P<op><=|>=|==|!=|<|>)|(?P<paren>[()])|(?P<word>[A-Za-z_]\w*)")


class ConditionError(ValueError):
    """A condition that does not parse; `column` is 1-based within the text."""

    def __init__(self, reason: str, column: int) -> None:
        super().__init__(f"column {column}: {reason}")
        self.reason = reason
        self.column = column


@dataclass(frozen=True)
class Facts:
    """What a condition is evaluated against."""

    max_severity: Severity
    severity: Severity
    flags: frozenset[str] = frozenset()


Node = Callable[[Facts], bool]


@dataclass(frozen=True)
class Condition:
    text: str
    flags: frozenset[str]  # the flag names it mentions, for documentation and checks
    _node: Node

    def holds(self, facts: Facts) -> bool:
        return self._node(facts)


@dataclass(frozen=True)
class _Token:
    kind: str  # "op", "paren", "word", "end"
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise ConditionError(f"unexpected character {text[position]!r}", position + 1)
        found.append(_Token(match.lastgroup, match.group(), position + 1))
        position = match.end()
    found.append(_Token("end", "", len(text) + 1))
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.flags: set[str] = set()
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def at_word(self, word: str) -> bool:
        return self.current.kind == "word" and self.current.text == word

    def expression(self) -> Node:
        parts = [self.term()]
        while self.at_word("or"):
            self.take()
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return lambda facts: any(part(facts) for part in parts)

    def term(self) -> Node:
        parts = [self.factor()]
        while self.at_word("and"):
            self.take()
            parts.append(self.factor())
        if len(parts) == 1:
            return parts[0]
        return lambda facts: all(part(facts) for part in parts)

    def factor(self) -> Node:
        token = self.take()
        self.depth += 1
        if self.depth > MAX_DEPTH:  # a policy is a line, not a stack overflow
            raise ConditionError("nested too deeply", token.column)
        try:
            return self._factor(token)
        finally:
            self.depth -= 1

    def _factor(self, token: _Token) -> Node:
        if token.kind == "word" and token.text == "not":
            inner = self.factor()
            return lambda facts: not inner(facts)
        if token.kind == "paren" and token.text == "(":
            inner = self.expression()
            closing = self.take()
            if closing.text != ")":
                raise ConditionError(f"expected ')', got {_shown(closing)}", closing.column)
            return inner
        if token.kind != "word" or token.text in KEYWORDS:
            raise ConditionError(
                f"expected a flag, a comparison or '(', got {_shown(token)}", token.column
            )
        if token.text in SEVERITY_FIELDS:
            return self.comparison(token)
        if token.text in CONSTANTS:
            value = CONSTANTS[token.text]
            return lambda _facts: value
        if token.text.upper() in Severity.__members__:
            raise ConditionError(
                f"a severity goes on the right: write max_severity <= {token.text.upper()}",
                token.column,
            )
        name = token.text
        self.flags.add(name)
        return lambda facts: name in facts.flags

    def comparison(self, field: _Token) -> Node:
        op = self.take()
        if op.kind != "op":
            raise ConditionError(
                f"{field.text} needs a comparison such as '<= SEV2', got {_shown(op)}", op.column
            )
        value = self.take()
        try:
            level = Severity(value.text.upper()).rank if value.kind == "word" else None
        except ValueError:
            level = None
        if level is None:
            raise ConditionError(
                f"expected a severity (SEV1 … SEV5), got {_shown(value)}", value.column
            )
        compare, name = _COMPARE[op.text], field.text

        def node(facts: Facts) -> bool:
            severity: Severity = getattr(facts, name)
            return compare(severity.rank, level)

        return node


def _shown(token: _Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


def parse_condition(text: str) -> Condition:
    """Parses a condition, raising ConditionError with the column of the first problem."""
    if not text.strip():
        raise ConditionError("empty condition: write e.g. 'max_severity <= SEV2' or 'always'", 1)
    parser = _Parser(text)
    node = parser.expression()
    if parser.current.kind != "end":
        token = parser.current
        raise ConditionError(f"expected 'and', 'or' or the end, got {_shown(token)}", token.column)
    return Condition(text, frozenset(parser.flags), node)
