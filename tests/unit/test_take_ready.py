"""How a stage takes its input: a batch goes as soon as nothing more is waiting, never waits
out the whole batch window on an idle system, never exceeds its maximum, and its events are
acked only once the stage comes back for the next batch."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import faust
import pytest

from omnirouter.pipeline.stream import Batch, finish_or_dead_letter, take_ready
from support.waiting import eventually_async

# Far longer than any test waits: a batch that waited out the window would fail the test.
WINDOW_S = 60.0


def _event_loops() -> list[asyncio.AbstractEventLoop]:
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]


class Stage:
    """A faust agent on a local channel that records the batches take_ready hands it."""

    def __init__(self, *, max_: int, linger: float = 0.0, finish_first: bool = False) -> None:
        self.app = faust.App(
            "take-ready-test",
            broker="kafka://127.0.0.1:9",
            store="memory://",
            loop=asyncio.get_running_loop(),  # else faust makes (and leaks) a loop of its own
        )
        self.batches: list[list[int]] = []
        self.acked_when_taken: list[list[bool]] = []
        self.previous: list[Any] = []
        self.release = asyncio.Event()
        self.release.set()

        self.stream: Any = None

        async def consume(stream: Any) -> AsyncIterator[None]:
            self.stream = stream
            async for batch in take_ready(stream, max_, within=WINDOW_S, linger=linger):
                # The batch before this one is acked now, this one not yet.
                self.acked_when_taken.append([e.message.acked for e in self.previous + batch])
                self.batches.append([e.value for e in batch])
                self.previous = batch
                if finish_first:  # as finish_or_dead_letter records a batch done
                    batch.finished = True
                await self.release.wait()
                yield None

        self.agent = self.app.agent(self.app.channel(), name="stage", concurrency=1)(consume)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Any]:
        """faust's agent test context, minus the event loop it makes and leaves unclosed."""
        before = set(_event_loops())
        try:
            async with self.agent.test_context() as agent:
                yield agent
        finally:
            for loop in set(_event_loops()) - before:
                if not loop.is_running() and not loop.is_closed():
                    loop.close()

    async def drained(self) -> None:
        """Wait until the stage's queue is empty: what was put is in take_ready's buffer."""

        async def queue_empty() -> bool:
            return self.stream is not None and self.stream.channel.queue.empty()

        await eventually_async(queue_empty, timeout_s=10, what="the stage's queue drained")

    async def taken(self, count: int) -> list[list[int]]:
        async def all_taken() -> bool:
            return sum(map(len, self.batches)) >= count

        await eventually_async(all_taken, timeout_s=10, what=f"{count} events taken")
        return self.batches


async def test_an_event_on_an_idle_stage_goes_at_once_not_after_the_window() -> None:
    stage = Stage(max_=500)
    async with stage.running() as agent:
        await agent.put(1, wait=False)
        assert await stage.taken(1) == [[1]]
        await agent.put(2, wait=False)
        assert await stage.taken(2) == [[1], [2]]


async def batches_while_busy(stage: Stage, arriving: int) -> list[list[int]]:
    """The batches taken when ``arriving`` events come while the stage works on event 0."""
    stage.release.clear()
    async with stage.running() as agent:
        await agent.put(0, wait=False)
        await stage.taken(1)
        for value in range(1, arriving + 1):
            await agent.put(value, wait=False)
        stage.release.set()
        return await stage.taken(arriving + 1)


async def test_events_waiting_together_make_one_batch() -> None:
    assert await batches_while_busy(Stage(max_=500), 5) == [[0], [1, 2, 3, 4, 5]]


async def test_a_batch_never_exceeds_its_maximum() -> None:
    assert await batches_while_busy(Stage(max_=3), 7) == [[0], [1, 2, 3], [4, 5, 6], [7]]


async def test_events_are_acked_only_when_the_stage_comes_back_for_more() -> None:
    stage = Stage(max_=500)
    stage.release.clear()
    async with stage.running() as agent:
        await agent.put(0, wait=False)
        await stage.taken(1)
        await agent.put(1, wait=False)
        await agent.put(2, wait=False)
        stage.release.set()
        await stage.taken(3)
    # Taking [1, 2]: event 0's batch was done, so it was acked; 1 and 2 were not yet.
    assert stage.acked_when_taken == [[False], [True, False, False]]


async def test_a_batch_whose_stage_stops_under_it_stays_unacked() -> None:
    # Stopping closes the generator while the batch is still being processed (a worker's
    # finish_even_if_stopping completes it meanwhile): acking it there would let its offsets
    # be committed although the batch may never finish. Unacked, it is delivered again.
    stage = Stage(max_=500)
    stage.release.clear()  # the batch never finishes before the stop
    async with stage.running() as agent:
        await agent.put(0, wait=False)
        await stage.taken(1)
    assert [event.message.acked for event in stage.previous] == [False]


async def test_a_batch_finished_before_its_stage_stopped_is_acked() -> None:
    # Its work is done (applied and published): committing it avoids doing it again.
    stage = Stage(max_=500, finish_first=True)
    stage.release.clear()
    async with stage.running() as agent:
        await agent.put(0, wait=False)
        await stage.taken(1)
    assert [event.message.acked for event in stage.previous] == [True]


async def test_a_batch_completed_after_the_stop_began_counts_as_finished() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    batch = Batch([])

    async def work() -> None:
        started.set()
        await release.wait()

    stage_task = asyncio.ensure_future(
        finish_or_dead_letter(None, batch, work(), stage="test", topic_prefix="", max_backoff_s=1.0)
    )

    async def work_started() -> bool:
        return started.is_set()

    await eventually_async(work_started, timeout_s=5, what="the batch's work to start")
    stage_task.cancel()  # the stage stops while the batch is in flight
    assert not batch.finished
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stage_task
    assert batch.finished


async def test_a_linger_gathers_events_that_arrive_one_by_one() -> None:
    # Without the linger each of these would go alone (the queue is empty after each one).
    stage = Stage(max_=3, linger=WINDOW_S)
    async with stage.running() as agent:
        for value in range(3):
            await agent.put(value, wait=False)
            await stage.drained()
        assert await stage.taken(3) == [[0, 1, 2]]  # handed over when full, not after linger
