"""Erasing a customer on request ("right to be forgotten").

A person is the canonical customer and every customer merged into it. Erasing them removes,
from every part of the router's state in Redis:

- identity: identifier -> customer mappings, the customers' identifier sets, records, merge
  history, operator splits naming them, merge reviews mentioning them, and the remembered
  resolutions of their events (which quote their identifiers);
- cases: every case, the timeline, profile, threads, contacts and applied-event records of each
  customer (one key set per customer);
- routing: queue places, offers and assignments (the agent's capacity is freed), waiting
  requests, timers, acknowledgements and recorded decisions of those cases;
- channels: the web chat keys of their chat visitor ids, and the delivery records of replies
  sent to them.

What stays is one marker per erased customer, on its case slot, holding no data and expiring
after :data:`ERASED_MARKER_TTL_S`: an event resolved to the customer before the erasure but
applied by the case worker after it (in flight, or a lagging worker) is refused there instead of
bringing the customer back.

Each part is one Lua script on its own hash slot (identity per tenant, cases per customer,
routing per tenant), atomic there; the large tenant-wide hashes (reviews, remembered
resolutions) are scanned incrementally rather than in one blocking script.

The erasure is announced before it is made: a :class:`~omnirouter.events.CustomerErased`
(ids and counts only) is published, acknowledged by Kafka, and only then is state removed. The
event id is derived from the tenant and customer, so when removal fails after the announcement,
retrying publishes the same event again (a duplicate consumers drop) and finishes the job;
removal that has happened is never left unannounced. Identity is removed last, so a retry
after a partial failure still finds the person. Erasing again finds nothing: ``None``.

The Kafka log still holds the raw events until their retention runs out. A replay of it
(:mod:`omnirouter.ops.replay`) applies each ``CustomerErased`` at its place in the log with
:meth:`StateErasure.forget_identity` and :meth:`StateErasure.forget_cases`, so the erased
person does not come back; the erasure ids kept in ``IdentityKeys.erasures`` tell it which
erasures a state already holds, whose people's earlier events it then skips.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from omnirouter.events import (
    DEFAULT_TENANT,
    CustomerErased,
    IdentifierKind,
    encode,
    identifier_from_address,
    topic_spec,
)
from omnirouter.pipeline.identity.operations import EventPublisher
from omnirouter.pipeline.scripts import ScriptCall, run_pipelined
from omnirouter.redis_keys import (
    ChatKeys,
    CustomerCaseKeys,
    IdentityKeys,
    RoutingKeys,
    dispatch_claim_key,
)

_SCAN_COUNT = 1000


def _lua(name: str) -> str:
    return resources.files("omnirouter.pipeline.identity").joinpath("lua", name).read_text()


def _as_list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {} rather than [].
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def erasure_event_id(tenant: str, customer_id: str) -> uuid.UUID:
    """The id of the announcement of erasing ``customer_id``: the same on every retry."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"omnirouter:erase:{tenant}:{customer_id}")


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What erasing a customer removed (or, for a plan, would remove). Ids and counts only."""

    tenant: str
    customer_id: str
    customer_ids: tuple[str, ...]
    case_ids: tuple[str, ...] = ()
    identifiers: int = 0
    timeline_entries: int = 0
    merge_records: int = 0
    operator_splits: int = 0
    merge_reviews: int = 0
    routing_entries: int = 0
    remembered_resolutions: int = 0
    chat_keys: int = 0
    delivery_records: int = 0
    keys_removed: int = 0
    """Whole keys removed (or, for a plan, that would be); fields of shared hashes not counted."""

    def counts(self) -> dict[str, int]:
        """Every count, by name (for an API answer or a CLI table)."""
        return {
            "customers": len(self.customer_ids),
            "cases": len(self.case_ids),
            "identifiers": self.identifiers,
            "timeline_entries": self.timeline_entries,
            "merge_records": self.merge_records,
            "operator_splits": self.operator_splits,
            "merge_reviews": self.merge_reviews,
            "routing_entries": self.routing_entries,
            "remembered_resolutions": self.remembered_resolutions,
            "chat_keys": self.chat_keys,
            "delivery_records": self.delivery_records,
            "keys_removed": self.keys_removed,
        }

    def announcement(self) -> CustomerErased:
        """The event that tells every consumer to purge this customer."""
        return CustomerErased(
            event_id=erasure_event_id(self.tenant, self.customer_id),
            tenant=self.tenant,
            occurred_at=datetime.now(UTC),
            customer_id=self.customer_id,
            erased_customer_ids=self.customer_ids,
            erased_case_ids=self.case_ids,
            identifiers=self.identifiers,
            cases=len(self.case_ids),
            timeline_entries=self.timeline_entries,
            merge_records=self.merge_records,
            merge_reviews=self.merge_reviews,
            routing_entries=self.routing_entries,
        )


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    """An erasure as announced and made."""

    event: CustomerErased
    report: ErasureReport


@dataclass(slots=True)
class _Person:
    """The customers, identifiers and cases of one person, as found in Redis."""

    root: str
    customers: tuple[str, ...]
    addresses: tuple[str, ...]
    merges: int
    splits: int
    identity_keys: int
    case_ids: list[str] = field(default_factory=list)
    entries: set[str] = field(default_factory=set)
    event_ids: set[str] = field(default_factory=set)
    case_keys: int = 0

    def needles(self) -> frozenset[str]:
        """Every string whose presence in a document makes it about this person."""
        return frozenset((*self.customers, *self.addresses, *self.case_ids))


def _mentions(document: Any, needles: frozenset[str]) -> bool:
    """Whether any string in a decoded JSON document is one of ``needles``."""
    if isinstance(document, str):
        return document in needles
    if isinstance(document, dict):
        return any(_mentions(v, needles) or k in needles for k, v in document.items())
    if isinstance(document, list):
        return any(_mentions(v, needles) for v in document)
    return False


def _about(raw: Any, needles: frozenset[str]) -> bool:
    try:
        return _mentions(orjson.loads(raw), needles)
    except orjson.JSONDecodeError:
        return any(n in _text(raw) for n in needles)


# How long an erased customer's case slot keeps the marker that refuses events resolved to them
# before the erasure: a week covers a case worker that lags or is down for days.
ERASED_MARKER_TTL_S = 7 * 24 * 3600


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class StateErasure:
    """The removal steps of an erasure, announcing nothing: plans, and a replay's erasures."""

    def __init__(self, client: aioredis.Redis, *, key_prefix: str) -> None:
        """Act on ``client`` (keys under ``key_prefix``)."""
        self._client = client
        self._prefix = key_prefix
        self._identity = client.register_script(_lua("erase_identity.lua"))
        self._cases = client.register_script(_lua("erase_cases.lua"))
        self._routing = client.register_script(_lua("erase_routing.lua"))

    async def plan(self, customer_id: str, *, tenant: str = DEFAULT_TENANT) -> ErasureReport | None:
        """What erasing ``customer_id`` would remove, changing nothing; None when unknown."""
        return await self._run(tenant, customer_id, apply=False)

    async def erasures_made(self, tenant: str) -> frozenset[str]:
        """Event ids of the erasures this state holds (made live, or by a replay)."""
        members = await self._client.smembers(IdentityKeys(self._prefix, tenant).erasures)
        return frozenset(_text(m) for m in members)

    async def forget_identity(self, erased: CustomerErased, *, also: Iterable[str] = ()) -> int:
        """An announced erasure's identity part, as the live one made it; publishes nothing.

        A replay calls this where the erasure is in the log, so later events of the same
        identifiers make a new customer, as they did live; ``also`` are customers it made of
        the person's events under other ids. Returns how many customers went.
        """
        identity = IdentityKeys(self._prefix, erased.tenant)
        await self._client.sadd(identity.erasures, str(erased.event_id))
        named = (*erased.erased_customer_ids, *sorted(also))
        erased_ids, gone = frozenset(named), 0
        for customer_id in named:
            person = await self._find(identity, customer_id, apply=False)
            # Only the person the log erased: an id merged elsewhere since is someone else now.
            if person is None or person.root not in erased_ids:
                continue
            person.case_ids = list(erased.erased_case_ids)
            await self._scrub_reviews(identity, person.needles(), apply=True)
            await self._scrub_resolutions(identity, person.needles(), apply=True)
            await self._find(identity, person.root, apply=True)
            gone += len(person.customers)
        return gone

    async def forget_cases(self, erased: CustomerErased) -> int:
        """An announced erasure's case part (every erased customer's case keys); keys removed."""
        person = _Person(erased.customer_id, erased.erased_customer_ids, (), 0, 0, 0)
        await self._case_state(erased.tenant, person, "1")
        return person.case_keys

    async def _run(self, tenant: str, customer_id: str, *, apply: bool) -> ErasureReport | None:
        identity = IdentityKeys(self._prefix, tenant)
        person = await self._find(identity, customer_id, apply=False)
        if person is None:
            return None
        flag = "1" if apply else "0"
        await self._case_state(tenant, person, flag)
        routing = RoutingKeys(self._prefix, tenant)
        routing_entries = int(
            await self._routing(
                keys=routing.script_keys(),
                args=[routing.queue_stem, orjson.dumps({"cases": person.case_ids}), flag],
            )
        )
        needles = person.needles()
        reviews = await self._scrub_reviews(identity, needles, apply=apply)
        resolutions = await self._scrub_resolutions(identity, needles, apply=apply)
        chat = await self._remove_keys(self._chat_keys(tenant, person.addresses), apply=apply)
        deliveries = await self._remove_keys(
            [dispatch_claim_key(self._prefix, e) for e in sorted(person.event_ids)], apply=apply
        )
        if apply:
            # Identity goes last: until it does, a retry after a failure finds the person again
            # and finishes what was left (every step above is idempotent).
            await self._find(identity, person.root, apply=True)
        return ErasureReport(
            tenant=tenant,
            customer_id=person.root,
            customer_ids=person.customers,
            case_ids=tuple(person.case_ids),
            identifiers=len(person.addresses),
            timeline_entries=len(person.entries),
            merge_records=person.merges,
            operator_splits=person.splits,
            merge_reviews=reviews,
            routing_entries=routing_entries,
            remembered_resolutions=resolutions,
            chat_keys=chat,
            delivery_records=deliveries,
            keys_removed=person.identity_keys + person.case_keys + chat + deliveries,
        )

    async def _find(
        self, identity: IdentityKeys, customer_id: str, *, apply: bool
    ) -> _Person | None:
        """The person ``customer_id`` names, from identity; with ``apply``, erased there."""
        raw = await self._identity(
            keys=identity.script_keys(),
            args=[identity.customer_stem, customer_id, "1" if apply else "0"],
        )
        found = orjson.loads(raw)
        if not found.get("found"):
            return None
        return _Person(
            root=found["root"],
            customers=tuple(_as_list(found.get("customers"))),
            addresses=tuple(_as_list(found.get("addresses"))),
            merges=int(found.get("merges", 0)),
            splits=int(found.get("splits", 0)),
            identity_keys=int(found.get("keys", 0)),
        )

    async def _case_state(self, tenant: str, person: _Person, flag: str) -> None:
        """Each customer's case keys: one script on its own slot, all in one round trip."""
        calls: list[ScriptCall] = [
            (
                CustomerCaseKeys(self._prefix, tenant, customer).script_keys(),
                (flag, ERASED_MARKER_TTL_S),
            )
            for customer in person.customers
        ]
        results = await run_pipelined(self._client, self._cases, calls)
        seen_cases: set[str] = set()
        for raw in results:
            data = orjson.loads(raw)
            for case_id in _as_list(data.get("cases")):
                if case_id not in seen_cases:
                    seen_cases.add(case_id)
                    person.case_ids.append(case_id)
            person.entries.update(str(e) for e in _as_list(data.get("entries")))
            person.event_ids.update(str(e) for e in _as_list(data.get("events")))
            person.case_keys += int(data.get("keys", 0))

    def _chat_keys(self, tenant: str, addresses: Iterable[str]) -> list[str]:
        keys = []
        for address in addresses:
            identifier = identifier_from_address(address)
            if identifier.kind is IdentifierKind.CHAT_VISITOR:
                chat = ChatKeys(self._prefix, tenant, identifier.value)
                keys += [chat.pending, chat.profile]
        return keys

    async def _remove_keys(self, keys: list[str], *, apply: bool) -> int:
        """How many of ``keys`` exist (removed when ``apply``); single-key commands only, so
        keys on many slots are fine."""
        present = 0
        for chunk in _chunks(keys):
            async with self._client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    if apply:
                        pipe.delete(key)
                    else:
                        pipe.exists(key)
                present += sum(int(n) for n in await pipe.execute())
        return present

    async def _scrub_reviews(
        self, identity: IdentityKeys, needles: frozenset[str], *, apply: bool
    ) -> int:
        """Merge reviews naming the person (as a customer, identifier or the one resolved to)."""
        matched = [
            review_id
            async for review_id, raw in self._client.hscan_iter(identity.reviews, count=_SCAN_COUNT)
            if _about(raw, needles)
        ]
        if apply:
            for chunk in _chunks(matched):
                # Both keys are on the tenant's identity slot: one atomic step.
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.hdel(identity.reviews, *chunk)
                    pipe.zrem(identity.reviews_open, *chunk)
                    await pipe.execute()
        return len(matched)

    async def _scrub_resolutions(
        self, identity: IdentityKeys, needles: frozenset[str], *, apply: bool
    ) -> int:
        """Remembered resolutions (the idempotency window) that quote the person.

        A redelivered event of theirs is then resolved afresh (to a new customer) instead of
        being handed the erased customer's id back.
        """
        removed = 0
        async for bucket in self._client.scan_iter(
            match=identity.processed_buckets_match, count=_SCAN_COUNT
        ):
            if _text(bucket) == identity.processed_at:
                continue
            matched = [
                event_id
                async for event_id, raw in self._client.hscan_iter(bucket, count=_SCAN_COUNT)
                if _about(raw, needles)
            ]
            removed += len(matched)
            if apply:
                for chunk in _chunks(matched):
                    await self._client.hdel(bucket, *chunk)
        return removed


