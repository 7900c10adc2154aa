"""Which Twilio account a webhook comes from, and which tenants that account may speak for.

Brands usually keep their numbers in Twilio sub-accounts of their own, and Twilio signs each
webhook with the auth token of the account that owns the number. A tenant that names its
account (``tenants.<name>.twilio_account_sid`` and ``twilio_auth_token``) has its webhooks
verified with that account's token; every other webhook is verified with the global
``ingress.twilio_auth_token``.

The account is read from the webhook's ``AccountSid`` before the signature is checked: that only
chooses the key, and a forged ``AccountSid`` cannot come with a valid signature. After the
check, the account must own the tenant the message is addressed to: a leaked token of one brand
cannot put messages into another brand's cases, and a tenant with an account of its own accepts
only webhooks signed by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from omnirouter.channels.tenant_addresses import TenantAddresses


@dataclass(frozen=True)
class Signer:
    """The account whose token verified a webhook: a tenant's (by sid), or the global one."""

    account_sid: str | None
    token: str


@dataclass(frozen=True)
class TwilioAccounts:
    """The global auth token and the tenants' own accounts."""

    global_token: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)
    tenants_of: Mapping[str, frozenset[str]] = field(default_factory=dict)
    account_of: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, global_token: SecretStr | None, tenants: Mapping[str, TenantAddresses]
    ) -> TwilioAccounts:
        """The accounts of the ``tenants`` settings, and the global token (either may be unset)."""
        tokens: dict[str, str] = {}
        tenants_of: dict[str, set[str]] = {}
        account_of: dict[str, str] = {}
        for tenant, addresses in tenants.items():
            sid, token = addresses.twilio_account_sid, addresses.twilio_auth_token
            if sid is None or token is None:
                continue
            tokens[sid] = token.get_secret_value()
            tenants_of.setdefault(sid, set()).add(tenant)
            account_of[tenant] = sid
        return cls(
            None if global_token is None else global_token.get_secret_value(),
            tokens,
            {sid: frozenset(names) for sid, names in tenants_of.items()},
            account_of,
        )

    @property
    def configured(self) -> bool:
        """Whether any webhook can be verified at all."""
        return self.global_token is not None or bool(self.tokens)

    def signer(self, account_sid: str | None) -> Signer | None:
        """The account to verify a webhook naming ``account_sid`` with: that tenant account,
        else the global one; None when neither is configured."""
        if account_sid is not None and account_sid in self.tokens:
            return Signer(account_sid, self.tokens[account_sid])
        if self.global_token is None:
            return None
        return Signer(None, self.global_token)

    def refusal(self, signer: Signer, tenant: str) -> str | None:
        """Why a webhook verified as ``signer``'s may not speak for ``tenant``; None if it may."""
        own = self.account_of.get(tenant)
        if signer.account_sid is None:
            if own is None:
                return None
            return f"tenant {tenant!r} takes only webhooks signed by its Twilio account {own}"
        if tenant in self.tenants_of.get(signer.account_sid, frozenset()):
            return None
        return f"Twilio account {signer.account_sid} does not own tenant {tenant!r}'s numbers"
