"""Sandboxed template rendering: untrusted values stay inert, author errors surface with a line."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestrator.playbook.render import (
    Template,
    TemplateError,
    compile_template,
    escape_mrkdwn,
    human_duration,
    render_text,
)


def context(**labels: str) -> dict[str, Any]:
    return {
        "labels": {"service": "billing", **labels},
        "annotations": {"summary": "db down"},
        "incident": {"number": 42, "duration": dt.timedelta(minutes=65)},
    }


def test_plain_rendering() -> None:
    text = render_text("inc-{{ incident.number }}-{{ labels.service }}", context())
    assert text == "inc-42-billing"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil|click>", "&lt;https://evil|click&gt;"),
        ("a & b", "a &amp; b"),
        ("&lt;", "&amp;lt;"),
        ("*bold* _it_ `code`", "*bold* _it_ `code`"),
        ("plain", "plain"),
    ],
)
def test_mrkdwn_escapes_every_value(value: str, expected: str) -> None:
    assert render_text("{{ labels.x }}", context(x=value), mrkdwn=True) == expected


def test_without_mrkdwn_values_are_untouched() -> None:
    assert render_text("{{ labels.x }}", context(x="<!channel> & co")) == "<!channel> & co"


def test_authors_literal_text_is_not_escaped() -> None:
    source = "<https://runbooks.example/db|runbook> & <!subteam^S1> for {{ labels.x }}"
    rendered = render_text(source, context(x="<b>"), mrkdwn=True)
    assert rendered == "<https://runbooks.example/db|runbook> & <!subteam^S1> for &lt;b&gt;"


def test_authors_link_around_a_value_cannot_be_hijacked() -> None:
    source = "<https://grafana.example/d/{{ labels.x }}|dashboard>"
    rendered = render_text(source, context(x="x|evil> <https://evil"), mrkdwn=True)
    assert rendered.count("<") == 1
    assert rendered.count(">") == 1


def test_filtered_and_computed_values_are_escaped_too() -> None:
    assert render_text("{{ labels.x | upper }}", context(x="<a>"), mrkdwn=True) == "&lt;A&gt;"
    assert render_text("{{ labels.x ~ '!' }}", context(x="<a>"), mrkdwn=True) == "&lt;a&gt;!"
    assert render_text("{{ '<' }}", {}, mrkdwn=True) == "&lt;"
    rendered = render_text(
        "{% for v in labels.values() %}{{ v }};{% endfor %}", {"labels": {"a": "<x>"}}, mrkdwn=True
    )
    assert rendered == "&lt;x&gt;;"


@pytest.mark.parametrize("mrkdwn", [False, True])
def test_values_are_not_evaluated_as_templates(mrkdwn: bool) -> None:
    rendered = render_text("{{ labels.x }}", context(x="{{ 7*7 }}"), mrkdwn=mrkdwn)
    assert rendered == "{{ 7*7 }}"
    rendered = render_text("{{ labels.x }}", context(x="{% raw %}{{ 1 }}"), mrkdwn=mrkdwn)
    assert rendered == "{% raw %}{{ 1 }}"


@pytest.mark.parametrize(
    "source",
    [
        "{{ labels.__class__.__mro__ }}",
        "{{ labels.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ labels.items.__self__ }}",
        "{{ incident.duration.__class__ }}",
        "{{ labels.__init__.__globals__ }}",
        "{{ (labels|attr('__class__')) }}",
        "{{ labels.update({'service': 'x'}) }}",
        "{{ labels.pop('service') }}",
        "{{ labels.clear() }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ range(10) }}",
        "{{ namespace() }}",
        "{{ self.__init__ }}",
    ],
)
def test_sandbox_escapes_raise(source: str) -> None:
    ctx = context()
    with pytest.raises(TemplateError):
        render_text(source, ctx, mrkdwn=True)
    assert ctx["labels"]["service"] == "billing"


def test_undefined_variable_is_named() -> None:
    with pytest.raises(TemplateError) as caught:
        render_text("{{ labesl.service }}", context())
    assert "labesl" in str(caught.value)
    assert caught.value.line == 1


def test_undefined_attribute_is_named() -> None:
    with pytest.raises(TemplateError) as caught:
        render_text("line one\n{{ labels.servcie }}", context())
    assert "servcie" in caught.value.reason
    assert caught.value.line == 2
    assert str(caught.value) == f"line 2: {caught.value.reason}"


def test_undefined_is_caught_even_when_not_printed() -> None:
    with pytest.raises(TemplateError, match="nope"):
        render_text("{% if nope %}x{% endif %}", {})


def test_undefined_raises_at_render_not_compile() -> None:
    template = compile_template("{{ missing }}")
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        template.render({})
    assert template.render({"missing": "here"}) == "here"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("{{ labels.service ", 1),
        ("ok\n{{ }}", 2),
        ("a\nb\n{% if labels.x %}", 3),
        ("{% for %}", 1),
        ("{{ labels | nosuchfilter }}", 1),
        ("x\n\n{% endif %}", 3),
    ],
)
def test_syntax_error_names_the_line(source: str, line: int) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template(source)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert isinstance(caught.value, ValueError)


def test_runtime_errors_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError") as caught:
        render_text("\n{{ 1 / 0 }}", {})
    assert caught.value.line == 2
    with pytest.raises(TemplateError):
        render_text("{{ labels.service + 1 }}", context())


def test_template_error_without_line() -> None:
    err = TemplateError("went wrong")
    assert str(err) == "went wrong"
    assert err.line is None
    assert err.reason == "went wrong"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.timedelta(minutes=65), "1h 5m"),
        (dt.timedelta(seconds=3905), "1h 5m 5s"),
        (dt.timedelta(days=2, hours=3), "2d 3h"),
        (dt.timedelta(0), "0s"),
        (dt.timedelta(milliseconds=400), "0s"),
        (dt.timedelta(seconds=-90), "-1m 30s"),
        (3900, "1h 5m"),
        (59.9, "59s"),
        (86400, "1d"),
    ],
)
def test_duration_filter(value: object, expected: str) -> None:
    assert render_text("{{ d | duration }}", {"d": value}) == expected


def test_duration_filter_rejects_other_types() -> None:
    with pytest.raises(TemplateError, match="duration expects"):
        render_text("{{ d | duration }}", {"d": "5m"})
    with pytest.raises(TemplateError, match="duration expects"):
        render_text("{{ d | duration }}", {"d": True})


@pytest.mark.parametrize(
    ("value", "length", "expected"),
    [
        ("abcdef", 4, "abc…"),
        ("abcd", 4, "abcd"),
        ("abc", 4, "abc"),
        ("abcdef", 1, "…"),
        ("", 3, ""),
        (12345, 3, "12…"),
    ],
)
def test_truncate_chars_filter(value: object, length: int, expected: str) -> None:
    assert render_text("{{ v | truncate_chars(n) }}", {"v": value, "n": length}) == expected


def test_truncate_chars_escapes_after_cutting() -> None:
    rendered = render_text("{{ v | truncate_chars(3) }}", {"v": "<<<<<"}, mrkdwn=True)
    assert rendered == "&lt;&lt;…"


@pytest.mark.parametrize("length", [0, -1, "3", True])
def test_truncate_chars_rejects_bad_length(length: object) -> None:
    with pytest.raises(TemplateError, match="positive length"):
        render_text("{{ 'abc' | truncate_chars(n) }}", {"n": length})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC), "2026-01-01T03:00:00Z"),
        (dt.datetime(2026, 1, 1, 3, 0, 5, 999, tzinfo=dt.UTC), "2026-01-01T03:00:05Z"),
        (
            dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-01-01T01:00:00Z",
        ),
        ("2026-01-01T03:00:00+01:00", "2026-01-01T02:00:00Z"),
        ("2026-01-01T03:00:00Z", "2026-01-01T03:00:00Z"),
    ],
)
def test_iso_filter(value: object, expected: str) -> None:
    assert render_text("{{ t | iso }}", {"t": value}) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (dt.datetime(2026, 1, 1), "no time zone"),
        ("2026-01-01T03:00:00", "no time zone"),
        ("yesterday", "not an ISO 8601 timestamp"),
        (1767236400, "expects a datetime"),
    ],
)
def test_iso_filter_rejects(value: object, reason: str) -> None:
    with pytest.raises(TemplateError, match=reason):
        render_text("{{ t | iso }}", {"t": value})


def test_builtin_filters_still_work() -> None:
    rendered = render_text(
        "{{ labels.service | upper }} {{ labels.team | default('none') }}",
        {"labels": {"service": "billing"}},
    )
    assert rendered == "BILLING none"


def test_compiled_templates_are_cached_per_source_and_mode() -> None:
    first = compile_template("{{ labels.x }}", mrkdwn=True)
    assert compile_template("{{ labels.x }}", mrkdwn=True) is first
    plain = compile_template("{{ labels.x }}")
    assert plain is not first
    assert isinstance(first, Template)
    assert first.source == "{{ labels.x }}"
    assert first.render(context(x="<")) == "&lt;"
    assert plain.render(context(x="<")) == "<"


def test_errors_are_not_cached() -> None:
    for _ in range(2):
        with pytest.raises(TemplateError):
            compile_template("{{ broken")


def test_render_does_not_mutate_the_context() -> None:
    ctx = context()
    render_text("{% set labels = 1 %}{{ labels }}", ctx)
    assert ctx["labels"]["service"] == "billing"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("plain", "plain"),
        ("&", "&amp;"),
        ("<>", "&lt;&gt;"),
        ("&lt;", "&amp;lt;"),
        ("<!channel> & <@U1>", "&lt;!channel&gt; &amp; &lt;@U1&gt;"),
        ("\"quotes\" 'stay'", "\"quotes\" 'stay'"),
    ],
)
def test_escape_mrkdwn(text: str, expected: str) -> None:
    assert escape_mrkdwn(text) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (61, "1m"),
        (3605, "1h"),
        (3900, "1h 5m"),
        (90061, "1d 1h 1m"),
    ],
)
def test_human_duration_without_seconds_drops_them_past_a_minute(
    seconds: int, expected: str
) -> None:
    assert human_duration(dt.timedelta(seconds=seconds), seconds=False) == expected