class CustomerErasure(StateErasure):
    """Erases customers from every part of the router's Redis state, and announces it."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_prefix: str,
        publisher: EventPublisher,
        topic_prefix: str,
    ) -> None:
        """Act on ``client`` (keys under ``key_prefix``); announce through ``publisher``."""
        super().__init__(client, key_prefix=key_prefix)
        self._publisher = publisher
        self._topic = topic_spec("customers.erased").name(topic_prefix)

    async def erase(
        self, customer_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> ErasureOutcome | None:
        """Erase the person ``customer_id`` names (any of their ids); None when unknown.

        The announcement goes first (see the module docs), then the state.

        Raises:
            Exception: whatever the publisher raises when Kafka does not acknowledge the
                announcement; nothing has been removed then.
        """
        planned = await self._run(tenant, customer_id, apply=False)
        if planned is None:
            return None
        event = planned.announcement()
        await asyncio.to_thread(
            self._publisher.publish, self._topic, planned.customer_id, encode(event)
        )
        # Recorded once announced, before anything goes: a replay over this state then skips
        # the person's earlier events instead of resolving them into a new customer.
        await self._client.sadd(IdentityKeys(self._prefix, tenant).erasures, str(event.event_id))
        done = await self._run(tenant, planned.customer_id, apply=True)
        # A concurrent erasure may have finished first: the announcement stands either way.
        return ErasureOutcome(event, done or replace(planned, keys_removed=0))
