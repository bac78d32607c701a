"""Sandboxed Jinja rendering of playbook templates (titles, channel names, messages) for actions
and of report documents (postmortems).

Alert labels and annotations are attacker-controlled, so templates run in jinja2's immutable
sandbox with strict undefined names, and in Slack mrkdwn every interpolated value is escaped
while the author's literal text is left alone. A value that passes through `{{ }}` twice (a macro
call or a `{% set %}` block printed again) is escaped twice in mrkdwn: it shows `&lt;` rather
than opening a hole.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = [
    "Template",
    "TemplateError",
    "compile_template",
    "escape_mrkdwn",
    "render_document",
    "render_text",
]

_TEMPLATE_FILENAME = "<template>"


class TemplateError(ValueError):
    """A template that does not compile or render; `line` is within the template when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.line = line
        self.reason = reason


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters; anything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Template:
    """A compiled template; cheap to render many times."""

    def __init__(self, source: str, mrkdwn: bool, compiled: jinja2.Template) -> None:
        self.source = source
        self.mrkdwn = mrkdwn
        self._compiled = compiled
        # jinja copies its globals (a ChainMap) into every render's context; copying them once
        # here and rendering with a shared context saves that on each of the many renders.
        self._globals = dict(compiled.globals)

    def __repr__(self) -> str:
        return f"Template({self.source!r}, mrkdwn={self.mrkdwn})"

    def _render(self, variables: dict[str, Any]) -> str:
        """Template.render's own steps, minus the globals copy (see __init__)."""
        compiled = self._compiled
        context = compiled.new_context(variables, shared=True)
        try:
            return compiled.environment.concat(compiled.root_render_func(context))
        except Exception:
            compiled.environment.handle_exception()  # re-raises with the template's line
        return _unreachable()

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self._render({**self._globals, **context})
        except TemplateError as err:
            raise TemplateError(err.reason, err.line or _template_line(err)) from None
        except jinja2.TemplateError as err:
            raise TemplateError(err.message or type(err).__name__, _template_line(err)) from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as err:
            raise TemplateError(f"{type(err).__name__}: {err}", _template_line(err)) from None


def _unreachable() -> str:
    raise AssertionError("jinja's handle_exception always raises")


def compile_template(source: str, *, mrkdwn: bool = False) -> Template:
    return _compile(source, mrkdwn)


def render_text(source: str, context: Mapping[str, Any], *, mrkdwn: bool = False) -> str:
    return compile_template(source, mrkdwn=mrkdwn).render(context)


@functools.lru_cache(maxsize=512)
def _compile(source: str, mrkdwn: bool) -> Template:
    return Template(source, mrkdwn, _from_string(_MRKDWN if mrkdwn else _PLAIN, source))


def _from_string(environment: jinja2.Environment, source: str) -> jinja2.Template:
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(err.message or "syntax error", err.lineno) from None
    except jinja2.TemplateError as err:
        raise TemplateError(err.message or type(err).__name__) from None


def render_document(source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    """Renders a report document (a postmortem): Markdown as written, or HTML with every
    interpolated value escaped unless a filter such as `markdown` made it safe."""
    return _compile_document(source, html).render(context)


@functools.lru_cache(maxsize=32)
def _compile_document(source: str, html: bool) -> Template:
    environment = _HTML_DOCUMENT if html else _MARKDOWN_DOCUMENT
    return Template(source, False, _from_string(environment, source))


def _template_line(err: BaseException) -> int | None:
    """The innermost template line in the traceback, which jinja rewrites to point at the source."""
    line = None
    tb: TracebackType | None = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# --- filters -----------------------------------------------------------------------------------


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def human_duration(value: dt.timedelta | float, *, seconds: bool = True) -> str:
    """Human text for a span, coarse to fine: 3900 seconds reads "1h 5m". Without `seconds`,
    a span of a minute or more leaves its seconds out (3905 seconds also reads "1h 5m")."""
    if isinstance(value, bool) or not isinstance(value, dt.timedelta | int | float):
        raise TemplateError(f"duration expects a timedelta or seconds, got {type(value).__name__}")
    total = int(value.total_seconds() if isinstance(value, dt.timedelta) else value)
    sign, total = ("-", -total) if total < 0 else ("", total)
    units = _UNITS if seconds or total < 60 else _UNITS[:-1]
    parts = []
    for unit, size in units:
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + " ".join(parts) if parts else "0s"


def _truncate_chars(value: object, length: int) -> str:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise TemplateError(f"truncate_chars needs a positive length, got {length!r}")
    text = str(value)
    return text if len(text) <= length else text[: length - 1] + "…"


def _iso(value: dt.datetime | str) -> str:
    """ISO 8601 in UTC to the second; strings are read as ISO timestamps first."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise TemplateError(f"iso: {value!r} is not an ISO 8601 timestamp") from None
    if not isinstance(value, dt.datetime):
        raise TemplateError(f"iso expects a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise TemplateError(f"iso: {value} has no time zone")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finalize_mrkdwn(value: object) -> str:
    return escape_mrkdwn(str(value))


def _environment(mrkdwn: bool) -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=_finalize_mrkdwn if mrkdwn else None,
    )
    # No range(), lipsum(), namespace() etc.: templates see only the context they are given.
    environment.globals.clear()
    environment.filters.update(duration=human_duration, truncate_chars=_truncate_chars, iso=_iso)
    return environment


_PLAIN = _environment(mrkdwn=False)
_MRKDWN = _environment(mrkdwn=True)


def _md_cell(value: object) -> str:
    """A value made safe for one cell of a Markdown table: a pipe or line break would split it."""
    return " ".join(str(value).split()).replace("|", "\\|")


# Raw HTML in the text is shown as text, never passed through: postmortems quote alert payloads.
_MARKDOWN_IT = MarkdownIt("commonmark", {"html": False}).enable("table")


def _markdown(value: object) -> Markup:
    return Markup(_MARKDOWN_IT.render(str(value)))  # noqa: S704 - markdown-it escapes raw HTML


def _document_environment(html: bool) -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals.clear()
    environment.filters.update(
        duration=human_duration, truncate_chars=_truncate_chars, iso=_iso, md_cell=_md_cell
    )
    if html:
        environment.filters["markdown"] = _markdown
    return environment


_MARKDOWN_DOCUMENT = _document_environment(html=False)
_HTML_DOCUMENT = _document_environment(html=True)
