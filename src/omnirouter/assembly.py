"""Putting the parts together from settings: the processes `omnirouter run` supervises.

Each function here builds real clients (Redis, Kafka) around the pure parts and runs until
asked to stop; nothing in it decides anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path

from omnirouter.connections import create_producer
from omnirouter.desktop.accounts import Accounts
from omnirouter.desktop.api import desk_router
from omnirouter.desktop.live import LiveFeed
from omnirouter.desktop.pages import desk_pages_router
from omnirouter.desktop.service import DeskService
from omnirouter.devstack import StackAddresses
from omnirouter.ingress.app import channel_routers
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.intake import Intake
from omnirouter.ingress.publishing import IngressPublisher
from omnirouter.logs import get_logger
from omnirouter.ops.http import ops_router
from omnirouter.ops.metrics import count_round_trips
from omnirouter.ops.worker_metrics import serve_worker_metrics
from omnirouter.pipeline.cases.operations import CaseOperations
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.identity.erasure import CustomerErasure
from omnirouter.pipeline.identity.operations import IdentityOperations, KafkaEventPublisher
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.routing.loader import rules_from_settings
from omnirouter.pipeline.routing.operations import RoutingOperations
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.security import redis_client
from omnirouter.settings import Settings

log = get_logger(__name__)


def _mark_ready(ready_file: Path | None) -> None:
    if ready_file is not None:
        ready_file.write_text("ready\n")


@contextlib.asynccontextmanager
async def identity_operations(
    settings: Settings, addresses: StackAddresses
) -> AsyncIterator[IdentityOperations]:
    """Operator actions on identity, on real Redis and Kafka clients closed afterwards."""
    client = redis_client(settings.redis, addresses.redis_url)
    producer = await asyncio.to_thread(
        create_producer,
        addresses.kafka_bootstrap_servers,
        client_id="omnirouter-identity-ops",
        security=settings.kafka,
    )
    store = RedisIdentityStore(
        client, key_prefix=settings.redis.key_prefix, policy=settings.identity
    )
    try:
        yield IdentityOperations(
            store, KafkaEventPublisher(producer), topic_prefix=settings.kafka.topic_prefix
        )
    finally:
        await asyncio.to_thread(producer.close)
        await client.aclose()


async def run_workers(
    settings: Settings,
    addresses: StackAddresses,
    stop: asyncio.Event,
    ready_file: Path | None = None,
) -> None:
    """Run the pipeline workers (identity, cases, routing, dispatcher) in this process until
    ``stop`` is set."""
    from omnirouter.pipeline import create_app
    from omnirouter.pipeline.cases.worker import CaseWorker
    from omnirouter.pipeline.dispatcher import DispatcherWorker
    from omnirouter.pipeline.fetching import FetchSizing
    from omnirouter.pipeline.identity.worker import IdentityWorker

    client = count_round_trips(redis_client(settings.redis, addresses.redis_url))
    busy_fetch = FetchSizing(
        min_bytes=settings.pipeline.fetch_min_bytes,
        max_wait_ms=settings.pipeline.fetch_max_wait_ms,
    )
    app = create_app(
        "omnirouter-pipeline",
        addresses.kafka_bootstrap_servers,
        security=settings.kafka,
        busy_fetch=busy_fetch,
        busy_from_records_per_s=settings.pipeline.fetch_busy_records_per_s,
    )
    store = RedisIdentityStore(
        client, key_prefix=settings.redis.key_prefix, policy=settings.identity
    )
    IdentityWorker(
        app,
        store,
        policy=settings.identity,
        pipeline=settings.pipeline,
        topic_prefix=settings.kafka.topic_prefix,
    )
    cases = RedisCaseStore(client, key_prefix=settings.redis.key_prefix, settings=settings.cases)
    router = RoutingEngine(
        rules_from_settings(settings.routing.rules_file),
        RoutingStore(client, key_prefix=settings.redis.key_prefix),
        cases,
    )
    CaseWorker(
        app,
        cases,
        settings=settings.cases,
        pipeline=settings.pipeline,
        topic_prefix=settings.kafka.topic_prefix,
        router=router,
        timer_interval_s=settings.routing.timer_interval_s,
    )
    # The dispatcher gets an app (and consumer group) of its own: a provider slow to answer
    # must not hold back identity, cases and routing.
    dispatcher_app = create_app(
        "omnirouter-dispatcher",
        addresses.kafka_bootstrap_servers,
        security=settings.kafka,
        # Replies to deliver, read once each: fuller fetches were measured for the pipeline's
        # traffic only, so the dispatcher keeps fetches answered at their first record.
        busy_from_records_per_s=math.inf,
    )
    DispatcherWorker(dispatcher_app, client, settings=settings)
    # Whatever started is stopped, last first, however the rest goes: a dispatcher that cannot
    # start must not leave the pipeline's app consuming, committing and holding its partitions
    # while the process reports the failure.
    async with contextlib.AsyncExitStack() as running:
        running.push_async_callback(client.aclose)
        metrics = serve_worker_metrics(settings)
        running.push_async_callback(asyncio.to_thread, metrics.stop)
        for faust_app in (app, dispatcher_app):
            # Registered before the start, so that a start failing half way is undone too.
            running.push_async_callback(faust_app.stop)
            await faust_app.start()
        log.info("workers started", workers=["identity", "cases", "routing", "dispatcher"])
        _mark_ready(ready_file)
        await stop.wait()
    log.info("workers stopped")


async def serve_http(
    settings: Settings,
    addresses: StackAddresses,
    stop: asyncio.Event,
    ready_file: Path | None = None,
) -> None:
    """Serve the HTTP API until ``stop`` is set."""
    import uvicorn

    from omnirouter.http import create_http_app

    async with identity_operations(settings, addresses) as identity:
        client = redis_client(settings.redis, addresses.redis_url)
        case_store = RedisCaseStore(
            client, key_prefix=settings.redis.key_prefix, settings=settings.cases
        )
        cases = CaseOperations(
            case_store,
            identity.publisher,
            topic_prefix=settings.kafka.topic_prefix,
            context_entries=settings.cases.context_entries,
            contacts_window_days=settings.cases.repeat_contact_window_days,
        )
        routing = RoutingOperations(
            RoutingEngine(
                rules_from_settings(settings.routing.rules_file),
                RoutingStore(client, key_prefix=settings.redis.key_prefix),
                case_store,
            ),
            identity.publisher,
            topic_prefix=settings.kafka.topic_prefix,
        )
        cases.on_case_left = routing.case_left
        publisher = IngressPublisher.connect(
            addresses.kafka_bootstrap_servers,
            topic_prefix=settings.kafka.topic_prefix,
            timeout_s=settings.ingress.publish_timeout_s,
            security=settings.kafka,
        )
        # On this loop, so the SMTP listener's writes come here too (see ingress.publishing).
        await publisher.start()
        intake = Intake(
            publisher,
            ProviderRetries(
                client, key_prefix=settings.redis.key_prefix, ttl_s=settings.ingress.dedupe_ttl_s
            ),
            retry_after_s=settings.ingress.retry_after_s,
        )
        gateway = channel_routers(ChannelContext(intake, settings, client))
        accounts = Accounts(
            client,
            key_prefix=settings.redis.key_prefix,
            session_ttl_s=settings.desktop.session_ttl_s,
        )
        live = None
        if settings.desktop.live_updates:
            live = LiveFeed(
                addresses.kafka_bootstrap_servers,
                topic_prefix=settings.kafka.topic_prefix,
                security=settings.kafka,
            )
            await live.start()
        desk = DeskService(
            cases, routing, identity.publisher, topic_prefix=settings.kafka.topic_prefix
        )
        gateway = [*gateway, desk_router(desk, accounts, live), desk_pages_router()]
        gateway.append(ops_router(settings, addresses.kafka_bootstrap_servers, routing.engine))
        app = create_http_app(
            settings.api,
            identity=identity,
            cases=cases,
            routing=routing,
            erasure=CustomerErasure(
                client,
                key_prefix=settings.redis.key_prefix,
                publisher=identity.publisher,
                topic_prefix=settings.kafka.topic_prefix,
            ),
            extra_routers=gateway,
            max_body_bytes=settings.ingress.max_body_bytes,
        )
        smtp = None
        if settings.ingress.smtp_enabled:
            from omnirouter.channels.email.smtp import start_smtp_listener

            smtp = await asyncio.to_thread(start_smtp_listener, settings, publisher)
            log.info("smtp listening", host=settings.ingress.smtp_host, port=smtp.port)
        config = uvicorn.Config(
            app,
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,  # keep omnirouter's structlog set-up
            access_log=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers only a flag
            await asyncio.sleep(0.05)
        if server.started:
            log.info("http api listening", host=settings.api.host, port=settings.api.port)
            _mark_ready(ready_file)
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
        stopping.cancel()
        if smtp is not None:
            await asyncio.to_thread(smtp.stop)
        if live is not None:
            await live.stop()
        await intake.aclose()
        await publisher.aclose()
        await client.aclose()
