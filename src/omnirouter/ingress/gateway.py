"""The ingress gateway ASGI app: every channel's routes behind one set of guarantees."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from omnirouter import __version__


class DeclaredBodyLimit:
    """Answers 413 to a request whose declared Content-Length is past the limit, unread.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs
    every request's app in a task group of its own and re-streams the response through a
    memory channel, which cost the gateway about a tenth of its CPU per webhook.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap ``app``; refuse bodies declared larger than ``max_bytes``."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a too-large declared body; pass everything else through untouched."""
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.max_bytes:
                        refusal = JSONResponse(
                            {"detail": f"payload larger than {self.max_bytes} bytes"},
                            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                        )
                        await refusal(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


def limit_body_size(app: FastAPI, max_bytes: int) -> None:
    """Answer 413 before reading a body larger than ``max_bytes``."""
    app.add_middleware(DeclaredBodyLimit, max_bytes=max_bytes)


Endpoint = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", bound=Endpoint)
_DIRECT = "__omnirouter_direct__"


def direct(endpoint: E) -> E:
    """Mark a webhook endpoint to be called without FastAPI's routing and dependency machinery.

    For endpoints that take the raw request and build their own response (provider webhooks:
    they parse and verify the body themselves). The route stays registered as usual (OpenAPI,
    tests, any other app that mounts it); :class:`DirectRoutes` only takes the short way there.
    """
    parameters = list(inspect.signature(endpoint).parameters.values())
    if len(parameters) != 1:
        raise TypeError(f"{endpoint.__qualname__}: a direct endpoint takes the request alone")
    setattr(endpoint, _DIRECT, True)
    return endpoint


class DirectRoutes:
    """Calls the endpoints marked :func:`direct` straight from the path, before the router.

    A webhook through FastAPI crossed five middlewares, a router matching every route of the
    API in turn, dependency solving and a response wrapper: in a profile of the gateway at its
    maximum rate that was as much CPU as the webhook's own work (verifying, normalizing,
    publishing). A marked endpoint takes only the request, so nothing of that is needed;
    HTTP errors are answered by the app's own handler, as the router would have.
    """

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Endpoint]) -> None:
        """Wrap ``app`` (a FastAPI app's middleware stack); ``routes`` by (method, path)."""
        self.app = app
        self._routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a direct route; hand everything else to the app."""
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self._routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except StarletteHTTPException as exc:
                    response = await _http_error(scope["app"], request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _http_error(app: Any, request: Request, exc: StarletteHTTPException) -> Response:
    # Looked up as Starlette's ExceptionMiddleware does: by status code, then by class.
    handlers = app.exception_handlers
    handler = handlers.get(exc.status_code)
    if handler is None:
        handler = next((handlers[k] for k in type(exc).__mro__ if k in handlers), None)
    if handler is None:
        return await http_exception_handler(request, exc)
    if inspect.iscoroutinefunction(handler):
        answer: Response = await handler(request, exc)
    else:
        answer = await run_in_threadpool(handler, request, exc)
    return answer


def serve_direct_routes(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Take the short way to the endpoints of ``routers`` marked :func:`direct` (the routers
    are included in ``app`` without a prefix of their own)."""
    routes: dict[tuple[str, str], Endpoint] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and getattr(route.endpoint, _DIRECT, False):
                if route.param_convertors:
                    raise TypeError(f"{route.path}: a direct route has no path parameters")
                for method in route.methods or ():
                    routes[(method, route.path)] = route.endpoint
    app.add_middleware(DirectRoutes, routes=routes)


def create_gateway_app(routers: Sequence[APIRouter], *, max_body_bytes: int) -> FastAPI:
    """The gateway with the given channel routers mounted."""
    app = FastAPI(
        title="omnirouter ingress gateway",
        version=__version__,
        description="Provider webhooks, inbound e-mail, web forms and web chat.",
    )
    serve_direct_routes(app, routers)
    limit_body_size(app, max_body_bytes)
    for router in routers:
        app.include_router(router)
    return app


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing (413) one that grows past ``max_bytes`` without declaring it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"payload larger than {max_bytes} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)
