"""Routing actions from outside the stream (the desktop API): presence, offers, queues.

Each action runs through the same engine as the workers and publishes what it decided,
acknowledged by Kafka, before it answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from omnirouter.events import DEFAULT_TENANT, encode, topic_spec
from omnirouter.pipeline.identity.operations import EventPublisher
from omnirouter.pipeline.routing.decide import AgentState, RoutingRequest
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.stream import Outgoing

PRESENCES = ("available", "busy", "away", "offline")


class RoutingOperations:
    """What desktops and supervisors do to routing."""

    def __init__(
        self, engine: RoutingEngine, publisher: EventPublisher, *, topic_prefix: str
    ) -> None:
        """Act through ``engine``; publish through ``publisher``."""
        self.engine = engine
        self._publisher = publisher
        self._prefix = topic_prefix

    async def publish(self, outgoing: Sequence[Outgoing]) -> None:
        """Publish records, each acknowledged by Kafka."""
        for item in outgoing:
            topic = topic_spec(item.topic_key).name(self._prefix)
            await asyncio.to_thread(self._publisher.publish, topic, item.key, encode(item.event))

    async def set_agent(
        self,
        agent_id: str,
        *,
        presence: str = "",
        profile: dict[str, Any] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> AgentState:
        """Create or update an agent; becoming available offers them waiting cases."""
        store = self.engine.store
        agent = await store.upsert_agent(
            tenant, agent_id, presence=presence, profile=profile, now=datetime.now(UTC)
        )
        await store.note_tenant(tenant)
        if agent.presence == "available":
            await self.publish(await self.engine.drain(tenant))
        return agent

    async def accept(self, case_id: str, agent_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        """The agent takes the offered case.

        Raises:
            OfferRefused: no open offer for this agent, or it expired.
        """
        await self.publish(await self.engine.respond(tenant, case_id, agent_id, accept=True))

    async def decline(self, case_id: str, agent_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        """The agent declines; the case goes to the next candidate.

        Raises:
            OfferRefused: no open offer for this agent.
        """
        await self.publish(await self.engine.respond(tenant, case_id, agent_id, accept=False))

    async def case_left(self, tenant: str, case_id: str) -> None:
        """A case was resolved or closed: free its agent for the next waiting case."""
        await self.publish(await self.engine.release(tenant, case_id))

    async def agents(self, *, tenant: str = DEFAULT_TENANT) -> list[AgentState]:
        """Every agent with presence and load."""
        return await self.engine.store.agents(tenant)

    async def waiting(
        self, queue_id: str, *, tenant: str = DEFAULT_TENANT, limit: int = 100
    ) -> list[tuple[RoutingRequest, float]]:
        """Waiting cases of a queue, next to be served first."""
        return await self.engine.store.queue_view(tenant, queue_id, limit=limit)
