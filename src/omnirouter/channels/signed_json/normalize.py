"""Signed JSON interactions as interaction events (pure); the format is in the package docstring."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
    MAX_TEXT_CHARS,
    Channel,
    Content,
    Direction,
    Identifier,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
)
from omnirouter.ingress.publishing import provider_event_id


class SignedInteraction(BaseModel):
    """The body of a signed JSON request: one inbound interaction."""

    # extra="forbid": a misspelt field is an error the sender sees (422), not lost data.
    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str | None = Field(default=None, min_length=1, max_length=256)
    channel: Channel = Channel.API
    kind: InteractionKind = InteractionKind.MESSAGE
    occurred_at: AwareDatetime | None = None
    identifiers: tuple[Identifier, ...] = Field(min_length=1)
    display_name: str | None = None
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    subject: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _inbound_kind(self) -> Self:
        if self.kind is InteractionKind.DELIVERY_STATUS:
            raise ValueError("delivery_status describes our outbound messages, not an inbound one")
        return self


def dedupe_provider(key_id: str) -> str:
    """The namespace of a sender's message ids: two senders may both use "42"."""
    return f"signed:{key_id}"


def normalize_interaction(
    raw: bytes, key_id: str, received_at: datetime, *, tenant: str = "default"
) -> InteractionEvent:
    """The interaction a sender signed with key ``key_id``.

    Raises:
        NormalizationError: the body is not a valid interaction, or the key id is not usable
            as a provider name.
    """
    try:
        body = SignedInteraction.model_validate_json(raw)
    except ValidationError as exc:
        raise NormalizationError(f"not a signed interaction: {describe(exc)}") from None
    try:
        refs = ProviderRefs(
            provider=key_id,
            message_id=body.message_id,
            thread_id=body.thread_id,
            in_reply_to=body.in_reply_to,
        )
    except ValidationError:
        raise NormalizationError(
            f"key id {key_id!r} is not usable as a provider name "
            "(lower-case letters, digits, '.', '_' and '-')"
        ) from None
    return InteractionEvent(
        # Without a message_id, retries cannot be recognised: every request is a new event.
        event_id=(
            provider_event_id(dedupe_provider(key_id), body.message_id)
            if body.message_id
            else uuid.uuid4()
        ),
        tenant=tenant,
        occurred_at=body.occurred_at or received_at,
        received_at=received_at,
        channel=body.channel,
        direction=Direction.INBOUND,
        kind=body.kind,
        identifiers=body.identifiers,
        display_name=body.display_name,
        content=Content(text=body.text, subject=body.subject),
        provider=refs,
        attributes=body.attributes,
    )


def describe(exc: ValidationError, *, limit: int = 5) -> str:
    """The first validation errors as "field: problem" (JSON paths, as the sender wrote them)."""
    problems = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
