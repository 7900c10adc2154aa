"""What the security tests attack: the gateway's settings with every secret set, and the whole
HTTP API assembled as ``omnirouter serve`` assembles it (assembly.serve_http), served by uvicorn
on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import SecretStr

from omnirouter.connections import create_producer, ensure_topics
from omnirouter.desktop.accounts import Accounts
from omnirouter.desktop.api import desk_router
from omnirouter.desktop.pages import desk_pages_router
from omnirouter.desktop.service import DeskService
from omnirouter.devstack import StackAddresses
from omnirouter.http import create_http_app
from omnirouter.ingress.app import channel_routers
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.intake import Intake
from omnirouter.ingress.publishing import IngressPublisher
from omnirouter.ops.http import ops_router
from omnirouter.pipeline.cases.operations import CaseOperations
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.identity.erasure import CustomerErasure
from omnirouter.pipeline.identity.operations import IdentityOperations, KafkaEventPublisher
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.routing.loader import rules_from_settings
from omnirouter.pipeline.routing.operations import RoutingOperations
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import (
    ApiSettings,
    DesktopSettings,
    IngressSettings,
    KafkaSettings,
    RedisSettings,
    RoutingSettings,
    Settings,
)
from support.kafka import TopicReader
from support.served_gateway import served_in_thread

PUBLIC_URL = "https://cx.example.com"
SHOP = "https://shop.example.com"
ADMIN_TOKEN = "security-admin-token"
SECRETS: dict[str, Any] = {
    "public_url": PUBLIC_URL,
    "twilio_auth_token": SecretStr("12345678901234567890123456789012"),
    "meta_app_secret": SecretStr("meta-app-secret"),
    "meta_verify_token": SecretStr("meta-verify-token"),
    "mailgun_signing_key": SecretStr("key-mailgun-signing"),
    "sendgrid_token": SecretStr("sendgrid-shared-token"),
    "signing_secrets": {"crm": SecretStr("crm-shared-secret")},
    "webchat_allowed_origins": (SHOP,),
    "form_allowed_origins": (SHOP,),
    "smtp_enabled": False,
}
RULES = """
queues:
  - id: general
  - id: billing
rules:
  - {id: money, when: {intents: [billing]}, route_to: billing}
default_queue: general
"""


def security_settings(
    stack: StackAddresses, prefix: str, redis_prefix: str, rules_file: Path | None = None
) -> Settings:
    """Every provider secret set (so every endpoint is open to signed traffic), an operator
    token, and live updates off (the desk's event stream is covered by its own tests)."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        redis=RedisSettings(url=stack.redis_url, key_prefix=redis_prefix),
        ingress=IngressSettings(**SECRETS),
        api=ApiSettings(admin_token=SecretStr(ADMIN_TOKEN)),
        routing=RoutingSettings(rules_file=rules_file),
        desktop=DesktopSettings(live_updates=False),
    )
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    return settings


# --- the gateway, in-process ------------------------------------------------------------------


@dataclass
class Gateway:
    """The gateway app in-process, and a reader of the inbound topic."""

    context: ChannelContext
    client: httpx.AsyncClient
    reader: TopicReader
    settings: Settings
    inbound: str


# --- the whole HTTP API, served ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def assembled_api(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app `omnirouter serve` runs, composed as assembly.serve_http composes it (without
    the SMTP listener and the desk's live feed, which need listeners of their own)."""
    bootstrap = settings.kafka.bootstrap_servers or ""
    prefix = settings.kafka.topic_prefix
    client = aioredis.Redis.from_url(settings.redis.url or "")
    producer = IngressPublisher.connect(
        bootstrap, topic_prefix=prefix, timeout_s=settings.ingress.publish_timeout_s
    )
    operations_producer = await asyncio.to_thread(
        create_producer, bootstrap, client_id="omnirouter-identity-ops"
    )
    events = KafkaEventPublisher(operations_producer)
    identity = IdentityOperations(
        RedisIdentityStore(client, key_prefix=settings.redis.key_prefix, policy=settings.identity),
        events,
        topic_prefix=prefix,
    )
    case_store = RedisCaseStore(
        client, key_prefix=settings.redis.key_prefix, settings=settings.cases
    )
    cases = CaseOperations(
        case_store,
        events,
        topic_prefix=prefix,
        context_entries=settings.cases.context_entries,
        contacts_window_days=settings.cases.repeat_contact_window_days,
    )
    engine = RoutingEngine(
        rules_from_settings(settings.routing.rules_file),
        RoutingStore(client, key_prefix=settings.redis.key_prefix),
        case_store,
    )
    routing = RoutingOperations(engine, events, topic_prefix=prefix)
    cases.on_case_left = routing.case_left
    intake = Intake(
        producer,
        ProviderRetries(
            client, key_prefix=settings.redis.key_prefix, ttl_s=settings.ingress.dedupe_ttl_s
        ),
        retry_after_s=settings.ingress.retry_after_s,
    )
    accounts = Accounts(
        client, key_prefix=settings.redis.key_prefix, session_ttl_s=settings.desktop.session_ttl_s
    )
    desk = DeskService(cases, routing, events, topic_prefix=prefix)
    routers = [
        *channel_routers(ChannelContext(intake, settings, client)),
        desk_router(desk, accounts, None),
        desk_pages_router(),
        ops_router(settings, bootstrap, engine, sample=False),
    ]
    try:
        yield create_http_app(
            settings.api,
            identity=identity,
            cases=cases,
            routing=routing,
            erasure=CustomerErasure(
                client, key_prefix=settings.redis.key_prefix, publisher=events, topic_prefix=prefix
            ),
            extra_routers=routers,
            max_body_bytes=settings.ingress.max_body_bytes,
        )
    finally:
        await intake.aclose()
        await producer.aclose()
        await asyncio.to_thread(operations_producer.close)
        await client.aclose()


@contextlib.contextmanager
def served_api(settings: Settings) -> Iterator[str]:
    """The assembled API served by uvicorn in a thread (see served_in_thread). Yields the base
    URL."""
    with served_in_thread(lambda: assembled_api(settings), name="security-api") as (host, port):
        yield f"http://{host}:{port}"
