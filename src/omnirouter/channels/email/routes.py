"""Inbound e-mail webhooks: authenticate, normalize, hand to the gateway's intake."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from fastapi import APIRouter, HTTPException, Request, status

from omnirouter.channels.email import recipients, webhooks
from omnirouter.channels.email.webhooks import Form, Verdict
from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.tenancy import TenantDirectory
from omnirouter.events import InteractionEvent
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import read_body
from omnirouter.ingress.intake import Intake
from omnirouter.settings import IngressSettings


class Normalizer(Protocol):
    """A provider's form in, the event of the given tenant out."""

    def __call__(self, form: Form, received_at: datetime, *, tenant: str) -> InteractionEvent:
        """The event, or NormalizationError."""
        ...


# Mailgun retries every answer but 200 and 406 for 8 hours; a payload that makes no event is
# dead-lettered once and answered 406 ("rejected, do not retry") instead of the usual 422.
MAILGUN_REJECTED = status.HTTP_406_NOT_ACCEPTABLE


async def _publish(
    intake: Intake,
    raw: bytes,
    form: Form | None,
    normalize: Normalizer,
    tenant_of: Callable[[Form], str],
    *,
    provider: str,
    rejected_status: int = status.HTTP_422_UNPROCESSABLE_CONTENT,
) -> dict[str, object]:
    """Normalize and publish; a payload that makes no event is dead-lettered and refused."""
    try:
        if form is None:
            raise NormalizationError("no form fields")
        event = normalize(form, datetime.now(UTC), tenant=tenant_of(form))
    except NormalizationError as exc:
        rejection = await intake.reject(raw, provider=provider, reason=str(exc)[:500])
        raise HTTPException(rejected_status, rejection.detail) from None
    accepted = await intake.accept(event, provider=provider, message_id=event.provider.message_id)
    return {"event_id": str(event.event_id), "duplicate": accepted.duplicate}


def _form(raw: bytes, request: Request) -> Form | None:
    try:
        return webhooks.parse_form(raw, request.headers.get("content-type"))
    except NormalizationError:
        return None


def email_router(
    intake: Intake, settings: IngressSettings, directory: TenantDirectory | None = None
) -> APIRouter:
    """Routes under ``/webhooks/email``; ``directory`` tells whose address a mail was sent to."""
    router = APIRouter(prefix="/webhooks/email", tags=["email"])
    tenants = directory if directory is not None else TenantDirectory()

    def sendgrid_tenant(form: Form) -> str:
        return tenants.for_email(recipients.sendgrid_recipients(form))

    def mailgun_tenant(form: Form) -> str:
        return tenants.for_email(recipients.mailgun_recipients(form))

    @router.post("/sendgrid")
    async def sendgrid_inbound(request: Request) -> dict[str, object]:
        """An e-mail from SendGrid Inbound Parse (parsed or raw mode).

        SendGrid does not sign these posts; the URL configured there carries a shared secret
        as ``?token=``.
        """
        if settings.sendgrid_token is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "SendGrid inbound parse is not configured"
            )
        token = request.query_params.get("token")
        if not token:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing token")
        if not webhooks.token_matches(settings.sendgrid_token.get_secret_value(), token):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "token does not match")
        raw = await read_body(request, settings.max_body_bytes)
        return await _publish(
            intake,
            raw,
            _form(raw, request),
            webhooks.normalize_sendgrid,
            sendgrid_tenant,
            provider=webhooks.SENDGRID,
        )

    @router.post("/mailgun")
    async def mailgun_inbound(request: Request) -> dict[str, object]:
        """An e-mail forwarded by a Mailgun route (signed with the webhook signing key)."""
        if settings.mailgun_signing_key is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "Mailgun routes are not configured"
            )
        raw = await read_body(request, settings.max_body_bytes)
        # The signature travels inside the form: a body that does not parse carries none.
        form = _form(raw, request)
        verdict = (
            Verdict.MISSING
            if form is None
            else webhooks.check_mailgun_signature(
                form,
                signing_key=settings.mailgun_signing_key.get_secret_value(),
                now=time.time(),
                tolerance_s=settings.signature_tolerance_s,
            )
        )
        if verdict is Verdict.MISSING:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Mailgun signature")
        if verdict is Verdict.STALE:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Mailgun signature timestamp too old")
        if verdict is not Verdict.VALID:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Mailgun signature does not match")
        return await _publish(
            intake,
            raw,
            form,
            webhooks.normalize_mailgun,
            mailgun_tenant,
            provider=webhooks.MAILGUN,
            rejected_status=MAILGUN_REJECTED,
        )

    return router


def build_router(context: ChannelContext) -> APIRouter:
    """The e-mail channel's routes for the gateway."""
    return email_router(
        context.intake, context.settings.ingress, TenantDirectory.from_settings(context.settings)
    )
