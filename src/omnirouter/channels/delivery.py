"""What every outbound sender shares: the delivery it reports and the failures it raises.

Each channel's ``outbound.py`` has one ``send(event, settings, clients=None)`` following the
:class:`Sender` protocol. The dispatcher retries :class:`TransientDeliveryError` with backoff
and gives up at once on :class:`PermanentDeliveryError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import redis.asyncio as aioredis

from omnirouter.events import Identifier, IdentifierKind, InteractionEvent
from omnirouter.settings import Settings

__all__ = [
    "Delivery",
    "DeliveryError",
    "OutboundClients",
    "PermanentDeliveryError",
    "Sender",
    "TransientDeliveryError",
    "http_client",
    "post_to_provider",
    "recipient",
]

# Enough of a provider's error body to say what went wrong, without storing a page of HTML.
_MAX_ERROR_BODY = 300


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message the provider accepted.

    ``status`` is "sent", or "queued" when the channel holds it for a customer who is offline.
    """

    provider: str
    provider_message_id: str | None
    status: str = "sent"


class DeliveryError(Exception):
    """A delivery that did not happen; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        """Keep ``reason`` for the status record and the dead letter."""
        super().__init__(reason)
        self.reason = reason


class TransientDeliveryError(DeliveryError):
    """Worth retrying: connection errors, timeouts, HTTP 429 and 5xx, SMTP 4xx."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: the provider refused it, or there is nowhere to send it."""


@dataclass(frozen=True, slots=True)
class OutboundClients:
    """Connections a sender may reuse; the dispatcher opens them once per batch."""

    http: httpx.AsyncClient
    redis: aioredis.Redis


class Sender(Protocol):
    """Delivers one outbound interaction through one provider."""

    async def __call__(
        self,
        event: InteractionEvent,
        settings: Settings,
        clients: OutboundClients | None = None,
    ) -> Delivery:
        """Deliver ``event``, or raise a :class:`DeliveryError` subclass."""
        ...


def recipient(
    event: InteractionEvent, kind: IdentifierKind, *, network: str | None = None
) -> Identifier:
    """The customer's identifier of ``kind`` to deliver to, preferring one on ``network``.

    Raises:
        PermanentDeliveryError: the event carries no identifier of that kind.
    """
    candidates = [i for i in event.identifiers if i.kind is kind and i.value.strip()]
    if not candidates:
        raise PermanentDeliveryError(f"no {kind} address to deliver a {event.channel} reply to")
    preferred = [i for i in candidates if i.provider == network]
    return (preferred or candidates)[0]


@contextlib.asynccontextmanager
async def http_client(
    settings: Settings, clients: OutboundClients | None
) -> AsyncIterator[httpx.AsyncClient]:
    """The dispatcher's shared HTTP client, or a short-lived one for a sender called alone."""
    if clients is not None:
        yield clients.http
        return
    async with httpx.AsyncClient(timeout=settings.outbound.request_timeout_s) as client:
        yield client


async def post_to_provider(
    client: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    timeout_s: float,
    **request: Any,
) -> Mapping[str, Any]:
    """POST to a provider API and return its JSON answer, classifying every failure.

    Raises:
        TransientDeliveryError: no answer (connection error, timeout), HTTP 408, 429 or 5xx.
        PermanentDeliveryError: any other non-2xx answer.
    """
    try:
        response = await client.post(url, timeout=timeout_s, **request)
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(f"{provider} timed out: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"{provider} unreachable: {type(exc).__name__}") from exc
    if response.is_success:
        try:
            body = response.json()
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}
    detail = f"{provider} answered HTTP {response.status_code}: {response.text[:_MAX_ERROR_BODY]}"
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise TransientDeliveryError(detail)
    raise PermanentDeliveryError(detail)
