"""A bench interrupted (Ctrl-C) or failing mid-step stops at once and cleanly: the load
generator is terminated rather than waited for (a step cannot be called off, and it ran on for
up to a minute), no task is left behind, and the command says it was interrupted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import omnirouter.bench.__main__ as bench_main
from omnirouter.bench.loadgen import GeneratorHandle, StepReport
from omnirouter.bench.phases import KafkaPhase
from omnirouter.bench.schedule import StepPlan


class _Process:
    """What GeneratorHandle.stop uses of its multiprocessing.Process, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.alive = True

    def terminate(self) -> None:
        self.calls.append("terminate")
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        self.calls.append("join")
        self.alive = False  # a generator asked to stop between steps ends by itself

    def is_alive(self) -> bool:
        return self.alive


class _Connection:
    """The parent's end of the generator's pipe: what it was sent, and one reply (or error)."""

    def __init__(self, reply: Any = None) -> None:
        self.sent: list[Any] = []
        self.reply = reply

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def poll(self, timeout: float) -> bool:
        return True

    def recv(self) -> Any:
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply


def _handle(connection: _Connection) -> tuple[GeneratorHandle, _Process]:
    handle = GeneratorHandle("127.0.0.1:9", customers=1, partitions=1, nonce=1)
    process = _Process()
    handle._process = process  # type: ignore[assignment]
    handle._conn = connection  # type: ignore[assignment]
    return handle, process


def _plan() -> StepPlan:
    return StepPlan(step=1, rate=10.0, t0=0.0, warmup_s=1.0, steady_s=1.0)


def test_a_generator_between_steps_is_asked_to_stop_and_closes_its_producer() -> None:
    connection = _Connection()
    handle, process = _handle(connection)
    handle.stop()
    assert connection.sent == [None]  # the request to stop, read between steps
    assert process.calls == ["join"]  # it ended by itself


async def test_a_generator_whose_step_reported_is_between_steps_again() -> None:
    report = StepReport(step=1, sent=20, acked=20, errors=0, max_lateness_s=0.0, elapsed_s=2.0)
    connection = _Connection(reply=report)
    handle, process = _handle(connection)
    assert await handle.run(_plan(), topic="in") == report
    handle.stop()
    assert connection.sent[-1] is None
    assert "terminate" not in process.calls


async def test_a_generator_whose_step_never_reported_is_terminated_not_waited_for() -> None:
    # The bench was interrupted (its pipe closed) or the step failed: the generator reads
    # nothing until its step is sent, so asking it to stop would wait for the step's end.
    connection = _Connection(reply=EOFError())
    handle, process = _handle(connection)
    with pytest.raises(EOFError):
        await handle.run(_plan(), topic="in")
    sent_before_stop = list(connection.sent)
    handle.stop()
    assert process.calls[0] == "terminate"
    assert connection.sent == sent_before_stop  # no stop request it would never read


def _phase_with_an_endless_step(started: asyncio.Event) -> Any:
    """What KafkaPhase._offering uses of a phase, its generator's step going on for good."""

    async def run(plan: StepPlan, *, topic: str) -> StepReport:
        started.set()
        await asyncio.Event().wait()  # a step that would go on for its whole plan
        raise AssertionError("not reached")

    return SimpleNamespace(_generator=SimpleNamespace(run=run), _topic="in")


@pytest.mark.parametrize("ending", ["interrupted", "failed"])
async def test_a_step_that_ends_early_leaves_no_offering_task_behind(ending: str) -> None:
    started = asyncio.Event()
    phase = _phase_with_an_endless_step(started)
    tasks: list[asyncio.Task[StepReport]] = []

    async def step() -> None:
        async with KafkaPhase._offering(phase, _plan()) as sending:
            tasks.append(sending)
            await started.wait()
            if ending == "failed":
                raise RuntimeError("the output meter failed")
            await asyncio.Event().wait()  # sampling its window, as step() does meanwhile

    stepping = asyncio.create_task(step())
    await started.wait()
    if ending == "interrupted":
        stepping.cancel()  # Ctrl-C: asyncio.run cancels its main task, here the step
    with pytest.raises(asyncio.CancelledError if ending == "interrupted" else RuntimeError):
        await stepping
    assert tasks[0].cancelling()  # called off on the way out (else it would run on for good)
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]


async def test_a_step_that_ends_hands_over_its_report() -> None:
    report = StepReport(step=1, sent=20, acked=20, errors=0, max_lateness_s=0.0, elapsed_s=2.0)

    async def run(plan: StepPlan, *, topic: str) -> StepReport:
        assert topic == "in"
        return report

    phase = SimpleNamespace(_generator=SimpleNamespace(run=run), _topic="in")
    async with KafkaPhase._offering(phase, _plan()) as sending:  # type: ignore[arg-type]
        assert await sending == report
    assert not sending.cancelled()


def test_an_interrupted_bench_says_so_and_writes_no_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(options: Any, progress: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_main, "run_bench", interrupted)
    results = tmp_path / "results"
    assert bench_main.main(["--quick", "--results", str(results)]) == 130
    assert "interrupted, no result written" in capsys.readouterr().err
    assert not results.exists()
