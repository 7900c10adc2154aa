"""Operator authentication for administrative endpoints, and the tenant each request acts on.

Two kinds of bearer token open the operator API (``/api/…`` and ``/ops/api/summary``):

- the platform operator's ``api.admin_token``: every tenant; a request names the one it acts
  on with ``?tenant=`` (``"default"`` when it names none);
- a tenant's token from ``api.tenant_tokens`` (tenant -> token): that tenant only. A request
  that names no tenant acts on the token's own tenant, never on ``"default"``.

A tenant token naming another tenant is refused with **403** "token not valid for tenant X",
always and before anything is looked up, whether or not that tenant exists: the answer depends
only on the request, so it confirms nothing about another tenant's customers, cases or even
its existence. Within its own tenant a token sees only its tenant's keys, so another tenant's
customer or case id answers 404, exactly as an id that does not exist.
"""

# No "from __future__ import annotations" here: FastAPI must see the dependency annotations
# of the nested dependency functions as objects, not as strings naming local variables.

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from pydantic import SecretStr

from omnirouter.events import DEFAULT_TENANT

TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


@dataclass(frozen=True, slots=True)
class Operator:
    """Who called the operator API: the platform operator (``tenant`` None) or one tenant's."""

    tenant: str | None

    @property
    def platform(self) -> bool:
        """True for the platform operator, who may act on every tenant."""
        return self.tenant is None


def require_admin(token: SecretStr | None) -> Callable[[Request], str]:
    """A dependency admitting requests that carry ``Authorization: Bearer <token>``.

    With no token configured the endpoints are closed (503), never open: an operator endpoint
    that can split customers must not be reachable by accident.
    """
    access = OperatorAccess(token)

    def check(request: Request) -> str:
        access.operator(request)
        return "admin"

    return check


class OperatorAccess:
    """Checks operator tokens and resolves the tenant a request may act on."""

    def __init__(
        self, admin_token: SecretStr | None, tenant_tokens: Mapping[str, SecretStr] | None = None
    ) -> None:
        """The platform token (all tenants) and per-tenant tokens (tenant -> token)."""
        self._admin = admin_token.get_secret_value().encode() if admin_token else None
        self._tenants = [
            (tenant, secret.get_secret_value().encode())
            for tenant, secret in sorted((tenant_tokens or {}).items())
            if secret.get_secret_value()
        ]

    def operator(self, request: Request) -> Operator:
        """Who ``request`` is from: 503 with no token configured, 401 without a bearer token,
        403 for a token that is none of the configured ones."""
        if self._admin is None and not self._tenants:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "operator API disabled: set OMNIROUTER_API__ADMIN_TOKEN",
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        presented = given.encode()
        # Every configured token is compared (constant time each), whichever matches: how long
        # the check takes says nothing about which token, or how much of one, was guessed.
        found: Operator | None = None
        if self._admin is not None and hmac.compare_digest(presented, self._admin):
            found = Operator(None)
        for tenant, secret in self._tenants:
            if hmac.compare_digest(presented, secret) and found is None:
                found = Operator(tenant)
        if found is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")
        return found

    def tenant_scope(self) -> Callable[..., str]:
        """A dependency yielding the tenant the request acts on (its ``tenant`` query
        parameter, checked against the token; see the module docstring)."""

        def scoped(
            operator: Annotated[Operator, Depends(self.operator)],
            tenant: Annotated[
                str | None,
                Query(
                    pattern=TENANT_PATTERN,
                    description="The tenant to act on. Default: the token's own tenant "
                    "(a tenant token), or 'default' (the platform operator's token).",
                ),
            ] = None,
        ) -> str:
            return self.resolve(operator, tenant)

        return scoped

    def operator_scope(self) -> Callable[..., tuple[Operator, str | None]]:
        """Like :meth:`tenant_scope`, for views over every tenant: the operator and the tenant
        asked for, None meaning "every tenant" (only the platform operator gets None)."""

        def scoped(
            operator: Annotated[Operator, Depends(self.operator)],
            tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
        ) -> tuple[Operator, str | None]:
            if operator.platform:
                return operator, tenant
            return operator, self.resolve(operator, tenant)

        return scoped

    @staticmethod
    def resolve(operator: Operator, asked: str | None) -> str:
        """The tenant ``operator`` acts on when asking for ``asked`` (403 for another's)."""
        if operator.tenant is None:
            return asked or DEFAULT_TENANT
        if asked is not None and asked != operator.tenant:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"token not valid for tenant {asked}")
        return operator.tenant
