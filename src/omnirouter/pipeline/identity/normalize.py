"""Normalizing identifiers before matching: the same person must produce the same value.

Pure functions: a raw identifier in, a normalized :class:`Identifier` or a rejection out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from omnirouter.events import (
    MAX_IDENTIFIER_LENGTH,
    Identifier,
    IdentifierKind,
    RejectedIdentifier,
)
from omnirouter.pipeline.identity.policy import IdentityPolicy

_PREVIEW = 64
# Local part and domain as providers deliver them; deliberately permissive (RFC 5322 allows far
# more than people use), strict only on what makes a value unusable for matching.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WHATSAPP_PREFIX = re.compile(r"^whatsapp:", re.IGNORECASE)
# Handles: networks that treat them case-insensitively, and their handle syntax.
_CASE_INSENSITIVE_HANDLES = {"twitter", "x", "instagram", "tiktok", "telegram", "github"}
_HANDLE = re.compile(r"^[\w.\-]{1,100}$")


@dataclass(frozen=True, slots=True)
class NormalizedIdentifiers:
    """The usable identifiers of one event, deduplicated, and the rejected ones with reasons."""

    usable: tuple[Identifier, ...]
    rejected: tuple[RejectedIdentifier, ...]


class InvalidIdentifier(ValueError):  # noqa: N818 - reads as the condition, like UndecodableEvent
    """A raw value that cannot identify anybody; the message says why."""


def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 form of a phone number ("+1 (555) 010-2345" -> "+15550102345").

    Numbers without a country code are read in ``default_region``. Possible numbers are kept
    even when no carrier has them allocated (fictional 555-01xx numbers, new ranges): matching
    needs one canonical form, not a validity verdict.
    """
    if len(raw) > MAX_IDENTIFIER_LENGTH:  # never cached: the cache holds only short values
        return _e164.__wrapped__(raw, default_region)
    return _e164(raw, default_region)


# Parsing with phonenumbers costs tens of microseconds, and the same customers write again and
# again: each (raw value, region) is parsed once while it stays among the recent ones. A value
# that is rejected raises every time (lru_cache keeps no exceptions).
@lru_cache(maxsize=16_384)
def _e164(raw: str, default_region: str) -> str:
    text = _WHATSAPP_PREFIX.sub("", raw.strip())
    if not text:
        raise InvalidIdentifier("empty phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier(f"not a phone number ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Trimmed, lower-cased e-mail address with an IDNA-encoded domain."""
    text = raw.strip().strip("<>").strip()
    if not text:
        raise InvalidIdentifier("empty e-mail address")
    if not _EMAIL.match(text):
        raise InvalidIdentifier("not an e-mail address")
    local, _, domain = text.rpartition("@")
    # "example.com." is the same host as "example.com" (a fully qualified name).
    domain = domain.rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidIdentifier("e-mail domain is not a valid host name") from None
    # Local parts are case-sensitive by RFC, but no mailbox provider customers use treats them so;
    # matching "Ana@" and "ana@" as one person is what contact centers expect.
    return f"{local.lower()}@{domain.lower()}"


def normalize_handle(raw: str, provider: str | None) -> str:
    """A social handle as its network compares it (case-folded where the network ignores case)."""
    text = unicodedata.normalize("NFKC", raw.strip()).removeprefix("@")
    if not text:
        raise InvalidIdentifier("empty handle")
    if not _HANDLE.match(text):
        raise InvalidIdentifier("not a handle (letters, digits, '.', '_', '-' only)")
    if provider in _CASE_INSENSITIVE_HANDLES:
        text = text.lower()
    return text


def _normalize_token(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise InvalidIdentifier("empty value")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidIdentifier("contains whitespace or control characters")
    return text


def normalize_identifier(identifier: Identifier, policy: IdentityPolicy) -> Identifier:
    """The normalized form of one identifier.

    Raises:
        InvalidIdentifier: the value is malformed, too long, or blocked by the policy.
    """
    raw = identifier.value
    if len(raw) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(f"longer than {MAX_IDENTIFIER_LENGTH} characters")
    kind = identifier.kind
    provider = identifier.provider
    if kind is IdentifierKind.PHONE:
        value = normalize_phone(raw, policy.default_region)
        # A phone reached over SMS or WhatsApp is one address; the network is not part of it.
        provider = None
    elif kind is IdentifierKind.EMAIL:
        value = normalize_email(raw)
        provider = None
    elif kind is IdentifierKind.SOCIAL_HANDLE:
        value = normalize_handle(raw, provider)
    elif kind is IdentifierKind.ACCOUNT_NUMBER:
        value = _normalize_token(raw).upper().replace("-", "")
        if not value:
            raise InvalidIdentifier("empty account number")
    else:
        value = _normalize_token(raw)
    blocked = policy.blocked_reason(kind, value)
    if blocked is not None:
        raise InvalidIdentifier(blocked)
    return Identifier(kind=kind, value=value, provider=provider)


def normalize_identifiers(
    identifiers: Iterable[Identifier], policy: IdentityPolicy
) -> NormalizedIdentifiers:
    """Normalize an event's identifiers, keeping order, dropping duplicates, rejecting the bad."""
    usable: dict[str, Identifier] = {}
    rejected: list[RejectedIdentifier] = []
    for identifier in identifiers:
        try:
            normalized = normalize_identifier(identifier, policy)
        except InvalidIdentifier as exc:
            rejected.append(
                RejectedIdentifier(
                    kind=identifier.kind,
                    value_preview=identifier.value[:_PREVIEW],
                    value_length=len(identifier.value),
                    reason=str(exc),
                )
            )
            continue
        usable.setdefault(normalized.address, normalized)
    return NormalizedIdentifiers(tuple(usable.values()), tuple(rejected))
