"""Erasing a customer on request removes every trace of them from Redis, announces it on Kafka
without repeating their identifiers, leaves everyone else's data as it was, and does not come
back: the same phone writing again is a new customer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from kafka import KafkaProducer
from pydantic import SecretStr

from omnirouter.connections import create_producer, ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    TOPICS,
    CaseRouted,
    CustomerErased,
    CustomerMerged,
    InteractionEvent,
    ResolvedInteraction,
    encode,
    topic_spec,
)
from omnirouter.http import create_http_app
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.dispatcher.claims import DispatchClaims
from omnirouter.pipeline.dispatcher.delivery import DeliveryOutcome
from omnirouter.pipeline.identity.erasure import ERASED_MARKER_TTL_S, CustomerErasure
from omnirouter.pipeline.identity.operations import IdentityOperations, KafkaEventPublisher
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore, ResolveRequest
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.redis_keys import ChatKeys, CustomerCaseKeys
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import ApiSettings, CaseSettings, KafkaSettings, Settings
from support.events import identifier, inbound
from support.kafka import TopicReader
from support.redis_state import snapshot_keys
from support.stack import async_redis
from support.waiting import eventually_async
from support.workers import start_workers

pytestmark = pytest.mark.integration

TOKEN = "erasure-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A queue with an SLA timer and auto-acknowledgement: erased cases have routing state to lose.
RULES = """
queues:
  - id: help
    sla: {first_response_s: 1800}
    auto_ack:
      enabled: true
      templates:
        en: "We got your message. An agent will answer in {wait}."
default_queue: help
"""

DEE_EMAIL = "dee.forgotten@example.com"
DEE_PHONE = "+15550104444"
DEE_VISITOR = "visitor-forget-me-7f3a"
DEE_TEXTS = ("parcel-never-arrived-4471", "sms-about-refund-9932", "chat-where-is-it-5120")
SAM_PHONE = "+15550109999"
SAM_TEXT = "sam-wants-an-invoice-2288"


@dataclass
class Router:
    """Workers, the operator API and ways to feed and observe them, on the real stack."""

    prefix: str
    redis_prefix: str
    producer: KafkaProducer
    reader: TopicReader
    cases: RedisCaseStore
    identity: RedisIdentityStore
    redis: aioredis.Redis
    erasure: CustomerErasure
    api: httpx.AsyncClient

    def topic(self, key: str) -> str:
        return topic_spec(key).name(self.prefix)

    def send(self, event: InteractionEvent) -> None:
        self.producer.send(
            self.topic("interactions.inbound"), encode(event), key=event.routing_key.encode()
        ).get(30)

    async def resolved(self, count: int) -> dict[str, str]:
        """interaction event_id -> customer_id, once ``count`` events are resolved."""
        items = await self.reader.wait_for(
            lambda r: (lambda rs: rs if len(rs) >= count else None)(
                r.decoded(self.topic("interactions.resolved"), ResolvedInteraction)
            ),
            what=f"{count} resolutions",
        )
        return {str(r.interaction.event_id): r.customer_id for r in items}


@pytest.fixture
async def router(stack: StackAddresses, unique_id: str, redis_prefix: str) -> AsyncIterator[Router]:
    prefix = f"test.{unique_id}."
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix)
    )
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=min(t.partitions, 3)) for t in catalogue_topics(settings)],
    )
    app, cases, identity, _, client = await start_workers(
        stack,
        app_id=f"erasure-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        rules_yaml=RULES,
    )
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="erasure-test")
    publisher = KafkaEventPublisher(producer)
    erasure = CustomerErasure(
        client, key_prefix=redis_prefix, publisher=publisher, topic_prefix=prefix
    )
    http_app = create_http_app(
        ApiSettings(admin_token=SecretStr(TOKEN)),
        identity=IdentityOperations(identity, publisher, topic_prefix=prefix),
        erasure=erasure,
    )
    outputs = [topic_spec(t.key).name(prefix) for t in TOPICS if t.key != "interactions.inbound"]
    try:
        async with (
            TopicReader(stack.kafka_bootstrap_servers, outputs) as reader,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=http_app), base_url="http://omnirouter"
            ) as api,
        ):
            yield Router(
                prefix, redis_prefix, producer, reader, cases, identity, client, erasure, api
            )
    finally:
        await app.stop()
        producer.close()
        await client.aclose()


def _mentions(value: Any, needles: tuple[str, ...]) -> bool:
    text = repr(value)
    return any(n in text for n in needles)


def _without(value: Any, needles: tuple[str, ...]) -> Any:
    """A snapshot value with every field, member or entry that mentions ``needles`` left out."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not _mentions((k, v), needles)}
    if isinstance(value, set):
        return {m for m in value if not _mentions(m, needles)}
    if isinstance(value, list):
        return [m for m in value if not _mentions(m, needles)]
    return None if _mentions(value, needles) else value


