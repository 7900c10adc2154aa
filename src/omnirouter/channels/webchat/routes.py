"""Web chat endpoints: the embeddable widget, a demo page, and the visitor's socket."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from importlib import resources

from fastapi import APIRouter, HTTPException, Response, WebSocket, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.webchat import protocol
from omnirouter.channels.webchat.protocol import (
    Ack,
    ChatMessage,
    ErrorFrame,
    FrameError,
    Identified,
    Identify,
    VisitorProfile,
)
from omnirouter.events import DEFAULT_TENANT, Identifier, IdentifierKind
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.publishing import PublishFailed
from omnirouter.logs import get_logger
from omnirouter.redis_keys import ChatKeys

log = get_logger(__name__)

PROFILE_TTL_S = 180 * 86400
"""How long a visitor's e-mail/phone is remembered after they last left it."""
PENDING_RECHECK_S = 10.0
"""How often an idle socket looks at the pending list again.

The dispatcher PUBLISHes, then RPUSHes when nobody listened; a socket subscribing between the
two would otherwise leave that reply waiting until the visitor's next connect.
"""
_RESUBSCRIBE_MAX_S = 30.0
_STATIC = resources.files("omnirouter.channels.webchat") / "static"
# A closed socket shows up as one of these depending on who noticed first: Starlette, the
# ASGI server, or the transport underneath.
_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)


class ChatSocket:
    """One open widget connection: visitor frames in, acknowledgements and replies out."""

    def __init__(
        self, websocket: WebSocket, context: ChannelContext, *, visitor_id: str, tenant: str
    ) -> None:
        """Serve ``visitor_id`` of ``tenant`` on an accepted ``websocket``."""
        self._socket = websocket
        self._context = context
        self._visitor_id = visitor_id
        self._tenant = tenant
        self._keys = ChatKeys(context.settings.redis.key_prefix, tenant, visitor_id)
        self._profile = VisitorProfile()
        # Acknowledgements and relayed replies are sent from two tasks; one frame at a time.
        self._send_lock = asyncio.Lock()

    async def serve(self) -> None:
        """Receive frames and relay replies until the visitor or the server closes the socket."""
        self._profile = await self._remembered_profile()
        receiving = asyncio.create_task(self._receive_frames())
        relaying = asyncio.create_task(self._relay_replies())
        try:
            done, _ = await asyncio.wait((receiving, relaying), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiving, relaying):
                task.cancel()
            for task in (receiving, relaying):
                with contextlib.suppress(asyncio.CancelledError, *_SOCKET_GONE):
                    await task
        for task in done:
            if task.cancelled() or task.exception() is None:
                continue
            error = task.exception()
            if not isinstance(error, _SOCKET_GONE):
                log.error("chat socket failed", visitor_id=self._visitor_id, error=repr(error))
                # The widget reconnects with backoff; 1011: the server hit an unexpected error.
                with contextlib.suppress(*_SOCKET_GONE):
                    await self._socket.close(code=status.WS_1011_INTERNAL_ERROR)

    async def _send(self, frame: BaseModel) -> None:
        async with self._send_lock:
            await self._socket.send_text(frame.model_dump_json())

    # --- visitor -> gateway -----------------------------------------------------------------

    async def _receive_frames(self) -> None:
        while True:
            message = await self._socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            await self._handle(raw if raw is not None else message.get("bytes") or b"")

    async def _handle(self, raw: str | bytes) -> None:
        try:
            frame = protocol.parse_client_frame(raw)
        except FrameError as exc:
            await self._refuse(raw, exc)
            return
        if isinstance(frame, Identify):
            await self._identify(frame)
        else:
            await self._publish(frame, raw)

    async def _refuse(self, raw: str | bytes, error: FrameError) -> None:
        if error.malformed:
            await self._dead_letter(raw, error.reason)
        await self._send(ErrorFrame(client_message_id=error.client_message_id, reason=error.reason))

    async def _dead_letter(self, raw: str | bytes, reason: str) -> None:
        address = Identifier(kind=IdentifierKind.CHAT_VISITOR, value=self._visitor_id).address
        try:
            await self._context.intake.publisher.dead_letter(
                raw.encode() if isinstance(raw, str) else raw,
                reason=reason,
                error_type="InvalidChatFrame",
                key=address,
                headers={"provider": protocol.PROVIDER, "tenant": self._tenant},
            )
        except PublishFailed as exc:
            # The visitor is told the frame was refused either way; nothing was acknowledged.
            log.warning("chat frame not dead-lettered", visitor_id=self._visitor_id, error=str(exc))

    async def _publish(self, message: ChatMessage, raw: str | bytes) -> None:
        try:
            event = protocol.normalize_message(
                message,
                visitor_id=self._visitor_id,
                profile=self._profile,
                received_at=datetime.now(UTC),
                tenant=self._tenant,
            )
        except NormalizationError as exc:
            await self._refuse(
                raw,
                FrameError(str(exc), client_message_id=message.client_message_id, malformed=True),
            )
            return
        try:
            await self._context.intake.accept(
                event,
                provider=protocol.PROVIDER,
                message_id=protocol.dedupe_id(self._visitor_id, message.client_message_id),
            )
        except HTTPException as exc:
            await self._send(
                ErrorFrame(
                    client_message_id=message.client_message_id,
                    reason=str(exc.detail),
                    # 503: Kafka did not acknowledge; the widget sends the same message again.
                    retryable=exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE,
                )
            )
            return
        await self._send(Ack(client_message_id=message.client_message_id, event_id=event.event_id))

    async def _identify(self, frame: Identify) -> None:
        self._profile = self._profile.updated(frame)
        try:
            async with self._context.redis.pipeline(transaction=True) as pipe:
                for field, value in self._profile.to_redis().items():
                    pipe.hset(self._keys.profile, field, value)
                pipe.expire(self._keys.profile, PROFILE_TTL_S)
                await pipe.execute()
        except RedisError as exc:
            # This connection still uses the identifiers; only a later visit forgets them.
            log.warning("chat profile not stored", visitor_id=self._visitor_id, error=str(exc))
        await self._send(Identified(email=self._profile.email, phone=self._profile.phone))

    async def _remembered_profile(self) -> VisitorProfile:
        try:
            return VisitorProfile.from_redis(await self._context.redis.hgetall(self._keys.profile))
        except RedisError as exc:
            log.warning("chat profile unavailable", visitor_id=self._visitor_id, error=str(exc))
            return VisitorProfile()

    # --- dispatcher -> visitor ----------------------------------------------------------------

    async def _relay_replies(self) -> None:
        """Forward replies published for the visitor; resubscribe when Redis comes back."""
        backoff = 0.5
        while True:
            pubsub = self._context.redis.pubsub()
            try:
                await pubsub.subscribe(self._keys.channel)
                await self._listen(pubsub)
            except RedisError as exc:
                log.warning("chat replies unavailable", visitor_id=self._visitor_id, error=str(exc))
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _RESUBSCRIBE_MAX_S)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=PENDING_RECHECK_S)
            if message is None or message["type"] == "subscribe":
                # Subscribed (every reply from now on reaches us) or idle: what was published
                # while nobody listened waits in the pending list.
                await self._deliver_pending()
            elif message["type"] == "message":
                await self._forward(message["data"])

    async def _deliver_pending(self) -> None:
        while True:
            raw = await self._context.redis.lpop(self._keys.pending)
            if not isinstance(raw, bytes | str):  # None: nothing waits (a list only with count)
                return
            try:
                await self._forward(raw)
            except _SOCKET_GONE:
                # Put it back first in line: the visitor's next connection delivers it.
                await self._context.redis.lpush(self._keys.pending, raw)
                raise

    async def _forward(self, raw: bytes | str) -> None:
        try:
            reply = protocol.parse_agent_reply(raw)
        except ValidationError as exc:
            log.error(
                "chat reply not in the dispatcher's format",
                visitor_id=self._visitor_id,
                error=str(exc),
                raw=(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))[:500],
            )
            return
        await self._send(reply)


