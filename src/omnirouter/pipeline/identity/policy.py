"""The identity guardrails and normalization settings, as one validated, immutable policy."""

from __future__ import annotations

import re

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnirouter.events import IdentifierKind

_DEFAULT_MAX_CUSTOMERS = {
    # How many customers one value may bring together before merges through it need a person.
    # A phone or mailbox is sometimes shared (a family phone, info@), a visitor cookie or a CRM
    # id almost never.
    IdentifierKind.PHONE: 4,
    IdentifierKind.EMAIL: 4,
    IdentifierKind.SOCIAL_HANDLE: 3,
    IdentifierKind.CHAT_VISITOR: 2,
    IdentifierKind.ACCOUNT_NUMBER: 2,
    IdentifierKind.EXTERNAL_ID: 2,
}

_DEFAULT_BLOCKED_PATTERNS = {
    # Placeholders people type into forms and providers put in test traffic.
    IdentifierKind.EMAIL: [r"^(no-?reply|do-?not-?reply|mailer-daemon|postmaster)@"],
    # A national number of one digit repeated ("(000) 000-0000" -> +10000000000): a placeholder.
    IdentifierKind.PHONE: [r"^\+\d{1,3}(\d)\1{6,}$"],
}


class IdentityPolicy(BaseModel):
    """How identifiers are normalized and when a merge needs a person instead of the router."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_region: str = Field(
        default="US",
        pattern=r"^[A-Z]{2}$",
        description="Region for phone numbers written without a country code (ISO 3166 alpha-2).",
    )
    max_customers_per_identifier: dict[IdentifierKind, int] = Field(
        default_factory=lambda: dict(_DEFAULT_MAX_CUSTOMERS),
        description="Per identifier kind, how many customers one value may join (>= 1).",
    )
    max_identifiers_per_customer: int = Field(default=50, ge=1)
    blocked_values: dict[IdentifierKind, list[str]] = Field(
        default_factory=dict, description="Exact normalized values never used for matching."
    )
    blocked_patterns: dict[IdentifierKind, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in _DEFAULT_BLOCKED_PATTERNS.items()},
        description="Regular expressions on normalized values never used for matching.",
    )
    processed_retention_s: int = Field(
        default=900,
        ge=10,
        description=(
            "How long a resolved event_id's result is remembered, so a redelivery (crash, "
            "rebalance) republishes exactly what the first run did. Older replays are still safe: "
            "resolution itself is idempotent (same customer, no second merge)."
        ),
    )

    @field_validator("max_customers_per_identifier")
    @classmethod
    def _at_least_one(cls, value: dict[IdentifierKind, int]) -> dict[IdentifierKind, int]:
        for kind, limit in value.items():
            if limit < 1:
                raise ValueError(f"{kind}: a limit below 1 would forbid every identifier")
        return value

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(
        cls, value: dict[IdentifierKind, list[str]]
    ) -> dict[IdentifierKind, list[str]]:
        for kind, patterns in value.items():
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{kind}: bad pattern {pattern!r}: {exc}") from None
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (e.g. GB, not UK)")
        return value

    def max_customers(self, kind: IdentifierKind) -> int:
        """The join limit of ``kind``; kinds not listed are not limited."""
        return self.max_customers_per_identifier.get(kind, 1_000_000)

    def blocked_reason(self, kind: IdentifierKind, normalized: str) -> str | None:
        """Why a normalized value must not be used for matching, or None when it may."""
        if normalized in self.blocked_values.get(kind, ()):
            return "blocked value"
        # re caches compiled patterns itself; compiling here keeps a copied policy consistent.
        for pattern in self.blocked_patterns.get(kind, ()):
            if re.search(pattern, normalized, re.IGNORECASE):
                return f"blocked by pattern {pattern!r}"
        return None

    @classmethod
    def unguarded(cls, **overrides: object) -> IdentityPolicy:
        """A policy with no join limits or blocked values (for graph-level tests and replays)."""
        base: dict[str, object] = {
            "max_customers_per_identifier": {},
            "max_identifiers_per_customer": 1_000_000,
            "blocked_patterns": {},
        }
        base.update(overrides)
        return cls.model_validate(base)
