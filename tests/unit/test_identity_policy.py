"""Identity policy: validated at construction, immutable, and explicit about what it limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from omnirouter.events import IdentifierKind
from omnirouter.pipeline.identity.policy import IdentityPolicy


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="max_customer_per_identifier"):
        IdentityPolicy.model_validate({"max_customer_per_identifier": {"phone": 2}})


@pytest.mark.parametrize("limit", [0, -1])
def test_join_limit_below_one_is_rejected(limit: int) -> None:
    with pytest.raises(ValidationError, match="a limit below 1 would forbid every identifier"):
        IdentityPolicy(max_customers_per_identifier={IdentifierKind.PHONE: limit})


def test_identifier_limit_per_customer_below_one_is_rejected() -> None:
    with pytest.raises(ValidationError, match="max_identifiers_per_customer"):
        IdentityPolicy(max_identifiers_per_customer=0)


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x"])
def test_invalid_blocked_pattern_is_rejected(pattern: str) -> None:
    with pytest.raises(ValidationError, match="bad pattern"):
        IdentityPolicy(blocked_patterns={IdentifierKind.EMAIL: [pattern]})


@pytest.mark.parametrize("region", ["gb", "GBR", "G", ""])
def test_default_region_must_be_two_upper_case_letters(region: str) -> None:
    with pytest.raises(ValidationError, match="default_region"):
        IdentityPolicy(default_region=region)


def test_unknown_default_region_is_rejected() -> None:
    with pytest.raises(ValidationError, match="default_region"):
        IdentityPolicy(default_region="UK")


def test_kind_keys_are_read_from_their_names() -> None:
    policy = IdentityPolicy.model_validate({"max_customers_per_identifier": {"phone": 7}})
    assert policy.max_customers(IdentifierKind.PHONE) == 7


def test_listed_kind_has_its_join_limit() -> None:
    policy = IdentityPolicy()
    assert policy.max_customers(IdentifierKind.PHONE) == 4
    assert policy.max_customers(IdentifierKind.CHAT_VISITOR) == 2


def test_unlisted_kind_is_effectively_unlimited() -> None:
    policy = IdentityPolicy(max_customers_per_identifier={IdentifierKind.PHONE: 2})
    assert policy.max_customers(IdentifierKind.EMAIL) >= 1_000_000


def test_unguarded_policy_limits_nothing() -> None:
    policy = IdentityPolicy.unguarded()
    for kind in IdentifierKind:
        assert policy.max_customers(kind) >= 1_000_000
    assert policy.max_identifiers_per_customer >= 1_000_000


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (IdentifierKind.EMAIL, "noreply@example.com"),
        (IdentifierKind.EMAIL, "postmaster@example.com"),
        (IdentifierKind.PHONE, "+11111111111"),
    ],
)
def test_unguarded_policy_blocks_nothing(kind: IdentifierKind, value: str) -> None:
    assert IdentityPolicy().blocked_reason(kind, value) is not None
    assert IdentityPolicy.unguarded().blocked_reason(kind, value) is None


def test_unguarded_policy_takes_overrides() -> None:
    policy = IdentityPolicy.unguarded(default_region="GB")
    assert policy.default_region == "GB"
    assert policy.max_customers(IdentifierKind.PHONE) >= 1_000_000


def test_blocked_reason_names_the_value_or_pattern() -> None:
    policy = IdentityPolicy(
        blocked_values={IdentifierKind.EXTERNAL_ID: ["0"]},
        blocked_patterns={IdentifierKind.EXTERNAL_ID: [r"^test"]},
    )
    assert policy.blocked_reason(IdentifierKind.EXTERNAL_ID, "0") == "blocked value"
    assert policy.blocked_reason(IdentifierKind.EXTERNAL_ID, "test-1") == (
        "blocked by pattern '^test'"
    )
    assert policy.blocked_reason(IdentifierKind.EXTERNAL_ID, "crm-1") is None


def test_policy_is_frozen() -> None:
    policy = IdentityPolicy()
    with pytest.raises(ValidationError, match="frozen"):
        policy.default_region = "GB"  # type: ignore[misc]
    assert policy.default_region == "US"


def test_policies_with_the_same_settings_are_equal() -> None:
    assert IdentityPolicy(default_region="GB") == IdentityPolicy(default_region="GB")
    assert IdentityPolicy(default_region="GB") != IdentityPolicy()
