"""The case worker applies a large batch in slices of customers, the next slice's round trip
under way while the announcements of the one before are built."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from omnirouter.pipeline.app import create_app
from omnirouter.pipeline.cases.store import CustomerRef, CustomerUpdate
from omnirouter.pipeline.cases.worker import APPLY_SLICE_CUSTOMERS, CaseWorker
from omnirouter.settings import CaseSettings, PipelineSettings
from support.waiting import eventually_async


class RecordingStore:
    """Stands in for RedisCaseStore.apply: records each call; ``hold`` keeps a call waiting."""

    def __init__(self, *, hold_from_call: int | None = None) -> None:
        self.calls: list[list[CustomerRef]] = []
        self.cancelled: list[int] = []
        self._hold_from = hold_from_call
        self._never = asyncio.Event()

    async def apply(
        self, work: Mapping[CustomerRef, Sequence[dict[str, Any]]]
    ) -> dict[CustomerRef, CustomerUpdate]:
        self.calls.append(list(work))
        number = len(self.calls)
        if self._hold_from is not None and number >= self._hold_from:
            try:
                await self._never.wait()
            except asyncio.CancelledError:
                self.cancelled.append(number)
                raise
        return {ref: CustomerUpdate(folded_into="") for ref in work}


def _worker(store: RecordingStore, unique_id: str) -> CaseWorker:
    app = create_app(f"slices-{unique_id}", "127.0.0.1:9")
    return CaseWorker(
        app,
        store,  # type: ignore[arg-type]
        settings=CaseSettings(),
        pipeline=PipelineSettings(),
        topic_prefix=f"t.{unique_id}.",
    )


def _work(customers: int) -> dict[CustomerRef, list[dict[str, Any]]]:
    return {("default", f"c{i}"): [{"event_id": f"e{i}"}] for i in range(customers)}


async def test_a_large_batch_goes_in_slices_each_customer_once_in_order(unique_id: str) -> None:
    store = RecordingStore()
    worker = _worker(store, unique_id)
    work = _work(300)
    seen: list[CustomerRef] = []
    started_when_received: list[int] = []
    async with contextlib.aclosing(worker._applied_in_slices(work, [])) as slices:
        async for applied in slices:
            started_when_received.append(len(store.calls))
            seen.extend(applied)
    assert seen == list(work)  # every customer once, in the batch's order
    assert [ref for call in store.calls for ref in call] == list(work)
    assert len(store.calls) == 4
    # Each slice but the last reached the caller with the following one already sent.
    assert started_when_received == [2, 3, 4, 4]


async def test_a_small_batch_keeps_its_single_round_trip(unique_id: str) -> None:
    store = RecordingStore()
    worker = _worker(store, unique_id)
    work = _work(APPLY_SLICE_CUSTOMERS)
    received = [applied async for applied in worker._applied_in_slices(work, [])]  # one slice only
    assert len(store.calls) == 1
    assert [list(r) for r in received] == [list(work)]


async def test_an_abandoned_batch_cancels_the_slice_in_flight(unique_id: str) -> None:
    store = RecordingStore(hold_from_call=2)
    worker = _worker(store, unique_id)

    async def fail_while_building() -> None:
        async with contextlib.aclosing(worker._applied_in_slices(_work(300), [])) as slices:
            async for _ in slices:
                raise RuntimeError("building announcements failed")

    with pytest.raises(RuntimeError, match="building announcements failed"):
        await fail_while_building()

    async def slice_cancelled() -> bool:
        return store.cancelled == [2]

    await eventually_async(slice_cancelled, timeout_s=5, what="the slice in flight cancelled")
    assert len(store.calls) == 2  # nothing after the abandoned slice was sent
