"""Operator authentication for administrative endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request, status
from pydantic import SecretStr


def require_admin(token: SecretStr | None) -> Callable[[Request], str]:
    """A dependency admitting requests that carry ``Authorization: Bearer <token>``.

    With no token configured the endpoints are closed (503), never open: an operator endpoint
    that can split customers must not be reachable by accident.
    """

    def check(request: Request) -> str:
        if token is None:
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
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")
        return "admin"

    return check
