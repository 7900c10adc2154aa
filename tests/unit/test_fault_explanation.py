"""What a fault or cluster scenario says about events it lost: how far each got, and whether
the case stage skipped it or identity gave it to another customer than its address's owner."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import orjson

from faults.harness import FaultRun
from omnirouter.events import ResolvedInteraction, encode, topic_spec
from omnirouter.redis_keys import CustomerCaseKeys
from support.events import identifier, inbound

PREFIX = "faults.explain."
REDIS_PREFIX = "explain"


class _Topics:
    """The probe's two reads, over records given in advance."""

    def __init__(self, records: dict[str, list[tuple[int, int, bytes]]]) -> None:
        self._records = records

    def committed(self, topic: str) -> dict[int, int]:
        return {partition: offset + 1 for partition, offset, _ in self._records[topic]}

    def read_records(self, topic: str) -> list[tuple[int, int, bytes]]:
        return self._records[topic]


class _Timelines:
    """Redis's LRANGE over timelines given in advance."""

    def __init__(self, timelines: dict[str, list[str]]) -> None:
        self._timelines = timelines

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        assert (start, end) == (0, -1)
        return [orjson.dumps({"entry_id": e, "kind": "message"}) for e in self._timelines[key]]


def _run(topics: _Topics, timelines: _Timelines) -> FaultRun:
    return FaultRun(
        stack=None,  # type: ignore[arg-type]
        addresses=None,  # type: ignore[arg-type]
        prefix=PREFIX,
        redis_prefix=REDIS_PREFIX,
        logs=Path("unused"),
        probe=cast(Any, topics),
        redis=cast(Any, timelines),
    )


def test_a_lost_event_s_explanation_says_if_it_is_on_its_resolved_customer_s_timeline() -> None:
    # Not on it: the case stage never applied it. On it: identity gave it to another customer
    # than its address's owner now (whose timeline the audit reads).
    skipped = inbound("sms", identifier("phone", "+14150000001"), text="message 0 from customer 1")
    elsewhere = inbound(
        "sms", identifier("phone", "+14150000002"), text="message 1 from customer 2"
    )
    customer_1, customer_2 = str(uuid.uuid4()), str(uuid.uuid4())
    resolved = [
        ResolvedInteraction(
            customer_id=c, interaction=e, is_new_customer=True, occurred_at=e.occurred_at
        )
        for c, e in ((customer_1, skipped), (customer_2, elsewhere))
    ]
    inbound_topic = topic_spec("interactions.inbound").name(PREFIX)
    resolved_topic = topic_spec("interactions.resolved").name(PREFIX)
    topics = _Topics(
        {
            inbound_topic: [(0, 0, encode(skipped)), (1, 0, encode(elsewhere))],
            resolved_topic: [(4, 0, encode(resolved[0])), (4, 1, encode(resolved[1]))],
        }
    )
    keys = {
        c: CustomerCaseKeys(REDIS_PREFIX, "default", c).timeline for c in (customer_1, customer_2)
    }
    # The second is on the timeline of the customer identity gave it: lost to the audit only
    # because its address belongs to another customer now.
    timelines = _Timelines({keys[customer_1]: [], keys[customer_2]: [str(elsewhere.event_id)]})

    where = _run(topics, timelines).where_lost([str(skipped.event_id), str(elsewhere.event_id)])

    first, second = str(skipped.event_id)[:8], str(elsewhere.event_id)[:8]
    assert f"{first} [\"p4@0 'message 0 from customer 1'\"]" in where
    assert f"{second} [\"p4@1 'message 1 from customer 2'\"]" in where
    assert where.endswith(
        f"on the timeline of the customer identity gave it: {first} no (customer "
        f"{customer_1[:8]}), {second} yes (customer {customer_2[:8]})"
    )
