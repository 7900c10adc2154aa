"""The bench's decisions: percentiles, a bounded backlog, the search for the maximum rate, and
a backlog's catch-up."""

from __future__ import annotations

import math

import pytest

from omnirouter.bench.stats import (
    RateSearch,
    backlog_verdict,
    catch_up_entry,
    summarize_latencies,
    wakeups_per_event,
)


def test_percentiles_are_latencies_an_event_really_had() -> None:
    """p50/p99/p99.9 over every sample, taking the higher rank (no interpolation)."""
    samples = [i / 1000.0 for i in range(1, 1001)]  # 1 ms … 1000 ms
    summary = summarize_latencies(samples)
    assert summary.count == 1000
    assert summary.p50_ms == pytest.approx(501.0)
    assert summary.p99_ms == pytest.approx(991.0)
    assert summary.p999_ms == pytest.approx(1000.0)
    assert summary.max_ms == pytest.approx(1000.0)


def test_one_slow_event_in_a_thousand_shows_at_p999_not_at_p99() -> None:
    """The tail is kept, not averaged away."""
    samples = [0.005] * 999 + [2.0]
    summary = summarize_latencies(samples)
    assert summary.p99_ms == pytest.approx(5.0)
    assert summary.p999_ms == pytest.approx(2000.0)


def test_no_samples_give_no_numbers_rather_than_zero() -> None:
    """A step nothing came out of must not look fast."""
    summary = summarize_latencies([])
    assert summary.count == 0
    assert math.isnan(summary.p99_ms)


def test_a_backlog_that_wobbles_around_a_level_is_bounded() -> None:
    """Noise around a constant depth is a system that keeps up."""
    samples = [(t * 0.25, 200 + (37 * t) % 50) for t in range(40)]
    verdict = backlog_verdict(samples, rate=10_000)
    assert verdict.bounded, verdict.reason


