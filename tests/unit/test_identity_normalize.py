"""Identifier normalization: one person gives one value; junk is rejected with a reason."""

from __future__ import annotations

import pytest

from omnirouter.events import MAX_IDENTIFIER_LENGTH, Identifier, IdentifierKind
from omnirouter.pipeline.identity.normalize import (
    InvalidIdentifier,
    normalize_email,
    normalize_handle,
    normalize_identifier,
    normalize_identifiers,
    normalize_phone,
)
from omnirouter.pipeline.identity.policy import IdentityPolicy
from support.events import identifier

DEFAULT = IdentityPolicy()


# --- phones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+1 (555) 010-2345",
        "15550102345",
        "555.010.2345",
        "1-555-010-2345",
        "whatsapp:+15550102345",
        "WhatsApp:+15550102345",
        "  +15550102345  ",
    ],
)
def test_us_phone_written_any_way_normalizes_to_one_e164(raw: str) -> None:
    assert normalize_phone(raw, "US") == "+15550102345"


@pytest.mark.parametrize(
    "raw",
    ["0044 20 7946 0958", "+44 20 7946 0958", "+44 (0)20 7946 0958", "whatsapp:+442079460958"],
)
def test_international_phone_normalizes_to_e164_whatever_the_default_region(raw: str) -> None:
    assert normalize_phone(raw, "US") == "+442079460958"
    assert normalize_phone(raw, "GB") == "+442079460958"


def test_national_number_is_read_in_the_policys_default_region() -> None:
    uk = IdentityPolicy(default_region="GB")
    normalized = normalize_identifier(identifier("phone", "020 7946 0958"), uk)
    assert normalized.value == "+442079460958"


def test_same_national_digits_mean_different_numbers_in_different_regions() -> None:
    us = normalize_identifier(identifier("phone", "555.010.2345"), IdentityPolicy())
    gb = normalize_identifier(
        identifier("phone", "555.010.2345"), IdentityPolicy(default_region="GB")
    )
    assert us.value == "+15550102345"
    assert gb.value == "+445550102345"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "not a phone number"),
        ("", "empty phone number"),
        ("   ", "empty phone number"),
        ("whatsapp:", "empty phone number"),
        ("12", "not a possible phone number"),
        ("+999999999999999999", "not a phone number"),
    ],
)
def test_junk_phone_is_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=rf"^{reason}"):
        normalize_phone(raw, "US")


def test_phone_provider_is_dropped_so_sms_and_whatsapp_share_one_address() -> None:
    sms = normalize_identifier(identifier("phone", "+1 (555) 010-2345", "twilio"), DEFAULT)
    whatsapp = normalize_identifier(
        identifier("phone", "whatsapp:+15550102345", "whatsapp"), DEFAULT
    )
    assert whatsapp.provider is None
    assert sms.address == whatsapp.address == "phone:+15550102345"


# --- e-mail --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("  Ana@Example.COM \n", "ana@example.com"),
        ("<Ana@Example.com>", "ana@example.com"),
        (" < Ana@Example.com > ", "ana@example.com"),
        ("ana+support@example.co.uk", "ana+support@example.co.uk"),
    ],
)
def test_email_is_trimmed_unbracketed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("domain", ["bücher.example", "BÜCHER.example", "xn--bcher-kva.example"])
def test_email_domain_is_idna_encoded(domain: str) -> None:
    assert normalize_email(f"ana@{domain}") == "ana@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ana", "not an e-mail address"),
        ("ana@", "not an e-mail address"),
        ("@example.com", "not an e-mail address"),
        ("ana@example", "not an e-mail address"),
        ("a b@c.d", "not an e-mail address"),
        ("ana@@example.com", "not an e-mail address"),
        ("ana@a..b", "e-mail domain is not a valid host name"),
        ("", "empty e-mail address"),
        ("<>", "empty e-mail address"),
    ],
)
def test_malformed_email_is_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=rf"^{reason}$"):
        normalize_email(raw)


def test_email_provider_is_dropped() -> None:
    normalized = normalize_identifier(identifier("email", "Ana@Example.com", "gmail"), DEFAULT)
    assert normalized == Identifier(kind=IdentifierKind.EMAIL, value="ana@example.com")


