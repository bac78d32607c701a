"""Alertmanager matcher syntax and semantics, edge case by edge case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.playbook.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    matches,
    parse_matcher,
    parse_matchers,
)

PROD_DB = {"alertname": "PostgresDown", "env": "prod", "service": "billing"}

# (matcher text, labels, expected)
MATCH_TABLE: list[tuple[str, dict[str, str], bool]] = [
    # equality
    ('env="prod"', PROD_DB, True),
    ('env="staging"', PROD_DB, False),
    ("env=prod", PROD_DB, True),
    ('env="Prod"', PROD_DB, False),
    ('env="prod "', PROD_DB, False),
    ('env!="prod"', PROD_DB, False),
    ('env!="staging"', PROD_DB, True),
    # an absent label is the empty string
    ('team=""', PROD_DB, True),
    ('team!=""', PROD_DB, False),
    ('env=""', PROD_DB, False),
    ('env!=""', PROD_DB, True),
    ('team="x"', PROD_DB, False),
    ('team!="x"', PROD_DB, True),
    ('team=~".*"', PROD_DB, True),
    ('team=~".+"', PROD_DB, False),
    ('team!~".+"', PROD_DB, True),
    ('team!~".*"', PROD_DB, False),
    ('team=~""', PROD_DB, True),
    ('team=~"x|"', PROD_DB, True),
    ('env=~".*"', PROD_DB, True),
    ("team=~.*", {}, True),
    ('team=""', {"team": ""}, True),
    # regexes are fully anchored
    ('alertname=~"Postgres"', PROD_DB, False),
    ('alertname=~"Postgres.*"', PROD_DB, True),
    ('alertname=~"Down"', PROD_DB, False),
    ('alertname=~".*Down"', PROD_DB, True),
    ('alertname=~"Postgres(Down|Unreachable)"', PROD_DB, True),
    ('alertname=~"Postgres(Down|Unreachable)"', {"alertname": "PostgresDownNow"}, False),
    ('alertname=~"PostgresUp|PostgresDown"', PROD_DB, True),
    # `a|b` must not slip out of the anchors: neither alternative matches a prefix or suffix
    ('alertname=~"Postgres|Mysql"', PROD_DB, False),
    ('alertname=~"x|PostgresDow"', PROD_DB, False),
    ('alertname=~"ostgresDown|x"', PROD_DB, False),
    ('alertname!~"Postgres.*"', PROD_DB, False),
    ('alertname!~"Mysql.*"', PROD_DB, True),
    ('env=~"prod|staging"', PROD_DB, True),
    ('env=~"PROD"', PROD_DB, False),
    ('env=~"(?i)PROD"', PROD_DB, True),
    ('env=~"(?i:PROD)"', PROD_DB, True),
    ('env=~"p.*d"', PROD_DB, True),
    ('env=~"[a-z]+"', PROD_DB, True),
    ('env=~"[^a-z]+"', PROD_DB, False),
    ('port=~"[0-9]{4}"', {"port": "5432"}, True),
    ('port=~"[0-9]{3}"', {"port": "5432"}, False),
    ('port=~"\\\\d+"', {"port": "5432"}, True),
    # RE2's \d is ASCII-only; Arabic-Indic digits are not digits there
    ('port=~"\\\\d+"', {"port": "٥٤٣٢"}, False),
    # `.` does not cross a newline and `$` inside the pattern does not skip one
    ('msg=~"a.b"', {"msg": "a\nb"}, False),
    ('msg=~"(?s)a.b"', {"msg": "a\nb"}, True),
    ('msg=~"abc"', {"msg": "abc\n"}, False),
    ('msg=~"abc$"', {"msg": "abc\n"}, False),
    ('msg=~"a\\\\.b"', {"msg": "a.b"}, True),
    ('msg=~"a\\\\.b"', {"msg": "axb"}, False),
    # escapes in quoted values
    ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
    ('msg="back\\\\slash"', {"msg": "back\\slash"}, True),
    ('msg="line\\nbreak"', {"msg": "line\nbreak"}, True),
    ('msg="tab\\there"', {"msg": "tab\there"}, True),
    ('msg="\\u00e9t\\u00e9"', {"msg": "été"}, True),
    ('msg="\\U0001f642"', {"msg": "🙂"}, True),
    ('msg="\\xf0\\x9f\\x99\\x82"', {"msg": "🙂"}, True),
    ('msg="\\101"', {"msg": "A"}, True),
    ('msg="a,b"', {"msg": "a,b"}, True),
    ('msg="{}=~!"', {"msg": "{}=~!"}, True),
    ('msg="🙂"', {"msg": "🙂"}, True),
    ("msg=🙂bar", {"msg": "🙂bar"}, True),
    # quoted (UTF-8) label names
    ('"service.name"="api"', {"service.name": "api"}, True),
    ('"service.name"="api"', {"service_name": "api"}, False),
    ('"日本"="yes"', {"日本": "yes"}, True),
    ('"env"="prod"', PROD_DB, True),
    # whitespace between tokens is fine
    ('  env  =  "prod"  ', PROD_DB, True),
    ('{ env = "prod" }', PROD_DB, True),
    ('env =~ "pr.*"', PROD_DB, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCH_TABLE)
def test_matcher_table(text: str, labels: dict[str, str], expected: bool) -> None:
    matcher = parse_matcher(text)
    assert matcher.matches(labels) is expected
    assert matches([matcher], labels) is expected


def test_table_is_large() -> None:
    assert len(MATCH_TABLE) >= 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ("{}", []),
        ("{ }", []),
        ('env="prod"', [Matcher("env", MatchType.EQUAL, "prod")]),
        ('{env="prod"}', [Matcher("env", MatchType.EQUAL, "prod")]),
        (
            '{alertname=~"Postgres(Down|Unreachable)", env="prod"}',
            [
                Matcher("alertname", MatchType.REGEX, "Postgres(Down|Unreachable)"),
                Matcher("env", MatchType.EQUAL, "prod"),
            ],
        ),
        (
            'a="1",b!="2" , c=~"3",d!~"4"',
            [
                Matcher("a", MatchType.EQUAL, "1"),
                Matcher("b", MatchType.NOT_EQUAL, "2"),
                Matcher("c", MatchType.REGEX, "3"),
                Matcher("d", MatchType.NOT_REGEX, "4"),
            ],
        ),
        ("a=b,c=d", [Matcher("a", MatchType.EQUAL, "b"), Matcher("c", MatchType.EQUAL, "d")]),
        ("a=~[a-z]+", [Matcher("a", MatchType.REGEX, "[a-z]+")]),
        ('\t{\n a = "b"\n}\n', [Matcher("a", MatchType.EQUAL, "b")]),
    ],
)
def test_parse_matchers(text: str, expected: list[Matcher]) -> None:
    assert parse_matchers(text) == expected


def test_matches_requires_all_and_empty_list_matches_everything() -> None:
    both = parse_matchers('env="prod", service="billing"')
    assert matches(both, PROD_DB)
    assert not matches(both, {**PROD_DB, "service": "search"})
    assert matches([], {})
    assert matches([], PROD_DB)


# (text, column, reason substring)
INVALID_TABLE: list[tuple[str, int, str]] = [
    # missing or bad operator
    ("env", 4, "expected an operator"),
    ('env "prod"', 5, "expected an operator"),
    ('env:"prod"', 1, "invalid label name 'env:'"),
    ('env!"prod"', 4, "unexpected character '!'"),
    ('env~"prod"', 4, "unexpected character '~'"),
    ('env=="prod"', 5, "expected a label value"),
    ("env=", 5, "expected a label value"),
    ("env=~", 6, "expected a label value"),
    ('env=,a="b"', 5, "expected a label value"),
    # empty or invalid label name
    ('="prod"', 1, "empty label name"),
    ('{="prod"}', 2, "empty label name"),
    ('""="prod"', 1, "empty label name"),
    ('a="b", ="c"', 8, "empty label name"),
    ('foo-bar="x"', 1, "invalid label name 'foo-bar'"),
    ('1abc="x"', 1, "invalid label name"),
    ('service.name="x"', 1, "invalid label name"),
    # unterminated quotes
    ('env="prod', 5, "unterminated quoted string"),
    ('env="prod\\"', 5, "unterminated quoted string"),
    ('"env="prod"', 7, "unexpected 'prod' after label name 'env='"),
    ('"env', 1, "unterminated quoted string"),
    ('env="a\nb"', 7, "newline inside a quoted string"),
    # bad escapes
    ('env="\\q"', 6, "unknown escape sequence \\q"),
    ('env="\\\'"', 6, "unknown escape sequence"),
    ('env="\\x4"', 6, "needs 2 hex digits"),
    ('env="\\u12"', 6, "needs 4 hex digits"),
    ('env="\\ud800"', 6, "not a valid Unicode code point"),
    ('env="\\12"', 6, "octal escape needs three digits"),
    ('env="\\777"', 6, "above \\377"),
    ('env="\\xf0\\x9f"', 5, "not valid UTF-8"),
    ('env="a\\', 7, "unterminated quoted string"),
    ("env=a\\n", 6, "unexpected character '\\\\'"),
    # trailing garbage
    ('env="prod" x', 12, "unexpected 'x': expected ',' or end of input"),
    ('env="prod"x', 11, "unexpected 'x'"),
    ("env=prod staging", 10, "unexpected 'staging'"),
    ('{env="prod"} x', 14, "unexpected 'x' after '}'"),
    ('{env="prod"}}', 13, "after '}'"),
    ('{env="prod" x}', 13, "expected ',' or '}'"),
    ("env=a=b", 6, "unexpected '='"),
    ("env='prod'", 5, 'unexpected character "\'"'),
    ("env=`prod`", 5, "unexpected character '`'"),
    # braces
    ("{", 2, "expected a matcher or '}'"),
    ('{env="prod"', 12, "expected '}'"),
    ('env="prod"}', 11, "without an opening '{'"),
    ("}", 1, "expected a label name"),
    ("{{}", 2, "expected a label name"),
    ('env={"prod"}', 5, "expected a label value"),
    # dangling and stray commas
    ('env="prod",', 11, "dangling ','"),
    ('env="prod" , ', 12, "dangling ','"),
    ('{env="prod",}', 12, "dangling ','"),
    (",", 1, "expected a label name"),
    ("{,}", 2, "expected a label name"),
    (',env="prod"', 1, "expected a label name"),
    ('a="1",,b="2"', 7, "expected a label name"),
    # invalid regexes name the value's column
    ('a=~"("', 4, "invalid regex: missing ), unterminated subpattern"),
    ('a=~"[a-"', 4, "invalid regex"),
    ('a=~"*"', 4, "nothing to repeat"),
    ('{x="y", a=~"a)"}', 12, "unbalanced parenthesis"),
    ("a=~(", 4, "invalid regex"),
    # regexes Python accepts but RE2 (Alertmanager) does not
    ('a=~"foo(?=bar)"', 4, "lookahead"),
    ('a=~"foo(?!bar)"', 4, "negative lookahead"),
    ('a=~"(?<=foo)bar"', 4, "lookbehind"),
    ('a=~"(?<!foo)bar"', 4, "negative lookbehind"),
    ('a=~"(a)\\\\1"', 4, "backreference"),
    ('a=~"(?P<x>a)(?P=x)"', 4, "named backreference"),
    ('a=~"(a)?(?(1)b|c)"', 4, "conditional group"),
    ('a=~"(?>a+)"', 4, "atomic group"),
    ('a=~"a++"', 4, "possessive quantifier"),
    ('a=~"a{2}+"', 4, "possessive quantifier"),
    ('a=~"a(?#note)"', 4, "comment group"),
    ('a=~"(?x)a b"', 4, "inline flag group '(?x)'"),
    ('a=~"(?a)a"', 4, "inline flag group"),
    ('a=~"a\\\\Z"', 4, "escape \\Z"),
    ('a=~"\\\\u00e9"', 4, "escape \\u"),
    ('a=~"x{,3}"', 4, "no minimum"),
    ('a=~"[[:alpha:]]"', 4, "POSIX class"),
    ('a=~"[a[b]"', 4, "unescaped '['"),
    ('a=~"[a--b]"', 4, "unescaped '--'"),
    ('a=~"[a||b]"', 4, "unescaped '||'"),
    # exactly one matcher for parse_matcher
    ("", 1, "expected a matcher"),
    ("{}", 1, "expected a matcher"),
]


@pytest.mark.parametrize(("text", "column", "reason"), INVALID_TABLE)
def test_invalid_matcher(text: str, column: int, reason: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    err = caught.value
    assert err.text == text
    assert reason in err.reason
    assert err.column == column, err.reason
    assert str(err) == f"column {column}: {err.reason}"
    assert "\n" not in str(err)
    assert isinstance(err, ValueError)


def test_parse_matcher_rejects_two() -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher('a="1", b="2"')
    assert caught.value.column == 8
    assert "exactly one matcher, found 2" in caught.value.reason


@pytest.mark.parametrize(
    "pattern",
    [
        "a+?",
        "a*?",
        "a??",
        "(?:a|b)",
        "(?P<name>a)",
        "(?i)a",
        "(?ims)a",
        "(?-i:a)",
        "a{2,}",
        "a{2,3}?",
        "[]a]",
        "[^]a]",
        "[a-z-]",
        "\\[a\\]",
        "[\\[]",
        "\\x41",
        "\\0",
        "\\Aa",
        "a}+",
        "[+*?]+",
        "\\bword\\b",
    ],
)
def test_regexes_valid_in_both_dialects_are_accepted(pattern: str) -> None:
    matcher = Matcher("a", MatchType.REGEX, pattern)
    assert matcher.regex is not None


@pytest.mark.parametrize(
    "text",
    [
        'env="prod"',
        "env=prod",
        'env!="prod"',
        'alertname=~"Postgres(Down|Unreachable)"',
        'a!~".+"',
        'a=""',
        'msg="say \\"hi\\" \\\\ back\\nline\\ttab"',
        'msg="\\x00\\x1f\\x7f\\u200b\\U0001f642🙂é"',
        '"service.name"="api"',
        '"日本"!="x"',
        '"a\\"b"="c"',
        "{  env = prod  }",
        'port=~"\\\\d{2,4}"',
    ],
)
def test_str_round_trips(text: str) -> None:
    matcher = parse_matcher(text)
    again = parse_matcher(str(matcher))
    assert again == matcher
    assert str(again) == str(matcher)


def test_canonical_form() -> None:
    assert str(parse_matcher("alertname =~ Postgres.*")) == 'alertname=~"Postgres.*"'
    assert str(parse_matcher('"env"="prod"')) == 'env="prod"'
    assert str(parse_matcher('"service.name"="api"')) == '"service.name"="api"'
    assert str(parse_matcher('m="a\\"b\\\\c\\nd"')) == 'm="a\\"b\\\\c\\nd"'


def test_matcher_is_a_value() -> None:
    first = parse_matcher('a=~"x.*"')
    second = Matcher("a", MatchType.REGEX, "x.*")
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    assert first != Matcher("a", MatchType.NOT_REGEX, "x.*")
    assert parse_matcher('a="x"').regex is None
    with pytest.raises(AttributeError):
        first.value = "y"  # type: ignore[misc]


def test_match_type_is_its_operator() -> None:
    assert [str(t) for t in MatchType] == ["=", "!=", "=~", "!~"]
    assert MatchType("=~") is MatchType.REGEX


def test_constructing_an_invalid_matcher_directly_fails() -> None:
    with pytest.raises(MatcherError) as caught:
        Matcher("a", MatchType.REGEX, "(")
    assert caught.value.column == 4  # the value in the canonical text a=~"("
    assert "invalid regex" in caught.value.reason
    with pytest.raises(MatcherError, match="empty label name"):
        Matcher("", MatchType.EQUAL, "x")


def _go_quote(value: str) -> str:
    """The minimal escaping a playbook author would write by hand."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


