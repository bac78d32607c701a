"""Alertmanager label matchers: a playbook's `match:` lines, parsed and applied to alert labels.

Syntax and semantics follow Alertmanager (≥ 0.27, UTF-8 matchers): `=`, `!=`, `=~`, `!~`; regexes
are fully anchored; an absent label equals the empty string; values are double-quoted with Go
escapes or unquoted (no whitespace and none of ``{}!=~,\\"'`` or a backtick); label names are
``[a-zA-Z_][a-zA-Z0-9_]*`` or double-quoted. Two deliberate differences, both stricter: a trailing
comma (which Alertmanager tolerates) is rejected, and regexes must stay inside the syntax both
Python `re` and Go RE2 agree on, so a playbook accepted here also works in Alertmanager tooling.
Regex classes (``\\d``, ``\\w``, ``\\s``, ``\\b``) are ASCII-only as in RE2, which also makes
``(?i)`` fold ASCII letters only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MatchType",
    "Matcher",
    "MatcherError",
    "matches",
    "parse_matcher",
    "parse_matchers",
]


class MatchType(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherError(ValueError):
    """A matcher text that does not parse; `column` is 1-based so a loader can point into YAML."""

    def __init__(self, text: str, column: int, reason: str) -> None:
        super().__init__(f"column {column}: {reason}")
        self.text = text
        self.column = column
        self.reason = reason


_CLASSIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class Matcher:
    name: str
    type: MatchType
    value: str
    regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.type, MatchType):
            object.__setattr__(self, "type", MatchType(self.type))
        if not self.name:
            raise MatcherError(str(self), 1, "empty label name")
        if self.type in (MatchType.REGEX, MatchType.NOT_REGEX):
            try:
                object.__setattr__(self, "regex", _compile_regex(self.value))
            except _RegexError as err:
                column = len(_quote_name(self.name)) + len(self.type) + 1
                raise MatcherError(str(self), column, err.reason) from None

    def __str__(self) -> str:
        return f"{_quote_name(self.name)}{self.type}{_quote(self.value)}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.type is MatchType.EQUAL:
            return value == self.value
        if self.type is MatchType.NOT_EQUAL:
            return value != self.value
        assert self.regex is not None
        # fullmatch anchors the whole pattern: `a|b` cannot slip out of the anchors as it would
        # with "^" + pattern + "$", and Python's `$` would also accept a trailing newline.
        found = self.regex.fullmatch(value) is not None
        return found if self.type is MatchType.REGEX else not found


def matches(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher holds; no matchers match everything, as in Alertmanager."""
    return all(m.matches(labels) for m in matchers)


def parse_matcher(text: str) -> Matcher:
    """Exactly one matcher, braces optional."""
    parser = _Parser(text)
    found = parser.parse()
    if not found:
        raise MatcherError(text, 1, 'expected a matcher such as alertname="Foo"')
    if len(found) > 1:
        raise MatcherError(
            text, parser.starts[1], f"expected exactly one matcher, found {len(found)}"
        )
    return found[0]


def parse_matchers(text: str) -> list[Matcher]:
    """Comma-separated matchers, optionally in braces; `""` and `{}` give no matchers."""
    return _Parser(text).parse()


# --- quoting -----------------------------------------------------------------------------------

_ESCAPES_OUT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SIMPLE_ESCAPES_IN = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _quote(value: str) -> str:
    out = ['"']
    for char in value:
        if char in _ESCAPES_OUT:
            out.append(_ESCAPES_OUT[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _quote_name(name: str) -> str:
    return name if _CLASSIC_NAME.fullmatch(name) else _quote(name)


# --- regex -------------------------------------------------------------------------------------


class _RegexError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_GROUP_EXTENSIONS = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?P=", "named backreference"),
    ("(?(", "conditional group"),
    ("(?>", "atomic group"),
    ("(?#", "comment group"),
)
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z-]+)[:)]")
_RE2_FLAGS = frozenset("ims-")
_EMPTY_MIN_REPEAT = re.compile(r"\{,[0-9]*\}")
_REPEAT = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")


def _compile_regex(pattern: str) -> re.Pattern[str]:
    _check_re2_subset(pattern)
    try:
        return re.compile(pattern, re.ASCII)
    except re.error as err:
        where = f" at position {err.pos + 1} of the regex" if err.pos is not None else ""
        raise _RegexError(f"invalid regex: {err.msg}{where}") from None


def _unsupported(position: int, what: str) -> _RegexError:
    return _RegexError(f"invalid regex: {what} at position {position + 1} is not valid in RE2")


