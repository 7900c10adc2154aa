"""Tenants' business addresses: settings validation and the directory that attributes traffic."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from omnirouter.channels.tenancy import TenantDirectory, reply_sender
from omnirouter.channels.tenant_addresses import TenantAddresses
from omnirouter.errors import ConfigurationError
from omnirouter.settings import Settings, load_settings
from support.settings_env import clear_ambient_settings

ACME = TenantAddresses(
    sms_numbers=("+1 555 000 1111", "+15550001112"),
    whatsapp_numbers=("whatsapp:+15550001113",),
    voice_numbers=("+15550001114",),
    email_addresses=("Help@Acme.Example", "@acme.example"),
    meta_phone_number_ids=("106540352242922",),
)
GLOBEX = TenantAddresses(
    sms_numbers=("+442071838750",),
    email_addresses=("@globex.example", "vip@acme.example"),
    meta_phone_number_ids=("998877",),
    sms_from="+442071838751",
    email_from="Globex Care <care@globex.example>",
)
DIRECTORY = TenantDirectory.of({"acme": ACME, "globex": GLOBEX})


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient_settings(monkeypatch)


# --- settings ---------------------------------------------------------------------------------


def test_addresses_are_stored_normalized() -> None:
    assert ACME.sms_numbers == ("+15550001111", "+15550001112")
    assert ACME.whatsapp_numbers == ("+15550001113",)
    assert ACME.email_addresses == ("help@acme.example", "@acme.example")


def test_tenants_are_read_from_nested_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIROUTER_TENANTS__ACME__SMS_NUMBERS", '["+15550001111"]')
    monkeypatch.setenv("OMNIROUTER_TENANTS__ACME__EMAIL_ADDRESSES", '["@acme.example"]')
    monkeypatch.setenv("OMNIROUTER_TENANTS__GLOBEX__META_PHONE_NUMBER_IDS", '["998877"]')

    settings = load_settings()

    assert settings.tenants["acme"].sms_numbers == ("+15550001111",)
    assert settings.tenants["acme"].email_addresses == ("@acme.example",)
    assert settings.tenants["globex"].meta_phone_number_ids == ("998877",)


def test_tenants_are_read_from_one_json_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTER_TENANTS", '{"acme": {"voice_numbers": ["+15550001114"]}}')
    assert load_settings().tenants["acme"].voice_numbers == ("+15550001114",)


def test_unconfigured_means_no_tenants() -> None:
    settings = load_settings()
    assert settings.tenants == {}
    assert TenantDirectory.from_settings(settings).for_phone("+15550001111") == "default"


def test_a_number_claimed_by_two_tenants_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIROUTER_TENANTS__ACME__SMS_NUMBERS", '["+15550001111"]')
    # Written differently and listed under another channel: still the same number.
    monkeypatch.setenv("OMNIROUTER_TENANTS__GLOBEX__VOICE_NUMBERS", '["+1 (555) 000-1111"]')
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "OMNIROUTER_TENANTS" in message
    assert "+15550001111 is claimed by two tenants: 'acme' and 'globex'" in message


@pytest.mark.parametrize(
    ("acme", "globex", "claimed"),
    [
        ({"email_addresses": ["@acme.example"]}, {"email_addresses": ["@ACME.example"]}, "@acme"),
        ({"email_addresses": ["help@acme.example"]}, {"email_from": "Help@acme.example"}, "help@"),
        ({"meta_phone_number_ids": ["12"]}, {"meta_whatsapp_from": "12"}, "12 is claimed"),
        ({"whatsapp_numbers": ["+15550001113"]}, {"sms_from": "+15550001113"}, "+1555"),
    ],
)
def test_every_kind_of_address_has_one_tenant(
    acme: dict[str, object], globex: dict[str, object], claimed: str
) -> None:
    with pytest.raises(ValidationError, match=f"{re.escape(claimed)}.*'acme' and 'globex'"):
        Settings(tenants={"acme": acme, "globex": globex})  # type: ignore[dict-item]


def test_a_tenant_may_list_one_number_under_several_channels() -> None:
    same = TenantAddresses(sms_numbers=("+15550001111",), whatsapp_numbers=("+15550001111",))
    assert Settings(tenants={"acme": same}).tenants["acme"] == same


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("sms_numbers", ["5550001111"], "not an E.164 number"),
        ("voice_numbers", ["+1 555"], "not a possible phone number"),
        ("email_addresses", ["support"], "not an e-mail address"),
        ("email_addresses", ["@localhost"], "not a mail domain"),
        ("email_from", "Acme <nobody>", "not an e-mail address"),
        ("meta_phone_number_ids", ["+15550001111"], "not a phone_number_id"),
        ("whatsapp_numbrs", ["+15550001111"], "Extra inputs are not permitted"),
    ],
)
def test_malformed_addresses_are_refused(field: str, value: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(tenants={"acme": {field: value}})  # type: ignore[dict-item]


@pytest.mark.parametrize("name", ["Acme", "-acme", "acme brand", "a" * 64])
def test_tenant_names_follow_the_event_contract(name: str) -> None:
    with pytest.raises(ValidationError, match="String should match pattern"):
        Settings(tenants={name: {"sms_numbers": ["+15550001111"]}})  # type: ignore[dict-item]


# --- the directory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "tenant"),
    [
        ("+15550001111", "acme"),
        ("+1 (555) 000-1112", "acme"),
        ("whatsapp:+15550001113", "acme"),
        ("+15550001114", "acme"),  # a voice number
        ("+442071838750", "globex"),
        ("+442071838751", "globex"),  # its sms_from: customers answer it
        ("+15559999999", "default"),
        ("", "default"),
        (None, "default"),
        ("not a number", "default"),
    ],
)
def test_a_number_belongs_to_the_tenant_that_lists_it(to: str | None, tenant: str) -> None:
    assert DIRECTORY.for_phone(to) == tenant


@pytest.mark.parametrize(
    ("recipients", "tenant"),
    [
        (["help@acme.example"], "acme"),
        (["HELP@ACME.EXAMPLE"], "acme"),
        (["Acme Help <help@acme.example>"], "acme"),
        (["orders@acme.example"], "acme"),  # by domain
        (["vip@acme.example"], "globex"),  # the exact address wins over the domain
        (["orders@eu.acme.example"], "default"),  # a domain does not cover its subdomains
        (["someone@elsewhere.example", "care@globex.example"], "globex"),
        (["care@globex.example, help@acme.example"], "globex"),  # the first that matches
        (["help@acme.example", "care@globex.example"], "acme"),
        (["nobody@elsewhere.example"], "default"),
        (["not an address", ""], "default"),
        ([], "default"),
    ],
)
def test_an_email_belongs_to_the_tenant_of_its_first_known_recipient(
    recipients: list[str], tenant: str
) -> None:
    assert DIRECTORY.for_email(recipients) == tenant


@pytest.mark.parametrize(
    ("phone_number_id", "display", "tenant"),
    [
        ("106540352242922", "", "acme"),
        ("998877", "15550001111", "globex"),  # the id decides
        ("unknown", "15550001113", "acme"),  # else the display number, written without "+"
        ("unknown", "1 555-000-1113", "acme"),
        (None, None, "default"),
        ("unknown", "15559999999", "default"),
    ],
)
def test_a_whatsapp_cloud_number_belongs_to_its_tenant(
    phone_number_id: str | None, display: str | None, tenant: str
) -> None:
    assert DIRECTORY.for_meta(phone_number_id, display) == tenant


def test_replies_leave_from_the_first_listed_address_unless_one_is_named() -> None:
    assert DIRECTORY.sender("acme", "sms") == "+15550001111"
    assert DIRECTORY.sender("acme", "whatsapp") == "+15550001113"
    assert DIRECTORY.sender("acme", "email") == "help@acme.example"
    assert DIRECTORY.sender("acme", "meta_whatsapp") == "106540352242922"
    assert DIRECTORY.sender("globex", "sms") == "+442071838751"
    assert DIRECTORY.sender("globex", "email") == "Globex Care <care@globex.example>"


def test_no_sender_where_the_tenant_has_no_address_for_the_channel() -> None:
    assert DIRECTORY.sender("globex", "whatsapp") is None
    assert DIRECTORY.sender("default", "sms") is None
    domains_only = TenantAddresses(email_addresses=("@initech.example",))
    assert domains_only.reply_from("email") is None


def test_reply_sender_reads_the_settings() -> None:
    settings = Settings(tenants={"acme": ACME})
    assert reply_sender(settings, "acme", "sms") == "+15550001111"
    assert reply_sender(settings, "globex", "sms") is None
