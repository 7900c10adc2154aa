"""Typed customer identifiers: the values identity resolution links customers by."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "MAX_IDENTIFIER_LENGTH",
    "Identifier",
    "IdentifierKind",
    "ProviderName",
]

# 320 = 64 (local part) + 1 + 255 (domain): the longest e-mail address RFC 3696 allows, and
# comfortably longer than any phone number, handle or account number we expect.
MAX_IDENTIFIER_LENGTH = 320

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Shape only: real normalization (lower-casing, IDNA, phonenumbers) is the identity worker's job.
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")

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
    """One way to reach or recognise a customer, e.g. a phone number or an e-mail address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)
    provider: ProviderName | None = Field(
        default=None,
        description='Network the value belongs to, e.g. "whatsapp", or "twitter" for a handle.',
    )

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        if not self.value.strip():
            raise ValueError("identifier value must not be blank")
        if self.kind is IdentifierKind.PHONE and not _E164.match(self.value):
            raise ValueError("phone must be in E.164 form, e.g. +15550102345")
        if self.kind is IdentifierKind.EMAIL and not _EMAIL_SHAPE.match(self.value):
            raise ValueError("email must be local@domain with no whitespace")
        return self

    @property
    def address(self) -> str:
        """The canonical "kind:value" string, used as the Kafka key of inbound events."""
        # Only handles are scoped by network: "@x" on two networks is two people, whereas a phone
        # reached over SMS and WhatsApp is one address and must land on one partition.
        if self.kind is IdentifierKind.SOCIAL_HANDLE and self.provider is not None:
            return f"{self.kind}:{self.provider}:{self.value}"
        return f"{self.kind}:{self.value}"
