"""The bench's report: the README table, the targets, and reading the worker's /metrics."""

from __future__ import annotations

from typing import Any

from omnirouter.bench.processes import metric_total
from omnirouter.bench.report import markdown_table, target_checks


def _result() -> dict[str, Any]:
    def run(p50: float, p99: float, p999: float) -> dict[str, Any]:
        return {
            "latency": {"p50_ms": p50, "p99_ms": p99, "p999_ms": p999},
            "processes": {"worker": {"cpu_cores": 0.93, "rss_mib": 180.2}},
            "redis": {"round_trips_per_event": 0.012, "commands_per_event": 0.3},
        }

    return {
        "command": "python -m omnirouter.bench --quick",
        "started_at": "2026-11-26T04:00:00+00:00",
        "machine": {"cpus": 2, "platform": "Linux", "python": "3.11.9"},
        "generator": {"capacity": 70000, "mean_event_bytes": 1000},
        "pipeline": {
            "max_sustainable": 12000,
            "at_50": run(8.0, 31.5, 60.2),
            "at_90": run(12.0, 80.0, 120.0),
            "catch_up": {"redis": {"round_trips_per_event": 0.029}},
        },
        "baseline": {"max_sustainable": 30000, "at_50": run(2.0, 6.0, 9.0)},
        "ratio": 0.4,
        "gateway": {"max_sustainable": 2500, "at_50": run(3.0, 25.0, 40.0)},
    }


def test_targets_say_which_were_met_missed_or_not_measured() -> None:
    """Each of the issue's targets against the measured value."""
    checks = {c["target"]: c for c in target_checks(_result())}
    assert checks["events/s end to end, one worker"]["met"] is True
    assert checks["p99 at 50% of max (ms)"]["met"] is True
    assert checks["ratio to raw Kafka baseline"]["met"] is True
    assert checks["Redis round trips per event"]["met"] is True
    assert checks["gateway webhooks/s, one process"]["met"] is False
    assert checks["gateway p99 at 50% (ms)"]["met"] is False
    partial = {c["target"]: c for c in target_checks({"pipeline": {"max_sustainable": None}})}
    assert partial["events/s end to end, one worker"]["met"] is None


def test_the_table_is_markdown_with_every_measure_and_the_command_that_produced_it() -> None:
    """What the README keeps: one row per measure, the numbers, the command."""
    table = markdown_table(_result())
    lines = table.splitlines()
    assert lines[0] == "| measure | pipeline | raw Kafka baseline | target |"
    assert lines[1] == "|---|---|---|---|"
    assert "| max sustainable rate (events/s) | 12,000 | 30,000 | ≥ 10,000 ✅ |" in lines
    assert any(
        line.startswith("| p50 / p99 / p99.9 at 50% (ms) | 8.0 / 31.5 / 60.2 |") for line in lines
    )
    assert any("gateway: webhooks/s" in line and "2,500" in line and "❌" in line for line in lines)
    # Round trips at 90 % of the maximum (the target's) and in the catch-up's large batches.
    assert "| Redis round trips per event (worker counter) | 0.012 | — | ≤ 0.1 ✅ |" in lines
    assert any(
        line.startswith("| … in the backlog catch-up") and "| 0.029 |" in line for line in lines
    )
    assert "`python -m omnirouter.bench --quick`" in table


def test_the_table_shows_a_dash_for_what_was_not_measured() -> None:
    """A phase that was skipped is a dash, never a zero."""
    table = markdown_table({"pipeline": {"max_sustainable": 9000}})
    assert "| max sustainable rate (events/s) | 9,000 | — |" in table


def test_metric_totals_sum_the_samples_whose_labels_match() -> None:
    """Round trips and events are read from the worker's Prometheus text."""
    text = "\n".join(
        [
            "# HELP omnirouter_redis_round_trips_total Redis round trips",
            "# TYPE omnirouter_redis_round_trips_total counter",
            'omnirouter_redis_round_trips_total{stage="identity"} 12.0',
            'omnirouter_redis_round_trips_total{stage="cases"} 30.0',
            'omnirouter_redis_round_trips_created{stage="cases"} 1.7e+09',
            'omnirouter_events_total{stage="identity",topic="interactions.inbound",'
            'channel="sms",direction="in"} 500.0',
            'omnirouter_events_total{stage="identity",topic="interactions.resolved",'
            'channel="sms",direction="out"} 499.0',
        ]
    )
    assert metric_total(text, "omnirouter_redis_round_trips_total") == 42.0
    assert metric_total(text, "omnirouter_redis_round_trips_total", stage="cases") == 30.0
    assert metric_total(text, "omnirouter_events_total", stage="identity", direction="in") == 500
    assert metric_total(text, "omnirouter_missing_total") == 0.0


