"""Each routing strategy on the real stack, with the decision and its reasons on Kafka."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnirouter.events import RoutingOutcome
from support.routing_env import T0, decisions_in

pytestmark = pytest.mark.integration

SUPPORT = """
queues:
  - id: billing
    skills: {billing: 3}
    languages: [en, es]
    offer_timeout_s: 30
  - id: general
rules:
  - id: billing-intent
    when: {intents: [billing]}
    route_to: billing
default_queue: general
"""


async def test_skills_and_language_choose_the_agent_and_say_why_others_were_not(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(SUPPORT)
    await routing.agent("ana", skills={"billing": 4}, languages=["en"])
    await routing.agent("ben", skills={"billing": 2}, languages=["en", "es"])
    await routing.agent("carl", skills={"billing": 5}, languages=["de"])
    await routing.agent("dora", skills={"billing": 3}, languages=["es"])
    await routing.agent("eve", "away", skills={"billing": 5}, languages=["es"])
    request = await routing.case("Me cobraron dos veces, invoice 7", language="es")

    out = routing.publish(await engine.route(request, cause="t1", now=T0))

    decision = decisions_in(out)[0]
    assert (decision.outcome, decision.agent_id, decision.queue) == (
        RoutingOutcome.OFFERED,
        "dora",
        "billing",
    )
    assert decision.rule_id == "billing-intent"
    why = {c.agent_id: c.filtered_because for c in decision.candidates}
    assert why == {
        "dora": None,
        "ana": "does not speak es",
        "ben": "skill billing 2 < 3 required",
        "carl": "does not speak es",
        "eve": "presence is away",
    }
    on_kafka = await routing.decisions(lambda d: len(d) == 1, "the decision on Kafka")
    assert on_kafka[0] == decision
    assert "rule billing-intent matched" in " ".join(r.message for r in on_kafka[0].reasons)


async def test_waiting_cases_are_served_by_priority_then_longest_wait(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine("""
queues: [{id: general}]
default_queue: general
boosts: {vip: 20, repeat_contact: 10, per_minute_waiting: 0}
""")
    first = await routing.case("hello")
    vip = await routing.case("hello", tier="vip")
    second = await routing.case("hello")
    for n, request in enumerate((first, vip, second)):
        routing.publish(await engine.route(request, cause=f"q{n}", now=T0 + timedelta(seconds=n)))
    queued = [r.case_id for r, _ in await routing.store.queue_view("default", "general")]
    assert queued == [vip.case_id, first.case_id, second.case_id]

    await routing.agent("solo", capacity={"email": 1})
    out = routing.publish(await engine.drain("default", now=T0 + timedelta(seconds=10)))

    offered = [d for d in decisions_in(out) if d.outcome is RoutingOutcome.OFFERED]
    assert [(d.case_id, d.agent_id) for d in offered] == [(vip.case_id, "solo")]
    assert "20 (tier vip)" in " ".join(r.message for r in offered[0].reasons)


async def test_sticky_last_agent_then_anyone_after_the_wait(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine("""
queues: [{id: general, sticky: {enabled: true, wait_s: 60}, distribution: most_spare_capacity}]
default_queue: general
""")
    await routing.agent("kim", "busy")
    await routing.agent("lou")
    request = await routing.case("It's me again", previous_agent="kim")

    first = routing.publish(await engine.route(request, cause="s1", now=T0))
    decision = decisions_in(first)[0]
    assert decision.outcome is RoutingOutcome.QUEUED
    assert {c.agent_id: c.filtered_because for c in decision.candidates}["lou"].startswith(
        "sticky to kim"
    )
    assert decision.strategy.startswith("sticky")

    # Nothing changes before the sticky wait is over...
    assert routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=30))) == []
    # ...after it, the case falls back to any eligible agent.
    later = routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=61)))
    offered = [d for d in decisions_in(later) if d.outcome is RoutingOutcome.OFFERED]
    assert [(d.case_id, d.agent_id) for d in offered] == [(request.case_id, "lou")]


async def test_sticky_prefers_the_last_agent_when_available(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine("""
queues: [{id: general, sticky: {enabled: true, wait_s: 60}}]
default_queue: general
""")
    await routing.agent("kim", capacity={"email": 5})
    await routing.agent("lou", capacity={"email": 50})  # far more spare capacity
    request = await routing.case("Thanks for yesterday", previous_agent="kim")
    out = routing.publish(await engine.route(request, cause="s2", now=T0))
    assert decisions_in(out)[0].agent_id == "kim"


ESCALATING = """
queues:
  - id: spanish
    languages: [es]
    skills: {refunds: 4}
    escalation:
      - {after_s: 120, widen: {min_proficiency: 2}}
      - {after_s: 300, move_to: general, priority_boost: 15}
  - id: general
