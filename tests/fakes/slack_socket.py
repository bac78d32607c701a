"""Socket Mode for the fake Slack: a WebSocket listener that pushes envelopes and collects acks.

uvicorn speaks WebSocket only with the `websockets` or `wsproto` package, and neither is a
dependency, so the socket is served by aiohttp (already needed by slack_sdk's async clients) on
a second port of 127.0.0.1, inside the fake's own thread and event loop. The client never sees
the difference: it learns the URL from `apps.connections.open`, exactly as with Slack.

Everything here runs on that loop; the public methods hop onto it so tests on another thread
and loop can call them safely.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
# Only slash commands may answer with a message in their ack, as on Slack.
ACCEPTS_RESPONSE_PAYLOAD = frozenset({"slash_commands"})
SHUTDOWN_SECONDS = 5.0


class SocketModeHub:
    """The Socket Mode side of the fake: tickets, live connections, envelopes and their acks."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.acks: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def connections(self) -> int:
        """How many clients are connected now."""
        return len(self._sockets)

    async def open_url(self) -> str:
        """A fresh `ws://` URL with a one-time ticket; starts the listener on first use. Runs on
        the server's loop, which is captured here for the thread-safe methods below."""
        if self._runner is None:
            self._loop = asyncio.get_running_loop()
            # An Event binds to the first loop that waits on it; a restarted fake has a new loop.
            self._connected = asyncio.Event()
            app = web.Application()
            app.router.add_get("/link/", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self._runner, self._url = runner, f"ws://{host}:{port}/link/"
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{self._url}?ticket={ticket}&app_id={self.app_id}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self._tickets.discard(ticket)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        # Registered only after hello, so no envelope can overtake it.
        self._sockets.append(socket)
        self._connected.set()
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self._receive(json.loads(message.data))
        finally:
            self._sockets.remove(socket)
            if not self._sockets:
                self._connected.clear()
        return socket

    def _receive(self, message: dict[str, Any]) -> None:
        self.received.append(message)
        envelope_id = message.get("envelope_id")
        if not isinstance(envelope_id, str):
            return
        self.acks[envelope_id] = message
        pending = self._pending.get(envelope_id)
        if pending is not None and not pending.done():
            pending.set_result(message)

    def push_envelope(
        self,
        type_: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        timeout: float = 5.0,
    ) -> str:
        """Sends an envelope to the newest connection (waiting up to `timeout` for one) and
        returns its id. Blocks briefly; call it from any thread but the server's."""
        if type_ not in ENVELOPE_TYPES:
            raise ValueError(f"envelope type {type_!r} is not one of {sorted(ENVELOPE_TYPES)}")
        if accepts_response_payload is None:
            accepts_response_payload = type_ in ACCEPTS_RESPONSE_PAYLOAD
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type_,
            "accepts_response_payload": accepts_response_payload,
        }
        if type_ == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": ""}
        sent = asyncio.run_coroutine_threadsafe(self._send(envelope, timeout), self._server_loop())
        sent.result(timeout + 1)
        return envelope_id

    async def _send(self, envelope: dict[str, Any], seconds: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), seconds)
        except TimeoutError:
            raise RuntimeError(f"no Socket Mode client connected within {seconds}s") from None
        loop = asyncio.get_running_loop()
        self._pending[envelope["envelope_id"]] = loop.create_future()
        await self._sockets[-1].send_json(envelope)

    # The deadline is enforced on the server's loop, where the ack arrives, hence the argument.
    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The ack the client sent for `envelope_id` ({"envelope_id": ..., "payload": ...}),
        awaited without blocking the caller's loop, where the client under test runs."""
        waiting = asyncio.run_coroutine_threadsafe(
            self._ack(envelope_id, timeout), self._server_loop()
        )
        return await asyncio.wrap_future(waiting)

    async def _ack(self, envelope_id: str, seconds: float) -> dict[str, Any]:
        pending = self._pending.get(envelope_id)
        if pending is None:
            raise KeyError(f"envelope {envelope_id} was never pushed")
        try:
            return await asyncio.wait_for(asyncio.shield(pending), seconds)
        except TimeoutError:
            raise TimeoutError(f"no ack for envelope {envelope_id} within {seconds}s") from None

    def close(self) -> None:
        """Closes every connection and the listener; a no-op if Socket Mode was never used."""
        loop = self._loop
        if self._runner is None or loop is None or loop.is_closed():
            return
        closing = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        closing.result(SHUTDOWN_SECONDS * 2)

    async def _shutdown(self) -> None:
        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _server_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("no client has called apps.connections.open yet")
        return self._loop
