"""The case worker: faust agents that keep each customer's cases, timeline and context.

Consumes ``interactions.resolved`` (customer messages), ``interactions.outbound`` (agent
replies) and ``customers.merged`` (folding a merged customer in); publishes a ``CaseEvent`` for
every change. Thin wiring: entries and events are built by pure functions, state changes are
one pipelined round trip per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from redis.exceptions import ResponseError

from omnirouter.events import (
    CustomerMerged,
    DeadLetter,
    Direction,
    EventEnvelope,
    InteractionEvent,
    ResolvedInteraction,
    decode_or_dead_letter,
    topic_spec,
)
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import (
    count_consumed,
    count_published,
    observe_end_to_end,
    observed,
)
from omnirouter.pipeline.cases.announcing import (
    Announcement,
    announce,
    closed_cases,
    combined,
    dead_entry,
    warn_refused,
)
from omnirouter.pipeline.cases.entries import fold_entry, inbound_entry, outbound_entry
from omnirouter.pipeline.cases.store import CustomerRef, CustomerUpdate, RedisCaseStore
from omnirouter.pipeline.retry import until_it_succeeds
from omnirouter.pipeline.routing.batch import NewCase, route_new_cases
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.stream import (
    Outgoing,
    finish_or_dead_letter,
    pipeline_batches,
    publish,
    raw_topic,
    retrieve_outcome,
)
from omnirouter.settings import CaseSettings, PipelineSettings

log = get_logger(__name__)
STAGE = "cases"
# A batch's customers go to Redis in up to this many slices of at least this many customers
# (see _applied_in_slices): small batches keep their single round trip.
APPLY_SLICES_MAX = 4
APPLY_SLICE_CUSTOMERS = 64
# Redirect rounds for events of a customer merged into another during the batch (each a trip).
# The first goes one link, to the customer the case script names, and each later one follows
# the whole chain: six rounds follow as many merges as five whole-chain rounds did.
MAX_REDIRECTS = 6


class CaseWorker:
    """Applies customer messages, agent replies and merges to cases, and announces changes."""

    def __init__(
        self,
        app: faust.App,
        store: RedisCaseStore,
        *,
        settings: CaseSettings,
        pipeline: PipelineSettings,
        topic_prefix: str,
        router: RoutingEngine | None = None,
        timer_interval_s: float = 0.5,
    ) -> None:
        """Register the case agents on ``app``; they run when the app starts.

        With a ``router``, new and reopened cases are routed, and routing timers (offer expiry,
        sticky waits, escalations, SLA breaches, queue openings) fire from this worker.
        """
        self._app = app
        self._store = store
        self._settings = settings
        self._pipeline = pipeline
        self._prefix = topic_prefix
        self._router = router
        self.batches_processed = 0
        self.events_consumed = 0
        # concurrency=1 everywhere: faust-streaming #606 commits past unprocessed messages.
        for key, name, handler in (
            ("interactions.resolved", "omnirouter.cases.resolved", self._resolved),
            ("interactions.outbound", "omnirouter.cases.outbound", self._outbound),
            ("customers.merged", "omnirouter.cases.merged", self._merged),
        ):
            topic = raw_topic(app, topic_spec(key).name(topic_prefix))
            app.agent(topic, name=name, concurrency=1)(self._consumer(observed(STAGE)(handler)))
        if router is not None:
            app.timer(interval=timer_interval_s, name="omnirouter.routing.timers")(
                self._fire_timers
            )

    @observed("routing", timed=False)  # labels its round trips; most ticks find nothing due
    async def _fire_timers(self) -> None:
        assert self._router is not None
        try:
            outgoing = await until_it_succeeds(
                lambda: self._router.fire_due_timers(datetime.now(UTC)),  # type: ignore[union-attr]
                what="routing.timers",
                max_backoff_s=self._pipeline.retry_max_backoff_s,
            )
        except ResponseError as exc:
            log.error("routing timers failed", error=str(exc))
            return
        await publish(
            self._app,
            outgoing,
            topic_prefix=self._prefix,
            what="routing.publish",
            max_backoff_s=self._pipeline.retry_max_backoff_s,
        )
        count_published("routing", outgoing)

    def _consumer(self, handler: Any) -> Any:
        async def consume(stream: Any) -> AsyncIterator[None]:
            async for batch in pipeline_batches(stream, self._pipeline):
                await finish_or_dead_letter(
                    self._app,
                    batch,
                    handler(batch),
                    stage=STAGE,
                    topic_prefix=self._prefix,
                    max_backoff_s=self._pipeline.retry_max_backoff_s,
                )
                self.batches_processed += 1
                self.events_consumed += len(batch)
                yield None

        return consume

    def _decode(
        self, item: Any, model: type[EventEnvelope], dead: list[Outgoing]
    ) -> EventEnvelope | None:
        message = item.message
        raw_value: bytes = message.value if message.value is not None else b""
        decoded = decode_or_dead_letter(
            model,
            raw_value,
            message.key,
            stage=STAGE,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
        )
        count_consumed(STAGE, message.topic, decoded, prefix=self._prefix)
        if isinstance(decoded, DeadLetter):
            key = (message.key or b"").decode("utf-8", "replace")
            dead.append(Outgoing("deadletter", key, decoded))
            return None
        return decoded

    async def _resolved(self, batch: Sequence[Any]) -> None:
        work: dict[CustomerRef, list[dict[str, Any]]] = defaultdict(list)
        outgoing: list[Outgoing] = []
        received_at: dict[str, datetime] = {}  # for the end-to-end latency of routed cases
        for item in batch:
            event = self._decode(item, ResolvedInteraction, outgoing)
            if isinstance(event, ResolvedInteraction):
                entry = inbound_entry(event, self._settings.intent_rules)
                work[(event.tenant, event.customer_id)].append(entry)
                received_at[entry["event_id"]] = event.interaction.received_at
        await self._apply_and_announce(work, outgoing, received_at)

    async def _outbound(self, batch: Sequence[Any]) -> None:
        work: dict[CustomerRef, list[dict[str, Any]]] = defaultdict(list)
        outgoing: list[Outgoing] = []
        for item in batch:
            event = self._decode(item, InteractionEvent, outgoing)
            if isinstance(event, InteractionEvent):
                if event.direction is not Direction.OUTBOUND or event.customer_id is None:
                    continue  # the contract guarantees customer_id on outbound events
                work[(event.tenant, event.customer_id)].append(outbound_entry(event))
        await self._apply_and_announce(work, outgoing)

    async def _merged(self, batch: Sequence[Any]) -> None:
        work: dict[CustomerRef, list[dict[str, Any]]] = defaultdict(list)
        outgoing: list[Outgoing] = []
        merges: list[CustomerMerged] = []
        for item in batch:
            event = self._decode(item, CustomerMerged, outgoing)
            if isinstance(event, CustomerMerged):
                merges.append(event)
        # Step one of two on each absorbed customer's slot, for the whole batch in one round
        # trip; idempotent, so a replay of a merge exports again and the survivor's import
        # skips what it has.
        exports = await until_it_succeeds(
            lambda: self._store.export_many(
                [(e.tenant, e.absorbed_id, e.survivor_id) for e in merges]
            ),
            what="cases.export",
            max_backoff_s=self._pipeline.retry_max_backoff_s,
        )
        for event, export in zip(merges, exports, strict=True):
            work[(event.tenant, event.survivor_id)].append(fold_entry(event, export))
        await self._apply_and_announce(work, outgoing)

    async def _apply_and_announce(
        self,
        work: dict[CustomerRef, list[dict[str, Any]]],
        outgoing: list[Outgoing],
        received_at: dict[str, datetime] | None = None,
    ) -> None:
        routing = self._router is not None
        updates: dict[CustomerRef, CustomerUpdate] = {}
        built: dict[CustomerRef, Announcement] = {}
        # Customers' announcements are built while Redis applies the next customers' entries.
        async with contextlib.aclosing(self._applied_in_slices(work, outgoing)) as slices:
            async for applied in slices:
                now = datetime.now(UTC)
                warn_refused(applied)
                for ref, update in applied.items():
                    updates[ref] = update
                    if not update.folded_into:
                        built[ref] = announce(ref, update, now=now, routing=routing)
        # Events for a customer folded into another since identity resolved them: apply them
        # to the survivor, and again to the survivor's survivor should a merge fold it in the
        # meantime. Only events in flight during a merge take this second trip, but in a
        # backlog (identity far ahead) that is many. The script names the customer each was
        # folded into, so the first redirect goes there without asking Redis; should that one
        # be folded too, the chain is followed from there for all of them together, a round
        # trip per link (it was per customer: half of all a backlog's round trips).
        folded = {ref: work[ref] for ref, update in updates.items() if update.folded_into}
        answered = updates  # what the last apply said of each customer, folded_into among it
        for redirect in range(MAX_REDIRECTS):
            if not folded:
                break
            into = {ref: answered[ref].folded_into for ref in folded}
            targets = into
            if redirect > 0:
                targets = await until_it_succeeds(
                    lambda into=into: self._store.current_customers(into),  # type: ignore[misc]
                    what="cases.current_customers",
                    max_backoff_s=self._pipeline.retry_max_backoff_s,
                )
            redirected: dict[CustomerRef, list[dict[str, Any]]] = defaultdict(list)
            for (tenant, customer_id), entries in folded.items():
                redirected[(tenant, targets[(tenant, customer_id)])].extend(entries)
            again = await self._apply(redirected, outgoing)
            warn_refused(again)
            folded = {ref: redirected[ref] for ref, update in again.items() if update.folded_into}
            answered = again
            for ref, update in again.items():
                if update.folded_into:
                    continue  # its earlier outcomes in this batch (if any) stay announced
                # The survivor may have had events of its own in this batch: keep their
                # outcomes too, or their case events would never be announced.
                earlier = updates.get(ref)
                updates[ref] = update if earlier is None else combined(earlier, update)
                built[ref] = announce(ref, updates[ref], now=datetime.now(UTC), routing=routing)
        for ref, entries in folded.items():
            reason = f"customer {ref[1]} was merged again each time its events were redirected"
            outgoing.extend(
                dead_entry(ref, entry, reason, stage=STAGE, error_type="MergedDuringBatch")
                for entry in entries
            )
        announced: dict[str, dict[str, str]] = defaultdict(dict)
        live = [(ref, update) for ref, update in updates.items() if not update.folded_into]
        for ref, _ in live:
            outgoing.extend(built[ref].events)
        if self._router is not None:
            # Every customer's new cases routed together (3 round trips), then the cases a
            # merge closed released together (one more, and the freed capacity offered once).
            # They went customer by customer, a round trip or more per closed case: with 5 %
            # of events merging customers, a sixth of a backlog's round trips.
            cases = [case for ref, _ in live for case in built[ref].new_cases]
            outgoing.extend(await self._route(cases, received_at or {}, announced))
            outgoing.extend(await self._release_closed_cases(live))
        await publish(
            self._app,
            outgoing,
            topic_prefix=self._prefix,
            what="cases.publish",
            max_backoff_s=self._pipeline.retry_max_backoff_s,
        )
        count_published(STAGE, outgoing)
        if self._router is not None and any(announced.values()):
            # Only now, with Kafka's acknowledgement: a crash before this line replays the
            # batch, and the routing of its new cases is announced again (same event ids).
            store = self._router.store
            await until_it_succeeds(
                lambda: store.mark_announced(announced),
                what="routing.mark_announced",
                max_backoff_s=self._pipeline.retry_max_backoff_s,
            )

    async def _applied_in_slices(
        self, work: dict[CustomerRef, list[dict[str, Any]]], dead: list[Outgoing]
    ) -> AsyncGenerator[dict[CustomerRef, CustomerUpdate], None]:
        """The batch applied in slices of customers, each slice's round trip already under
        way while the caller works on the one before.

        Redis runs a large batch's scripts for as long as the worker takes to build its
        announcements; one trip for the whole batch made the two wait on each other. Every
        customer is in exactly one slice, so each customer's entries still go in one script
        call, in order; slices are sent one after the other on the worker's connection.
        """
        refs = list(work)
        size = max(APPLY_SLICE_CUSTOMERS, -(-len(refs) // APPLY_SLICES_MAX))
        slices = [
            {ref: work[ref] for ref in refs[first : first + size]}
            for first in range(0, len(refs), size)
        ]
        if not slices:
            return
        pending = asyncio.ensure_future(self._apply(slices[0], dead))
        try:
            for following in [*slices[1:], None]:
                applied = await pending
                if following is not None:
                    pending = asyncio.ensure_future(self._apply(following, dead))
                    # One turn of the loop lets the task write its pipeline to the socket:
                    # the caller's work on this slice is CPU only and would not yield.
                    await asyncio.sleep(0)
                yield applied
        finally:
            # The batch may be abandoned (an error building announcements): the slice in
            # flight is idempotent, so letting it finish or not changes nothing, but its
            # outcome is retrieved either way (asyncio would report an unread error).
            if not pending.done():
                pending.cancel()
            pending.add_done_callback(retrieve_outcome)

    async def _apply(
        self, work: dict[CustomerRef, list[dict[str, Any]]], dead: list[Outgoing]
    ) -> dict[CustomerRef, CustomerUpdate]:
        if not work:
            return {}
        try:
            return await until_it_succeeds(
                lambda: self._store.apply(work),
                what="cases.apply",
                max_backoff_s=self._pipeline.retry_max_backoff_s,
            )
        except ResponseError as exc:
            # A script refused (a bug or corrupt state): find the customer it concerns, so
            # only that customer's events are dead-lettered and the stream goes on.
            log.error("case batch refused; retrying customer by customer", error=str(exc))
        updates: dict[CustomerRef, CustomerUpdate] = {}
        for ref, entries in work.items():
            try:
                updates.update(
                    await until_it_succeeds(
                        lambda ref=ref, entries=entries: self._store.apply({ref: entries}),  # type: ignore[misc]
                        what="cases.apply_one",
                        max_backoff_s=self._pipeline.retry_max_backoff_s,
                    )
                )
            except ResponseError as exc:
                for entry in entries:
                    dead.append(dead_entry(ref, entry, f"case store refused: {exc}", stage=STAGE))
        return updates

    async def _route(
        self,
        cases: list[NewCase],
        received_at: dict[str, datetime],
        announced: dict[str, dict[str, str]],
    ) -> list[Outgoing]:
        router = self._router
        if router is None or not cases:
            return []
        routed_each = await until_it_succeeds(
            lambda: route_new_cases(router, cases),
            what="routing.route",
            max_backoff_s=self._pipeline.retry_max_backoff_s,
        )
        out: list[Outgoing] = []
        for case, routed in zip(cases, routed_each, strict=True):
            observe_end_to_end(received_at.get(case.cause), routed)
            if routed:
                announced[case.request.tenant][case.request.case_id] = case.cause
            out.extend(routed)
        return out

    async def _release_closed_cases(
        self, live: Sequence[tuple[CustomerRef, CustomerUpdate]]
    ) -> list[Outgoing]:
        # A case closed here (folded into the survivor's case by a merge, or past its reopen
        # window) leaves routing: its queue entry, offer and timers go, and an agent holding it
        # gets the capacity back, offered to the waiting cases. Without this, agents were
        # offered (and could accept) a case that no longer existed as such.
        router = self._router
        assert router is not None
        closed: dict[str, set[str]] = defaultdict(set)
        for (tenant, _), update in live:
            closed[tenant] |= closed_cases(update)
        out: list[Outgoing] = []
        now = datetime.now(UTC)
        retrying = self._pipeline.retry_max_backoff_s
        for tenant, case_ids in closed.items():
            if not case_ids:
                continue
            ordered = sorted(case_ids)
            attempts = 0

            async def release(t: str = tenant, c: list[str] = ordered) -> list[dict[str, Any]]:
                nonlocal attempts
                attempts += 1
                return await router.store.release_many(t, c, now)

            released = await until_it_succeeds(
                release, what="routing.release", max_backoff_s=retrying
            )
            # A release run again frees nobody (its case is gone): after a retry, whatever the
            # failed attempt freed is not in the answer, so the drain runs anyway. And it is
            # retried on its own, or a failed drain would retry the releases and never run.
            if attempts > 1 or any(result.get("agent") for result in released):
                out.extend(
                    await until_it_succeeds(
                        lambda t=tenant: router.drain(t, now=now),  # type: ignore[misc]
                        what="routing.drain",
                        max_backoff_s=retrying,
                    )
                )
        return out
