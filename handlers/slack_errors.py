"""Slack Web API failures sorted into what the dispatcher needs: retry later, or give up."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from orchestrator.actions import ActionResult

# `ok: false` answers that say "not now" rather than "never".
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Slack sends `ratelimited` on HTTP 200 without Retry-After; its rate windows are a minute long.
DEFAULT_RATELIMIT_WAIT = 30.0


class SlackCallError(Exception):
    """One failed Web API call, classified; `body` is Slack's answer (per-user invite errors)."""

    def __init__(
        self,
        method: str,
        error: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after
        self.body: Mapping[str, Any] = body or {}

    def result(self) -> ActionResult:
        return ActionResult.failure(
            f"slack {self}", retryable=self.retryable, retry_after=self.retry_after
        )


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After in seconds from any header mapping (aiohttp's is case-insensitive, dicts
    are not), or None when absent or not a number of seconds."""
    if not hasattr(headers, "items"):
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def classify(method: str, err: SlackApiError) -> SlackCallError:
    response = err.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    body: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    error = str(body.get("error") or f"HTTP {status}")
    if status == 429 or error == "ratelimited":
        wait = retry_after_seconds(getattr(response, "headers", None))
        return SlackCallError(
            method,
            error,
            retryable=True,
            retry_after=DEFAULT_RATELIMIT_WAIT if wait is None else wait,
            body=body,
        )
    retryable = status >= 500 or error in TRANSIENT_ERRORS
    return SlackCallError(method, error, retryable=retryable, body=body)


async def call(method: str, request: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    """Awaits one Web API call; every failure comes out as a SlackCallError."""
    try:
        return await request
    except SlackApiError as err:
        raise classify(method, err) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        # Never the exception text: a proxy error can echo the request, headers included.
        raise SlackCallError(
            method, f"network error ({type(err).__name__})", retryable=True
        ) from None
    except SlackClientError as err:
        raise SlackCallError(method, f"{type(err).__name__}", retryable=False) from None
