"""The serve process's ops routes: ``/metrics``, and the ``/ops`` dashboard with its JSON.

- ``GET /metrics``: Prometheus text of omnirouter's registry, the routing queues in Redis and
  the consumer lag collector. Open, as scrape targets usually are: it holds counts, no content.
- ``GET /ops``: the dashboard page and its static assets, open: the page holds no data.
- ``GET /ops/api/summary``: the data, for operators only (``Authorization: Bearer <operator
  token>``, as every operator endpoint). The page asks for the token once and keeps it in
  sessionStorage (per tab, gone with it); ``/ops?token=…`` pre-fills it for links from a
  terminal, and the page removes it from the address bar at once.
  The platform operator's token sees every tenant (``?tenant=`` narrows it to one); a tenant's
  token (``api.tenant_tokens``) sees its own queues and agents only, plus the platform-wide
  infrastructure figures that name no tenant (lag, throughput, latency, dead letters,
  deliveries), as ``ops.summary.for_tenant`` says; naming another tenant answers 403.
  ``/metrics`` is the platform's scrape target: per-queue and per-agent series carry a
  ``tenant`` label, so no series adds up two tenants.

The router's lifespan starts and stops the background sampling (see ``ops.sampler``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from omnirouter.http.auth import Operator, OperatorAccess
from omnirouter.ops.metrics import REGISTRY
from omnirouter.ops.queues import QueueStateCollector
from omnirouter.ops.sampler import OpsSampler
from omnirouter.ops.summary import for_tenant
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.settings import Settings

_STATIC = resources.files("omnirouter.ops").joinpath("static")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def ops_router(
    settings: Settings,
    bootstrap_servers: str,
    routing: RoutingEngine,
    *,
    sampler: OpsSampler | None = None,
    sample: bool = True,
) -> APIRouter:
    """``/metrics``, ``/ops`` and ``/ops/api/summary``, sampling while the app runs.

    Args:
        settings: ``ops`` (sampling, worker metrics port) and ``api`` (operator token).
        bootstrap_servers: the Kafka cluster whose consumer groups the lag monitor watches.
        routing: its store and rules give queue depths, oldest waits and agents.
        sampler: the sampler to use (tests pass their own, e.g. with a stub lag monitor).
        sample: False leaves the background loops off (tests that sample by hand).
    """
    if sampler is None:
        queue_state = QueueStateCollector(routing.store, routing.rules)
        sampler = OpsSampler(settings, bootstrap_servers, queue_state)
    ops = sampler

    @contextlib.asynccontextmanager
    async def sampling(_app: FastAPI) -> AsyncIterator[None]:
        if sample:
            await ops.start()
        try:
            yield
        finally:
            await ops.stop()

    router = APIRouter(tags=["ops"], lifespan=sampling)
    access = OperatorAccess(settings.api.admin_token, settings.api.tenant_tokens)
    scope = Depends(access.operator_scope())

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await ops.queue_state.refresh()
        body = generate_latest(REGISTRY) + generate_latest(ops.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @router.get("/ops", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_STATIC.joinpath("ops.html").read_text())

    @router.get("/ops/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in _TYPES or not _STATIC.joinpath(name).is_file():
            return Response(status_code=404)
        return Response(_STATIC.joinpath(name).read_bytes(), media_type=_TYPES[suffix])

    @router.get("/ops/api/summary")
    async def summary(who: tuple[Operator, str | None] = scope) -> dict[str, Any]:
        """Lag, throughput, latency, queues, dead letters and agents, with their history
        (a tenant's token: that tenant's queues and agents only)."""
        _, tenant = who
        everything = ops.summary()
        return everything if tenant is None else for_tenant(everything, tenant)

    return router
