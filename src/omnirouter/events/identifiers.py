"""Typed customer identifiers: the values identity resolution links customers by."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_IDENTIFIER_LENGTH",
    "MAX_RAW_IDENTIFIER_LENGTH",
    "Identifier",
    "IdentifierKind",
    "ProviderName",
    "RejectedIdentifier",
    "identifier_from_address",
]

# 320 = 64 (local part) + 1 + 255 (domain): the longest e-mail address RFC 3696 allows, and
# comfortably longer than any phone number, handle or account number we expect. The identity
# worker rejects longer values; the wire accepts up to MAX_RAW_IDENTIFIER_LENGTH so that one bad
# identifier costs only itself, not the whole event.
MAX_IDENTIFIER_LENGTH = 320
MAX_RAW_IDENTIFIER_LENGTH = 16_384

ProviderName = Annotated[
    str,
    # No ":" so a provider can sit inside an address ("social_handle:twitter:@x") unambiguously.
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
]
"""A provider or network name such as "twilio", "whatsapp" or "twitter"."""


class IdentifierKind(StrEnum):
    """What kind of value an identifier is."""

    EMAIL = "email"
    PHONE = "phone"
    CHAT_VISITOR = "chat_visitor"
    SOCIAL_HANDLE = "social_handle"
    ACCOUNT_NUMBER = "account_number"
    EXTERNAL_ID = "external_id"


class Identifier(BaseModel):
    """One way to reach or recognise a customer, e.g. a phone number or an e-mail address.

    On ``interactions.inbound`` the value is as the channel saw it ("+1 (555) 010-2345",
    "Ana@Example.com "): adapters stay simple and the identity worker normalizes every value in
    one place (E.164 phones, lower-cased e-mail), dropping the malformed ones with a reason. From
    ``interactions.resolved`` on, values are normalized.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IdentifierKind
    value: str = Field(max_length=MAX_RAW_IDENTIFIER_LENGTH)
    provider: ProviderName | None = Field(
        default=None,
        description='Network the value belongs to, e.g. "whatsapp", or "twitter" for a handle.',
    )

    @property
    def address(self) -> str:
        """The canonical "kind:value" string, used as the Kafka key of inbound events."""
        # Only handles are scoped by network: "@x" on two networks is two people, whereas a phone
        # reached over SMS and WhatsApp is one address and must land on one partition.
        if self.kind is IdentifierKind.SOCIAL_HANDLE and self.provider is not None:
            return f"{self.kind}:{self.provider}:{self.value}"
        return f"{self.kind}:{self.value}"


class RejectedIdentifier(BaseModel):
    """An identifier the identity worker could not use, and why (kept so nothing vanishes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IdentifierKind
    value_preview: str = Field(
        max_length=64, description="The start of the raw value (long values are cut)."
    )
    value_length: int = Field(ge=0)
    reason: str = Field(min_length=1)


def identifier_from_address(address: str) -> Identifier:
    """The identifier an address names: the inverse of :attr:`Identifier.address`."""
    kind_text, _, rest = address.partition(":")
    kind = IdentifierKind(kind_text)
    if kind is IdentifierKind.SOCIAL_HANDLE and ":" in rest:
        provider, _, value = rest.partition(":")
        return Identifier(kind=kind, value=value, provider=provider)
    return Identifier(kind=kind, value=rest)
