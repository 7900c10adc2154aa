"""The ASGI application every HTTP route of omnirouter is mounted on."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends, FastAPI

from omnirouter import __version__
from omnirouter.http.auth import OperatorAccess
from omnirouter.http.cases import cases_router
from omnirouter.http.identity import identity_router
from omnirouter.http.routing import routing_router
from omnirouter.ingress.gateway import limit_body_size, serve_direct_routes
from omnirouter.pipeline.cases.operations import CaseOperations
from omnirouter.pipeline.identity.erasure import CustomerErasure
from omnirouter.pipeline.identity.operations import IdentityOperations
from omnirouter.pipeline.routing.operations import RoutingOperations
from omnirouter.settings import ApiSettings


def create_http_app(
    api: ApiSettings,
    *,
    identity: IdentityOperations,
    cases: CaseOperations | None = None,
    routing: RoutingOperations | None = None,
    erasure: CustomerErasure | None = None,
    extra_routers: Sequence[APIRouter] = (),
    max_body_bytes: int | None = None,
) -> FastAPI:
    """The HTTP API with its dependencies given (tests and ``omnirouter serve`` both use this).

    ``extra_routers`` are mounted as they are: the ingress gateway's channel routes, which
    carry their own authentication (provider signatures).
    """
    app = FastAPI(
        title="omnirouter",
        version=__version__,
        description="Omni-channel message router: cases, customers and identity administration.",
    )
    access = OperatorAccess(api.admin_token, api.tenant_tokens)
    # Every operator route acts on the tenant this resolves (403 for another tenant's).
    admin, scope = Depends(access.operator), Depends(access.tenant_scope())
    app.include_router(identity_router(identity, admin=admin, scope=scope, erasure=erasure))
    if cases is not None:
        app.include_router(cases_router(cases, admin=admin, scope=scope))
    if routing is not None:
        app.include_router(routing_router(routing, admin=admin, scope=scope))
    for router in extra_routers:
        app.include_router(router)
    serve_direct_routes(app, extra_routers)
    if max_body_bytes is not None:
        limit_body_size(app, max_body_bytes)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
