"""WhatsApp Cloud API webhook endpoints: handshake, signature, normalize, hand to the intake."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import PlainTextResponse

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.meta_whatsapp import normalize
from omnirouter.channels.meta_whatsapp.signature import signature_matches, subscription_challenge
from omnirouter.channels.tenancy import TenantDirectory
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import direct, read_body
from omnirouter.settings import IngressSettings

PROVIDER = normalize.PROVIDER


async def verified_body(request: Request, settings: IngressSettings) -> bytes:
    """The raw body of a request whose X-Hub-Signature-256 is valid.

    Raises:
        HTTPException: 503 when no app secret is configured, 401 without a signature, 403
            with a wrong one, 413 past the size limit.
    """
    if settings.meta_app_secret is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "WhatsApp webhooks are not configured"
        )
    raw = await read_body(request, settings.max_body_bytes)
    signature = request.headers.get("x-hub-signature-256")
    if not signature:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-Hub-Signature-256")
    if not signature_matches(settings.meta_app_secret.get_secret_value(), raw, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-Hub-Signature-256 does not match")
    return raw


def build_router(context: ChannelContext) -> APIRouter:
    """The WhatsApp Cloud API channel's routes for the gateway."""
    settings = context.settings.ingress
    intake = context.intake
    media_base = context.settings.outbound.meta_api_base
    tenants = TenantDirectory.from_settings(context.settings)
    router = APIRouter(prefix="/webhooks/meta/whatsapp", tags=["meta-whatsapp"])

    @router.get("")
    async def verify_subscription(request: Request) -> Response:
        """Meta's subscription handshake: echo hub.challenge when hub.verify_token matches."""
        if settings.meta_verify_token is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "WhatsApp webhooks are not configured"
            )
        challenge = subscription_challenge(
            request.query_params, settings.meta_verify_token.get_secret_value()
        )
        if challenge is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "verification token does not match")
        return PlainTextResponse(challenge)

    @router.post("")
    @direct
    async def notification(request: Request) -> Response:
        """A messages notification: every message published before the 200.

        Meta retries anything but a 2xx for days, so payloads that hold nothing for us (other
        objects, status-only notifications) are acknowledged rather than refused. A message
        that makes no event dead-letters the whole body (422) once the others are published;
        Meta's retries then find those already published.
        """
        raw = await verified_body(request, settings)
        try:
            parsed = normalize.normalize_notification(
                normalize.parse_notification(raw),
                datetime.now(UTC),
                tenant_of=tenants.for_meta,
                media_base=media_base,
            )
        except (NormalizationError, ValueError) as exc:
            raise await intake.reject(raw, provider=PROVIDER, reason=str(exc)[:500]) from None
        # One by one, in payload order: a customer's messages keep their order on the topic.
        for event in parsed.events:
            await intake.accept(event, provider=PROVIDER, message_id=event.provider.message_id)
        # Statuses are receipts for our own outbound messages; the outbound dispatcher records
        # delivery status itself (an outbound event needs the customer_id, unknown here).
        if parsed.failures:
            reason = "; ".join(parsed.failures)
            raise await intake.reject(raw, provider=PROVIDER, reason=reason[:500])
        return Response(status_code=status.HTTP_200_OK)

    return router