def _check_re2_subset(pattern: str) -> None:
    """Rejects what Python `re` accepts but Go RE2 (Alertmanager) does not, or reads differently."""
    index, in_class, previous_quantifier = 0, False, False
    while index < len(pattern):
        char = pattern[index]
        quantifier = False
        if char == "\\":
            _check_escape(pattern, index)
            index += 2
            previous_quantifier = False
            continue
        if in_class:
            _check_in_class(pattern, index)
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A `]` right after `[` or `[^` is a literal in both dialects, not the class end.
            index += 2 if pattern[index + 1 : index + 2] == "^" else 1
            if pattern[index : index + 1] == "]":
                index += 1
            previous_quantifier = False
            continue
        elif char == "(":
            _check_group(pattern, index)
        elif char == "{":
            if _EMPTY_MIN_REPEAT.match(pattern, index):
                raise _unsupported(index, "repetition with no minimum (write {0,n})")
            repeat = _REPEAT.match(pattern, index)
            if repeat:
                index = repeat.end()
                previous_quantifier = True
                continue
        elif char in "*+?":
            if char == "+" and previous_quantifier:
                raise _unsupported(index, "possessive quantifier")
            quantifier = char != "?" or index == 0 or pattern[index - 1] != "("
        index += 1
        previous_quantifier = quantifier


def _check_escape(pattern: str, index: int) -> None:
    escaped = pattern[index + 1 : index + 2]
    if escaped in {"1", "2", "3", "4", "5", "6", "7", "8", "9"}:
        raise _unsupported(index, f"backreference or short octal escape \\{escaped}")
    if escaped in {"Z", "u", "U", "N"}:
        raise _unsupported(index, f"escape \\{escaped}")


def _check_in_class(pattern: str, index: int) -> None:
    if _POSIX_CLASS.match(pattern, index):
        raise _unsupported(index, "POSIX class inside brackets (write the range, e.g. [a-z])")
    # Python reserves these for future set operations and warns; RE2 reads them as literals.
    # Requiring an escape keeps one meaning in both.
    if pattern[index : index + 2] in {"--", "&&", "~~", "||"}:
        raise _unsupported(index, f"unescaped {pattern[index : index + 2]!r} inside brackets")
    if pattern[index] == "[":
        raise _unsupported(index, "unescaped '[' inside brackets (write \\[)")


def _check_group(pattern: str, index: int) -> None:
    for prefix, what in _GROUP_EXTENSIONS:
        if pattern.startswith(prefix, index):
            raise _unsupported(index, what)
    flags = _INLINE_FLAGS.match(pattern, index)
    if flags and not set(flags.group(1)) <= _RE2_FLAGS:
        raise _unsupported(index, f"inline flag group {flags.group(0)!r}")


# --- parsing -----------------------------------------------------------------------------------

_RESERVED = frozenset("{}!=~,\\\"'`")
_OPERATORS = ("=~", "!~", "!=", "=")


@dataclass(frozen=True)
class _Token:
    kind: str  # "{", "}", ",", "op", "quoted", "unquoted", "end"
    text: str  # the source text of the token
    value: str  # the unquoted value for strings, the operator for "op"
    column: int  # 1-based