def test_the_table_says_how_the_broker_was_warmed_before_the_measures() -> None:
    """A fresh broker costs several times its warm CPU: the reader sees that it was warm."""
    result = _result()
    windows = [{"broker_ms_per_event": cost} for cost in (0.594, 0.35, None, 0.26, 0.25)]
    result["warm_up"] = {"rate": 2000.0, "settled": True, "windows": windows}
    assert (
        "Measured after the broker's warm-up: 5 windows of 2,000 events/s through a "
        "pass-through, the broker's CPU 0.594 ms per event in the first, 0.250 in the last."
    ) in markdown_table(result)
    result["warm_up"]["settled"] = False
    assert "0.250 in the last, not settled." in markdown_table(result)
    assert "warm-up" not in markdown_table(_result())
    blind = {"rate": 2000.0, "settled": False, "windows": [{"broker_ms_per_event": None}] * 2}
    assert "warm-up" not in markdown_table({**_result(), "warm_up": blind})


def test_the_table_shows_each_phase_catching_up_a_backlog() -> None:
    """Events/s, the CPU per event of the process under test, and what went missing."""
    result = _result()
    result["pipeline"]["catch_up"] = {
        "events": 30_000,
        "events_per_s": 712.4,
        "drained": True,
        "missing": 0,
        "cpu_ms_per_event": {"worker": 1.234, "kafka": 0.3},
    }
    result["baseline"]["catch_up"] = {
        "events": 30_000,
        "events_per_s": 15_000.0,
        "limited_by_offer": True,
        "drained": False,
        "missing": 12,
        "cpu_ms_per_event": {"baseline": 0.0514},
    }
    row = next(line for line in markdown_table(result).splitlines() if "backlog catch-up:" in line)
    assert "| 712 (1.234 ms) of 30,000 |" in row
    # As fast as offered: at least that much, it could not show more.
    assert "| ≥ 15,000 (0.051 ms) of 30,000, 12 missing |" in row
    assert "| — |" in next(
        line for line in markdown_table(_result()).splitlines() if "backlog catch-up:" in line
    )


def test_the_table_shows_the_faust_floor_as_a_share_of_the_workers_cost() -> None:
    """faust alone over the same hops, and how much of the worker's CPU per event that is:
    only when both backlogs were worked off (an undrained one's CPU includes the waiting)."""
    result = _result()
    result["pipeline"]["catch_up"] = {
        "events": 30_000,
        "events_per_s": 600.0,
        "drained": True,
        "cpu_ms_per_event": {"worker": 1.5},
    }
    result["faust"] = {
        "catch_up": {
            "events": 30_000,
            "events_per_s": 1_750.0,
            "drained": True,
            "cpu_ms_per_event": {"faust": 0.6, "kafka": 0.2},
        }
    }

    def floor_row(of: dict[str, Any]) -> str:
        return next(line for line in markdown_table(of).splitlines() if "faust floor" in line)

    assert "| 1,750 (0.600 ms) of 30,000; 40 % of the worker's CPU per event | — |" in floor_row(
        result
    )
    result["pipeline"]["catch_up"]["drained"] = False
    assert "| 1,750 (0.600 ms) of 30,000 | — |" in floor_row(result)
    del result["pipeline"]["catch_up"]  # no worker to compare with: the floor alone
    assert "| 1,750 (0.600 ms) of 30,000 | — |" in floor_row(result)
    assert floor_row(_result()).endswith("| — | — |  |")  # not measured


def test_the_pipeline_at_fixed_rates_gets_a_table_of_its_own() -> None:
    """What a worker costs at each load asked for; nothing when the pipeline searched."""
    result = _result()
    result["pipeline"] = {
        "fixed_rates": [
            {
                "offered": 25.0,
                "delivered": 25,
                "latency": {"p50_ms": 19.1, "p99_ms": 55.37},
                "processes": {"worker": {"cpu_cores": 0.35, "system_cores": 0.021}},
                "cpu_ms_per_event": {"worker": 14.0},
                "wakeups_per_event": {"worker": 6.04},
                "redis": {"round_trips_per_event": 2.4278},
                "cases": {
                    "interactions_per_case": 3.04,
                    "interactions_p90": 5,
                    "document_bytes": 1885,
                },
            }
        ]
    }
    table = markdown_table(result)
    assert "The pipeline at fixed rates" in table
    assert (
        "| 25 | 25 | 19.1 / 55.4 | 0.35 | 0.02 | 14.00 | 6.0 | 2.428 | 3.0 (p90 5; 1,885 B) |"
        in table.splitlines()
    )
    assert "fixed rates" not in markdown_table(_result())


