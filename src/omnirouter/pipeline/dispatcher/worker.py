"""The outbound dispatcher: a faust agent delivering agents' replies to customers.

Consumes ``interactions.outbound``; delivers each reply through its channel's sender (retrying
transient failures with backoff), and publishes a ``delivery_status`` record for it on the same
topic (skipped when consumed back). A reply that cannot be delivered is also dead-lettered with
its original bytes. The batch ends, and its offsets may be committed, only once Kafka has
acknowledged those records.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import httpx
import redis.asyncio as aioredis

from omnirouter.channels.delivery import Delivery, OutboundClients, PermanentDeliveryError
from omnirouter.events import (
    DeadLetter,
    Direction,
    InteractionEvent,
    InteractionKind,
    decode_or_dead_letter,
    topic_spec,
)
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_consumed, count_delivery, count_published, observed
from omnirouter.pipeline.dispatcher.claims import DispatchClaims
from omnirouter.pipeline.dispatcher.delivery import (
    NO_PROVIDER,
    STAGE,
    DeliveryOutcome,
    Sleep,
    deliver_with_retries,
    failure_dead_letter,
    longest_delivery_s,
    status_record,
)
from omnirouter.pipeline.dispatcher.senders import SenderChoice, select_sender
from omnirouter.pipeline.retry import until_it_succeeds
from omnirouter.pipeline.stream import (
    Outgoing,
    finish_or_dead_letter,
    pipeline_batches,
    publish,
    raw_topic,
)
from omnirouter.settings import OutboundSettings, Settings

log = get_logger(__name__)

SenderSelection = Callable[[InteractionEvent, OutboundSettings], SenderChoice]


class DispatcherWorker:
    """Delivers outbound interactions and reports every delivery, once per event id."""

    def __init__(
        self,
        app: faust.App,
        redis: aioredis.Redis,
        *,
        settings: Settings,
        topic_prefix: str | None = None,
        sleep: Sleep = asyncio.sleep,
        select: SenderSelection = select_sender,
        agent_name: str = "omnirouter.dispatcher.outbound",
    ) -> None:
        """Register the dispatcher agent on ``app``; it runs when the app starts.

        Args:
            app: the faust app (see ``pipeline.create_app``).
            redis: the client for delivery claims and web chat replies (the caller closes it).
            settings: outbound providers and retries, Redis key prefix, batch sizes.
            topic_prefix: defaults to ``settings.kafka.topic_prefix``.
            sleep: waits between delivery attempts (tests pass one that does not wait).
            select: picks the sender for a reply (default: ``senders.select_sender``).
            agent_name: the faust agent's name, unique within ``app``.
        """
        self._app = app
        self._redis = redis
        self._settings = settings
        self._outbound = settings.outbound
        self._prefix = settings.kafka.topic_prefix if topic_prefix is None else topic_prefix
        self._sleep = sleep
        self._select = select
        self._max_backoff_s = settings.pipeline.retry_max_backoff_s
        self._claims = DispatchClaims(
            redis,
            key_prefix=settings.redis.key_prefix,
            ttl_s=settings.outbound.claim_ttl_s,
            lease_s=longest_delivery_s(settings.outbound),
        )
        self.batches_processed = 0
        self.events_consumed = 0
        self.delivered = 0
        self.failed = 0
        topic = raw_topic(app, topic_spec("interactions.outbound").name(self._prefix))
        # concurrency=1: faust-streaming #606 commits past unprocessed messages with more.
        app.agent(topic, name=agent_name, concurrency=1)(self._consume)

    @property
    def contended_claims(self) -> int:
        """Replies found being sent by another dispatcher, and waited for."""
        return self._claims.contended

    async def _consume(self, stream: Any) -> AsyncIterator[None]:
        pipeline = self._settings.pipeline
        async for batch in pipeline_batches(stream, pipeline):
            await finish_or_dead_letter(
                self._app,
                batch,
                self._dispatch(batch),
                stage=STAGE,
                topic_prefix=self._prefix,
                max_backoff_s=pipeline.retry_max_backoff_s,
            )
            self.batches_processed += 1
            self.events_consumed += len(batch)
            yield None

    @observed(STAGE)
    async def _dispatch(self, batch: Sequence[Any]) -> None:
        outgoing: list[Outgoing] = []
        # One chain per customer: their replies go out in order, customers side by side.
        chains: dict[tuple[str, str], list[tuple[Any, InteractionEvent]]] = defaultdict(list)
        for item in batch:
            event = self._decode(item, outgoing)
            if event is None or event.kind is InteractionKind.DELIVERY_STATUS:
                continue  # undecodable (dead-lettered), or one of our own status records
            chains[(event.tenant, event.routing_key)].append((item, event))
        if chains:
            gate = asyncio.Semaphore(self._outbound.concurrency)
            async with httpx.AsyncClient(timeout=self._outbound.request_timeout_s) as http:
                clients = OutboundClients(http, self._redis)
                reports = await asyncio.gather(
                    *(self._deliver_in_order(chain, clients, gate) for chain in chains.values())
                )
            for records in reports:
                outgoing.extend(records)
        await publish(
            self._app,
            outgoing,
            topic_prefix=self._prefix,
            what="dispatcher.publish",
            max_backoff_s=self._max_backoff_s,
        )
        count_published(STAGE, outgoing)

    def _decode(self, item: Any, dead: list[Outgoing]) -> InteractionEvent | None:
        message = item.message
        decoded = decode_or_dead_letter(
            InteractionEvent,
            message.value if message.value is not None else b"",
            message.key,
            stage=STAGE,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
        )
        count_consumed(STAGE, message.topic, decoded, prefix=self._prefix)
        key = (message.key or b"").decode("utf-8", "replace")
        if isinstance(decoded, DeadLetter):
            dead.append(Outgoing("deadletter", key, decoded))
            return None
        if decoded.direction is not Direction.OUTBOUND:
            dead.append(
                Outgoing(
                    "deadletter",
                    key,
                    DeadLetter.for_payload(
                        message.value or b"",
                        message.key,
                        stage=STAGE,
                        reason="an inbound interaction on the outbound topic",
                        error_type="NotOutbound",
                        source_topic=message.topic,
                        source_partition=message.partition,
                        source_offset=message.offset,
                        tenant=decoded.tenant,
                        causation_id=decoded.event_id,
                    ),
                )
            )
            return None
        return decoded

    async def _deliver_in_order(
        self,
        chain: list[tuple[Any, InteractionEvent]],
        clients: OutboundClients,
        gate: asyncio.Semaphore,
    ) -> list[Outgoing]:
        records: list[Outgoing] = []
        for item, event in chain:
            records.extend(await self._deliver(item, event, clients, gate))
        return records

    async def _deliver(
        self,
        item: Any,
        event: InteractionEvent,
        clients: OutboundClients,
        gate: asyncio.Semaphore,
    ) -> list[Outgoing]:
        try:
            outcome = await self._deliver_once(event, clients, gate)
        except Exception as exc:
            # Redis refusing a claim, or a bug: it costs this reply (dead-lettered, not sent),
            # never the stream.
            log.exception("dispatching failed", event_id=str(event.event_id))
            reason = f"dispatcher error: {type(exc).__name__}: {exc}"
            outcome = DeliveryOutcome.failed(NO_PROVIDER, reason, attempts=0)
        records = [
            Outgoing(
                "interactions.outbound",
                event.routing_key,
                status_record(event, outcome, at=datetime.now(UTC)),
            )
        ]
        count_delivery(event.channel, outcome.provider, delivered=outcome.delivered)
        if outcome.delivered:
            self.delivered += 1
            return records
        self.failed += 1
        log.warning(
            "reply not delivered",
            event_id=str(event.event_id),
            channel=str(event.channel),
            provider=outcome.provider,
            reason=outcome.reason,
        )
        message = item.message
        letter = failure_dead_letter(
            message.value or b"",
            message.key,
            event,
            outcome,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
        )
        records.append(
            Outgoing("deadletter", (message.key or b"").decode("utf-8", "replace"), letter)
        )
        return records

    async def _deliver_once(
        self, event: InteractionEvent, clients: OutboundClients, gate: asyncio.Semaphore
    ) -> DeliveryOutcome:
        previous = await until_it_succeeds(
            lambda: self._claims.claim(event.event_id),
            what="dispatcher.claim",
            max_backoff_s=self._max_backoff_s,
        )
        if previous is not None:
            log.info("already delivered; not sending again", event_id=str(event.event_id))
            return previous
        try:
            choice = self._select(event, self._outbound)
        except PermanentDeliveryError as exc:
            outcome = DeliveryOutcome.failed(NO_PROVIDER, exc.reason, attempts=0)
        else:

            async def attempt() -> Delivery:
                # The gate bounds calls in flight, not backoff waits, which hold nothing.
                async with gate:
                    return await choice.send(event, self._settings, clients)

            outcome = await deliver_with_retries(
                attempt, provider=choice.provider, settings=self._outbound, sleep=self._sleep
            )
        await until_it_succeeds(
            lambda: self._claims.record(event.event_id, outcome),
            what="dispatcher.record",
            max_backoff_s=self._max_backoff_s,
        )
        if outcome.delivered:
            log.info(
                "reply delivered",
                event_id=str(event.event_id),
                provider=outcome.provider,
                attempts=outcome.attempts,
            )
        return outcome
