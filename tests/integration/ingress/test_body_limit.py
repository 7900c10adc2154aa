"""The gateway refuses a body declared past its limit before any route reads it."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request, Response

from omnirouter.ingress.gateway import create_gateway_app, read_body

LIMIT = 1_000


def echo_gateway(reached: list[int]) -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> Response:
        body = await read_body(request, LIMIT)
        reached.append(len(body))
        return Response(body[::-1], media_type="text/plain", headers={"X-Length": str(len(body))})

    app = create_gateway_app([router], max_body_bytes=LIMIT)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_a_body_declared_past_the_limit_is_413_and_never_reaches_the_route() -> None:
    reached: list[int] = []
    async with echo_gateway(reached) as client:
        answer = await client.post("/echo", content=b"x" * (LIMIT + 1))

    assert answer.status_code == 413
    assert answer.json() == {"detail": f"payload larger than {LIMIT} bytes"}
    assert reached == []


async def test_a_body_within_the_limit_and_its_answer_pass_through_unchanged() -> None:
    reached: list[int] = []
    async with echo_gateway(reached) as client:
        answer = await client.post("/echo", content=b"abc" * 10)

    assert answer.status_code == 200
    assert answer.content == b"cba" * 10
    assert answer.headers["x-length"] == "30"
    assert reached == [30]


async def test_an_undeclared_body_growing_past_the_limit_is_413_from_the_route() -> None:
    """Chunked uploads declare no length: the route's own read stops them."""

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield b"y" * 600

    reached: list[int] = []
    async with echo_gateway(reached) as client:
        answer = await client.post("/echo", content=chunks())

    assert answer.status_code == 413
    assert reached == []