# --- handles, tokens -----------------------------------------------------------------------


@pytest.mark.parametrize("network", ["twitter", "x", "instagram", "tiktok", "telegram", "github"])
def test_handle_on_case_insensitive_network_loses_at_sign_and_case(network: str) -> None:
    assert normalize_handle("@Ana_B", network) == "ana_b"


@pytest.mark.parametrize("network", ["mastodon", "reddit", None])
def test_handle_keeps_its_case_on_a_network_not_known_to_ignore_case(network: str | None) -> None:
    assert normalize_handle(" @Ana_B ", network) == "Ana_B"


def test_handle_is_scoped_by_network_in_its_address() -> None:
    normalized = normalize_identifier(identifier("social_handle", "@Ana_B", "twitter"), DEFAULT)
    assert normalized.provider == "twitter"
    assert normalized.address == "social_handle:twitter:ana_b"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ana b", "not a handle"),
        ("@ana b", "not a handle"),
        ("ana/b", "not a handle"),
        ("@", "empty handle"),
        ("   ", "empty handle"),
    ],
)
def test_malformed_handle_is_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=rf"^{reason}"):
        normalize_handle(raw, "twitter")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ab-12-cd", "AB12CD"), (" acc-0042 ", "ACC0042"), ("AB12CD", "AB12CD")],
)
def test_account_number_is_upper_cased_without_dashes(raw: str, expected: str) -> None:
    normalized = normalize_identifier(identifier("account_number", raw), DEFAULT)
    assert normalized.value == expected


@pytest.mark.parametrize("kind", ["account_number", "external_id", "chat_visitor"])
@pytest.mark.parametrize("raw", ["ab 12", "ab\t12", "ab\x0012"])
def test_token_with_whitespace_or_control_characters_is_rejected(kind: str, raw: str) -> None:
    with pytest.raises(InvalidIdentifier, match="whitespace or control characters"):
        normalize_identifier(identifier(kind, raw), DEFAULT)


def test_external_id_keeps_its_case() -> None:
    normalized = normalize_identifier(identifier("external_id", " CRM-Ab12 "), DEFAULT)
    assert normalized.value == "CRM-Ab12"


def test_account_number_of_only_dashes_is_rejected() -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_identifier(identifier("account_number", "---"), DEFAULT)


# --- length, blocking ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(IdentifierKind))
def test_value_over_320_characters_is_rejected(kind: IdentifierKind) -> None:
    too_long = Identifier(kind=kind, value="a" * (MAX_IDENTIFIER_LENGTH + 1))
    with pytest.raises(InvalidIdentifier, match=r"^longer than 320 characters$"):
        normalize_identifier(too_long, DEFAULT)


def test_value_of_exactly_320_characters_is_not_rejected_for_length() -> None:
    value = "a" * MAX_IDENTIFIER_LENGTH
    assert normalize_identifier(identifier("external_id", value), DEFAULT).value == value


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("email", "noreply@example.com"),
        ("email", "No-Reply@Example.com"),
        ("email", "do-not-reply@example.com"),
        ("email", "donotreply@example.com"),
        ("email", "mailer-daemon@example.com"),
        ("email", "postmaster@example.com"),
        ("phone", "+11111111111"),
        ("phone", "+1 111 111 1111"),
        ("phone", "+7 777 777 7777"),
    ],
)
def test_default_blocked_patterns_reject_placeholders(kind: str, raw: str) -> None:
    with pytest.raises(InvalidIdentifier, match=r"^blocked"):
        normalize_identifier(identifier(kind, raw), DEFAULT)


@pytest.mark.parametrize("raw", ["(000) 000-0000", "+44 0000 000000"])
def test_default_blocked_pattern_rejects_repeated_digit_in_any_country(raw: str) -> None:
    with pytest.raises(InvalidIdentifier, match=r"^blocked"):
        normalize_identifier(identifier("phone", raw), DEFAULT)


