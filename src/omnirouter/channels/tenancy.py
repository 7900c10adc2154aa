"""Which tenant (brand) provider traffic belongs to, and which address its replies leave from.

Pure: built once from the ``tenants`` settings, then a dictionary look-up per message. Every
brand owns its numbers, WhatsApp senders and support addresses; a message belongs to the brand
the customer wrote to. An address no tenant claims belongs to the default tenant, which is
also what every message gets when no tenants are configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses

from omnirouter.channels.tenant_addresses import SenderChannel, TenantAddresses, email_domain
from omnirouter.events import DEFAULT_TENANT
from omnirouter.pipeline.identity.normalize import (
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
)
from omnirouter.settings import Settings

__all__ = ["SenderChannel", "TenantDirectory", "reply_sender"]


@dataclass(frozen=True, slots=True)
class TenantDirectory:
    """Business address -> tenant, for every channel; values as ``TenantAddresses`` stores them."""

    tenants: Mapping[str, TenantAddresses] = field(default_factory=dict)
    default_region: str = "US"
    _phones: Mapping[str, str] = field(default_factory=dict)
    _emails: Mapping[str, str] = field(default_factory=dict)
    _meta_ids: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantDirectory:
        """The directory of ``settings.tenants`` (empty: everything is the default tenant)."""
        return cls.of(settings.tenants, default_region=settings.identity.default_region)

    @classmethod
    def of(
        cls, tenants: Mapping[str, TenantAddresses], *, default_region: str = "US"
    ) -> TenantDirectory:
        """The directory of ``tenants`` (already checked: no address has two tenants)."""
        by_namespace: dict[str, dict[str, str]] = {"phone": {}, "email": {}, "meta": {}}
        for tenant, addresses in tenants.items():
            for namespace, address in addresses.claims():
                by_namespace[namespace][address] = tenant
        return cls(
            dict(tenants),
            default_region,
            by_namespace["phone"],
            by_namespace["email"],
            by_namespace["meta"],
        )

    def for_phone(self, to: str | None) -> str:
        """The tenant owning the number a message or call was sent to (``whatsapp:`` allowed).

        A number belongs to one brand whatever channel it is listed under, so a WhatsApp
        message to a number listed only as an SMS number still reaches that brand.
        """
        number = self._number(to)
        return self._phones.get(number, DEFAULT_TENANT) if number else DEFAULT_TENANT

    def for_email(self, recipients: Iterable[str]) -> str:
        """The tenant of the first recipient that is one of its addresses or in its domains.

        Each recipient is checked as an exact address first, then by its domain (exactly:
        ``@acme.example`` does not cover ``eu.acme.example``). Values may be header values
        with display names and several mailboxes.
        """
        for address in _mailboxes(recipients):
            tenant = self._emails.get(address) or self._emails.get(_domain_of(address))
            if tenant is not None:
                return tenant
        return DEFAULT_TENANT

    def for_meta(self, phone_number_id: str | None, display_phone_number: str | None = None) -> str:
        """The tenant of a WhatsApp Cloud API business number: by id, else by its number."""
        tenant = self._meta_ids.get((phone_number_id or "").strip())
        if tenant is not None:
            return tenant
        # Meta writes the display number without "+" ("15550001111"), sometimes spaced.
        display = (display_phone_number or "").strip()
        if display and not display.startswith("+"):
            display = f"+{display}"
        return self.for_phone(display)

    def sender(self, tenant: str, channel: SenderChannel) -> str | None:
        """The address ``tenant`` replies through ``channel`` from; None: the global one."""
        addresses = self.tenants.get(tenant)
        return None if addresses is None else addresses.reply_from(channel)

    def _number(self, raw: str | None) -> str | None:
        if not raw or not raw.strip():
            return None
        try:
            return normalize_phone(raw, self.default_region)
        except InvalidIdentifier:
            return None


def reply_sender(settings: Settings, tenant: str, channel: SenderChannel) -> str | None:
    """The address ``tenant``'s reply through ``channel`` leaves from, None for the global one.

    Reads the settings directly: outbound senders call it per message and need no look-up table.
    """
    addresses = settings.tenants.get(tenant)
    return None if addresses is None else addresses.reply_from(channel)


def _mailboxes(values: Iterable[str]) -> Iterable[str]:
    for value in values:
        for _, address in _parsed(value):
            try:
                yield normalize_email(address)
            except InvalidIdentifier:
                continue


def _parsed(value: str) -> list[tuple[str, str]]:
    try:
        return getaddresses([value])
    except Exception:  # hostile header values break CPython's parser in odd ways
        return []


def _domain_of(address: str) -> str:
    try:
        return email_domain(address.rpartition("@")[2])
    except ValueError:
        return ""