rules:
  - {id: es, when: {languages: [es]}, route_to: spanish}
default_queue: general
"""


async def test_escalation_widens_the_target_after_its_timeout(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(ESCALATING)
    await routing.agent("hugo", skills={"refunds": 2}, languages=["es"])
    request = await routing.case("quiero un reembolso", language="es")

    queued = decisions_in(routing.publish(await engine.route(request, cause="e1", now=T0)))[0]
    assert queued.outcome is RoutingOutcome.QUEUED
    assert queued.candidates[0].filtered_because == "skill refunds 2 < 4 required"
    assert routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=119))) == []

    widened = decisions_in(
        routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=121)))
    )
    assert [(d.outcome, d.agent_id, d.queue) for d in widened] == [
        (RoutingOutcome.OFFERED, "hugo", "spanish")
    ]
    assert "escalation step 1 applies" in " ".join(r.message for r in widened[0].reasons)


async def test_escalation_moves_the_case_to_another_queue_after_its_timeout(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(ESCALATING)
    await routing.agent("ivy", languages=["en"])
    request = await routing.case("quiero un reembolso", language="es")
    routing.publish(await engine.route(request, cause="m1", now=T0))

    step1 = decisions_in(routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=121))))
    assert [(d.queue, d.outcome) for d in step1] == [("spanish", RoutingOutcome.QUEUED)]
    step2 = decisions_in(routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=301))))
    assert [(d.queue, d.outcome, d.agent_id) for d in step2] == [
        ("general", RoutingOutcome.OFFERED, "ivy")
    ]
    assert await routing.store.queue_view("default", "spanish") == []


async def test_capacity_is_per_channel(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(
        "queues: [{id: general}]\ndefault_queue: general\ncapacity: {webchat: 3, email: 5}"
    )
    await routing.agent("max")
    chats = [await routing.case(f"chat {n}", channel="webchat") for n in range(4)]
    outcomes = []
    for n, request in enumerate(chats):
        outcomes += decisions_in(
            routing.publish(await engine.route(request, cause=f"c{n}", now=T0))
        )
    email = await routing.case("an email", channel="email")
    outcomes += decisions_in(routing.publish(await engine.route(email, cause="mail", now=T0)))

    assert [d.outcome for d in outcomes] == [RoutingOutcome.OFFERED] * 3 + [
        RoutingOutcome.QUEUED,
        RoutingOutcome.OFFERED,
    ]
    full = outcomes[3]
    assert full.candidates[0].filtered_because == "at capacity for webchat (3/3)"
    assert await routing.store.load("default") == {"max|webchat": 3, "max|email": 1}


async def test_a_queue_closed_outside_business_hours_waits_for_opening(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine("""
queues:
  - id: office
    business_hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["09:00-17:00"]
        tue: ["09:00-17:00"]
        wed: ["09:00-17:00"]
        thu: ["09:00-17:00"]
        fri: ["09:00-17:00"]