def test_blocked_value_is_matched_after_normalization() -> None:
    policy = IdentityPolicy(blocked_values={IdentifierKind.EMAIL: ["info@example.com"]})
    with pytest.raises(InvalidIdentifier, match=r"^blocked value$"):
        normalize_identifier(identifier("email", " <Info@Example.COM>"), policy)
    assert normalize_identifier(identifier("email", "ana@example.com"), policy).value == (
        "ana@example.com"
    )


def test_blocked_value_applies_only_to_its_own_kind() -> None:
    policy = IdentityPolicy(blocked_values={IdentifierKind.EXTERNAL_ID: ["ABC"]})
    assert normalize_identifier(identifier("chat_visitor", "ABC"), policy).value == "ABC"


def test_custom_blocked_pattern_ignores_case() -> None:
    policy = IdentityPolicy(blocked_patterns={IdentifierKind.EXTERNAL_ID: [r"^test-"]})
    with pytest.raises(InvalidIdentifier, match=r"^blocked by pattern"):
        normalize_identifier(identifier("external_id", "TEST-42"), policy)


def test_unguarded_policy_lets_placeholders_through() -> None:
    normalized = normalize_identifier(
        identifier("email", "noreply@example.com"), IdentityPolicy.unguarded()
    )
    assert normalized.value == "noreply@example.com"


# --- a whole event's identifiers -----------------------------------------------------------


def test_identifiers_keep_their_order() -> None:
    result = normalize_identifiers(
        [
            identifier("email", "Ana@Example.com"),
            identifier("phone", "+1 555 010 2345"),
            identifier("social_handle", "@Ana", "twitter"),
        ],
        DEFAULT,
    )
    assert [i.address for i in result.usable] == [
        "email:ana@example.com",
        "phone:+15550102345",
        "social_handle:twitter:ana",
    ]
    assert result.rejected == ()


def test_identifiers_normalizing_to_one_address_are_kept_once_in_first_position() -> None:
    result = normalize_identifiers(
        [
            identifier("phone", "+1 555 010 2345"),
            identifier("email", "ana@example.com"),
            identifier("phone", "15550102345"),
            identifier("phone", "whatsapp:+15550102345", "whatsapp"),
            identifier("email", "<ANA@example.com>"),
        ],
        DEFAULT,
    )
    assert [i.address for i in result.usable] == ["phone:+15550102345", "email:ana@example.com"]


def test_same_handle_on_two_networks_is_two_identifiers() -> None:
    result = normalize_identifiers(
        [identifier("social_handle", "@ana", "twitter"), identifier("social_handle", "@ana", "x")],
        DEFAULT,
    )
    assert len(result.usable) == 2


def test_rejected_identifiers_are_reported_with_kind_and_reason() -> None:
    result = normalize_identifiers(
        [
            identifier("phone", "abc"),
            identifier("email", "ana@example.com"),
            identifier("email", "noreply@example.com"),
        ],
        DEFAULT,
    )
    assert [i.address for i in result.usable] == ["email:ana@example.com"]
    assert [(r.kind, r.value_preview, r.value_length) for r in result.rejected] == [
        (IdentifierKind.PHONE, "abc", 3),
        (IdentifierKind.EMAIL, "noreply@example.com", 19),
    ]
    assert result.rejected[0].reason.startswith("not a phone number")
    assert result.rejected[1].reason.startswith("blocked")


def test_rejected_long_value_is_previewed_in_64_characters_with_its_full_length() -> None:
    value = "x" * 1000
    result = normalize_identifiers([identifier("external_id", value)], DEFAULT)
    assert result.usable == ()
    (rejected,) = result.rejected
    assert rejected.value_preview == "x" * 64
    assert rejected.value_length == 1000
    assert rejected.reason == "longer than 320 characters"


def test_no_identifiers_give_nothing_usable_and_nothing_rejected() -> None:
    result = normalize_identifiers([], DEFAULT)
    assert result.usable == ()
    assert result.rejected == ()


def test_trailing_dot_of_a_fully_qualified_domain_is_the_same_address() -> None:
    assert normalize_email("ana@example.com.") == normalize_email("ana@example.com")


def test_only_one_leading_at_sign_is_a_handle_marker() -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_handle("@@Ana", "twitter")
