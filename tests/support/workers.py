"""Starting pipeline workers on the real stack, and replaying their input from offset 0."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from omnirouter.devstack import StackAddresses
from omnirouter.pipeline import create_app
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.cases.worker import CaseWorker
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.identity.worker import IdentityWorker
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.routing.loader import parse_rules
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.settings import CaseSettings, PipelineSettings
from support.stack import async_redis
from support.waiting import eventually_async

PIPELINE = PipelineSettings(batch_max=50, batch_within_s=0.02)


async def start_workers(
    stack: StackAddresses,
    *,
    app_id: str,
    prefix: str,
    redis_prefix: str,
    rules_yaml: str | None = None,
    redis: aioredis.Redis | None = None,
    pipeline: PipelineSettings = PIPELINE,
) -> tuple[Any, RedisCaseStore, RedisIdentityStore, CaseWorker, aioredis.Redis]:
    """A faust app running both workers; the caller stops it (and closes the client).

    ``redis``: the client to run on instead of one for the session's Redis (a test's own
    Redis Cluster, say). ``pipeline``: batch size and wait (small by default, for speed).
    """
    client = redis if redis is not None else async_redis(stack.redis_url)
    policy = IdentityPolicy()
    app = create_app(app_id, stack.kafka_bootstrap_servers)
    identity = RedisIdentityStore(client, key_prefix=redis_prefix, policy=policy)
    IdentityWorker(app, identity, policy=policy, pipeline=pipeline, topic_prefix=prefix)
    cases = RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings())
    router = None
    if rules_yaml is not None:
        router = RoutingEngine(
            parse_rules(rules_yaml), RoutingStore(client, key_prefix=redis_prefix), cases
        )
    worker = CaseWorker(
        app,
        cases,
        settings=CaseSettings(),
        pipeline=pipeline,
        topic_prefix=prefix,
        router=router,
        timer_interval_s=0.2,
    )
    await app.start()
    return app, cases, identity, worker, client


async def replay_everything(pipeline: Any) -> None:
    """Run a second case worker (a new consumer group) over its input topics from offset 0,
    and return once it has consumed every record they hold."""
    await pipeline.reader.poll()
    inputs = ["interactions.resolved", "interactions.outbound", "customers.merged"]
    total = sum(len(pipeline.reader.on(pipeline.topic(key))) for key in inputs)
    client = async_redis(pipeline.stack.redis_url)
    app = create_app("replay-" + pipeline.prefix.strip("."), pipeline.stack.kafka_bootstrap_servers)
    store = RedisCaseStore(client, key_prefix=pipeline.redis_prefix, settings=CaseSettings())
    worker = CaseWorker(
        app, store, settings=CaseSettings(), pipeline=PIPELINE, topic_prefix=pipeline.prefix
    )
    await app.start()
    try:

        async def consumed_all() -> bool:
            return worker.events_consumed >= total

        await eventually_async(consumed_all, timeout_s=60, what=f"the replay of {total} records")
    finally:
        await app.stop()
        await client.aclose()
