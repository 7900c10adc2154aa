"""Building realistic inbound events for tests."""

from __future__ import annotations

from datetime import UTC, datetime

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
) -> InteractionEvent:
    return InteractionEvent(
        tenant=tenant,
        occurred_at=datetime.now(UTC),
        channel=Channel(channel),
        direction=Direction.INBOUND,
        kind=InteractionKind(kind),
        identifiers=identifiers,
        content=Content(text=text),
        provider=ProviderRefs(provider=provider),
    )
