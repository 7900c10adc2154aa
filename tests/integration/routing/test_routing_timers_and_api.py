"""Routing timers survive restarts; desktops drive presence and offers over HTTP."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from omnirouter.events import CaseStatus, RoutingOutcome
from omnirouter.http import create_http_app
from omnirouter.pipeline.cases.operations import CaseOperations
from omnirouter.pipeline.identity.operations import IdentityOperations, KafkaEventPublisher
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.routing.operations import RoutingOperations
from omnirouter.settings import ApiSettings
from support.routing_env import T0, decisions_in
from support.stack import async_redis

pytestmark = pytest.mark.integration

STICKY = "queues: [{id: general, sticky: {enabled: true, wait_s: 60}}]\ndefault_queue: general"


async def test_timers_fire_from_a_new_worker_and_a_claimed_timer_is_not_lost(routing) -> None:  # type: ignore[no-untyped-def]
    first_worker = routing.engine(STICKY)
    await routing.agent("kim", "busy")
    await routing.agent("lou")
    request = await routing.case("hello again", previous_agent="kim")
    routing.publish(await first_worker.route(request, cause="t", now=T0))

    # The first worker claims the due timer and dies before handling it.
    claimed = await routing.store.due_timers("default", T0 + timedelta(seconds=61), lease_s=30)
    assert ("sticky", request.case_id) in claimed

    # A new worker (new connection, new engine) starts: during the lease nothing fires twice...
    client = async_redis(routing.stack.redis_url)
    routing.clients.append(client)
    second_worker = routing.engine(STICKY, client=client)
    assert decisions_in(await second_worker.fire_due_timers(T0 + timedelta(seconds=70))) == []
    # ...and once the lease is over, the timer fires again from the new worker.
    out = routing.publish(await second_worker.fire_due_timers(T0 + timedelta(seconds=95)))
    assert [(d.case_id, d.outcome, d.agent_id) for d in decisions_in(out)] == [
        (request.case_id, RoutingOutcome.OFFERED, "lou")
    ]


async def test_a_desktop_goes_available_accepts_and_resolves_over_http(routing) -> None:  # type: ignore[no-untyped-def]
    publisher = KafkaEventPublisher(routing.producer)
    engine = routing.engine("queues: [{id: general}]\ndefault_queue: general\ncapacity: {email: 1}")
    operations = RoutingOperations(engine, publisher, topic_prefix=routing.prefix)
    cases = CaseOperations(
        routing.cases, publisher, topic_prefix=routing.prefix, context_entries=10
    )
    cases.on_case_left = operations.case_left
    identity = IdentityOperations(
        RedisIdentityStore(
            routing.store.client, key_prefix=routing.redis_prefix, policy=IdentityPolicy()
        ),
        publisher,
        topic_prefix=routing.prefix,
    )
    app = create_http_app(
        ApiSettings(admin_token=SecretStr("t")), identity=identity, cases=cases, routing=operations
    )
    auth = {"Authorization": "Bearer t"}
    first = await routing.case("first")
    second = await routing.case("second")
    for n, request in enumerate((first, second)):
        routing.publish(await engine.route(request, cause=f"h{n}", now=T0 + timedelta(seconds=n)))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://o"
    ) as client:
        waiting = (await client.get("/api/queues/general/waiting", headers=auth)).json()
        assert [w["case_id"] for w in waiting] == [first.case_id, second.case_id]
        agent = await client.put(
            "/api/agents/zoe",
            json={"skills": {"support": 3}, "languages": ["en"], "presence": "available"},
            headers=auth,
        )
        assert agent.status_code == 200, agent.text
        # Becoming available offered zoe the first waiting case (capacity 1 e-mail).
        offers = await routing.store.offers("default")
        assert {case: o["agent"] for case, o in offers.items()} == {first.case_id: "zoe"}
        assert (
            await client.post(
                f"/api/offers/{first.case_id}/accept", json={"agent_id": "max"}, headers=auth
            )
        ).status_code == 409
        assert (
            await client.post(
                f"/api/offers/{first.case_id}/accept", json={"agent_id": "zoe"}, headers=auth
            )
        ).status_code == 204
        case = (await client.get(f"/api/cases/{first.case_id}", headers=auth)).json()["case"]
        assert (case["status"], case["assigned_agent_id"]) == (CaseStatus.ASSIGNED, "zoe")
        agents = (await client.get("/api/agents", headers=auth)).json()
        assert agents[0]["load"] == {"email": 1}

        # Resolving frees zoe, who is offered the next waiting case at once.
        resolved = await client.post(
            f"/api/cases/{first.case_id}/status",
            json={"to": "resolved", "reason": "done"},
            headers=auth,
        )
        assert resolved.status_code == 200, resolved.text
        offers = await routing.store.offers("default")
        assert {case: o["agent"] for case, o in offers.items()} == {second.case_id: "zoe"}
        assert (
            await client.post(
                f"/api/offers/{second.case_id}/decline", json={"agent_id": "zoe"}, headers=auth
            )
        ).status_code == 204
        assert await routing.store.offers("default") == {}
        waiting = (await client.get("/api/queues/general/waiting", headers=auth)).json()
        assert [w["case_id"] for w in waiting] == [second.case_id]
        assert (await client.get("/api/queues/nope/waiting", headers=auth)).status_code == 404