label_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)


@given(name=label_names, value=label_values)
def test_quoted_value_matches_itself(name: str, value: str) -> None:
    matcher = parse_matcher(f"{name}={_go_quote(value)}")
    assert matcher.value == value
    assert matcher.matches({name: value})
    assert not matcher.matches({name: value + "x"})
    assert parse_matcher(f"{name}!={_go_quote(value)}").matches({name: value}) is False


@given(name=st.text(st.characters(exclude_categories=["Cs"]), min_size=1), value=label_values)
def test_any_matcher_round_trips_through_str(name: str, value: str) -> None:
    for kind in (MatchType.EQUAL, MatchType.NOT_EQUAL):
        matcher = Matcher(name, kind, value)
        assert parse_matcher(str(matcher)) == matcher


@given(value=label_values)
def test_escaped_literal_regex_matches_only_itself(value: str) -> None:
    # \xhh reads the same in RE2 and Python, so this pattern is the value and nothing else.
    pattern = "".join(f"\\x{ord(c):02x}" if c.isascii() and not c.isalnum() else c for c in value)
    matcher = Matcher("v", MatchType.REGEX, pattern)
    assert matcher.matches({"v": value})
    assert not matcher.matches({"v": value + "x"})
    assert not matcher.matches({"v": "x" + value})
