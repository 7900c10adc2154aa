"""Tenants' own Twilio (sub-)accounts: which token verifies a webhook, and whom it may speak for."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from omnirouter.channels.tenant_addresses import TenantAddresses
from omnirouter.channels.twilio.accounts import Signer, TwilioAccounts

ACME_SID, BRANDS_SID = "AC" + "a" * 32, "AC" + "b" * 32
TENANTS = {
    "acme": TenantAddresses(
        sms_numbers=("+15550001111",),
        twilio_account_sid=ACME_SID,
        twilio_auth_token=SecretStr("acme-token"),
    ),
    # Two brands sharing one sub-account, and one using the global account.
    "globex": TenantAddresses(
        sms_numbers=("+15550002222",),
        twilio_account_sid=BRANDS_SID,
        twilio_auth_token=SecretStr("brands-token"),
    ),
    "initech": TenantAddresses(
        sms_numbers=("+15550003333",),
        twilio_account_sid=BRANDS_SID,
        twilio_auth_token=SecretStr("brands-token"),
    ),
    "umbrella": TenantAddresses(sms_numbers=("+15550004444",)),
}
ACCOUNTS = TwilioAccounts.of(SecretStr("global-token"), TENANTS)


def test_a_webhook_naming_a_tenant_account_is_verified_with_that_accounts_token() -> None:
    assert ACCOUNTS.signer(ACME_SID) == Signer(ACME_SID, "acme-token")
    assert ACCOUNTS.signer(BRANDS_SID) == Signer(BRANDS_SID, "brands-token")


@pytest.mark.parametrize("named", [None, "", "AC" + "0" * 32, "not a sid"])
def test_any_other_webhook_is_verified_with_the_global_token(named: str | None) -> None:
    assert ACCOUNTS.signer(named) == Signer(None, "global-token")


def test_without_a_global_token_only_tenant_accounts_verify() -> None:
    accounts = TwilioAccounts.of(None, TENANTS)
    assert accounts.configured
    assert accounts.signer("AC" + "0" * 32) is None
    assert accounts.signer(ACME_SID) == Signer(ACME_SID, "acme-token")
    assert not TwilioAccounts.of(None, {"umbrella": TENANTS["umbrella"]}).configured


@pytest.mark.parametrize(
    ("signer", "tenant"),
    [
        (ACME_SID, "acme"),
        (BRANDS_SID, "globex"),
        (BRANDS_SID, "initech"),
        (None, "umbrella"),
        (None, "default"),
    ],
)
def test_an_account_speaks_for_the_tenants_whose_numbers_it_owns(
    signer: str | None, tenant: str
) -> None:
    assert ACCOUNTS.refusal(Signer(signer, "t"), tenant) is None


@pytest.mark.parametrize(
    ("signer", "tenant", "why"),
    [
        # A leaked brand token cannot write into another brand's cases...
        (ACME_SID, "globex", "does not own tenant 'globex'"),
        (BRANDS_SID, "acme", "does not own tenant 'acme'"),
        (ACME_SID, "default", "does not own tenant 'default'"),
        # ...and a brand with its own account takes nothing signed by the global one.
        (None, "acme", "takes only webhooks signed by its Twilio account"),
    ],
)
def test_an_account_never_speaks_for_another_tenant(
    signer: str | None, tenant: str, why: str
) -> None:
    refusal = ACCOUNTS.refusal(Signer(signer, "t"), tenant)
    assert refusal is not None and why in refusal


def test_an_account_sid_needs_its_token_and_the_sid_form() -> None:
    with pytest.raises(ValidationError, match="go together"):
        TenantAddresses(twilio_account_sid=ACME_SID)
    with pytest.raises(ValidationError, match="go together"):
        TenantAddresses(twilio_auth_token=SecretStr("x"))
    with pytest.raises(ValidationError, match="not a Twilio account SID"):
        TenantAddresses(twilio_account_sid="SK" + "a" * 32, twilio_auth_token=SecretStr("x"))
    assert "acme-token" not in repr(TENANTS["acme"])
