"""A coroutine's first step run at once, its task going on from its first wait; and faust's
per-record race (``wait_first``) skipped when the hand-over finishes at once."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import io
import sys
import types
from collections.abc import Generator
from typing import Any

import pytest
from mode.utils.logging import print_task_name
from mode.utils.tracebacks import print_task_stack

from omnirouter.pipeline.stepping import Finished, FirstStepWins, Waiting, start_eagerly


def _start(coro: Any) -> Finished[Any] | Waiting[Any]:
    return start_eagerly(coro, asyncio.get_running_loop())


@types.coroutine
def _yield_to_the_loop() -> Generator[None, None, None]:
    # A bare yield, as a coroutine makes when it only gives the loop a turn.
    yield


async def _after_what_is_scheduled() -> None:
    """Return once the loop has run every callback scheduled before this call, a new task's
    first turn among them (the loop runs its callbacks in the order they were scheduled)."""
    turned = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turned.set_result, None)
    await asyncio.wait_for(turned, timeout=5)


async def _returns(value: Any) -> Any:
    return value


async def _fails() -> None:
    raise ValueError("bad record")


async def test_a_coroutine_that_never_waits_is_finished_by_its_first_step() -> None:
    assert _start(_returns(42)) == Finished(42)


async def test_an_error_before_the_first_wait_comes_out_at_once() -> None:
    with pytest.raises(ValueError, match="bad record"):
        _start(_fails())


async def test_its_task_goes_on_from_the_wait_with_what_the_awaited_future_gives() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def deliver() -> int:
        seen.append("before")
        got = await future
        await _yield_to_the_loop()  # a bare yield to the loop on the way is fine too
        seen.append("after")
        return got + 1

    step = _start(deliver())
    assert isinstance(step, Waiting)
    assert seen == ["before"]
    task = step.task
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

    step = _start(deliver())
    assert isinstance(step, Waiting)
    task = step.task
    loop.call_soon(future.set_exception, KeyError("gone"))
    assert await asyncio.wait_for(task, timeout=5) == "handled gone"


async def test_cancelling_its_task_cancels_the_coroutine_at_its_wait() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned_up = asyncio.Event()

    async def deliver() -> None:
        try:
            await never
        finally:
            cleaned_up.set()

    step = _start(deliver())
    assert isinstance(step, Waiting)
    await _after_what_is_scheduled()  # the task took its first turn: it now waits on ``never``
    step.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step.task
    assert cleaned_up.is_set()
    assert never.cancelled()


async def test_a_task_cancelled_before_its_first_turn_still_cancels_the_coroutine_at_its_wait() -> (
    None
):
    # mode's race cancels what lost, possibly before the loop ever ran the hand-over's task.
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def deliver() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled at its wait")
            raise

    step = _start(deliver())
    assert isinstance(step, Waiting)
    step.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step.task
    assert seen == ["cancelled at its wait"]
    assert never.cancelled()


async def test_the_first_step_runs_in_a_context_of_its_own_which_its_task_goes_on_in() -> None:
    stage: contextvars.ContextVar[str] = contextvars.ContextVar("stage", default="caller")
    resume: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def deliver() -> str:
        stage.set("hand-over")
        await resume
        return stage.get()

    step = _start(deliver())
    assert stage.get() == "caller"  # nothing the hand-over set leaks into the caller
    assert isinstance(step, Waiting)
    resume.set_result(None)
    assert await asyncio.wait_for(step.task, timeout=5) == "hand-over"


async def test_a_hand_over_that_finishes_at_once_leaves_the_caller_s_context_alone() -> None:
    stage: contextvars.ContextVar[str] = contextvars.ContextVar("stage", default="caller")

    async def deliver() -> str:
        stage.set("hand-over")
        return stage.get()

    assert _start(deliver()) == Finished("hand-over")
    assert stage.get() == "caller"


async def test_a_waiting_hand_over_shows_its_own_coroutine_in_task_dumps() -> None:
    # mode's SIGUSR1 dump and asyncio's repr and get_stack() read the task's coroutine.
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def deliver_to_a_full_buffer() -> None:
        await never

    step = _start(deliver_to_a_full_buffer())
    assert isinstance(step, Waiting)
    try:
        await _after_what_is_scheduled()  # the task took its first turn
        dump = io.StringIO()
        print_task_name(step.task, file=dump)
        print_task_stack(step.task, file=dump, capture_locals=True)
        assert "deliver_to_a_full_buffer" in dump.getvalue()
        assert "deliver_to_a_full_buffer" in repr(step.task)
        assert step.task.get_stack()  # the frame it waits in
    finally:
        step.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step.task


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.11 has no eager tasks (start_eagerly)")
async def test_from_python_3_12_the_first_step_runs_as_a_task_of_its_own() -> None:
    # So a timeout or task group started before the first wait belongs to the hand-over.
    caller = asyncio.current_task()
    seen: list[asyncio.Task[Any] | None] = []

    async def deliver() -> None:
        seen.append(asyncio.current_task())

    assert _start(deliver()) == Finished(None)
    assert seen[0] is not None
    assert seen[0] is not caller


class _Racer(FirstStepWins):
    """A service with nothing to run: only its wait_first is used."""


async def test_a_hand_over_that_finishes_at_once_wins_without_a_turn_of_the_loop() -> None:
    racer = _Racer()
    suspended = asyncio.Event()
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    delivery = _returns("delivered")
    suspension = suspended.wait()

    result = await racer.wait_first(delivery, suspension)

    assert (result.done, result.results, result.stopped) == ([delivery], ["delivered"], False)
    assert turned == []  # nothing was waited for
    # The race's other coroutine, never run, is closed rather than left to warn.
    assert inspect.getcoroutinestate(suspension) == inspect.CORO_CLOSED


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


async def test_an_error_after_the_hand_over_waited_comes_out_of_the_race() -> None:
    racer = _Racer()
    buffer_has_room = asyncio.Event()

    async def deliver() -> None:
        await buffer_has_room.wait()
        raise ValueError("bad record")

    asyncio.get_running_loop().call_soon(buffer_has_room.set)
    with pytest.raises(ValueError, match="bad record"):
        await asyncio.wait_for(racer.wait_first(deliver(), asyncio.Event().wait()), timeout=5)


async def test_a_stopped_service_runs_the_race_as_before_and_reports_the_stop() -> None:
    racer = _Racer()
    racer._stopped.set()
    delivered: list[bool] = []

    async def deliver() -> None:
        delivered.append(True)

    result = await asyncio.wait_for(racer.wait_first(deliver()), timeout=5)

    assert result.stopped is True
    assert result.done == []
    assert delivered == [True]  # run in mode's race, which reports the stop


async def test_a_crashed_service_runs_the_race_as_before_and_reports_it() -> None:
    racer = _Racer()
    racer._crashed.set()

    result = await asyncio.wait_for(racer.wait_first(_returns("delivered")), timeout=5)

    assert result.stopped is True


async def test_waits_that_are_not_coroutines_go_to_mode_s_race() -> None:
    racer = _Racer()
    ready = asyncio.Event()
    ready.set()

    result = await asyncio.wait_for(racer.wait_first(ready), timeout=5)

    assert (result.done, result.stopped) == ([ready], False)


async def test_an_error_in_the_hand_over_propagates_and_closes_the_other_waits() -> None:
    racer = _Racer()
    suspension = asyncio.Event().wait()

    with pytest.raises(ValueError, match="bad record"):
        await racer.wait_first(_fails(), suspension)

    assert inspect.getcoroutinestate(suspension) == inspect.CORO_CLOSED
