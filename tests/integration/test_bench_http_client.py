"""The bench's keep-alive pool against real servers on loopback: uvicorn, as the gateway is
served, and scripted servers that close, drop or never answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from omnirouter.bench.gateway import SignedWebhooks, offer_webhooks
from omnirouter.bench.http import KeepAlivePool, build_post
from omnirouter.bench.schedule import StepPlan
from omnirouter.channels.twilio.signature import twilio_signature
from support.served_gateway import served_in_thread
from support.waiting import eventually_async

HEADERS = {"Content-Type": "text/plain"}


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """``app`` on uvicorn, as ``omnirouter serve`` runs the gateway, on a free port."""

    @asynccontextmanager
    async def make_app() -> AsyncIterator[Starlette]:
        yield app

    with served_in_thread(make_app, name="bench-http-test-server") as (host, port):
        yield f"http://{host}:{port}"


def echo_app(seen: list[bytes], clients: set[object]) -> Starlette:
    async def echo(request: Request) -> Response:
        seen.append(await request.body())
        clients.add(request.client)
        return PlainTextResponse("ok")

    async def stream(request: Request) -> Response:
        clients.add(request.client)

        async def pieces() -> AsyncIterator[bytes]:
            for piece in (b"<Response>", b"</Response>"):
                yield piece

        return StreamingResponse(pieces(), status_code=202)

    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/stream", stream, methods=["POST"])]
    )


async def test_requests_reuse_a_few_keep_alive_connections_and_each_arrives_once() -> None:
    seen: list[bytes] = []
    clients: set[object] = set()
    with served(echo_app(seen, clients)) as url:
        pool = KeepAlivePool(url + "/echo", limit=4, timeout_s=10)
        bodies = [f"webhook {i}".encode() for i in range(200)]
        async with asyncio.timeout(30):  # a place leaked in the pool would wait forever
            statuses = await asyncio.gather(
                *(pool.post(build_post(url + "/echo", body, HEADERS)) for body in bodies)
            )
        pool.close()
    assert statuses == [200] * 200
    assert sorted(seen) == sorted(bodies)
    assert 1 <= len(clients) <= 4  # 200 concurrent requests, never more than the limit


async def test_a_chunked_answer_from_uvicorn_is_read_to_its_end_and_the_connection_reused() -> None:
    clients: set[object] = set()
    with served(echo_app([], clients)) as url:
        pool = KeepAlivePool(url, limit=1, timeout_s=10)
        async with asyncio.timeout(30):
            statuses = [
                await pool.post(build_post(url + "/stream", b"", HEADERS)) for _ in range(5)
            ]
        pool.close()
    assert statuses == [202] * 5
    assert len(clients) == 1


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[int]]]:
    """A server that runs ``script(reader, writer, n)`` for its n-th connection."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            await script(reader, writer, connections[-1])
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", connections
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def test_a_server_that_closes_after_each_answer_gets_a_new_connection_each_time() -> None:
    async def answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
    ) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with scripted(answer_then_close) as (url, connections):
        pool = KeepAlivePool(url, limit=1, timeout_s=10)
        async with asyncio.timeout(30):  # a place leaked in the pool would wait forever
            statuses = [await pool.post(build_post(url, b"x", HEADERS)) for _ in range(3)]
        pool.close()
    assert statuses == [200, 200, 200]
    assert len(connections) == 3


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close the connection without an answer."""


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep the connection open and silent until the client gives up."""
    await reader.read()


@pytest.mark.parametrize(
    ("first_connection", "timeout_s", "error"),
    [(hang_up, 10.0, ConnectionResetError), (never_answer, 0.3, TimeoutError)],
)
async def test_a_failed_request_is_an_error_and_frees_its_place_in_the_pool(
    first_connection: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    timeout_s: float,
    error: type[Exception],
) -> None:
    """With a limit of one, a leaked place would leave every later request waiting forever."""

    async def fail_the_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        if n == 0:
            await first_connection(reader, writer)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with scripted(fail_the_first) as (url, connections):
        pool = KeepAlivePool(url, limit=1, timeout_s=timeout_s)
        with pytest.raises(error):
            await pool.post(build_post(url, b"x", HEADERS))
        async with asyncio.timeout(10):
            assert await pool.post(build_post(url, b"y", HEADERS)) == 200
        pool.close()
    assert len(connections) == 2


