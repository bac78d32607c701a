"""Slack over Socket Mode: slash commands, button clicks and events arrive on a WebSocket the
app opens, so no public request URL is needed. The socket is authenticated by the app-level
token, so there is no signature to check; each envelope goes to the same SlackResponder as the
HTTP routes and is acknowledged once it has been handled."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator.ingest.slack import SlackResponder

log = logging.getLogger(__name__)

FAILED = {"response_type": "ephemeral", "text": "Sorry, that did not work; please try again."}


class SlackSocketMode:
    """Runs between `start()` and `stop()`; slack_sdk reconnects on its own in between."""

    def __init__(
        self,
        responder: SlackResponder,
        *,
        app_token: str,
        bot_token: str,
        base_url: str | None = None,
    ) -> None:
        if not app_token.startswith("xapp-"):
            raise ValueError("Socket Mode needs the app-level token (xapp-…)")
        self._responder = responder
        self._app_token = app_token
        self._bot_token = bot_token
        self._base_url = base_url
        self._client: SocketModeClient | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        # Built here: the client starts tasks and an aiohttp session on the running loop.
        web = (
            AsyncWebClient(token=self._bot_token, base_url=self._base_url)
            if self._base_url
            else AsyncWebClient(token=self._bot_token)
        )
        client = SocketModeClient(app_token=self._app_token, web_client=web)
        client.socket_mode_request_listeners.append(self._on_request)
        self._client = client
        await client.connect()  # type: ignore[no-untyped-call]  # slack_sdk leaves it untyped

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]

    async def _on_request(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        answer: dict[str, Any] | None = None
        try:
            answer = await self.handle(request.type, request.payload)
        except Exception:  # one bad envelope must not end the connection's listener
            log.exception("Socket Mode %s envelope failed", request.type)
            answer = FAILED if request.type == "slash_commands" else None
        # Acked after handling: a command's answer travels in its ack.
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, answer))

    async def handle(self, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """What the ack carries for an envelope of `kind`: the command's answer, else None."""
        if kind == "slash_commands":
            return await self._responder.command(payload)
        if kind == "interactive":
            await self._responder.interaction(payload)
        elif kind == "events_api":
            await self._responder.event(payload)
        else:
            log.info("ignored a Socket Mode envelope of type %s", kind)
        return None
