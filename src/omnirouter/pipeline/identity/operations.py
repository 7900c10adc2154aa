"""Operator actions on identity (split a merged customer, look one up, list reviews).

Shared by the CLI and the HTTP API, so both record a split the same way: the state change in
Redis first, then the ``CustomerUnmerged`` event, acknowledged by Kafka before success is
reported.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from omnirouter.events import (
    DEFAULT_TENANT,
    CustomerUnmerged,
    Identifier,
    derived_event_id,
    encode,
    identifier_from_address,
    topic_spec,
)
from omnirouter.pipeline.identity.normalize import normalize_identifiers
from omnirouter.pipeline.identity.store import (
    CustomerRecord,
    RedisIdentityStore,
    ResolveRequest,
    ReviewItem,
    Split,
)


class EventPublisher(Protocol):
    """Publishes one record and returns once Kafka acknowledged it."""

    def publish(self, topic: str, key: str, value: bytes) -> None:
        """Write ``value`` under ``key`` to ``topic``; raise if it was not acknowledged."""
        ...


class KafkaEventPublisher:
    """An :class:`EventPublisher` on a kafka-python producer (acks=all, idempotent)."""

    def __init__(self, producer: object, *, timeout_s: float = 30.0) -> None:
        """Wrap a ``kafka.KafkaProducer``."""
        self._producer = producer
        self._timeout_s = timeout_s

    def publish(self, topic: str, key: str, value: bytes) -> None:
        """Write and wait for the broker's acknowledgement."""
        future = self._producer.send(topic, value, key=key.encode())  # type: ignore[attr-defined]
        future.get(timeout=self._timeout_s)


@dataclass(frozen=True, slots=True)
class SplitOutcome:
    """A split as it was made and announced."""

    split: Split
    event: CustomerUnmerged


class IdentityOperations:
    """What an operator can do to identity state."""

    def __init__(
        self, store: RedisIdentityStore, publisher: EventPublisher, *, topic_prefix: str
    ) -> None:
        """Act on ``store`` and announce changes through ``publisher``."""
        self._store = store
        self.publisher = publisher
        self._unmerged_topic = topic_spec("customers.unmerged").name(topic_prefix)

    async def unmerge(
        self,
        customer_id: str,
        *,
        absorbed_id: str | None = None,
        operator: str,
        reason: str = "",
        tenant: str = DEFAULT_TENANT,
    ) -> SplitOutcome:
        """Split ``absorbed_id`` (default: the latest merge) back out of ``customer_id``.

        Raises:
            UnmergeRefused: the split cannot be made as asked.
        """
        split = await self._store.unmerge(tenant, customer_id, absorbed_id)
        event = CustomerUnmerged(
            # One split per recorded merge: retrying the announcement reuses the id.
            event_id=derived_event_id(
                derived_event_id(uuid.UUID(split.merge.event_id), "identity:merge"),
                f"identity:unmerge:{split.restored_id}",
            ),
            tenant=tenant,
            occurred_at=datetime.now(UTC),
            survivor_id=split.survivor_id,
            restored_id=split.restored_id,
            restored_identifiers=tuple(identifier_from_address(a) for a in split.restored),
            operator=operator,
            reason=reason,
        )
        await asyncio.to_thread(
            self.publisher.publish, self._unmerged_topic, split.survivor_id, encode(event)
        )
        return SplitOutcome(split, event)

    async def import_customer(
        self, identifiers: list[Identifier], *, tenant: str = DEFAULT_TENANT
    ) -> tuple[str, list[str]]:
        """Make a customer known with these identifiers (a CRM import), as resolution would.

        Returns the customer id and the identifiers rejected as malformed or blocked. The same
        identifiers always resolve to the same customer; known ones link (and may merge, under
        the guardrails).

        Raises:
            ValueError: no usable identifier.
        """
        normalized = normalize_identifiers(identifiers, self._store.policy)
        if not normalized.usable:
            reasons = "; ".join(r.reason for r in normalized.rejected)
            raise ValueError(f"no usable identifier: {reasons}")
        addresses = ",".join(sorted(i.address for i in normalized.usable))
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"omnirouter:import:{tenant}:{addresses}")
        [resolution] = await self._store.resolve_batch(
            tenant, [ResolveRequest(event_id, normalized.usable)]
        )
        return resolution.customer_id, [f"{r.kind}: {r.reason}" for r in normalized.rejected]

    async def customer(
        self, customer_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> CustomerRecord | None:
        """The customer ``customer_id`` names now (following merges), or None."""
        return await self._store.customer(tenant, customer_id)

    async def open_reviews(
        self, *, tenant: str = DEFAULT_TENANT, limit: int = 100
    ) -> list[ReviewItem]:
        """Merge reviews waiting for a person."""
        return await self._store.open_reviews(tenant, limit=limit)