def test_the_table_shows_the_workers_wake_ups_per_event_where_they_were_counted() -> None:
    """Wake-ups a second over events a second out, at 50 % and 90 %; a dash where the host
    did not tell them (no /proc) or nothing came out."""
    result = _result()
    result["pipeline"]["at_50"]["delivered"] = 200
    result["pipeline"]["at_50"]["processes"]["worker"]["wakeups_per_s"] = 780.0
    result["pipeline"]["at_90"]["delivered"] = 0
    result["pipeline"]["at_90"]["processes"]["worker"]["wakeups_per_s"] = 900.0
    row = next(line for line in markdown_table(result).splitlines() if "wake-ups per" in line)
    assert row.startswith("| worker wake-ups per event at 50% / 90%")
    assert "| 3.90 / — | — / — |" in row


def test_the_table_says_what_a_wake_up_cost_the_host() -> None:
    """The machine's wake-up cost goes under the table, so runs on different hosts can be
    told apart; a result without it says nothing of it."""
    result = _result()
    result["machine"]["wake_cpu_us"] = {"50/s": 243.4, "1000/s": 94.2}
    assert (
        "An event-loop wake-up cost this host 243 µs of CPU at 50/s and 94 µs of CPU at "
        "1000/s (in the bench's own process, before its phases; see bench.host)."
    ) in markdown_table(result)
    assert "wake-up cost" not in markdown_table(_result())


def test_the_table_says_what_the_same_python_cost_back_to_back_and_after_a_sleep() -> None:
    """The routine's cost in each mode goes under the table, in the order measured; a result
    without it says nothing of it."""
    result = _result()
    result["machine"]["routine_cpu_us"] = {
        "back to back": 31.4,
        "after other code": 39.6,
        "after a 20 ms sleep": 281.2,
    }
    assert (
        "The same small piece of Python (a webhook's form parsed and signed, an event encoded) "
        "cost this host 31 µs of CPU back to back, 40 µs of CPU after other code, 281 µs of CPU "
        "after a 20 ms sleep (before its phases; see bench.host)."
    ) in markdown_table(result)
    assert "small piece of Python" not in markdown_table(_result())


def test_the_table_says_how_long_the_measured_cases_had_grown() -> None:
    """Interactions per case and document bytes after the 50 % and 90 % steps and the
    catch-up, each where it was sampled; a dash where it was not."""
    result = _result()
    result["pipeline"]["at_50"]["cases"] = {
        "interactions_per_case": 21.47,
        "interactions_p90": 30,
        "document_bytes": 3120,
    }
    result["pipeline"]["at_90"]["cases"] = {}
    result["pipeline"]["catch_up"]["cases"] = {
        "interactions_per_case": 40.0,
        "interactions_p90": 71,
        "document_bytes": 5433.0,
    }
    row = next(line for line in markdown_table(result).splitlines() if "per case" in line)
    assert "| 21.5 (p90 30; 3,120 B) / — / 40.0 (p90 71; 5,433 B) | — |" in row


def test_a_window_with_an_aof_rewrite_says_so_and_shows_its_repeat_beside_it() -> None:
    """The step stays the window with the rewrite; the repeat without one stands beside it, or
    the table says the repeat had one too."""
    result = _result()
    result["pipeline"]["at_50"]["redis"]["aof_rewrites"] = 1
    result["pipeline"]["at_50_without_aof_rewrite"] = {
        "latency": {"p50_ms": 7.0, "p99_ms": 20.0, "p999_ms": 30.0}
    }
    result["pipeline"]["at_90"]["redis"]["aof_rewrite_under_way"] = True
    lines = markdown_table(result).splitlines()
    assert (
        "| p50 / p99 / p99.9 at 50% (ms) | 8.0 / 31.5 / 60.2 (an AOF rewrite in or just before "
        "the window; again without one: 7.0 / 20.0 / 30.0) |" in "\n".join(lines)
    )
    ninety = next(line for line in lines if line.startswith("| p50 / p99 / p99.9 at 90%"))
    assert "12.0 / 80.0 / 120.0 (an AOF rewrite in or just before the window, and its repeat)" in (
        ninety
    )
