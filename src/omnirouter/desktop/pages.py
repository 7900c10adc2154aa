"""The desktop's pages: server-rendered HTML with a light JavaScript layer (no build step)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

_STATIC = resources.files("omnirouter.desktop").joinpath("static")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def desk_pages_router() -> APIRouter:
    """``/desk`` (the desktop), ``/desk/login`` and the static assets."""
    router = APIRouter(tags=["desktop pages"], include_in_schema=False)

    @router.get("/desk/login")
    async def login_page() -> HTMLResponse:
        return HTMLResponse(_STATIC.joinpath("login.html").read_text())

    @router.get("/desk")
    async def desk_page() -> HTMLResponse:
        return HTMLResponse(_STATIC.joinpath("desk.html").read_text())

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/desk")

    @router.get("/desk/static/{name}")
    async def static(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in _TYPES or not _STATIC.joinpath(name).is_file():
            return Response(status_code=404)
        return Response(_STATIC.joinpath(name).read_bytes(), media_type=_TYPES[suffix])

    return router
