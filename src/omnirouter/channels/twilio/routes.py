"""Twilio webhook endpoints: verify the signature, normalize, hand to the gateway's intake."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response, status

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.tenancy import TenantDirectory
from omnirouter.channels.twilio import messaging, voice
from omnirouter.channels.twilio.accounts import Signer, TwilioAccounts
from omnirouter.channels.twilio.signature import signature_matches
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import direct, read_body
from omnirouter.ingress.intake import Intake
from omnirouter.settings import IngressSettings

_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def signed_url(request: Request, settings: IngressSettings) -> str:
    """The URL Twilio signed: the configured public base URL with this path and query."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{base}{request.url.path}{query}"
    return str(request.url)


async def verified_form(
    request: Request,
    settings: IngressSettings,
    accounts: TwilioAccounts,
) -> tuple[bytes, dict[str, str], Signer]:
    """The raw body and form fields of a request whose Twilio signature is valid, and the
    account whose token verified it (a tenant's own, named by ``AccountSid``, else the global).

    Raises:
        HTTPException: 503 when no auth token is configured, 401 without a signature, 403
            with a wrong one, 413 past the size limit.
    """
    if not accounts.configured:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Twilio webhooks are not configured"
        )
    raw = await read_body(request, settings.max_body_bytes)
    fields = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-Twilio-Signature")
    form = dict(fields)
    signer = accounts.signer(form.get("AccountSid"))
    if signer is None or not signature_matches(
        signer.token, signed_url(request, settings), fields, signature
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-Twilio-Signature does not match")
    return raw, form, signer


def twilio_router(
    intake: Intake,
    settings: IngressSettings,
    *,
    directory: TenantDirectory | None = None,
    extra: Callable[[APIRouter, Intake, IngressSettings], Any] | None = None,
) -> APIRouter:
    """Routes under ``/webhooks/twilio``; ``directory`` tells whose number ``To`` is."""
    tenants = directory if directory is not None else TenantDirectory()
    accounts = TwilioAccounts.of(settings.twilio_auth_token, tenants.tenants)
    router = APIRouter(prefix="/webhooks/twilio", tags=["twilio"])

    async def verified(request: Request) -> tuple[bytes, Mapping[str, str], str]:
        """Body, form and tenant of a webhook signed by an account that owns the tenant."""
        raw, form, signer = await verified_form(request, settings, accounts)
        tenant = tenants.for_phone(form.get("To"))
        refusal = accounts.refusal(signer, tenant)
        if refusal is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
        return raw, form, tenant

    @router.post("/messages")
    @direct
    async def inbound_message(request: Request) -> Response:
        """An inbound SMS or WhatsApp message (Twilio Messaging webhook)."""
        raw, form, tenant = await verified(request)
        try:
            event = messaging.normalize_message(form, datetime.now(UTC), tenant=tenant)
        except (NormalizationError, ValueError) as exc:
            raise await intake.reject(raw, provider="twilio", reason=str(exc)[:500]) from None
        await intake.accept(event, provider="twilio", message_id=messaging.message_id(form))
        return Response(_EMPTY_TWIML, media_type="text/xml")

    @router.post("/voice/status")
    @direct
    async def call_status(request: Request) -> Response:
        """A Voice status callback: the call's outcome is published once it ended."""
        raw, form, tenant = await verified(request)
        try:
            event = voice.normalize_call_status(form, datetime.now(UTC), tenant=tenant)
        except (NormalizationError, ValueError) as exc:
            raise await intake.reject(raw, provider="twilio", reason=str(exc)[:500]) from None
        if event is not None:
            await intake.accept(event, provider="twilio", message_id=voice.call_message_id(form))
        return Response(_EMPTY_TWIML, media_type="text/xml")

    @router.post("/voice/transcription")
    @direct
    async def call_transcription(request: Request) -> Response:
        """A transcribeCallback: the transcript of a call recording."""
        raw, form, tenant = await verified(request)
        try:
            event = voice.normalize_transcription(form, datetime.now(UTC), tenant=tenant)
        except (NormalizationError, ValueError) as exc:
            raise await intake.reject(raw, provider="twilio", reason=str(exc)[:500]) from None
        if event is not None:
            await intake.accept(
                event, provider="twilio", message_id=voice.transcription_message_id(form)
            )
        return Response(_EMPTY_TWIML, media_type="text/xml")

    if extra is not None:
        extra(router, intake, settings)
    return router


def build_router(context: ChannelContext) -> APIRouter:
    """The Twilio channel's routes for the gateway."""
    return twilio_router(
        context.intake,
        context.settings.ingress,
        directory=TenantDirectory.from_settings(context.settings),
    )
