"""ASGI apps served by a real uvicorn server in a thread, for socket and browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import redis.asyncio as aioredis
import uvicorn

from omnirouter.ingress.app import create_ingress_app
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.intake import Intake
from omnirouter.ingress.publishing import IngressPublisher
from omnirouter.settings import Settings
from support.waiting import eventually


@contextlib.contextmanager
def served_in_thread(
    make_app: Callable[[], AbstractAsyncContextManager[Any]], *, name: str
) -> Iterator[tuple[str, int]]:
    """Serve the app ``make_app`` yields on a loopback port, in a thread with its own event loop.

    The app (and its Redis client and Kafka producer) is made and closed inside that loop:
    asyncio clients must not cross loops, so the test's own clients stay separate. Yields
    (host, port); a failure in the thread fails the test.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # bound here, so no other process can take the port first
    host, port = listener.getsockname()
    servers: list[uvicorn.Server] = []
    failures: list[BaseException] = []

    async def serve() -> None:
        async with make_app() as app:
            config = uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=10,
            )
            server = uvicorn.Server(config)
            servers.append(server)
            await server.serve(sockets=[listener])

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        eventually(
            lambda: failures or (servers and servers[0].started),
            timeout_s=30,
            what=f"{name} to listen",
        )
        if failures:
            raise AssertionError(f"{name} did not start: {failures[0]!r}")
        yield host, port
    finally:
        if servers:
            servers[0].should_exit = True
        thread.join(timeout=30)
        listener.close()
        assert not thread.is_alive(), f"the {name} thread did not stop"
        assert not failures, f"{name} failed: {failures[0]!r}"


@contextlib.contextmanager
def served_gateway(settings: Settings) -> Iterator[str]:
    """The ingress gateway served by uvicorn in a thread (see served_in_thread). Yields
    host:port."""

    @contextlib.asynccontextmanager
    async def gateway() -> AsyncIterator[Any]:
        redis_client = aioredis.Redis.from_url(settings.redis.url or "")
        publisher = IngressPublisher.connect(
            settings.kafka.bootstrap_servers or "",
            topic_prefix=settings.kafka.topic_prefix,
            timeout_s=settings.ingress.publish_timeout_s,
        )
        retries = ProviderRetries(
            redis_client, key_prefix=settings.redis.key_prefix, ttl_s=settings.ingress.dedupe_ttl_s
        )
        intake = Intake(publisher, retries, retry_after_s=settings.ingress.retry_after_s)
        try:
            yield create_ingress_app(ChannelContext(intake, settings, redis_client))
        finally:
            await intake.aclose()
            await publisher.aclose()
            await redis_client.aclose()

    with served_in_thread(gateway, name="webchat-gateway") as (host, port):
        yield f"{host}:{port}"
