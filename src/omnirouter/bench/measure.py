"""Timestamping arrivals on the output topic: per step, latency from each event's intended time.

The meter reads the last topic an event crosses with a consumer of its own (no group, from the
end when it starts), finds the id of the event each record answers (``cause_event_id`` of a case
event, ``event_id`` of a pass-through record) with a byte search rather than a JSON parse, and
counts the first record per event. Everything else on the topic (records of merges, timers,
other runs) is counted as foreign and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from omnirouter.bench.schedule import StepPlan, parse_bench_id

__all__ = ["OutputMeter", "StepTrack"]

_ID_CHARS = 36


@dataclass
class StepTrack:
    """Arrivals of one step's events."""

    plan: StepPlan
    seen: bytearray = field(init=False)
    received: int = 0
    expected: int | None = None
    """Events Kafka acknowledged to the generator (known once the step was sent)."""
    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    last_at: float | None = None
    """Monotonic time the latest of the step's events came out."""

    def __post_init__(self) -> None:
        """One flag per event: the first record answering an event is the one timed."""
        self.seen = bytearray(self.plan.total)

    def backlog(self, now: float) -> int:
        """Events due by ``now`` that have not come out yet (open loop: includes late sends)."""
        return self.plan.due(now) - self.received

    def outstanding(self) -> int:
        """The step's events sent (acknowledged, once known) and not out yet."""
        expected = self.expected if self.expected is not None else self.plan.total
        return max(0, expected - self.received)


class OutputMeter:
    """Consumes ``topic`` and times every benchmark event that comes out of it."""

    def __init__(
        self, bootstrap_servers: str, topic: str, *, partitions: int, id_field: str, nonce: int
    ) -> None:
        """Measure events of run ``nonce`` whose id follows ``"id_field":"`` in each record."""
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._partitions = partitions
        self._marker = f'"{id_field}":"'.encode()
        self._nonce = nonce
        self._steps: dict[int, StepTrack] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.records = 0
        self.bytes = 0
        self.foreign = 0

    async def start(self) -> None:
        """Start reading from the current end of the topic."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id="omnirouter-bench-meter",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        partitions = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        # Resolve the end offsets now: a lazy seek would skip what arrives before the first poll.
        for tp in partitions:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._consume(consumer))

    def expect(self, plan: StepPlan) -> StepTrack:
        """Start counting the events of ``plan`` (call before they are sent)."""
        track = StepTrack(plan)
        self._steps[plan.step] = track
        return track

    def track(self, step: int) -> StepTrack:
        """The arrivals of ``step`` so far."""
        return self._steps[step]

    def outstanding(self) -> int:
        """Events of every step sent and acknowledged but not out yet (earlier steps too: a
        backlog left by one step delays the next, so the next waits for all of it)."""
        return sum(t.outstanding() for t in self._steps.values())

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        marker = self._marker
        width = len(marker)
        while True:
            fetched = await consumer.getmany(timeout_ms=100, max_records=20_000)
            # One arrival time per fetch: the records of a fetch arrived together.
            now = time.monotonic()
            for records in fetched.values():
                for record in records:
                    value: bytes = record.value or b""
                    self.records += 1
                    self.bytes += len(value)
                    at = value.find(marker)
                    if at < 0:
                        self.foreign += 1
                        continue
                    self._arrived(value[at + width : at + width + _ID_CHARS], now)

    def _arrived(self, raw_id: bytes, now: float) -> None:
        parsed = parse_bench_id(raw_id, self._nonce)
        track = self._steps.get(parsed.step) if parsed is not None else None
        if parsed is None or track is None or parsed.index >= len(track.seen):
            self.foreign += 1
            return
        if track.seen[parsed.index]:
            return  # a second record for the same event (e.g. a new case: opened, then queued)
        track.seen[parsed.index] = 1
        track.received += 1
        track.last_at = now
        intended = track.plan.intended(parsed.index)
        if intended >= track.plan.steady_from:
            track.latencies_s.append(now - intended)

    async def stop(self) -> None:
        """Stop consuming."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def check(self) -> None:
        """Raise when the consumer stopped by itself (a broken meter must not look like lag).

        Raises:
            RuntimeError: the consuming task failed.
        """
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()
            raise RuntimeError(f"the output meter stopped: {error!r}") from error
