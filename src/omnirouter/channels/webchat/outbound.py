"""Replies to a web chat visitor through Redis, for the gateway that holds their socket.

The contract with ``routes``: the reply (an :class:`AgentReply` as JSON) is published on
``ChatKeys.channel``; when no gateway listens, it waits on ``ChatKeys.pending`` (the last
:data:`PENDING_MAX` replies, for :data:`PENDING_TTL_S`) until the visitor reconnects.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import redis.exceptions

from omnirouter.channels.delivery import (
    Delivery,
    OutboundClients,
    PermanentDeliveryError,
    TransientDeliveryError,
    recipient,
)
from omnirouter.channels.webchat import protocol
from omnirouter.events import IdentifierKind, InteractionEvent
from omnirouter.redis_keys import ChatKeys
from omnirouter.security import redis_client
from omnirouter.settings import Settings

PROVIDER = protocol.PROVIDER
PENDING_MAX = 100
PENDING_TTL_S = 7 * 86400


def reply_frame(event: InteractionEvent) -> bytes:
    """The JSON the visitor's gateway forwards to the widget."""
    return (
        protocol.AgentReply(
            event_id=str(event.event_id),
            text=event.content.text,
            agent_id=event.agent_id,
            at=event.occurred_at,
        )
        .model_dump_json()
        .encode()
    )


@contextlib.asynccontextmanager
async def _redis(
    settings: Settings, clients: OutboundClients | None
) -> AsyncIterator[aioredis.Redis]:
    if clients is not None:
        yield clients.redis
        return
    if settings.redis.url is None:
        raise PermanentDeliveryError("web chat replies need OMNIROUTER_REDIS__URL")
    client = redis_client(settings.redis, settings.redis.url)
    try:
        yield client
    finally:
        await client.aclose()


async def send(
    event: InteractionEvent, settings: Settings, clients: OutboundClients | None = None
) -> Delivery:
    """Publish ``event`` to the visitor's live channel, or queue it when nobody listens.

    The delivery's status is "sent" when a gateway received it, "queued" otherwise; the id is
    the event id (the widget dedupes on it).

    Raises:
        TransientDeliveryError: Redis unreachable or timed out.
        PermanentDeliveryError: no chat visitor to send to, nothing to send, or Redis refused.
    """
    visitor = recipient(event, IdentifierKind.CHAT_VISITOR)
    if not event.content.text.strip():
        raise PermanentDeliveryError("nothing to send: the reply has no text")
    keys = ChatKeys(settings.redis.key_prefix, event.tenant, visitor.value)
    frame = reply_frame(event)
    try:
        async with _redis(settings, clients) as client:
            listeners = await client.publish(keys.channel, frame)
            if listeners:
                return Delivery(PROVIDER, str(event.event_id), "sent")
            # Both keys share the visitor's hash slot, so this is one atomic step on a cluster.
            async with client.pipeline(transaction=True) as pipe:
                pipe.rpush(keys.pending, frame)
                pipe.ltrim(keys.pending, -PENDING_MAX, -1)
                pipe.expire(keys.pending, PENDING_TTL_S)
                await pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise TransientDeliveryError(f"redis unreachable: {type(exc).__name__}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise PermanentDeliveryError(f"redis refused the reply: {exc}") from exc
    return Delivery(PROVIDER, str(event.event_id), "queued")
