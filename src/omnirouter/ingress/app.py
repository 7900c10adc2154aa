"""Building the gateway from settings: every registered channel's routes on one app."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fastapi import APIRouter, FastAPI

from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.gateway import create_gateway_app

ChannelRouter = Callable[[ChannelContext], APIRouter]


# Adding a channel: write channels/<name>/routes.py with ``build_router(context)`` and add the
# package name here (one line per channel).
CHANNELS: tuple[str, ...] = (
    "twilio",
    "email",
    "webchat",
    "meta_whatsapp",
    "webform",
    "signed_json",
)


def channel_routers(context: ChannelContext) -> list[APIRouter]:
    """Every channel's router, built on the shared context."""
    routers = []
    for name in CHANNELS:
        module = importlib.import_module(f"omnirouter.channels.{name}.routes")
        build: ChannelRouter = module.build_router
        routers.append(build(context))
    return routers


def create_ingress_app(context: ChannelContext) -> FastAPI:
    """The standalone gateway app (the HTTP API mounts the same routers)."""
    return create_gateway_app(
        channel_routers(context), max_body_bytes=context.settings.ingress.max_body_bytes
    )