default_queue: office
""")
    await routing.agent("nia")
    saturday = T0 + timedelta(days=4)  # Saturday 2026-11-28
    request = await routing.case("weekend question", at=saturday)

    decision = decisions_in(routing.publish(await engine.route(request, cause="w1", now=saturday)))[
        0
    ]
    assert decision.outcome is RoutingOutcome.QUEUED
    closed = next(r for r in decision.reasons if r.code == "queue_closed")
    assert closed.data["opens_at"] == "2026-11-30T08:00:00+00:00"  # Monday 09:00 in Berlin

    monday = decisions_in(
        routing.publish(await engine.fire_due_timers(saturday + timedelta(days=2)))
    )
    assert [(d.outcome, d.agent_id) for d in monday if d.case_id == request.case_id] == [
        (RoutingOutcome.OFFERED, "nia")
    ]


async def test_a_declined_offer_moves_on_and_an_expired_one_too(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine("queues: [{id: general, offer_timeout_s: 30}]\ndefault_queue: general")
    await routing.agent("pat", capacity={"email": 9})
    await routing.agent("quinn", capacity={"email": 5})
    request = await routing.case("hello")

    first = decisions_in(routing.publish(await engine.route(request, cause="d1", now=T0)))[0]
    assert first.agent_id == "pat"
    declined = decisions_in(
        routing.publish(
            await engine.respond(
                "default", request.case_id, "pat", accept=False, now=T0 + timedelta(seconds=5)
            )
        )
    )
    assert [(d.outcome, d.agent_id) for d in declined] == [(RoutingOutcome.OFFERED, "quinn")]
    assert {c.agent_id: c.filtered_because for c in declined[0].candidates}[
        "pat"
    ] == "already declined or let this offer expire"

    # quinn lets the offer expire: nobody eligible is left, the case waits.
    expired = decisions_in(
        routing.publish(await engine.fire_due_timers(T0 + timedelta(seconds=40)))
    )
    assert [(d.outcome, d.agent_id) for d in expired] == [(RoutingOutcome.QUEUED, None)]
    assert await routing.store.load("default") == {"pat|email": 0, "quinn|email": 0}
    offers = await routing.store.offers("default")
    assert offers == {}
    with pytest.raises(Exception, match="no open offer"):
        await engine.respond(
            "default", request.case_id, "quinn", accept=True, now=T0 + timedelta(seconds=41)
        )


async def test_cases_released_together_free_their_agents_in_one_round_trip(routing) -> None:  # type: ignore[no-untyped-def]
    from support.redis_trips import CountingConnection, counting_client

    client = counting_client(routing.stack.redis_url)
    routing.clients.append(client)
    engine = routing.engine(
        "queues: [{id: general}]\ndefault_queue: general\ncapacity: {email: 1}", client=client
    )
    await routing.agent("pat")
    await routing.agent("quinn")
    held = [await routing.case(f"case {n}") for n in range(2)]
    waiting = await routing.case("waiting")
    for n, request in enumerate([*held, waiting]):
        routing.publish(await engine.route(request, cause=f"r{n}", now=T0))
    assert set((await routing.store.offers("default")).keys()) == {r.case_id for r in held}
    assert await routing.store.load("default") == {"pat|email": 1, "quinn|email": 1}

    await engine.store.release_many("default", ["case_unknown"], T0)  # loads the script
    before = CountingConnection.sends
    released = await engine.store.release_many(
        "default", [r.case_id for r in held], T0 + timedelta(minutes=1)
    )
    trips = CountingConnection.sends - before
    assert sorted(r["agent"] for r in released) == ["pat", "quinn"]
    assert trips == 1, f"{trips} round trips to release two cases"
    assert await routing.store.load("default") == {"pat|email": 0, "quinn|email": 0}
    assert await routing.store.offers("default") == {}
    assert [r.case_id for r, _ in await routing.store.queue_view("default", "general")] == [
        waiting.case_id
    ]
