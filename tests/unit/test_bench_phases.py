"""What a Kafka phase records of Redis per step: per-event costs from the counters before and
after, and the AOF rewrites that happened in between or in the warm-up (read as the step's load
begins); and the pipeline measured at fixed rates instead of its search, with each process's CPU
per event at each rate."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from omnirouter.bench import phases
from omnirouter.bench.__main__ import main
from omnirouter.bench.loadgen import StepReport
from omnirouter.bench.measure import StepTrack
from omnirouter.bench.options import BenchOptions
from omnirouter.bench.phases import _batches, _redis_per_event, _search, at_fixed_rates
from omnirouter.bench.schedule import StepPlan


def test_redis_costs_are_per_event_and_aof_rewrites_are_counted_per_step() -> None:
    before = {
        "events_in": 1_000.0,
        "round_trips": 50.0,
        "commands": 30_000.0,
        "aof_rewrites": 4,
        "aof_bytes": 9_000_000.0,
    }
    after = {
        "events_in": 3_000.0,
        "round_trips": 250.0,
        "commands": 92_000.0,
        "aof_rewrites": 6,
        "aof_bytes": 1_000_000.0,
    }
    measured = _redis_per_event(before, after)
    assert measured["events"] == 2_000
    assert measured["round_trips_per_event"] == 0.1
    assert measured["commands_per_event"] == 31.0
    assert measured["aof_rewrites"] == 2
    assert "aof_bytes_per_event" not in measured  # the sizes were of two different files


def test_aof_growth_is_per_event_in_a_step_without_a_rewrite() -> None:
    before = {"events_in": 1_000.0, "aof_bytes": 4_000_000.0, "aof_rewrites": 3}
    after = {"events_in": 1_500.0, "aof_bytes": 9_000_000.0, "aof_rewrites": 3}
    assert _redis_per_event(before, after)["aof_bytes_per_event"] == 10_000


@pytest.mark.parametrize("end", ["before", "after"])
def test_no_aof_growth_is_reported_with_a_rewrite_under_way_at_either_end(end: str) -> None:
    # Redis counts a rewrite when it starts and replaces the file when it finishes: one that
    # started in the step before finishes in this one, with the count unchanged.
    samples = {
        "before": {"events_in": 1_000.0, "aof_bytes": 4_000_000.0, "aof_rewrites": 3},
        "after": {"events_in": 1_500.0, "aof_bytes": 1_000_000.0, "aof_rewrites": 3},
    }
    samples[end]["aof_rewriting"] = 1.0
    measured = _redis_per_event(samples["before"], samples["after"])
    assert "aof_bytes_per_event" not in measured
    assert measured["aof_rewrite_under_way"] is True


def test_rewrites_that_began_in_the_warm_up_are_counted_apart() -> None:
    warm_up = {"aof_rewrites": 2.0}
    before = {"events_in": 10.0, "aof_rewrites": 3.0}
    after = {"events_in": 20.0, "aof_rewrites": 3.0}
    measured = _redis_per_event(before, after, warm_up=warm_up)
    assert measured["aof_rewrites_in_warm_up"] == 1
    assert measured["aof_rewrites"] == 0
    assert "aof_rewrites_in_warm_up" not in _redis_per_event(before, after)
    # One already under way as the step's load began (begun in the drain of the step before).
    under_way = {"aof_rewrites": 3.0, "aof_rewriting": 1.0}
    assert _redis_per_event(before, after, warm_up=under_way)["aof_rewrites_in_warm_up"] == 1


def _searched(redis_entries: dict[str, list[dict[str, Any]]]) -> Any:
    """A measure for ``_search``: every rate up to 400/s sustainable; the 50 % and 90 % steps
    (and their repeats) get the Redis entries listed for their label, in turn (none at all
    once the list is used up, as a gateway's steps have none)."""
    calls: list[str] = []

    async def measure(label: str, rate: float, steady_s: float) -> dict[str, Any]:
        calls.append(label)
        step: dict[str, Any] = {"label": label, "offered": rate, "sustainable": rate <= 400}
        entries = redis_entries.get(label.split(",")[0])
        if entries:
            step["redis"] = entries.pop(0)
        return step

    return measure, calls


async def test_a_final_window_with_an_aof_rewrite_stays_the_step_and_is_measured_again() -> None:
    """The window that had a rewrite (in it, in its warm-up, or under way at an end) is what the
    table and the target go by; a repeat without one is kept beside it."""
    measure, calls = _searched(
        {
            "50%": [{"aof_rewrites": 1}, {"aof_rewrites": 0}],
            "90%": [{"aof_rewrites_in_warm_up": 1}, {}],
        }
    )
    result = await _search(BenchOptions(quick=True), 100.0, 10_000.0, measure)
    best = result["max_sustainable"]
    assert calls[-4:] == ["50%", "50%, again", "90%", "90%, again"]
    assert result["at_50"]["label"] == "50%"
    assert result["at_50_without_aof_rewrite"]["label"] == "50%, again"
    assert result["at_50_without_aof_rewrite"]["offered"] == result["at_50"]["offered"] == best / 2
    assert result["at_90"]["label"] == "90%"
    assert result["at_90_without_aof_rewrite"]["label"] == "90%, again"
    assert [s["label"] for s in result["steps"]][-4:] == calls[-4:]


async def test_a_window_without_a_rewrite_is_measured_once_and_a_repeat_with_one_is_not_kept() -> (
    None
):
    measure, calls = _searched(
        {
            "50%": [{"aof_rewrites": 0}],
            "90%": [{"aof_rewrite_under_way": True}, {"aof_rewrites": 2}],
        }
    )
    result = await _search(BenchOptions(quick=True), 100.0, 10_000.0, measure)
    assert calls[-3:] == ["50%", "90%", "90%, again"]
    assert "at_50_without_aof_rewrite" not in result
    assert result["at_90"]["label"] == "90%"
    assert "at_90_without_aof_rewrite" not in result


async def test_steps_without_redis_figures_are_never_measured_again() -> None:
    """The gateway's and the baseline's steps: nothing tells of a rewrite."""
    measure, calls = _searched({})
    result = await _search(BenchOptions(quick=True), 100.0, 10_000.0, measure)
    assert calls[-2:] == ["50%", "90%"]
    assert not [key for key in result if key.endswith("_without_aof_rewrite")]


def test_a_step_without_events_records_no_redis_costs() -> None:
    assert _redis_per_event({"events_in": 5.0}, {"events_in": 5.0}) == {}


def test_batch_sizes_and_times_are_per_stage_between_the_two_scrapes() -> None:
    before = {
        "events_in.identity": 100.0,
        "batches.identity": 10.0,
        "batch_seconds.identity": 0.5,
        "events_in.cases": 90.0,
        "batches.cases": 9.0,
        "batch_seconds.cases": 0.9,
    }
    after = {
        "events_in.identity": 400.0,
        "batches.identity": 50.0,
        "batch_seconds.identity": 1.1,
        "events_in.cases": 390.0,
        "batches.cases": 9.0,  # the case stage took no batch in between
        "batch_seconds.cases": 0.9,
    }
    assert _batches(before, after) == {
        "identity": {"batches": 40, "events_per_batch": 7.5, "ms_per_batch": 15.0}
    }


async def test_fixed_rates_are_measured_in_order_with_cpu_per_event_at_each() -> None:
    asked: list[tuple[str, float, float]] = []
    cores = {25.0: 0.35, 100.0: 0.84}

    async def measure(label: str, rate: float, steady_s: float) -> dict[str, Any]:
        asked.append((label, rate, steady_s))
        worker = {"cpu_cores": cores[rate], "rss_mib": 250.0, "wakeups_per_s": 4 * rate}
        return {"delivered": rate, "processes": {"worker": worker, "kafka": {"cpu_cores": 0.1}}}

    result = await at_fixed_rates([100.0, 25.0], 12.0, measure)
    assert asked == [("at 100/s", 100.0, 12.0), ("at 25/s", 25.0, 12.0)]
    assert [step["cpu_ms_per_event"] for step in result["fixed_rates"]] == [
        {"worker": 8.4, "kafka": 1.0},
        {"worker": 14.0, "kafka": 4.0},
    ]
    assert [step["wakeups_per_event"] for step in result["fixed_rates"]] == [
        {"worker": 4.0},
        {"worker": 4.0},
    ]


async def test_a_step_with_nothing_out_has_no_cpu_per_event() -> None:
    async def measure(label: str, rate: float, steady_s: float) -> dict[str, Any]:
        return {"delivered": 0, "processes": {"worker": {"cpu_cores": 0.8}}}

    result = await at_fixed_rates([50.0], 1.0, measure)
    assert result["fixed_rates"][0]["cpu_ms_per_event"] == {}


@pytest.mark.parametrize("rates", ["0,25", "-5", "25,fast", "inf", "nan"])
def test_rates_that_cannot_be_offered_are_refused_before_anything_starts(
    rates: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--phases", "pipeline", "--pipeline-rates", rates]) == 2
    assert "omnirouter.bench:" in capsys.readouterr().err


class _Meter:
    """The meter's side a step uses, with no consumer: tracks are filled by the generator."""

    def __init__(self) -> None:
        self.tracks: dict[int, StepTrack] = {}
        self.records = 0

    def expect(self, plan: StepPlan) -> StepTrack:
        self.tracks[plan.step] = StepTrack(plan)
        return self.tracks[plan.step]

    def check(self) -> None:
        pass

    def outstanding(self) -> int:
        return sum(track.outstanding() for track in self.tracks.values())


class _Generator:
    """Offers a step's events until its end, and every one of them comes out then."""

    def __init__(self, meter: _Meter) -> None:
        self._meter = meter

    async def run(self, plan: StepPlan, *, topic: str, source: str = "mix") -> StepReport:
        await asyncio.sleep(max(0.0, plan.ends_at - time.monotonic()))
        track = self._meter.tracks[plan.step]
        track.received = plan.total
        self._meter.records += plan.total
        return StepReport(plan.step, plan.total, plan.total, 0, 0.0, plan.ends_at - plan.t0)


async def test_a_step_reads_redis_as_its_load_begins_so_a_rewrite_in_the_warm_up_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Redis starts an AOF rewrite halfway through the warm-up. Read only at the window's ends,
    # it would look like a step without one, though the window works off what it left behind.
    options = BenchOptions(quick=True, scale=0.4)  # a 0.6 s warm-up
    started = time.monotonic()
    meter = _Meter()

    def redis_counters(url: str) -> dict[str, float]:
        plan = meter.tracks[1].plan  # the step's own: expected before any reading
        rewrite_at = plan.t0 + plan.warmup_s / 2
        rewrites = 1.0 if time.monotonic() >= rewrite_at else 0.0
        return {"commands": 0.0, "aof_rewrites": rewrites, "aof_bytes": 0.0, "aof_rewriting": 0.0}

    def metrics(url: str) -> str:  # identity has taken in 1,000 events a second since the start
        taken = 1000 * (time.monotonic() - started)
        return f'omnirouter_events_total{{stage="identity",direction="in"}} {taken}\n'

    monkeypatch.setattr(phases, "_redis_counters", redis_counters)
    monkeypatch.setattr(phases, "scrape", metrics)
    phase = phases.KafkaPhase(
        "pipeline",
        options,
        cast("Any", _Generator(meter)),
        cast("Any", meter),
        input_topic="in",
        samplers={},
        progress=lambda line: None,
        metrics_url="http://worker/metrics",
        redis_url="redis://redis",
    )

    step = await phase.step("50%", 100.0, 0.3)

    assert step["redis"]["aof_rewrites"] == 0  # none began between the window's two readings
    assert step["redis"]["aof_rewrites_in_warm_up"] == 1
