"""Web form endpoint: origin check, parse, normalize, hand to the gateway's intake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.webform.normalize import (
    PROVIDER,
    UnsupportedContentType,
    normalize_submission,
    parse_submission,
)
from omnirouter.channels.webform.origin import origin_allowed
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import read_body

FormId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


def build_router(context: ChannelContext) -> APIRouter:
    """The web form channel's routes for the gateway."""
    settings = context.settings.ingress
    intake = context.intake
    router = APIRouter(prefix="/forms", tags=["webform"])

    @router.post("/{form_id}")
    async def submit_form(form_id: FormId, request: Request) -> JSONResponse:
        """A submission of form ``form_id`` (urlencoded, multipart or JSON)."""
        if not origin_allowed(
            request.headers.get("origin"),
            request.headers.get("referer"),
            settings.form_allowed_origins,
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "forms may not be posted from here")
        raw = await read_body(request, settings.max_body_bytes)
        try:
            fields = parse_submission(raw, request.headers.get("content-type", ""))
            event = normalize_submission(form_id, fields, datetime.now(UTC))
        except UnsupportedContentType as exc:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
        except (NormalizationError, ValueError) as exc:
            raise await intake.reject(raw, provider=PROVIDER, reason=str(exc)[:500]) from None
        await intake.accept(event, provider=PROVIDER, message_id=event.provider.message_id)
        return JSONResponse({"status": "received"})

    return router
