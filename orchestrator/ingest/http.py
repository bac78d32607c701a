"""The HTTP intake: Alertmanager and Grafana webhooks and CloudEvents are validated at the door,
then handed to an IntakeSink (the pipeline, or the alerts Kafka topic)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, Protocol

import uvicorn
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from orchestrator.clock import Clock
from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.formats.cloudevents import is_json_media_type
from orchestrator.ingest.normalize import (
    MAX_PAYLOAD_BYTES,
    NormalizeError,
    decode_payload,
    normalize,
)
from orchestrator.instruments import SCOPE, parent
from orchestrator.pipeline import Pipeline
from orchestrator.store.protocols import DeadLetter

__all__ = [
    "ALERTS_PATH",
    "IntakeSink",
    "PipelineSink",
    "binary_cloudevent_to_structured",
    "create_intake_app",
    "serve",
]

logger = logging.getLogger(__name__)

ALERTS_PATH = "/api/v1/alerts"
JSON = "application/json"
CLOUDEVENTS_JSON = "application/cloudevents+json"
# Credentials must never reach a dead letter: operators read, export and replay its headers.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
CE_HEADER_PREFIX = "ce-"
# normalize() reads UTF-8 only; a sender declaring another charset would be misread, not rejected.
UTF8_NAMES = frozenset({"utf-8", "utf8"})
CE_REQUIRED = ("specversion", "id", "source", "type")
# Long enough for an in-flight pipeline transaction to commit, short enough for a pod's
# termination grace period.
GRACEFUL_SHUTDOWN_SECONDS = 10


class IntakeSink(Protocol):
    """Where accepted payloads go: straight into the pipeline (embedded default) or onto the
    alerts Kafka topic (production; implemented elsewhere, in orchestrator/ingest/kafka.py)."""

    async def accept(
        self, raw: bytes, *, format: SourceFormat | None, origin: str, headers: dict[str, str]
    ) -> int:
        """Takes a payload that already passed validation; returns how many alerts it held.

        Raising means "not taken, try again later": the sender gets a 503 and retries."""
        ...


class PipelineSink:
    """Records accepted payloads through the pipeline in the request, so a 202 means committed."""

    def __init__(
        self, pipeline: Pipeline, on_accepted: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._pipeline = pipeline
        self._on_accepted = on_accepted

    async def accept(
        self, raw: bytes, *, format: SourceFormat | None, origin: str, headers: dict[str, str]
    ) -> int:
        report = await self._pipeline.ingest_bytes(raw, origin, format=format, headers=headers)
        if report.error is not None:
            # The door validated these bytes already, so this is a normalizer that changed its
            # mind; the pipeline kept them as a dead letter, and a retry would only add another.
            logger.error("%s: accepted at the door but dead-lettered: %s", origin, report.error)
            return 0
        if self._on_accepted is not None:
            try:
                await self._on_accepted()
            except Exception:
                # The alerts are committed; failing the request would only make the sender
                # resend them, while the dispatcher still finds the outbox on its next pass.
                logger.exception("%s: on_accepted callback failed", origin)
        # An alert matched by several playbooks has one outcome per playbook; count it once.
        return len({outcome.alert_id for outcome in report.outcomes})


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    media_type, _, rest = content_type.partition(";")
    params = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"').lower()
    return media_type.strip().lower(), params


def _is_binary_cloudevent(headers: Mapping[str, str], media_type: str) -> bool:
    # The HTTP binding: a cloudevents media type means structured mode whatever the headers say.
    return f"{CE_HEADER_PREFIX}specversion" in headers and not media_type.startswith(
        "application/cloudevents"
    )


def binary_cloudevent_to_structured(headers: Mapping[str, str], body: bytes) -> bytes:
    """The structured-mode JSON envelope of a binary-mode CloudEvent, so everything downstream
    of the door (pipeline, Kafka topic, dead letters of later stages) sees one shape.

    `headers` are lowercase. Every `ce-` header becomes an attribute of the same name,
    percent-decoded as the HTTP binding requires; Content-Type becomes `datacontenttype`; the
    body, which must be a JSON object, becomes `data`."""
    for name in CE_REQUIRED:
        if f"{CE_HEADER_PREFIX}{name}" not in headers:
            raise NormalizeError(
                f"{CE_HEADER_PREFIX}{name}", "required header is missing (CloudEvents binary mode)"
            )
    envelope: dict[str, Any] = {
        name.removeprefix(CE_HEADER_PREFIX): urllib.parse.unquote(value)
        for name, value in headers.items()
        if name.startswith(CE_HEADER_PREFIX) and len(name) > len(CE_HEADER_PREFIX)
    }
    if "content-type" in headers:
        envelope["datacontenttype"] = headers["content-type"]
    try:
        envelope["data"] = decode_payload(body)
    except NormalizeError as err:
        raise NormalizeError("data", f"request body: {err.reason}") from None
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    # Content-Length may be absent (chunked) or wrong, so the count that matters is our own.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class _Intake:
    def __init__(
        self,
        sink: IntakeSink,
        dead_letters: Callable[[DeadLetter], Awaitable[int]],
        clock: Clock,
        token: str | None,
        max_body: int,
        readiness: Callable[[], Awaitable[dict[str, bool]]] | None,
        tracer: trace.Tracer,
    ) -> None:
        self.tracer = tracer
        self.sink = sink
        self.dead_letters = dead_letters
        self.clock = clock
        self.token = token.encode() if token is not None else None
        self.max_body = max_body
        self.readiness = readiness

    def _unauthorized(self, request: Request) -> Response | None:
        if self.token is None:
            return None
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _error(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.strip().encode(), self.token):
            return _error(
                401, "invalid bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return None

    def receiver(self, forced: SourceFormat | None) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint for one alerts route; `forced` is the format its path names, if any."""
        takes_cloudevents = forced in (None, SourceFormat.CLOUDEVENTS)
        allowed = (JSON, CLOUDEVENTS_JSON) if takes_cloudevents else (JSON,)

        async def receive(request: Request) -> Response:
            origin = f"http:{request.url.path}"
            if (denied := self._unauthorized(request)) is not None:
                logger.warning("%s: rejected unauthenticated request", origin)
                return denied
            headers = {
                name: value for name, value in request.headers.items() if name not in SECRET_HEADERS
            }
            media_type, params = _media_type(headers.get("content-type", ""))
            binary = takes_cloudevents and _is_binary_cloudevent(headers, media_type)
            acceptable = is_json_media_type(media_type) if binary else media_type in allowed
            if not acceptable or params.get("charset", "utf-8") not in UTF8_NAMES:
                shown = headers.get("content-type", "none")[:100]
                return _error(
                    415, f"unsupported content type {shown!r}; send {' or '.join(allowed)}"
                )
            try:
                raw = await _read_body(request, self.max_body)
            except ClientDisconnect:
                logger.warning("%s: client went away before sending the whole body", origin)
                return Response(status_code=400)
            if raw is None:
                return _error(413, f"request body is over the limit of {self.max_body} bytes")
            fmt = forced
            if binary or media_type == CLOUDEVENTS_JSON:
                fmt = SourceFormat.CLOUDEVENTS
            # The sender's trace (a traceparent header) goes on through the alert's journey.
            with self.tracer.start_as_current_span(
                f"POST {request.url.path}",
                context=parent(headers.get("traceparent")),
                kind=SpanKind.SERVER,
            ):
                return await self._ingest(raw, fmt, origin, headers, binary=binary)

        return receive

    async def _ingest(
        self,
        raw: bytes,
        fmt: SourceFormat | None,
        origin: str,
        headers: dict[str, str],
        *,
        binary: bool,
    ) -> Response:
        received_at = self.clock.now()
        try:
            payload = binary_cloudevent_to_structured(headers, raw) if binary else raw
            normalized = normalize(payload, received_at=received_at, format=fmt)
        except NormalizeError as err:
            return await self._reject(err, raw, origin, headers, received_at)
        try:
            accepted = await self.sink.accept(
                payload, format=normalized.format, origin=origin, headers=headers
            )
        except Exception:
            logger.exception("%s: the alert sink failed; the sender will retry", origin)
            return _error(503, "alerts cannot be accepted right now; retry later")
        logger.info("%s: accepted %d alert(s)", origin, accepted)
        return JSONResponse({"accepted": accepted}, status_code=202)

    async def _reject(
        self,
        err: NormalizeError,
        raw: bytes,
        origin: str,
        headers: dict[str, str],
        received_at: dt.datetime,
    ) -> Response:
        # The bytes as received, not a binary CloudEvent's envelope: the ce- headers are kept
        # with them, so the original request can be rebuilt and replayed.
        letter = DeadLetter(origin, str(err), raw, received_at, dict(headers))
        try:
            letter_id = await self.dead_letters(letter)
        except Exception:
            # A 400 would make the sender drop a payload we failed to keep; a 503 makes it retry.
            logger.exception("%s: could not store the dead letter for: %s", origin, err)
            return _error(503, "the payload is invalid but could not be recorded; retry later")
        logger.warning("%s: dead letter %d: %s", origin, letter_id, err)
        return JSONResponse(
            {"error": str(err), "field": err.field, "dead_letter_id": letter_id}, status_code=400
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if self.readiness is None:
            return JSONResponse({"status": "ready", "checks": {}})
        try:
            checks = await self.readiness()
        except Exception:
            logger.exception("readiness check failed")
            return JSONResponse({"status": "not ready", "checks": {}}, status_code=503)
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )


