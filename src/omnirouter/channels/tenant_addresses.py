"""The ``tenants`` settings section: each tenant's (brand's) own business addresses.

A message written to one of these addresses belongs to that tenant, and the tenant's replies
leave from them. Values are stored normalized (E.164 numbers, lower-case e-mail), so the
directory (:mod:`omnirouter.channels.tenancy`) compares like with like and a number written
two ways is still recognised as claimed twice.

This module is imported by ``settings.py``; it must not import the settings in turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from email.utils import parseaddr
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from omnirouter.pipeline.identity.normalize import (
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
)

__all__ = ["SenderChannel", "TenantAddresses", "address_claimed_twice", "e164", "email_domain"]

SenderChannel = Literal["sms", "whatsapp", "email", "meta_whatsapp"]
"""What a reply is sent through: Twilio SMS / WhatsApp numbers, an e-mail address, or a
WhatsApp Cloud API phone_number_id."""

# A Graph API object id: digits only. Not a phone number, so never normalized as one.
_META_ID = re.compile(r"^\d{1,40}$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def e164(number: str) -> str:
    """A configured business number in E.164 form; it must carry its country code.

    Raises:
        ValueError: not an international (``+``) number, or not a possible number.
    """
    text = number.strip().removeprefix("whatsapp:")
    if not text.startswith("+"):
        raise ValueError(f"{number!r} is not an E.164 number (+<country code><number>)")
    # The region is never used for a "+" number; it only satisfies the signature.
    return normalize_phone(text, "US")


def email_domain(entry: str) -> str:
    """``@Acme.Example`` as ``@acme.example`` (a whole domain a tenant receives mail for).

    Raises:
        ValueError: not a host name.
    """
    domain = entry.strip().removeprefix("@").rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{entry!r} is not a mail domain") from None
    if not _DOMAIN.match(domain):
        raise ValueError(f"{entry!r} is not a mail domain")
    return f"@{domain}"


def _numbers(values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(e164(value) for value in values)
    except InvalidIdentifier as exc:
        raise ValueError(str(exc)) from None


def _graph_id(value: str) -> str:
    if not _META_ID.match(value.strip()):
        raise ValueError(f"{value!r} is not a phone_number_id (digits)")
    return value.strip()


class TenantAddresses(BaseModel):
    """One tenant's business addresses per channel, and the ones its replies are sent from.

    A ``*_from`` left unset is the first address of its list; a tenant with no address for a
    channel replies there from the global ``outbound.*`` sender.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sms_numbers: tuple[str, ...] = Field(default=(), description="E.164 numbers taking SMS.")
    whatsapp_numbers: tuple[str, ...] = Field(
        default=(), description="E.164 WhatsApp sender numbers (Twilio or Cloud API)."
    )
    voice_numbers: tuple[str, ...] = Field(default=(), description="E.164 numbers taking calls.")
    email_addresses: tuple[str, ...] = Field(
        default=(),
        description='Support addresses ("help@acme.example") and whole domains ("@acme.example").',
    )
    meta_phone_number_ids: tuple[str, ...] = Field(
        default=(), description="WhatsApp Cloud API phone_number_ids."
    )
    sms_from: str | None = Field(default=None, description="Default: the first sms_numbers.")
    whatsapp_from: str | None = Field(
        default=None, description="Default: the first whatsapp_numbers."
    )
    email_from: str | None = Field(
        default=None,
        description='May carry a display name ("Acme Support <help@acme.example>"); default: '
        "the first full address of email_addresses.",
    )
    meta_whatsapp_from: str | None = Field(
        default=None, description="Default: the first meta_phone_number_ids."
    )
    twilio_account_sid: str | None = Field(
        default=None,
        description="The Twilio (sub-)account owning this tenant's numbers: its webhooks are "
        "verified, and its replies sent, with that account's token. Default: the global "
        "ingress/outbound Twilio account.",
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, description="The auth token of twilio_account_sid."
    )
    meta_access_token: SecretStr | None = Field(
        default=None,
        description="The WhatsApp Cloud API access token for this tenant's phone_number_ids "
        "(a brand in a Meta business of its own). Default: outbound.meta_access_token.",
    )

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT_SID.match(value):
            raise ValueError(f"{value!r} is not a Twilio account SID (AC + 32 hex digits)")
        return value

    @model_validator(mode="after")
    def _account_with_its_token(self) -> TenantAddresses:
        if (self.twilio_account_sid is None) != (self.twilio_auth_token is None):
            raise ValueError("twilio_account_sid and twilio_auth_token go together")
        return self

    @field_validator("sms_numbers", "whatsapp_numbers", "voice_numbers")
    @classmethod
    def _e164_numbers(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return _numbers(values)

    @field_validator("sms_from", "whatsapp_from")
    @classmethod
    def _e164_sender(cls, value: str | None) -> str | None:
        return None if value is None else _numbers((value,))[0]

    @field_validator("email_addresses")
    @classmethod
    def _addresses_or_domains(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        entries = []
        for value in values:
            if value.strip().startswith("@"):
                entries.append(email_domain(value))
                continue
            try:
                entries.append(normalize_email(value))
            except InvalidIdentifier as exc:
                raise ValueError(f"{value!r}: {exc}") from None
        return tuple(entries)

    @field_validator("email_from")
    @classmethod
    def _one_mailbox(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            normalize_email(parseaddr(value)[1])
        except InvalidIdentifier as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value.strip()

    @field_validator("meta_phone_number_ids")
    @classmethod
    def _graph_ids(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_graph_id(value) for value in values)

    @field_validator("meta_whatsapp_from")
    @classmethod
    def _graph_sender(cls, value: str | None) -> str | None:
        return None if value is None else _graph_id(value)

    def reply_from(self, channel: SenderChannel) -> str | None:
        """The address this tenant's replies through ``channel`` are sent from, if it has one."""
        if channel == "sms":
            return self.sms_from or next(iter(self.sms_numbers), None)
        if channel == "whatsapp":
            return self.whatsapp_from or next(iter(self.whatsapp_numbers), None)
        if channel == "meta_whatsapp":
            return self.meta_whatsapp_from or next(iter(self.meta_phone_number_ids), None)
        full = (entry for entry in self.email_addresses if not entry.startswith("@"))
        return self.email_from or next(full, None)

    def claims(self) -> Iterator[tuple[str, str]]:
        """Every (namespace, address) this tenant owns; senders count: customers answer them.

        Namespaces: ``phone`` (whatever the channel: a number belongs to one brand), ``email``
        (addresses and ``@domains``), ``meta`` (phone_number_ids).
        """
        for number in (*self.sms_numbers, *self.whatsapp_numbers, *self.voice_numbers):
            yield "phone", number
        for sender in (self.sms_from, self.whatsapp_from):
            if sender is not None:
                yield "phone", sender
        for entry in self.email_addresses:
            yield "email", entry
        if self.email_from is not None:
            yield "email", normalize_email(parseaddr(self.email_from)[1])
        for graph_id in self.meta_phone_number_ids:
            yield "meta", graph_id
        if self.meta_whatsapp_from is not None:
            yield "meta", self.meta_whatsapp_from


def address_claimed_twice(tenants: Mapping[str, TenantAddresses]) -> str | None:
    """A sentence naming an address two tenants both claim and both tenants, or None."""
    owners: dict[tuple[str, str], str] = {}
    for tenant, addresses in tenants.items():
        for claim in addresses.claims():
            owner = owners.setdefault(claim, tenant)
            if owner != tenant:
                return f"{claim[1]} is claimed by two tenants: {owner!r} and {tenant!r}"
    return None
