"""Many cases race for few agents across two routing workers: nobody is double-booked."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta

import pytest

from omnirouter.events import RoutingOutcome
from omnirouter.pipeline.routing.engine import OfferRefused
from support.routing_env import T0, decisions_in
from support.stack import async_redis

pytestmark = pytest.mark.integration

RULES = "queues: [{id: general}]\ndefault_queue: general\ncapacity: {webchat: 2}"


async def test_no_case_is_assigned_twice_and_no_agent_exceeds_capacity(routing) -> None:  # type: ignore[no-untyped-def]
    clients = [async_redis(routing.stack.redis_url) for _ in range(2)]
    routing.clients.extend(clients)
    workers = [routing.engine(RULES, client=c) for c in clients]
    for agent in ("a1", "a2", "a3"):
        await routing.agent(agent)
    cases = [await routing.case(f"chat {n}", channel="webchat") for n in range(40)]
    rng = random.Random(7)
    decisions = []

    async def work(worker_index: int) -> None:
        engine = workers[worker_index]
        # Each worker routes its half, and some of the other half too, as a redelivery after a
        # rebalance would; both also keep draining the queue.
        mine = [c for i, c in enumerate(cases) if i % 2 == worker_index or rng.random() < 0.3]
        for n, request in enumerate(mine):
            decisions.extend(
                decisions_in(await engine.route(request, cause=f"w{worker_index}-{n}", now=T0))
            )
            if n % 5 == 0:
                decisions.extend(decisions_in(await engine.drain("default", now=T0)))

    await asyncio.gather(work(0), work(1))

    offers = await routing.store.offers("default")
    per_agent = Counter(o["agent"] for o in offers.values())
    assert sum(per_agent.values()) == 6  # 3 agents x 2 chats, every slot used
    assert all(count <= 2 for count in per_agent.values())

    # Every agent accepts every offer, from both workers at once.
    async def accept(engine_index: int, case_id: str, agent: str) -> bool:
        try:
            out = await workers[engine_index].respond(
                "default", case_id, agent, accept=True, now=T0 + timedelta(seconds=1)
            )
        except OfferRefused:
            return False
        decisions.extend(decisions_in(out))
        return True

    results = await asyncio.gather(
        *(accept(i, case_id, offer["agent"]) for case_id, offer in offers.items() for i in (0, 1))
    )
    assert sum(results) == len(offers)  # exactly one of the two accepts per offer won

    assigned = await routing.store.assignments("default")
    assert set(assigned) == set(offers)
    assert Counter(a["agent"] for a in assigned.values()) == per_agent
    assert await routing.store.load("default") == {
        f"{agent}|webchat": n for agent, n in per_agent.items()
    }
    assigned_decisions = Counter(
        d.case_id for d in decisions if d.outcome is RoutingOutcome.ASSIGNED
    )
    assert all(n == 1 for n in assigned_decisions.values())
    assert set(assigned_decisions) == set(assigned)
    # The other 34 wait, each once, in the queue.
    waiting = [
        r.case_id for r, _ in await routing.store.queue_view("default", "general", limit=100)
    ]
    assert len(waiting) == len(set(waiting)) == 34
    assert not set(waiting) & set(assigned)