async def _settled(router: Router, customers: set[str], entry_ids: set[str]) -> bool:
    """Every expected timeline entry is on one of ``customers``' timelines."""
    found: set[str] = set()
    for customer in customers:
        view = await router.cases.read_customer("default", customer, timeline=500)
        found |= {str(e.get("entry_id")) for e in view["timeline"]}
    return entry_ids <= found


async def _routed(router: Router, customers: set[str]) -> bool:
    """Every open case of ``customers`` has had its routing decision announced."""
    announced = {
        e.case.case_id for e in router.reader.decoded(router.topic("cases.routed"), CaseRouted)
    }
    for customer in customers:
        view = await router.cases.read_customer("default", customer, timeline=1)
        for case_id, case in view["cases"].items():
            if case.get("status") not in ("closed", "resolved") and case_id not in announced:
                return False
    return True


def _erased_markers(router: Router, *customers: str) -> set[bytes]:
    return {CustomerCaseKeys(router.redis_prefix, "default", c).state.encode() for c in customers}


async def test_erasing_a_customer_removes_them_everywhere_and_only_them(router: Router) -> None:
    email = inbound("email", identifier("email", DEE_EMAIL), text=DEE_TEXTS[0])
    sms = inbound("sms", identifier("phone", DEE_PHONE), text=DEE_TEXTS[1])
    sam = inbound("sms", identifier("phone", SAM_PHONE), text=SAM_TEXT)
    for event in (email, sms, sam):
        router.send(event)
    await router.resolved(3)
    # Three cases were opened (Dee's two, Sam's), each acknowledged — before the merge: a case
    # folded away before routing reached it is never acknowledged (a race the test once lost).
    acks = await router.reader.wait_for(
        lambda r: (lambda rs: rs if len(rs) >= 3 else None)(
            r.decoded(router.topic("interactions.outbound"), InteractionEvent)
        ),
        what="three acknowledgements",
    )
    # The chat names both: Dee's e-mail customer and SMS customer are one person.
    chat = inbound(
        "webchat",
        identifier("chat_visitor", DEE_VISITOR),
        identifier("email", DEE_EMAIL),
        identifier("phone", DEE_PHONE),
        text=DEE_TEXTS[2],
    )
    router.send(chat)
    owners = await router.resolved(4)
    merged = await router.reader.wait_for(
        lambda r: r.decoded(router.topic("customers.merged"), CustomerMerged), what="the merge"
    )
    dee = owners[str(chat.event_id)]
    absorbed = next(c for c in (owners[str(email.event_id)], owners[str(sms.event_id)]) if c != dee)
    assert (merged[0].survivor_id, merged[0].absorbed_id) == (dee, absorbed)
    sam_id = owners[str(sam.event_id)]

    expected = {str(e.event_id) for e in (email, sms, chat, sam, *acks)}

    async def settled() -> bool:
        # Routing too: a decision landing between the two snapshots below would change Sam's
        # keys (or recreate Dee's) and look like the erasure's doing.
        return (
            await _settled(router, {dee, sam_id}, expected)
            and await router.cases.current_customer("default", absorbed) == dee
            and await _routed(router, {dee, sam_id})
        )

    await eventually_async(settled, timeout_s=60, what="the timelines to hold every entry")
    dee_view = await router.cases.read_customer("default", dee, timeline=500)
    dee_cases = tuple(dee_view["cases"])
    assert len(dee_cases) == 2  # its own and the one folded in from the absorbed customer
    dee_entries = tuple(str(e["entry_id"]) for e in dee_view["timeline"])
    needles = (
        DEE_EMAIL,
        DEE_PHONE,
        DEE_PHONE.lstrip("+"),
        DEE_VISITOR,
        dee,
        absorbed,
        *dee_cases,
        *dee_entries,
        *DEE_TEXTS,
    )

    before = await snapshot_keys(router.redis, router.redis_prefix)
    assert _mentions(before, needles)  # the scan sees Dee's data, so its absence below counts
    assert _mentions(before, (sam_id, SAM_PHONE, SAM_TEXT))

    # A plan (dry run) names what would go and changes nothing.
    planned = await router.erasure.plan(absorbed)
    assert planned is not None
    assert planned.customer_ids == (dee, absorbed)
    assert await snapshot_keys(router.redis, router.redis_prefix) == before

    # The operator erases Dee by the id of the customer merged away: the whole person goes.
    answer = await router.api.delete(f"/api/identity/customers/{absorbed}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["customer_id"] == dee
    assert body["erased_customer_ids"] == [dee, absorbed]
    assert set(body["erased_case_ids"]) == set(dee_cases)
    removed = body["removed"]
    assert removed["customers"] == 2
    assert removed["cases"] == 2
    assert removed["identifiers"] == 3  # e-mail, phone, chat visitor
    assert removed["timeline_entries"] == len(set(dee_entries))
    assert removed["merge_records"] == 1
    assert removed["routing_entries"] > 0  # queue places, SLA timers, acknowledgements
    assert removed["remembered_resolutions"] == 3  # Dee's three messages
    assert removed == {**planned.counts(), "keys_removed": removed["keys_removed"]}

    after = await snapshot_keys(router.redis, router.redis_prefix)
    # What stays: one expiring marker per erased customer, holding no data. It refuses an event
    # resolved to Dee before the erasure and applied after it (in flight, or a lagging worker).
    markers = _erased_markers(router, dee, absorbed)
    for key in markers:
        assert after.pop(key) == {b"erased": 1}
        assert 0 < await router.redis.ttl(key) <= ERASED_MARKER_TTL_S
    late = inbound("sms", identifier("phone", DEE_PHONE), text=DEE_TEXTS[0])
    stale = ResolvedInteraction(
        occurred_at=datetime.now(UTC),
        customer_id=dee,
        interaction=late,
        is_new_customer=False,
        identifiers=late.identifiers,
    )
    update = (await router.cases.apply({("default", dee): [inbound_entry(stale, ())]}))[
        ("default", dee)
    ]
    assert update.outcomes[0].error == f"customer {dee} was erased"
    assert not update.cases
    leftovers = {
        k: v
        for k, v in (await snapshot_keys(router.redis, router.redis_prefix)).items()
        if _mentions((k, v), needles) and k not in markers
    }
    assert leftovers == {}, f"Dee is still in Redis: {leftovers}"
    # Everyone else's data is exactly as it was: only Dee's keys, fields and members went.
    untouched = {
        key: kept
        for key, value in before.items()
        if not _mentions(key, needles) and (kept := _without(value, needles))
    }
    # ...and the erasure is recorded, by its event id only (a replay reads it).
    erasures = f"{{{router.redis_prefix}:idn:default}}:erasures".encode()
    assert after.pop(erasures) == {body["event_id"].encode()}
    assert after == untouched
    assert _mentions(after, (sam_id, SAM_PHONE, SAM_TEXT))

    # The announcement: ids and counts, never an identifier or a word Dee wrote.
    records = await router.reader.wait_for(
        lambda r: r.on(router.topic("customers.erased")), what="the erasure event"
    )
    assert len(records) == 1
    assert records[0].key == dee.encode()
    event = CustomerErased.model_validate_json(records[0].value)
    assert str(event.event_id) == body["event_id"]
    assert (event.customer_id, event.erased_customer_ids) == (dee, (dee, absorbed))
    assert set(event.erased_case_ids) == set(dee_cases)
    assert event.identifiers == 3
    for secret in (DEE_EMAIL, DEE_PHONE, DEE_PHONE.lstrip("+"), DEE_VISITOR, *DEE_TEXTS):
        assert secret.encode() not in records[0].value

    # Erasing again finds nobody, by either id.
    for customer in (dee, absorbed):
        again = await router.api.delete(f"/api/identity/customers/{customer}", headers=AUTH)
        assert again.status_code == 404
        assert (
            await router.api.get(f"/api/identity/customers/{customer}", headers=AUTH)
        ).status_code == 404

    # Dee writes again from the same phone: a new customer, knowing nothing of the old one.
    comeback = inbound("sms", identifier("phone", DEE_PHONE), text="hello again")
    router.send(comeback)
    fresh = (await router.resolved(5))[str(comeback.event_id)]
    assert fresh not in {dee, absorbed}
    shown = (await router.api.get(f"/api/identity/customers/{fresh}", headers=AUTH)).json()
    assert [i["value"] for i in shown["identifiers"]] == [DEE_PHONE]
    assert shown["merges"] == []

    async def fresh_case_opened() -> bool:
        view = await router.cases.read_customer("default", fresh, timeline=10)
        return bool(view["cases"])

    await eventually_async(fresh_case_opened, timeout_s=30, what="the new customer's case")
    final = await snapshot_keys(router.redis, router.redis_prefix)
    for key in markers:
        assert final.pop(key) == {b"erased": 1}
    old = (dee, absorbed, DEE_EMAIL, DEE_VISITOR, *dee_cases, *DEE_TEXTS)
    assert not _mentions(final, old), "the erased customer came back"


async def test_erasure_also_clears_reviews_splits_agent_capacity_chat_and_deliveries(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> None:
    """What a quiet pipeline run does not produce: a merge review after an operator split, an
    agent holding the case, a chat visitor's pending replies and a delivery record."""
    prefix = f"test.{unique_id}."
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix)
    )
    erased_topic = topic_spec("customers.erased").name(prefix)
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings) if t.name == erased_topic],
    )
    client = async_redis(stack.redis_url)
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="erasure-extra-test")
    try:
        identity = RedisIdentityStore(client, key_prefix=redis_prefix, policy=IdentityPolicy())
        cases = RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings())
        routing = RoutingStore(client, key_prefix=redis_prefix)
        claims = DispatchClaims(client, key_prefix=redis_prefix, ttl_s=3600, lease_s=30)
        erasure = CustomerErasure(
            client,
            key_prefix=redis_prefix,
            publisher=KafkaEventPublisher(producer),
            topic_prefix=prefix,
        )
        # Ava chats (visitor id + e-mail); Bo texts. An event naming both merges them, an
        # operator splits them, and the next event naming both waits for a person instead.
        chat = inbound(
            "webchat", identifier("chat_visitor", "visitor-ava-1"), identifier("email", "ava@x.io")
        )
        text = inbound("sms", identifier("phone", "+15550107777"))
        both = [identifier("email", "ava@x.io"), identifier("phone", "+15550107777")]
        steps = [
            ResolveRequest(chat.event_id, chat.identifiers),
            ResolveRequest(text.event_id, text.identifiers),
            ResolveRequest(uuid.uuid4(), tuple(both)),
        ]
        ava = (await identity.resolve_batch("default", steps))[0].customer_id
        split = await identity.unmerge("default", ava, None)
        bo = split.restored_id
        [held] = await identity.resolve_batch(
            "default", [ResolveRequest(uuid.uuid4(), tuple(both))]
        )
        assert held.reviews, "the split pair must raise a merge review"

        # Ava's case, assigned to an agent; a reply delivered to her; replies waiting for her.
        resolved = ResolvedInteraction(
            occurred_at=chat.occurred_at,
            customer_id=ava,
            interaction=chat,
            is_new_customer=True,
            identifiers=chat.identifiers,
        )
        update = (await cases.apply({("default", ava): [inbound_entry(resolved, ())]}))[
            ("default", ava)
        ]
        case_id = update.outcomes[0].opened
        now = datetime.now(UTC)
        await routing.upsert_agent(
            "default", "agent-kim", presence="available", profile={"languages": ["en"]}, now=now
        )
        await routing.assign("default", case_id, "agent-kim", "webchat", "help", now)
        assert await routing.load("default") == {"agent-kim|webchat": 1}
        await claims.record(chat.event_id, DeliveryOutcome(delivered=True, provider="webchat"))
        chat_keys = ChatKeys(redis_prefix, "default", "visitor-ava-1")
        await client.rpush(chat_keys.pending, b'{"text": "are you there, ava@x.io?"}')

        outcome = await erasure.erase(ava)
        assert outcome is not None
        counts = outcome.report.counts()
        assert counts["merge_reviews"] == 1
        assert counts["operator_splits"] == 1
        assert counts["chat_keys"] == 1
        assert counts["delivery_records"] == 1
        assert counts["routing_entries"] >= 1
        # The agent's capacity is free again; Bo, split off before, is still there untouched.
        assert await routing.load("default") == {"agent-kim|webchat": 0}
        assert await routing.assignments("default") == {}
        assert await identity.open_reviews("default") == []
        kept = await identity.customer("default", bo)
        assert kept is not None
        assert [i.address for i in kept.identifiers] == ["phone:+15550107777"]
        state = await snapshot_keys(client, redis_prefix)
        # Ava's only trace: the expiring erased marker on her case slot (no data).
        marker = CustomerCaseKeys(redis_prefix, "default", ava).state.encode()
        assert state.pop(marker) == {b"erased": 1}
        assert not _mentions(state, (ava, "ava@x.io", "visitor-ava-1", case_id))
    finally:
        producer.close()
        await client.aclose()
