"""The routing test environment: the engine on real Redis, its output published to real Kafka."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from kafka import KafkaProducer

from omnirouter.devstack import StackAddresses
from omnirouter.events import RoutingDecision, encode, topic_spec
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.snapshot import case_context
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.routing.decide import RoutingRequest
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.routing.loader import parse_rules
from omnirouter.pipeline.routing.requests import request_for_case
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.pipeline.stream import Outgoing
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound
from support.kafka import TopicReader

# A Tuesday morning in Berlin: business hours are open unless a test says otherwise.
T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@dataclass
class RoutingEnv:
    """An engine with its stores, a Kafka producer for its output, and a reader."""

    stack: StackAddresses
    prefix: str
    redis_prefix: str
    store: RoutingStore
    cases: RedisCaseStore
    producer: KafkaProducer
    reader: TopicReader
    clients: list[aioredis.Redis] = field(default_factory=list)
    counter: int = 0

    def engine(self, rules_yaml: str, *, client: aioredis.Redis | None = None) -> RoutingEngine:
        rules = parse_rules(rules_yaml)
        if client is None:
            return RoutingEngine(rules, self.store, self.cases)
        return RoutingEngine(
            rules,
            RoutingStore(client, key_prefix=self.redis_prefix),
            RedisCaseStore(client, key_prefix=self.redis_prefix, settings=CaseSettings()),
        )

    async def agent(self, agent_id: str, presence: str = "available", **profile: Any) -> None:
        profile.setdefault("languages", ["en"])
        await self.store.upsert_agent(
            "default", agent_id, presence=presence, profile=profile, now=T0
        )

    async def case(
        self,
        text: str = "help",
        *,
        channel: str = "email",
        at: datetime = T0,
        tier: str | None = None,
        language: str | None = "en",
        previous_agent: str | None = None,
    ) -> RoutingRequest:
        """A new case for a new customer, opened in the case store; its routing request."""
        self.counter += 1
        customer = f"cus_{self.counter:04d}"
        attributes = {k: v for k, v in (("tier", tier), ("language", language)) if v}
        event = inbound(
            channel, identifier("email", f"c{self.counter}@example.com"), text=text, at=at
        )
        event = event.model_copy(update={"attributes": attributes})
        from omnirouter.events import ResolvedInteraction

        resolved = ResolvedInteraction(
            occurred_at=at,
            customer_id=customer,
            interaction=event,
            is_new_customer=True,
            identifiers=event.identifiers,
        )
        update = (
            await self.cases.apply(
                {("default", customer): [inbound_entry(resolved, CaseSettings().intent_rules)]}
            )
        )[("default", customer)]
        case_id = update.outcomes[0].opened
        doc = update.cases[case_id]
        request = request_for_case("default", doc, case_context(customer, doc, update.context))
        if previous_agent:
            from dataclasses import replace

            request = replace(request, previous_agents=(previous_agent,))
        return request

    def publish(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        for item in outgoing:
            topic = topic_spec(item.topic_key).name(self.prefix)
            self.producer.send(topic, encode(item.event), key=item.key.encode())
        self.producer.flush()
        return outgoing

    async def decisions(
        self, predicate: Callable[[list[RoutingDecision]], bool], what: str
    ) -> list[RoutingDecision]:
        topic = topic_spec("routing.decisions").name(self.prefix)
        return await self.reader.wait_for(
            lambda r: (lambda items: items if predicate(items) else None)(
                r.decoded(topic, RoutingDecision)
            ),
            what=what,
        )


def decisions_in(outgoing: list[Outgoing]) -> list[RoutingDecision]:
    return [o.event for o in outgoing if isinstance(o.event, RoutingDecision)]
