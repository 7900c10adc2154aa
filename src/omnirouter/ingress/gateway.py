"""The ingress gateway ASGI app: every channel's routes behind one set of guarantees."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse

from omnirouter import __version__


def limit_body_size(app: FastAPI, max_bytes: int) -> None:
    """Answer 413 before reading a body larger than ``max_bytes``."""

    @app.middleware("http")
    async def _limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return JSONResponse(
                {"detail": f"payload larger than {max_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
        return await call_next(request)


def create_gateway_app(routers: Sequence[APIRouter], *, max_body_bytes: int) -> FastAPI:
    """The gateway with the given channel routers mounted."""
    app = FastAPI(
        title="omnirouter ingress gateway",
        version=__version__,
        description="Provider webhooks, inbound e-mail, web forms and web chat.",
    )
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
