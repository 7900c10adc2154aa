"""The identity worker: a faust agent from interactions.inbound to interactions.resolved.

Thin wiring. Decoding, normalization and event building are pure functions; the store is one
Lua call per tenant per batch; this module only moves records between them and Kafka, and makes
sure a batch is fully published before faust may commit its offsets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from redis.exceptions import ResponseError

from omnirouter.events import (
    DeadLetter,
    Direction,
    InteractionEvent,
    decode_or_dead_letter,
    encode,
    topic_spec,
)
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_consumed, count_published, observed
from omnirouter.pipeline.identity.normalize import NormalizedIdentifiers, normalize_identifiers
from omnirouter.pipeline.identity.outcome import (
    STAGE,
    no_usable_identifier,
    resolution_events,
    summarize,
)
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import IdentityStore, Resolution, ResolveRequest
from omnirouter.pipeline.retry import until_it_succeeds
from omnirouter.pipeline.stream import (
    Outgoing,
    finish_or_dead_letter,
    pipeline_batches,
    publish,
    raw_topic,
)
from omnirouter.settings import PipelineSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Accepted:
    event: InteractionEvent
    normalized: NormalizedIdentifiers


class IdentityWorker:
    """Resolves each inbound interaction to a customer and publishes the outcome."""

    def __init__(
        self,
        app: faust.App,
        store: IdentityStore,
        *,
        policy: IdentityPolicy,
        pipeline: PipelineSettings,
        topic_prefix: str,
    ) -> None:
        """Register the identity agent on ``app``; it runs when the app starts."""
        self._app = app
        self._store = store
        self._policy = policy
        self._pipeline = pipeline
        self._prefix = topic_prefix
        self.inbound_topic = topic_spec("interactions.inbound").name(topic_prefix)
        # Counters for ops and the benchmark: batches taken and events consumed.
        self.batches_processed = 0
        self.events_consumed = 0
        inbound = raw_topic(app, self.inbound_topic)
        # concurrency=1: faust-streaming #606 commits past unprocessed messages with more.
        self.agent = app.agent(inbound, name="omnirouter.identity", concurrency=1)(self._consume)

    async def _consume(self, stream: Any) -> AsyncIterator[None]:
        async for batch in pipeline_batches(stream, self._pipeline):
            await finish_or_dead_letter(
                self._app,
                batch,
                self.process(batch),
                stage=STAGE,
                topic_prefix=self._prefix,
                max_backoff_s=self._pipeline.retry_max_backoff_s,
            )
            yield None

    @observed(STAGE)
    async def process(self, batch: Sequence[faust.EventT[Any]]) -> None:
        """Resolve and publish one batch; returns only when every record is acknowledged."""
        outgoing: list[Outgoing] = []
        accepted: dict[str, list[_Accepted]] = defaultdict(list)
        for item in batch:
            message = item.message
            raw_value: bytes = message.value if message.value is not None else b""
            raw_key: bytes | None = message.key
            decoded = decode_or_dead_letter(
                InteractionEvent,
                raw_value,
                raw_key,
                stage=STAGE,
                source_topic=message.topic,
                source_partition=message.partition,
                source_offset=message.offset,
            )
            count_consumed(STAGE, message.topic, decoded, prefix=self._prefix)
            if isinstance(decoded, DeadLetter):
                outgoing.append(
                    Outgoing("deadletter", (raw_key or b"").decode("utf-8", "replace"), decoded)
                )
                continue
            if decoded.direction is not Direction.INBOUND:
                outgoing.append(
                    self._dead(decoded, raw_value, raw_key, message, "not an inbound interaction")
                )
                continue
            normalized = normalize_identifiers(decoded.identifiers, self._policy)
            if not normalized.usable and decoded.customer_id is None:
                letter = no_usable_identifier(
                    decoded,
                    normalized,
                    raw_value,
                    raw_key,
                    source_topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )
                outgoing.append(Outgoing("deadletter", decoded.routing_key, letter))
                continue
            accepted[decoded.tenant].append(_Accepted(decoded, normalized))

        for tenant, items in accepted.items():
            resolutions = await self._resolve(tenant, items)
            for accepted_item, resolution in zip(items, resolutions, strict=True):
                if isinstance(resolution, str):
                    outgoing.append(
                        Outgoing(
                            "deadletter",
                            accepted_item.event.routing_key,
                            DeadLetter.for_payload(
                                encode(accepted_item.event),
                                accepted_item.event.routing_key.encode(),
                                stage=STAGE,
                                reason=resolution,
                                error_type="IdentityStoreRefused",
                                tenant=accepted_item.event.tenant,
                                causation_id=accepted_item.event.event_id,
                            ),
                        )
                    )
                else:
                    outgoing.extend(
                        resolution_events(accepted_item.event, accepted_item.normalized, resolution)
                    )
        await self._publish(outgoing)
        self.batches_processed += 1
        self.events_consumed += len(batch)
        log.debug("identity batch", consumed=len(batch), published=summarize(outgoing))

    def _dead(
        self,
        event: InteractionEvent,
        raw_value: bytes,
        raw_key: bytes | None,
        message: Any,
        reason: str,
    ) -> Outgoing:
        return Outgoing(
            "deadletter",
            event.routing_key,
            DeadLetter.for_payload(
                raw_value,
                raw_key,
                stage=STAGE,
                reason=reason,
                error_type="WrongDirection",
                source_topic=message.topic,
                source_partition=message.partition,
                source_offset=message.offset,
                tenant=event.tenant,
                causation_id=event.event_id,
            ),
        )

    async def _resolve(self, tenant: str, items: list[_Accepted]) -> list[Resolution | str]:
        requests = [
            ResolveRequest(i.event.event_id, i.normalized.usable, i.event.customer_id)
            for i in items
        ]
        try:
            return list(
                await until_it_succeeds(
                    lambda: self._store.resolve_batch(tenant, requests),
                    what="identity.resolve_batch",
                    max_backoff_s=self._pipeline.retry_max_backoff_s,
                )
            )
        except ResponseError as exc:
            # The script refused the batch (never seen in practice; a bug or corrupt state):
            # find the event that causes it, so only that one is dead-lettered.
            log.error("identity batch refused; retrying one event at a time", error=str(exc))
        results: list[Resolution | str] = []
        for request in requests:
            try:
                single = await until_it_succeeds(
                    lambda request=request: self._store.resolve_batch(tenant, [request]),  # type: ignore[misc]
                    what="identity.resolve_one",
                    max_backoff_s=self._pipeline.retry_max_backoff_s,
                )
                results.append(single[0])
            except ResponseError as exc:
                results.append(f"identity store refused the event: {exc}"[:2000])
        return results

    async def _publish(self, outgoing: Sequence[Outgoing]) -> None:
        await publish(
            self._app,
            outgoing,
            topic_prefix=self._prefix,
            what="identity.publish",
            max_backoff_s=self._pipeline.retry_max_backoff_s,
        )
        count_published(STAGE, outgoing)
