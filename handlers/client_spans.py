"""One OpenTelemetry CLIENT span per HTTP request to a vendor, a child of the current span (the
delivery's), so an alert's trace shows each call to Slack and PagerDuty and how it went.

Written here because the stock instrumentations don't fit these clients: the aiohttp one has no
release for our OpenTelemetry SDK, and PagerDuty's client speaks httpx2, a fork the httpx one does
not know. Attributes follow the stable HTTP client conventions, minus whatever could carry a
secret: headers and bodies (where tokens and routing keys travel) are never recorded, query values
(people's emails, incident keys) are redacted, and a failure is recorded by its exception's type,
never its message."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import SplitResult, urlsplit, urlunsplit

import aiohttp
import httpx2
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

SCOPE = "orchestrator"  # the scope the service's own spans record under (orchestrator.instruments)
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Nothing here injects a traceparent into the requests: the vendors are third parties, and our
# trace ids are none of their business.


def start_client_span(
    tracer: Tracer, peer: str, method: str, url: str, *, name_by_path: bool = False
) -> Span:
    """A started span for one request to `peer` (its peer.service). With `name_by_path`, the
    URL path names the span and is its url.template: only for a vendor whose paths are a small
    fixed set (Slack's /api/<method>); ids in a path would make every span name unique."""
    parts = urlsplit(url)
    method = method.upper()
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "server.port": parts.port or _DEFAULT_PORTS.get(parts.scheme, 0),
        "url.full": _scrubbed(parts),
        "peer.service": peer,
    }
    name = method
    if name_by_path:
        name = f"{method} {parts.path}"
        attributes["url.template"] = parts.path
    return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def end_client_span(
    span: Span, *, status: int | None = None, error: BaseException | None = None
) -> None:
    """Ends the span with the response's status, or with the exception the request raised."""
    error_type = None
    if error is not None:
        error_type = type(error).__qualname__  # its message may echo the request
    elif status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            error_type = str(status)
    if error_type is not None:
        span.set_attribute("error.type", error_type)
        span.set_status(StatusCode.ERROR)
    span.end()


def _scrubbed(parts: SplitResult) -> str:
    """The URL without user info or query values: the names of the arguments stay."""
    host = parts.netloc.rpartition("@")[2]
    names = (pair.partition("=")[0] for pair in parts.query.split("&") if pair)
    query = "&".join(f"{name}=REDACTED" for name in names)
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def aiohttp_tracing(
    peer: str, *, tracer: Tracer | None = None, name_by_path: bool = False
) -> aiohttp.TraceConfig:
    """For `aiohttp.ClientSession(trace_configs=[...])`: a span from each request's start to its
    response's headers or its failure, kept in the request's trace_config_ctx meanwhile."""
    spans = tracer or trace.get_tracer(SCOPE)
    config = aiohttp.TraceConfig()

    async def started(
        _session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        url = str(params.url)
        ctx.span = start_client_span(spans, peer, params.method, url, name_by_path=name_by_path)

    async def ended(
        _session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        end_client_span(ctx.span, status=params.response.status)

    async def failed(
        _session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        end_client_span(ctx.span, error=params.exception)

    config.on_request_start.append(started)
    config.on_request_end.append(ended)
    config.on_request_exception.append(failed)
    return config


class _SpanTransport(httpx2.BaseTransport):
    """An httpx2 transport that sends through `inner`, each request in a span."""

    def __init__(self, inner: httpx2.BaseTransport, peer: str, tracer: Tracer) -> None:
        self._inner, self._peer, self._tracer = inner, peer, tracer

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        span = start_client_span(self._tracer, self._peer, request.method, str(request.url))
        try:
            response = self._inner.handle_request(request)
        except BaseException as error:
            end_client_span(span, error=error)
            raise
        end_client_span(span, status=response.status_code)
        return response

    def close(self) -> None:
        self._inner.close()


def trace_httpx2(client: httpx2.Client, peer: str, *, tracer: Tracer | None = None) -> None:
    """Wraps every transport `client` sends through, its own and any proxy's it mounted from the
    environment, so each request gets a span. httpx2 has no public way to wrap the transports it
    builds, and handing it ours would turn its environment proxies off; the official httpx
    instrumentation patches these same two attributes."""
    spans = tracer or trace.get_tracer(SCOPE)
    client._transport = _SpanTransport(client._transport, peer, spans)
    client._mounts = {
        pattern: None if mounted is None else _SpanTransport(mounted, peer, spans)
        for pattern, mounted in client._mounts.items()
    }
