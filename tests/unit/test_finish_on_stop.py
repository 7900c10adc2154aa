"""A batch in flight when its worker stops: it finishes, or, if it cannot within the grace
period, the process ends as if killed. Never does faust get the batch back unfinished: it
would ack the events and commit them on its way out."""

from __future__ import annotations

import asyncio

import pytest

from omnirouter.pipeline import stream
from omnirouter.pipeline.stream import finish_even_if_stopping
from support.waiting import eventually_async


async def _cancel_once_started(batch: asyncio.Future[None], started: asyncio.Event) -> None:
    async def started_now() -> bool:
        return started.is_set()

    await eventually_async(started_now, timeout_s=5, what="the batch to start")
    batch.cancel()


async def test_a_batch_cancelled_half_way_still_finishes() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []
    ended: list[str] = []

    async def batch_work() -> None:
        started.set()
        await release.wait()
        finished.append("applied and published")

    agent = asyncio.ensure_future(finish_even_if_stopping(batch_work(), end_process=ended.append))
    await _cancel_once_started(agent, started)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert (finished, ended) == (["applied and published"], [])


async def test_a_batch_that_cannot_finish_ends_the_process_instead_of_returning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "FINISH_ON_STOP_S", 0.05)
    started = asyncio.Event()
    ended: list[str] = []

    async def stuck_on_a_hung_broker() -> None:
        started.set()
        await asyncio.Event().wait()

    agent = asyncio.ensure_future(
        finish_even_if_stopping(stuck_on_a_hung_broker(), end_process=ended.append)
    )
    await _cancel_once_started(agent, started)
    with pytest.raises(asyncio.CancelledError):
        await agent  # only because the test's end_process returns
    assert ended == ["a batch did not finish within 0.05 s of the stop"]
