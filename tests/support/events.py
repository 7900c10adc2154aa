"""Building realistic inbound events for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnirouter.events import (
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
)


def identifier(kind: str, value: str, provider: str | None = None) -> Identifier:
    return Identifier(kind=IdentifierKind(kind), value=value, provider=provider)


def inbound(
    channel: str,
    *identifiers: Identifier,
    text: str = "hello",
    provider: str = "test",
    tenant: str = "default",
    kind: str = "message",
    at: datetime | None = None,
    minutes_ago: float | None = None,
) -> InteractionEvent:
    if at is None:
        at = datetime.now(UTC) - timedelta(minutes=minutes_ago or 0)
    return InteractionEvent(
        tenant=tenant,
        occurred_at=at,
        channel=Channel(channel),
        direction=Direction.INBOUND,
        kind=InteractionKind(kind),
        identifiers=identifiers,
        content=Content(text=text),
        provider=ProviderRefs(provider=provider),
    )
