"""A coroutine's first step run in place, the rest handed on; and faust's per-record race
(``wait_first``) skipped when the hand-over finishes at once."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest
from mode import Service

from omnirouter.pipeline.stepping import Finished, FirstStepWins, Waiting, first_step


async def _returns(value: Any) -> Any:
    return value


async def _fails() -> None:
    raise ValueError("bad record")


async def test_a_coroutine_that_never_waits_is_finished_by_its_first_step() -> None:
    assert first_step(_returns(42)) == Finished(42)


async def test_an_error_before_the_first_wait_comes_out_of_the_first_step() -> None:
    with pytest.raises(ValueError, match="bad record"):
        first_step(_fails())


async def test_the_rest_goes_on_from_the_wait_with_what_the_awaited_future_gives() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def deliver() -> int:
        seen.append("before")
        got = await future
        await asyncio.sleep(0)  # a bare yield to the loop on the way is fine too
        seen.append("after")
        return got + 1

    step = first_step(deliver())
    assert isinstance(step, Waiting)
    assert seen == ["before"]
    task = asyncio.ensure_future(step.rest)
    loop.call_soon(future.set_result, 41)
    assert await asyncio.wait_for(task, timeout=5) == 42
    assert seen == ["before", "after"]


async def test_an_error_set_on_the_awaited_future_reaches_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()

    async def deliver() -> str:
        try:
            await future
        except KeyError as exc:
            return f"handled {exc.args[0]}"
        return "not reached"

    step = first_step(deliver())
    assert isinstance(step, Waiting)
    task = asyncio.ensure_future(step.rest)
    loop.call_soon(future.set_exception, KeyError("gone"))
    assert await asyncio.wait_for(task, timeout=5) == "handled gone"


async def test_cancelling_the_rest_cancels_the_coroutine_at_its_wait() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned_up = asyncio.Event()

    async def deliver() -> None:
        try:
            await never
        finally:
            cleaned_up.set()

    step = first_step(deliver())
    assert isinstance(step, Waiting)
    task = asyncio.ensure_future(step.rest)
    await asyncio.sleep(0)  # let the task reach the wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()
    assert never.cancelled()


async def test_closing_a_rest_never_run_closes_the_coroutine() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned_up: list[bool] = []

    async def deliver() -> None:
        try:
            await never
        finally:
            cleaned_up.append(True)

    step = first_step(deliver())
    assert isinstance(step, Waiting)
    rest = step.rest
    rest.send(None)  # its task's first step: it hands the future on
    rest.close()
    assert cleaned_up == [True]


class _Racer(FirstStepWins, Service):
    """A service with nothing to run: only its wait_first is used."""


async def test_a_hand_over_that_finishes_at_once_wins_without_a_turn_of_the_loop() -> None:
    racer = _Racer()
    suspended = asyncio.Event()
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    delivery = _returns("delivered")
    suspension = suspended.wait()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unawaited, unclosed coroutine would warn
        result = await racer.wait_first(delivery, suspension)
        del suspension
        gc.collect()

    assert (result.done, result.results, result.stopped) == ([delivery], ["delivered"], False)
    assert turned == []  # no task started, nothing waited for


async def test_a_hand_over_that_waits_still_loses_to_a_suspension_and_is_cancelled() -> None:
    racer = _Racer()
    buffer_has_room = asyncio.Event()
    suspended = asyncio.Event()
    abandoned = asyncio.Event()

    async def deliver() -> str:
        try:
            await buffer_has_room.wait()
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return "delivered"

    asyncio.get_running_loop().call_soon(suspended.set)
    suspension = suspended.wait()
    result = await asyncio.wait_for(racer.wait_first(deliver(), suspension), timeout=5)

    assert result.done == [suspension]
    assert result.stopped is False
    await asyncio.wait_for(abandoned.wait(), timeout=5)


async def test_a_hand_over_that_waits_wins_once_it_finishes() -> None:
    racer = _Racer()
    buffer_has_room = asyncio.Event()

    async def deliver() -> str:
        await buffer_has_room.wait()
        return "delivered"

    asyncio.get_running_loop().call_soon(buffer_has_room.set)
    result = await asyncio.wait_for(racer.wait_first(deliver(), asyncio.Event().wait()), timeout=5)

    assert result.results == ["delivered"]
    assert result.stopped is False


async def test_a_stopped_service_runs_the_race_as_before_and_reports_the_stop() -> None:
    racer = _Racer()
    racer._stopped.set()
    delivered: list[bool] = []

    async def deliver() -> None:
        delivered.append(True)

    result = await asyncio.wait_for(racer.wait_first(deliver()), timeout=5)

    assert result.stopped is True
    assert result.done == []


async def test_an_error_in_the_hand_over_propagates_and_closes_the_other_waits() -> None:
    racer = _Racer()
    suspension = asyncio.Event().wait()

    with pytest.raises(ValueError, match="bad record"):
        await racer.wait_first(_fails(), suspension)

    assert suspension.cr_frame is None  # closed, not left to warn
