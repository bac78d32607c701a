"""What every CLI command shares: settings from global options, the app's lifetime, output."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console

from orchestrator.clock import Clock, SystemClock
from orchestrator.settings import Settings
from orchestrator.store.sql import SqlStore

if TYPE_CHECKING:
    from orchestrator.app import App

T = TypeVar("T")


def _console(stderr: bool = False) -> Console:
    """Rich assumes 80 columns when output is not a terminal; logs and files can take more,
    and the tables need it. COLUMNS, when set, still wins."""
    probe = Console(stderr=stderr)
    if probe.is_terminal or "COLUMNS" in os.environ:
        return probe
    return Console(stderr=stderr, width=120)


console = _console()
errors = _console(stderr=True)


@dataclasses.dataclass
class Options:
    database_url: str | None = None
    playbooks_dir: Path | None = None

    def settings(self) -> Settings:
        overrides: dict[str, Any] = {}
        if self.database_url:
            overrides["database_url"] = self.database_url
        if self.playbooks_dir:
            overrides["playbooks_dir"] = self.playbooks_dir
        return Settings(**overrides)


def options(ctx: typer.Context) -> Options:
    found = ctx.find_object(Options)
    return found if found is not None else Options()


def run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def valid_settings(ctx: typer.Context, *, with_kafka_topics: bool = False) -> Settings:
    """The settings, or one clear message and exit code 2. `with_kafka_topics` also parses
    the topic list, which only the app (the service's intake) reads."""
    try:
        settings = options(ctx).settings()
        if with_kafka_topics:
            settings.kafka_topic_formats()
    except (ValidationError, ValueError) as err:
        raise fail(f"invalid settings: {_one_line(err)}", 2) from None
    return settings


@asynccontextmanager
async def opened_store(ctx: typer.Context) -> AsyncIterator[tuple[SqlStore, Clock]]:
    """Just the store (and the clock), for commands that only read it: no playbooks loaded,
    no handlers built. Bad settings are one clear message and exit code 2, as for the app."""
    settings = valid_settings(ctx)
    store = SqlStore(settings.database_url)
    await store.open()
    try:
        yield store, SystemClock()
    finally:
        await store.close()


@asynccontextmanager
async def opened_app(ctx: typer.Context, **kwargs: Any) -> AsyncIterator[App]:
    """Builds the app, turning configuration problems into one clear message and exit code 2."""
    # Imported here, as in every command that builds the app: the pipeline, engine and
    # playbooks are a good part of start-up, and the commands that only read the store
    # (opened_store) never need them.
    from orchestrator.app import ConfigurationError, build_app  # noqa: PLC0415
    from orchestrator.playbook.loader import PlaybookLoadError  # noqa: PLC0415

    settings = valid_settings(ctx, with_kafka_topics=True)
    try:
        app = await build_app(settings, **kwargs)
    except PlaybookLoadError as err:
        for problem in err.problems:
            errors.print(str(problem), highlight=False, markup=False, soft_wrap=True)
        raise fail(
            f"refusing to start: {len(err.problems)} problem(s) in {settings.playbooks_dir}", 2
        ) from None
    except ConfigurationError as err:
        raise fail(str(err), 2) from None
    try:
        yield app
    finally:
        await app.close()


def _one_line(err: Exception) -> str:
    if isinstance(err, ValidationError):
        parts = []
        for detail in err.errors(include_url=False):
            name = "ORCH_" + "_".join(str(p) for p in detail["loc"]).upper()
            parts.append(f"{name}: {detail['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)
    return str(err)


def plain(value: Any) -> Any:
    """Turns domain values (dataclasses, enums, datetimes, bytes) into JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def print_json(value: Any) -> None:
    """Indented JSON on stdout. orjson writes dataclasses, enums and datetimes as plain() would
    (a year of incident records took json eight seconds); plain() takes what it does not know."""
    typer.echo(orjson.dumps(value, default=plain, option=_JSON_OPTIONS).decode())


_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


def when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def short(value: dt.datetime | None) -> str:
    """Month-day and time: what a table has room for."""
    return value.astimezone(dt.UTC).strftime("%m-%d %H:%M:%S") if value else "—"