class _Parser:
    """A hand-written lexer and parser, so each error can name its exact column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.starts: list[int] = []
        self._peeked: _Token | None = None

    def error(self, column: int, reason: str) -> MatcherError:
        return MatcherError(self.text, column, reason)

    def parse(self) -> list[Matcher]:
        found: list[Matcher] = []
        token = self.next()
        braced = token.kind == "{"
        if braced:
            token = self.next()
            if token.kind == "}":
                self.expect_end()
                return found
        if token.kind == "end":
            if braced:
                raise self.error(token.column, "expected a matcher or '}'")
            return found
        while True:
            found.append(self.matcher(token))
            token = self.next()
            if token.kind == ",":
                comma = token
                token = self.next()
                if token.kind in {"end", "}"}:
                    raise self.error(comma.column, "dangling ',' with no matcher after it")
                continue
            if token.kind == "}":
                if not braced:
                    raise self.error(token.column, "unexpected '}' without an opening '{'")
                self.expect_end()
                return found
            if token.kind == "end":
                if braced:
                    raise self.error(token.column, "expected '}' to close the '{'")
                return found
            raise self.error(
                token.column, f"unexpected {token.text!r}: expected ',' or {_end_of(braced)}"
            )

    def matcher(self, name: _Token) -> Matcher:
        if name.kind == "op":
            raise self.error(name.column, "empty label name")
        if name.kind not in {"quoted", "unquoted"}:
            raise self.error(name.column, f"unexpected {_describe(name)}: expected a label name")
        if name.kind == "quoted" and not name.value:
            raise self.error(name.column, "empty label name")
        if name.kind == "unquoted" and not _CLASSIC_NAME.fullmatch(name.value):
            raise self.error(
                name.column,
                f"invalid label name {name.value!r}: use [a-zA-Z_][a-zA-Z0-9_]* or double-quote it",
            )
        self.starts.append(name.column)
        operator = self.next()
        if operator.kind != "op":
            raise self.error(
                operator.column,
                f"unexpected {_describe(operator)} after label name {name.value!r}:"
                " expected an operator such as '=', '!=', '=~' or '!~'",
            )
        value = self.next()
        if value.kind not in {"quoted", "unquoted"}:
            raise self.error(value.column, f"unexpected {_describe(value)}: expected a label value")
        try:
            return Matcher(name.value, MatchType(operator.value), value.value)
        except MatcherError as err:
            raise self.error(value.column, err.reason) from None

    def expect_end(self) -> None:
        token = self.next()
        if token.kind != "end":
            raise self.error(token.column, f"unexpected {token.text!r} after '}}'")

    def next(self) -> _Token:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        column = pos + 1
        if pos == len(text):
            self.pos = pos
            return _Token("end", "", "", column)
        char = text[pos]
        if char in "{},":
            self.pos = pos + 1
            return _Token(char, char, char, column)
        for operator in _OPERATORS:
            if text.startswith(operator, pos):
                self.pos = pos + len(operator)
                return _Token("op", operator, operator, column)
        if char == '"':
            return self.quoted(pos)
        if char in _RESERVED:
            hint = " (an operator is one of =, !=, =~, !~)" if char in "!~" else ""
            raise self.error(column, f"unexpected character {char!r}{hint}")
        end = pos
        while end < len(text) and not (text[end].isspace() or text[end] in _RESERVED):
            end += 1
        self.pos = end
        return _Token("unquoted", text[pos:end], text[pos:end], column)

    def quoted(self, start: int) -> _Token:
        """Go string-literal rules: byte escapes may build multi-byte UTF-8 characters."""
        text, pos = self.text, start + 1
        out = bytearray()
        while True:
            if pos >= len(text):
                raise self.error(start + 1, "unterminated quoted string")
            char = text[pos]
            if char == '"':
                break
            if char == "\n":
                raise self.error(pos + 1, "newline inside a quoted string (write \\n)")
            if char != "\\":
                out += char.encode("utf-8", "surrogatepass")
                pos += 1
                continue
            pos = self.escape(pos, out)
        try:
            value = out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(start + 1, "quoted string is not valid UTF-8") from None
        self.pos = pos + 1
        return _Token("quoted", text[start : pos + 1], value, start + 1)

    def escape(self, pos: int, out: bytearray) -> int:
        """Appends the escape at `pos` (a backslash) to `out`; returns the position after it."""
        text = self.text
        kind = text[pos + 1 : pos + 2]
        if not kind:
            raise self.error(pos + 1, "unterminated quoted string")
        if kind in _SIMPLE_ESCAPES_IN:
            out += _SIMPLE_ESCAPES_IN[kind].encode()
            return pos + 2
        if kind in "01234567":
            digits = text[pos + 1 : pos + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits):
                raise self.error(pos + 1, "octal escape needs three digits, e.g. \\101")
            code = int(digits, 8)
            if code > 0xFF:
                raise self.error(pos + 1, f"octal escape \\{digits} is above \\377")
            out.append(code)
            return pos + 4
        widths = {"x": 2, "u": 4, "U": 8}
        if kind in widths:
            digits = text[pos + 2 : pos + 2 + widths[kind]]
            if len(digits) != widths[kind] or any(d not in _HEX_DIGITS for d in digits):
                raise self.error(pos + 1, f"\\{kind} escape needs {widths[kind]} hex digits")
            code = int(digits, 16)
            if kind == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.error(pos + 1, f"\\{kind}{digits} is not a valid Unicode code point")
            else:
                out += chr(code).encode()
            return pos + 2 + widths[kind]
        raise self.error(pos + 1, f"unknown escape sequence \\{kind}")


def _describe(token: _Token) -> str:
    return "end of input" if token.kind == "end" else repr(token.text)


def _end_of(braced: bool) -> str:
    return "'}'" if braced else "end of input"
