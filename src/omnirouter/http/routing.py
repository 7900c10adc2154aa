"""Routing over HTTP for desktops: agents and presence, offers, and the queues' waiting cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from omnirouter.pipeline.routing.decide import AgentState
from omnirouter.pipeline.routing.engine import OfferRefused
from omnirouter.pipeline.routing.operations import RoutingOperations

Presence = Literal["available", "busy", "away", "offline"]


class AgentUpdate(BaseModel):
    """An agent's routing profile; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    skills: dict[str, Annotated[int, Field(ge=1, le=5)]] | None = None
    languages: list[str] | None = None
    capacity: dict[str, Annotated[int, Field(ge=0, le=50)]] | None = None
    presence: Presence | None = None


class PresenceUpdate(BaseModel):
    """A presence change."""

    model_config = ConfigDict(extra="forbid")

    presence: Presence


class OfferResponse(BaseModel):
    """Who answers an offer."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=128)


class AgentView(BaseModel):
    """An agent as routing sees them."""

    agent_id: str
    presence: str
    skills: dict[str, int]
    languages: list[str]
    capacity: dict[str, int]
    load: dict[str, int]
    idle_since: datetime | None


class WaitingCase(BaseModel):
    """A case waiting in a queue, in serving order."""

    case_id: str
    customer_id: str
    channel: str
    priority: int
    waiting_since: datetime | None
    waiting_s: float
    sla_due: datetime | None
    escalation_step: int


def _agent(a: AgentState) -> AgentView:
    return AgentView(
        agent_id=a.agent_id,
        presence=a.presence,
        skills=a.skills,
        languages=list(a.languages),
        capacity=a.capacity,
        load=a.load,
        idle_since=a.idle_since,
    )


def routing_router(operations: RoutingOperations, *, admin: Any, scope: Any) -> APIRouter:
    """Routes under ``/api``: agents, offers, queues, each acting on the tenant ``scope``
    resolves from the operator's token (see ``http.auth``)."""
    router = APIRouter(prefix="/api", tags=["routing"], dependencies=[admin])

    @router.put("/agents/{agent_id}", response_model=AgentView)
    async def put_agent(agent_id: str, body: AgentUpdate, tenant: str = scope) -> AgentView:
        """Create or update an agent's skills, languages, capacity and presence."""
        profile = body.model_dump(exclude_none=True, exclude={"presence"})
        agent = await operations.set_agent(
            agent_id, presence=body.presence or "", profile=profile or None, tenant=tenant
        )
        return _agent(agent)

    @router.post("/agents/{agent_id}/presence", response_model=AgentView)
    async def set_presence(agent_id: str, body: PresenceUpdate, tenant: str = scope) -> AgentView:
        """Available, busy, away or offline; becoming available offers waiting cases."""
        return _agent(await operations.set_agent(agent_id, presence=body.presence, tenant=tenant))

    @router.get("/agents", response_model=list[AgentView])
    async def list_agents(tenant: str = scope) -> list[AgentView]:
        """Every agent with presence and current load per channel."""
        return [_agent(a) for a in await operations.agents(tenant=tenant)]

    @router.post("/offers/{case_id}/accept", status_code=status.HTTP_204_NO_CONTENT)
    async def accept(case_id: str, body: OfferResponse, tenant: str = scope) -> None:
        """The agent takes the offered case."""
        try:
            await operations.accept(case_id, body.agent_id, tenant=tenant)
        except OfferRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @router.post("/offers/{case_id}/decline", status_code=status.HTTP_204_NO_CONTENT)
    async def decline(case_id: str, body: OfferResponse, tenant: str = scope) -> None:
        """The agent declines; the case goes to the next candidate."""
        try:
            await operations.decline(case_id, body.agent_id, tenant=tenant)
        except OfferRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @router.get("/queues/{queue_id}/waiting", response_model=list[WaitingCase])
    async def waiting(
        queue_id: str,
        tenant: str = scope,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[WaitingCase]:
        """Waiting cases of a queue: highest priority first, then longest waiting."""
        try:
            queue = operations.engine.rules.queue(queue_id)
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no queue {queue_id}") from None
        now = datetime.now(UTC)
        rows = []
        for request, score in await operations.waiting(queue_id, tenant=tenant, limit=limit):
            since = request.enqueued_at
            due = since + timedelta(seconds=queue.sla.first_response_s) if since else None
            rows.append(
                WaitingCase(
                    case_id=request.case_id,
                    customer_id=request.customer_id,
                    channel=str(request.channel),
                    # score = -priority + a fraction for the enqueue time (see queue_score)
                    priority=-math.floor(score),
                    waiting_since=since,
                    waiting_s=(now - since).total_seconds() if since else 0.0,
                    sla_due=due,
                    escalation_step=request.escalation_step,
                )
            )
        return rows

    return router
