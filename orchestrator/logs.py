"""The service's logs: one JSON object per line (or plain text for a terminal), each with the
trace and span it happened in, and never a secret: every configured secret is masked out of
each record, whatever code wrote it (an exception from a client library included)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import orjson
from opentelemetry import trace

MASK = "***"
# Values shorter than this are not secrets worth masking (and masking them mangles the line).
SHORTEST_SECRET = 6


class SecretMask(logging.Filter):
    """Replaces every occurrence of a configured secret in a record's message, arguments and
    exception text before any handler formats it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted(
            {s for s in secrets if len(s) >= SHORTEST_SECRET}, key=len, reverse=True
        )

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info is not None:
            # Formatted (and masked) now: the traceback's text is where a token turns up.
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


class JsonLines(logging.Formatter):
    """`{"time", "level", "logger", "message", "trace_id", "span_id", "exception"}`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        if record.exc_info is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line).decode()


def configure_logging(
    *, json: bool, secrets: Iterable[str], level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Installs the one root handler the service logs through; returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(SecretMask(secrets))
    handler.setFormatter(
        JsonLines() if json else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
