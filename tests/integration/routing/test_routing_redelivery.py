"""A routing cause redelivered after a crash (the case worker's batch, replayed because its
offsets were never committed) announces the decision made for it again, with the same event
ids, and never decides anew: the case is routed exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnirouter.events import CaseRouted
from support.routing_env import T0, decisions_in

pytestmark = pytest.mark.integration

ONE_QUEUE = """
queues:
  - id: general
default_queue: general
"""


async def test_a_redelivered_cause_announces_its_decision_again_with_the_same_ids(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(ONE_QUEUE)
    await routing.agent("ana")
    request = await routing.case("my order never came")
    first = await engine.route(request, cause="opener-1", now=T0, repeatable=True)
    # The worker died before publishing `first`; meanwhile another agent became free.
    await routing.agent("ben")

    again = await engine.route(
        request, cause="opener-1", now=T0 + timedelta(seconds=5), replay_only=True
    )

    assert [o.event.event_id for o in again] == [o.event.event_id for o in first]
    assert decisions_in(again)[0].agent_id == decisions_in(first)[0].agent_id == "ana"
    assert len([o for o in again if isinstance(o.event, CaseRouted)]) == 1
    loads = {a.agent_id: sum(a.load.values()) for a in await routing.store.agents("default")}
    assert loads == {"ana": 1, "ben": 0}, "the replay reserved capacity a second time"


async def test_a_redelivered_cause_whose_decision_kafka_acknowledged_announces_nothing(
    routing,
) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(ONE_QUEUE)
    request = await routing.case("where is my refund")
    first = routing.publish(await engine.route(request, cause="opener-1", now=T0, repeatable=True))
    await routing.store.mark_announced({"default": {request.case_id: "opener-1"}})

    again = await engine.route(
        request, cause="opener-1", now=T0 + timedelta(seconds=5), replay_only=True
    )

    assert decisions_in(first) and again == []


async def test_a_replay_of_a_cause_routing_has_moved_past_announces_nothing(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(ONE_QUEUE)
    request = await routing.case("hello?")
    await engine.route(request, cause="opener-1", now=T0, repeatable=True)
    # Routed again since (an agent became available: the queue was drained).
    await routing.agent("ana")
    drained = await engine.drain("default", now=T0 + timedelta(seconds=1))
    assert decisions_in(drained)[0].agent_id == "ana"

    late = await engine.route(
        request, cause="opener-1", now=T0 + timedelta(seconds=2), replay_only=True
    )

    assert late == []


async def test_causes_that_are_not_stream_events_decide_anew_each_time(routing) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(ONE_QUEUE)
    request = await routing.case("anyone there?")
    queued = await engine.route(request, cause="drain:x", now=T0)
    await routing.agent("ana")

    offered = await engine.route(request, cause="drain:x", now=T0 + timedelta(seconds=1))

    assert decisions_in(queued)[0].agent_id is None
    assert decisions_in(offered)[0].agent_id == "ana"