def create_intake_app(
    sink: IntakeSink,
    *,
    dead_letters: Callable[[DeadLetter], Awaitable[int]],
    clock: Clock,
    token: str | None = None,
    max_body: int = MAX_PAYLOAD_BYTES,
    readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    metrics: CollectorRegistry | None = None,
    tracer: trace.Tracer | None = None,
) -> Starlette:
    """The intake's ASGI app. `token` set means every alerts route needs `Bearer <token>`;
    the health routes stay open for probes."""
    if token is not None and not token.strip():
        raise ValueError("token must not be empty; pass None to turn authentication off")
    if max_body <= 0:
        raise ValueError("max_body must be positive")
    intake = _Intake(
        sink, dead_letters, clock, token, max_body, readiness, tracer or trace.get_tracer(SCOPE)
    )
    routes = [Route(ALERTS_PATH, intake.receiver(None), methods=["POST"])]
    routes += [
        Route(f"{ALERTS_PATH}/{fmt.value}", intake.receiver(fmt), methods=["POST"])
        for fmt in SourceFormat
    ]
    routes += [
        Route("/healthz", intake.healthz, methods=["GET"]),
        Route("/readyz", intake.readyz, methods=["GET"]),
    ]
    if metrics is not None:
        # Open like the health routes: what a Prometheus scrape reads holds no secret.
        routes.append(Route("/metrics", _scrape(metrics), methods=["GET"]))
    # Slack and PagerDuty call back on the same port; they verify their own signatures.
    return Starlette(routes=[*routes, *extra_routes])


def _scrape(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    async def scrape(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return scrape


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service owns SIGTERM/SIGINT and stops every component together through `stop`.
        yield


async def serve(app: Starlette, *, host: str, port: int, stop: asyncio.Event) -> None:
    """Serves `app` until `stop` is set, then lets in-flight requests finish and returns.

    Raises OSError when the address cannot be bound."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _Server(config)

    async def stop_when_told() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stop_when_told())
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; a library call must not.
        raise OSError(f"could not serve the HTTP intake on {host}:{port}") from None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
