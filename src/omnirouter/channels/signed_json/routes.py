"""Signed JSON endpoint: verify key, signature and timestamp, normalize, hand to the intake."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.signed_json.normalize import dedupe_provider, normalize_interaction
from omnirouter.channels.signed_json.signature import is_fresh, parse_timestamp, signature_matches
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import read_body
from omnirouter.settings import IngressSettings


async def verified_body(request: Request, key_id: str, settings: IngressSettings) -> bytes:
    """The raw body of a request signed with ``key_id``'s secret, recently.

    Raises:
        HTTPException: 503 when no signing secret is configured, 401 without the headers or
            with a stale timestamp, 403 for an unknown key id or a wrong signature, 413 past
            the size limit.
    """
    if not settings.signing_secrets:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "signed JSON webhooks are not configured"
        )
    timestamp_header = request.headers.get("x-omnirouter-timestamp")
    signature = request.headers.get("x-omnirouter-signature")
    if not timestamp_header or not signature:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing X-Omnirouter-Timestamp or X-Omnirouter-Signature",
        )
    secret = settings.signing_secrets.get(key_id)
    if secret is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "unknown key id")
    timestamp = parse_timestamp(timestamp_header)
    if timestamp is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "X-Omnirouter-Timestamp is not unix seconds"
        )
    raw = await read_body(request, settings.max_body_bytes)
    if not signature_matches(secret.get_secret_value(), timestamp_header.strip(), raw, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-Omnirouter-Signature does not match")
    # After the signature: only a genuine but late (replayed, or skewed clock) request is stale.
    if not is_fresh(timestamp, time.time(), settings.signature_tolerance_s):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"stale X-Omnirouter-Timestamp (more than {settings.signature_tolerance_s} s "
            "from the gateway's clock)",
        )
    return raw


def build_router(context: ChannelContext) -> APIRouter:
    """The signed JSON channel's routes for the gateway."""
    settings = context.settings.ingress
    intake = context.intake
    router = APIRouter(prefix="/webhooks/signed", tags=["signed-json"])

    @router.post("/{key_id}")
    async def signed_interaction(key_id: str, request: Request) -> JSONResponse:
        """One interaction from another system, signed with the secret of ``key_id``."""
        raw = await verified_body(request, key_id, settings)
        provider = dedupe_provider(key_id)
        try:
            event = normalize_interaction(raw, key_id, datetime.now(UTC))
        except (NormalizationError, ValueError) as exc:
            raise await intake.reject(raw, provider=provider, reason=str(exc)[:500]) from None
        accepted = await intake.accept(
            event, provider=provider, message_id=event.provider.message_id
        )
        return JSONResponse({"event_id": str(event.event_id), "duplicate": accepted.duplicate})

    return router
