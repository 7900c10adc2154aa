"""What a Kafka phase records of Redis per step: per-event costs from the counters before and
after, and the AOF rewrites that happened in between."""

from __future__ import annotations

from omnirouter.bench.phases import _redis_per_event


def test_redis_costs_are_per_event_and_aof_rewrites_are_counted_per_step() -> None:
    before = {"events_in": 1_000.0, "round_trips": 50.0, "commands": 30_000.0, "aof_rewrites": 4}
    after = {"events_in": 3_000.0, "round_trips": 250.0, "commands": 92_000.0, "aof_rewrites": 6}
    measured = _redis_per_event(before, after)
    assert measured["events"] == 2_000
    assert measured["round_trips_per_event"] == 0.1
    assert measured["commands_per_event"] == 31.0
    assert measured["aof_rewrites"] == 2


def test_a_step_without_events_records_no_redis_costs() -> None:
    assert _redis_per_event({"events_in": 5.0}, {"events_in": 5.0}) == {}