def build_router(context: ChannelContext) -> APIRouter:
    """The web chat channel's routes for the gateway, under ``/chat``."""
    router = APIRouter(prefix="/chat", tags=["webchat"])
    widget_js = (_STATIC / "widget.js").read_bytes()
    demo_html = (_STATIC / "demo.html").read_bytes()
    allowed_origins = frozenset(context.settings.ingress.webchat_allowed_origins)

    @router.get("/widget.js")
    async def widget_script() -> Response:
        """The embeddable chat widget (one ``<script>`` tag, no build step)."""
        return Response(
            widget_js,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @router.get("/demo", response_class=HTMLResponse)
    async def demo_page() -> HTMLResponse:
        """A page that embeds the widget the way a customer's site does."""
        return HTMLResponse(demo_html)

    @router.websocket("/ws")
    async def chat_socket(websocket: WebSocket) -> None:
        """A visitor's chat: ``?visitor_id=…&tenant=…``; JSON frames as in ``protocol``."""
        visitor_id = websocket.query_params.get("visitor_id", "")
        tenant = websocket.query_params.get("tenant", DEFAULT_TENANT)
        problem = protocol.connection_problem(visitor_id, tenant)
        origin = websocket.headers.get("origin")
        if problem is None and allowed_origins and origin not in allowed_origins:
            problem = f"origin {origin!r} may not open the chat"
        if problem is not None:
            # Closing before accepting answers the handshake with 403.
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=problem)
            return
        await websocket.accept()
        await ChatSocket(websocket, context, visitor_id=visitor_id, tenant=tenant).serve()

    return router
