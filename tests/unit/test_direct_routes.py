"""Webhook endpoints marked `direct` are served without FastAPI's router, with the same answers."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from omnirouter.ingress.gateway import create_gateway_app, direct, limit_body_size, read_body

LIMIT = 1_000


class RouterSpy:
    """Stands in for the app's router: records what reached it, answers 404 as it would."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await Response(status_code=404)(scope, receive, send)


def webhooks() -> APIRouter:
    router = APIRouter(prefix="/webhooks/acme")

    @router.post("/messages")
    @direct
    async def message(request: Request) -> Response:
        body = await read_body(request, LIMIT)
        if body == b"unsigned":
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing signature")
        if body == b"later":
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "try again", headers={"Retry-After": "7"}
            )
        if body == b"bug":
            raise RuntimeError("a bug in the endpoint")
        return Response(b"<Response/>", media_type="text/xml")

    @router.post("/statuses")
    async def routed(request: Request) -> Response:
        return Response(b"routed")

    return router


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="https://gw")


@pytest.fixture
def spied() -> tuple[FastAPI, RouterSpy]:
    app = create_gateway_app([webhooks()], max_body_bytes=LIMIT)
    spy = RouterSpy()
    app.router = spy  # type: ignore[assignment]  # the stack is built on the first request
    return app, spy


async def test_a_direct_endpoint_answers_without_the_router(
    spied: tuple[FastAPI, RouterSpy],
) -> None:
    app, spy = spied
    async with client(app) as http:
        answer = await http.post("/webhooks/acme/messages", content=b"hello")
        other = await http.post("/webhooks/acme/statuses", content=b"hello")
        wrong_method = await http.get("/webhooks/acme/messages")

    assert (answer.status_code, answer.text) == (200, "<Response/>")
    assert answer.headers["content-type"].startswith("text/xml")
    # Everything else still goes through the router: unmarked routes, other methods.
    assert spy.paths == ["/webhooks/acme/statuses", "/webhooks/acme/messages"]
    assert (other.status_code, wrong_method.status_code) == (404, 404)


@pytest.mark.parametrize(
    ("body", "code", "detail", "retry_after"),
    [
        (b"unsigned", 401, "missing signature", None),
        (b"later", 503, "try again", "7"),
        (b"y" * (LIMIT + 1), 413, f"payload larger than {LIMIT} bytes", None),
    ],
)
async def test_http_errors_are_answered_as_the_router_answers_them(
    body: bytes, code: int, detail: str, retry_after: str | None
) -> None:
    """The same app with the short way and without it (the router's own exception handling)
    gives the same status, body and headers."""
    answers: list[httpx.Response] = []
    for app in (create_gateway_app([webhooks()], max_body_bytes=LIMIT), _without_direct()):
        async with client(app) as http:
            answers.append(await http.post("/webhooks/acme/messages", content=body))

    direct_answer, routed_answer = answers
    for answer in answers:
        assert answer.status_code == code
        assert answer.json() == {"detail": detail}
        assert answer.headers.get("retry-after") == retry_after
    assert direct_answer.headers == routed_answer.headers


def _with_handlers(app: FastAPI) -> FastAPI:
    """Handlers registered by status code (async) and by class (sync), as an app may."""

    async def by_status(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("come back later", status_code=503, headers={"X-Handled": "503"})

    def by_class(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("who are you", status_code=401, headers={"X-Handled": "class"})

    app.add_exception_handler(503, by_status)
    app.add_exception_handler(HTTPException, by_class)
    return app


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [(b"later", 503, "come back later"), (b"unsigned", 401, "who are you")],
)
async def test_the_apps_own_exception_handlers_answer_direct_endpoints_too(
    body: bytes, code: int, text: str
) -> None:
    answers: list[httpx.Response] = []
    for app in (create_gateway_app([webhooks()], max_body_bytes=LIMIT), _without_direct()):
        async with client(_with_handlers(app)) as http:
            answers.append(await http.post("/webhooks/acme/messages", content=body))

    for answer in answers:
        assert (answer.status_code, answer.text) == (code, text)
    assert answers[0].headers == answers[1].headers


def _without_direct() -> FastAPI:
    app = FastAPI()
    app.include_router(webhooks())
    limit_body_size(app, LIMIT)
    return app


async def test_an_undeclared_body_past_the_limit_is_413_from_a_direct_endpoint() -> None:
    """A chunked body declares no length; the endpoint's own read refuses it, as routed."""

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield b"y" * 600

    app = create_gateway_app([webhooks()], max_body_bytes=LIMIT)
    async with client(app) as http:
        answer = await http.post("/webhooks/acme/messages", content=chunks())

    assert answer.status_code == 413
    assert answer.json() == {"detail": f"payload larger than {LIMIT} bytes"}


async def test_an_endpoint_that_fails_is_a_500_not_a_dropped_connection() -> None:
    app = create_gateway_app([webhooks()], max_body_bytes=LIMIT)
    async with client(app) as http:
        answer = await http.post("/webhooks/acme/messages", content=b"bug")

    assert answer.status_code == 500


def test_only_endpoints_that_take_the_request_alone_can_be_direct() -> None:
    async def with_a_parameter(form_id: str, request: Request) -> Response:
        return Response()

    with pytest.raises(TypeError, match="takes the request alone"):
        direct(with_a_parameter)


def test_a_direct_route_with_a_path_parameter_is_refused() -> None:
    router = APIRouter()

    async def by_key(request: Request) -> Response:
        return Response()

    router.add_api_route("/hooks/{key}", direct(by_key), methods=["POST"])
    with pytest.raises(TypeError, match="no path parameters"):
        create_gateway_app([router], max_body_bytes=LIMIT)