def test_a_backlog_that_keeps_growing_is_not_sustainable() -> None:
    """Growing by 10% of the offered rate means the system falls behind."""
    samples = [(t * 0.25, 1000 * t // 4) for t in range(40)]  # +1000/s at 10,000/s offered
    verdict = backlog_verdict(samples, rate=10_000)
    assert not verdict.bounded
    assert verdict.growth_per_s == pytest.approx(1000, rel=0.05)
    assert "grows" in verdict.reason


def test_a_flat_but_deep_backlog_is_not_sustainable() -> None:
    """Five seconds of traffic queued is a queue that never drains, however flat."""
    samples = [(t * 0.25, 50_000) for t in range(40)]
    verdict = backlog_verdict(samples, rate=10_000)
    assert not verdict.bounded
    assert "over 2 s of traffic" in verdict.reason


def test_too_few_samples_are_not_evidence_of_anything() -> None:
    """A step too short to judge is not counted as sustainable."""
    assert not backlog_verdict([(0.0, 0), (0.25, 0)], rate=1000).bounded


def _search_against(capacity: float, search: RateSearch) -> list[float]:
    offered = []
    while (rate := search.next_rate()) is not None:
        offered.append(rate)
        search.record(rate, rate <= capacity)
        assert len(offered) < 30, "the search must end"
    return offered


def test_the_search_ramps_up_then_bisects_between_the_last_success_and_the_first_failure() -> None:
    """Geometric ramp until a failure, then refinements in the gap."""
    search = RateSearch(start=1000, growth=2.0, refinements=2, granularity=50)
    offered = _search_against(5000, search)
    assert offered[:4] == [1000, 2000, 4000, 8000]
    assert len(offered) == 6
    assert search.best_ok is not None and 4000 <= search.best_ok <= 5000
    assert search.lowest_failed is not None and search.lowest_failed > 5000


def test_the_search_steps_down_when_the_first_rate_already_fails() -> None:
    """Start above capacity: it comes down until a rate holds."""
    search = RateSearch(start=8000, growth=2.0, refinements=1)
    offered = _search_against(3000, search)
    assert offered[:3] == [8000, 4000, 2000]
    assert search.best_ok == 2000 or (search.best_ok is not None and search.best_ok <= 3000)


def test_the_search_stops_at_the_ceiling_when_everything_holds() -> None:
    """Beyond what the load generator can offer, nothing is measured."""
    search = RateSearch(start=1000, growth=2.0, ceiling=5000)
    offered = _search_against(1e9, search)
    assert offered == [1000, 2000, 4000, 5000]
    assert search.best_ok == 5000


def test_a_lower_rate_failing_after_a_higher_one_held_is_trusted() -> None:
    """Noise must not report a maximum above a rate that was seen to fail."""
    search = RateSearch(start=1000)
    search.record(4000, True)
    search.record(3000, False)
    assert search.best_ok is None or search.best_ok < 3000


def test_a_catch_up_counts_what_came_out_over_the_whole_time_and_cpu_per_event() -> None:
    """From the first event offered to the last one out; CPU per event from each process's
    cores over that time."""
    entry = catch_up_entry(
        offered=10_000,
        received=10_000,
        elapsed_s=12.5,
        processes={
            "worker": {"cpu_cores": 0.8, "rss_mib": 200.0, "wakeups_per_s": 400.0},
            "kafka": {"cpu_cores": 0.3},
        },
        rate=20_000.0,
    )
    assert entry["events_per_s"] == 800.0
    assert entry["missing"] == 0
    assert entry["drained"] is True
    assert entry["limited_by_offer"] is False
    assert entry["cpu_ms_per_event"] == {"worker": 1.0, "kafka": 0.375}
    assert entry["wakeups_per_event"] == {"worker": 0.5}


def test_events_that_never_came_out_are_missing_and_do_not_count_towards_the_rate() -> None:
    entry = catch_up_entry(
        offered=10_000,
        received=9_000,
        elapsed_s=10.0,
        processes={"worker": {"cpu_cores": 0.9}, "redis": {"rss_mib": 40.0}},
        rate=20_000.0,
    )
    assert entry["events_per_s"] == 900.0
    assert entry["missing"] == 1_000
    assert entry["drained"] is False
    # A process whose CPU could not be read has no cost rather than a made-up one.
    assert entry["cpu_ms_per_event"] == {"worker": 1.0}
    nothing = catch_up_entry(
        offered=10, received=0, elapsed_s=5.0, processes={"worker": {}}, rate=20_000.0
    )
    assert nothing["events_per_s"] == 0.0
    assert nothing["cpu_ms_per_event"] == {}
    # An event the generator counted as failed may still come out: never negative.
    assert (
        catch_up_entry(offered=10, received=11, elapsed_s=1.0, processes={}, rate=20_000.0)[
            "missing"
        ]
        == 0
    )


def test_a_catch_up_as_fast_as_the_burst_was_offered_says_it_could_not_show_more() -> None:
    """The raw baseline keeps up with the burst: its rate is the offer's, not its own."""
    entry = catch_up_entry(
        offered=30_000, received=30_000, elapsed_s=1.6, processes={}, rate=20_000.0
    )
    assert entry["events_per_s"] == 18_750.0
    assert entry["limited_by_offer"] is True


def test_wake_ups_per_event_are_each_processs_wake_ups_a_second_over_events_a_second() -> None:
    """Only for processes whose wake-ups were counted; nothing when nothing came out."""
    processes = {
        "worker": {"cpu_cores": 0.6, "wakeups_per_s": 780.0},
        "kafka": {"cpu_cores": 0.2, "wakeups_per_s": 2000.0},
        "redis": {"cpu_cores": 0.1},
    }
    assert wakeups_per_event(processes, 200.0) == {"worker": 3.9, "kafka": 10.0}
    assert wakeups_per_event(processes, 0.0) == {}