async def test_a_refused_connection_is_an_error_and_frees_its_place() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens on the port any more
    url = f"http://127.0.0.1:{port}/hook"
    pool = KeepAlivePool(url, limit=1, timeout_s=10)
    for _ in range(2):  # the second would wait forever if the first kept its place
        with pytest.raises(ConnectionRefusedError):
            async with asyncio.timeout(10):
                await pool.post(build_post(url, b"x", HEADERS))


async def test_the_gateway_step_offers_every_signed_webhook_once_and_measures_the_steady_ones() -> (
    None
):
    """offer_webhooks on this client: each prebuilt request arrives once, with its signature,
    and every request intended in the steady window has a latency."""
    seen: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        seen.append((await request.body(), request.headers["x-twilio-signature"]))
        return PlainTextResponse("<Response/>", media_type="text/xml")

    with served(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        target = SignedWebhooks(url + "/hook", "token")
        plan = StepPlan(1, 200.0, time.monotonic(), warmup_s=0.25, steady_s=0.5)
        requests = target.build(plan.total, seed=1)
        step = await offer_webhooks(plan, target, requests, connections=8)
    assert step.statuses == {"200": plan.total}
    assert len(seen) == plan.total == 150
    assert {body for body, _ in seen} == {r.partition(b"\r\n\r\n")[2] for r in requests}
    for body, signature in seen:  # signed for the URL they were posted to
        fields = sorted(parse_qsl(body.decode()))
        assert signature == twilio_signature("token", url + "/hook", fields)
    assert len(step.latencies_s) == sum(
        plan.intended(i) >= plan.steady_from for i in range(plan.total)
    )


async def test_a_connection_already_closing_fails_a_request_at_once() -> None:
    """Closed by the server after its last answer, before the pool noticed: the request fails
    then and there instead of waiting out the timeout."""
    with served(echo_app([], set())) as url:
        pool = KeepAlivePool(url, limit=1, timeout_s=30)
        request = build_post(url + "/echo", b"x", HEADERS)
        assert await pool.post(request) == 200
        (connection,) = pool._idle
        assert connection.transport is not None
        connection.transport.close()  # closing; connection_lost has not run yet
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(5):
                await connection.send(request, 30)
        pool.close()


async def test_a_waiter_cancelled_after_being_handed_a_place_passes_it_on() -> None:
    """A dropped connection's place goes to a waiting request; if that request is cancelled
    before it runs, the place is freed (or handed on), never counted twice."""
    pool = KeepAlivePool("http://127.0.0.1:9/hook", limit=1, timeout_s=1)
    pool._open = 1  # a request in flight holds the only place
    waiting = asyncio.create_task(pool._acquire())

    async def is_waiting() -> bool:
        return bool(pool._waiting)

    await eventually_async(is_waiting, timeout_s=5, what="the request to wait for a place")
    pool._release(None)  # the request in flight lost its connection: the waiter gets its place
    waiting.cancel()  # and gives up before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool._open == 0


async def test_connections_that_come_back_to_a_closed_pool_are_closed() -> None:
    with served(echo_app([], set())) as url:
        pool = KeepAlivePool(url, limit=2, timeout_s=10)
        in_flight = asyncio.create_task(pool.post(build_post(url + "/echo", b"x", HEADERS)))

        async def opened() -> bool:
            return pool._open == 1

        await eventually_async(opened, timeout_s=5, what="the request to take a place")
        pool.close()
        assert await in_flight == 200
    assert pool._idle == []
    assert pool._open == 0


async def test_every_offered_request_is_counted_even_when_the_answer_is_unreadable() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async with scripted(garbage) as (url, _):
        target = SignedWebhooks(url, "token")
        plan = StepPlan(1, 200.0, time.monotonic(), warmup_s=0.0, steady_s=0.25)
        step = await offer_webhooks(plan, target, target.build(plan.total, seed=1), connections=4)
    assert step.statuses == {"HttpProtocolError": plan.total}
    assert step.completed == plan.total
    assert step.errors == plan.total
