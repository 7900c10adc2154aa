"""A batch of many customers is applied in slices (see CaseWorker._applied_in_slices): every
customer's case is opened and announced exactly once, the same as in a batch of one."""

from __future__ import annotations

import pytest

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import CaseEvent, CaseEventKind, encode, topic_spec
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.cases.worker import APPLY_SLICE_CUSTOMERS
from omnirouter.settings import PipelineSettings
from support.events import identifier, inbound
from support.kafka import TopicReader, create_catalogue
from support.workers import start_workers

pytestmark = pytest.mark.integration

CUSTOMERS = 4 * APPLY_SLICE_CUSTOMERS + 7  # five slices' worth: several batches still slice


async def test_many_customers_in_one_batch_each_get_one_case_announced_once(
    stack: StackAddresses, unique_id: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    events = [
        inbound("sms", identifier("phone", f"+1555{i:07d}"), text=f"my parcel {i}")
        for i in range(CUSTOMERS)
    ]
    # All on the log before the workers start, so their batches are as large as allowed.
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="slices-test")
    try:
        for event in events:
            producer.send(
                topic_spec("interactions.inbound").name(prefix),
                encode(event),
                key=event.routing_key.encode(),
            )
        producer.flush(30)
    finally:
        producer.close()
    applied: list[int] = []  # customers per apply call, recorded on the real store
    apply = RedisCaseStore.apply

    async def recording_apply(self: RedisCaseStore, work):  # type: ignore[no-untyped-def]
        applied.append(len(work))
        return await apply(self, work)

    monkeypatch.setattr(RedisCaseStore, "apply", recording_apply)
    app, _, _, _, client = await start_workers(
        stack,
        app_id=f"slices-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        pipeline=PipelineSettings(batch_max=1000, batch_within_s=0.5),
    )
    cases_topic = topic_spec("cases.events").name(prefix)
    try:
        async with TopicReader(stack.kafka_bootstrap_servers, [cases_topic]) as reader:
            causes = {event.event_id for event in events}

            def all_opened(r: TopicReader) -> list[CaseEvent] | None:
                opened = [
                    e
                    for e in r.decoded(cases_topic, CaseEvent)
                    if e.kind is CaseEventKind.OPENED and e.cause_event_id in causes
                ]
                return opened if len(opened) >= CUSTOMERS else None

            opened = await reader.wait_for(all_opened, what=f"{CUSTOMERS} cases opened")
    finally:
        await app.stop()
        await client.aclose()
    assert sorted(str(e.cause_event_id) for e in opened) == sorted(str(c) for c in causes)
    assert len({e.case.customer_id for e in opened}) == CUSTOMERS  # one case per customer
    by_cause = {e.event_id: e for e in events}
    for case_event in opened:  # each with its own message in its story, no one else's
        texts = [entry.text for entry in case_event.context.recent_timeline]
        mine = by_cause[case_event.cause_event_id].content.text
        assert mine in texts
        assert not [t for t in texts if t.startswith("my parcel") and t != mine]
    # The batches were split: no call carried more than a slice's worth of a large batch.
    assert sum(applied) == CUSTOMERS
    assert max(applied) < CUSTOMERS
