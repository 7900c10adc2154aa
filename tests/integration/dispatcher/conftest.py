"""The outbound dispatcher on the real stack, delivering to local fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from omnirouter.connections import create_producer, ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.events import topic_spec
from omnirouter.pipeline import create_app
from omnirouter.pipeline.dispatcher import DispatcherWorker
from omnirouter.runtime import catalogue_topics
from support.dispatching import Dispatch, dispatcher_settings
from support.fake_providers import serve_fake_providers, serve_smtp_relay
from support.kafka import TopicReader


@pytest.fixture
async def dispatch(
    stack: StackAddresses, unique_id: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Dispatch]:
    prefix = f"test.{unique_id}."
    with serve_fake_providers() as providers, serve_smtp_relay() as smtp:
        settings = dispatcher_settings(stack, prefix, redis_prefix, providers, smtp)
        ensure_topics(
            stack.kafka_bootstrap_servers,
            [t._replace(partitions=min(t.partitions, 3)) for t in catalogue_topics(settings)],
        )
        client = aioredis.Redis.from_url(stack.redis_url)
        # datadir: faust's per-app folder goes under tmp_path, not into the working directory.
        app = create_app(
            f"dispatcher-{unique_id}", stack.kafka_bootstrap_servers, datadir=str(tmp_path)
        )
        waits: list[float] = []

        async def no_wait(seconds: float) -> None:
            waits.append(seconds)

        worker = DispatcherWorker(app, client, settings=settings, sleep=no_wait)
        producer = create_producer(stack.kafka_bootstrap_servers, client_id="dispatcher-test")
        outputs = [topic_spec(k).name(prefix) for k in ("interactions.outbound", "deadletter")]
        await app.start()
        try:
            async with TopicReader(stack.kafka_bootstrap_servers, outputs) as reader:
                yield Dispatch(
                    prefix, settings, producer, reader, client, worker, providers, smtp, waits
                )
        finally:
            await app.stop()
            producer.close()
            await client.aclose()
