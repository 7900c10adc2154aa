"""Building the gateway from settings: every registered channel's routes on one app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI

from omnirouter.channels.twilio.routes import twilio_router
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import create_gateway_app

ChannelRouter = Callable[[ChannelContext], APIRouter]


def _twilio(context: ChannelContext) -> APIRouter:
    return twilio_router(context.intake, context.settings.ingress)


# Adding a channel: write channels/<name>/ and add its router factory here.
CHANNEL_ROUTERS: list[ChannelRouter] = [_twilio]


def channel_routers(context: ChannelContext) -> list[APIRouter]:
    """Every channel's router, built on the shared context."""
    return [build(context) for build in CHANNEL_ROUTERS]


def create_ingress_app(context: ChannelContext) -> FastAPI:
    """The standalone gateway app (the HTTP API mounts the same routers)."""
    return create_gateway_app(
        channel_routers(context), max_body_bytes=context.settings.ingress.max_body_bytes
    )
