"""The metrics helpers record what each instrumentation point means; the dashboard's maths."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from omnirouter.events import Channel, DeadLetter
from omnirouter.ops.metrics import (
    REGISTRY,
    count_consumed,
    count_delivery,
    count_ingress,
    count_published,
    count_round_trips,
    count_sla_breach,
    current_stage,
    observe_end_to_end,
    observe_stage,
    observed,
    reason_code,
)
from omnirouter.ops.queues import enqueued_from_score
from omnirouter.ops.summary import (
    MetricsSnapshot,
    Window,
    histogram_quantile,
    increase,
    latency,
    merge,
    snapshot_from_families,
    throughput,
)
from omnirouter.pipeline.routing.store import queue_score


def value(name: str, **labels: str) -> float:
    """A sample of omnirouter's registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """The change of one sample across a ``with`` block (the registry is process-wide)."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels

    def __enter__(self) -> Delta:
        self.before = value(self.name, **self.labels)
        return self

    def __exit__(self, *exc: object) -> None:
        self.after = value(self.name, **self.labels)

    @property
    def change(self) -> float:
        return self.after - self.before


def letter(stage: str, error_type: str) -> DeadLetter:
    return DeadLetter.for_payload(b"{}", b"k", stage=stage, reason="why", error_type=error_type)


def test_published_records_count_by_catalogue_topic_and_channel_and_dead_letters_by_reason() -> (
    None
):
    event = SimpleNamespace(channel=Channel.SMS)
    resolved = SimpleNamespace(interaction=SimpleNamespace(channel=Channel.EMAIL))
    outgoing = [
        SimpleNamespace(topic_key="interactions.resolved", event=event),
        SimpleNamespace(topic_key="interactions.resolved", event=event),
        SimpleNamespace(topic_key="cases.events", event=resolved),
        SimpleNamespace(topic_key="deadletter", event=letter("identity", "NoUsableIdentifier")),
    ]
    sms = {"stage": "t-pub", "topic": "interactions.resolved", "channel": "sms", "direction": "out"}
    email = {**sms, "topic": "cases.events", "channel": "email"}
    with (
        Delta("omnirouter_events_total", **sms) as resolved_out,
        Delta("omnirouter_events_total", **email) as cases_out,
        Delta(
            "omnirouter_dead_letters_total", stage="identity", reason="NoUsableIdentifier"
        ) as dead,
    ):
        count_published("t-pub", outgoing)
    assert (resolved_out.change, cases_out.change, dead.change) == (2, 1, 1)


def test_consumed_records_count_under_the_topic_key_without_the_deployment_prefix() -> None:
    labels = {"stage": "t-in", "topic": "interactions.inbound", "direction": "in"}
    with (
        Delta("omnirouter_events_total", **labels, channel="whatsapp") as decoded,
        Delta("omnirouter_events_total", **labels, channel="none") as undecodable,
    ):
        count_consumed(
            "t-in",
            "acme.omni.interactions.inbound",
            SimpleNamespace(channel=Channel.WHATSAPP),
            prefix="acme.omni.",
        )
        count_consumed(
            "t-in", "acme.omni.interactions.inbound", letter("t-in", "X"), prefix="acme.omni."
        )
    assert (decoded.change, undecodable.change) == (1, 1)


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("UndecodableEvent.validation_failed", "UndecodableEvent.validation_failed"),
        ("DeliveryFailed.retries_exhausted", "DeliveryFailed.retries_exhausted"),
        ("weird: reason with\nspaces/and {json}", "weird_reason_with_spaces_and_json"),
        ("x" * 500, "x" * 48),
        ("!!!", "unknown"),
    ],
)
def test_dead_letter_reasons_are_short_stable_codes(error_type: str, code: str) -> None:
    assert reason_code(error_type) == code


async def test_a_stage_is_timed_and_labels_what_runs_inside_it_even_in_new_tasks() -> None:
    seen: list[str] = []

    @observed("t-stage")
    async def batch() -> None:
        seen.append(current_stage())
        await asyncio.create_task(inner())

    async def inner() -> None:
        seen.append(current_stage())

    with Delta("omnirouter_stage_seconds_count", stage="t-stage") as timed:
        await batch()
    assert seen == ["t-stage", "t-stage"]
    assert timed.change == 1
    assert current_stage() == "other"

    with (
        Delta("omnirouter_stage_seconds_count", stage="t-label") as untimed,
        observe_stage("t-label", timed=False),
    ):
        assert current_stage() == "t-label"
    assert untimed.change == 0


async def test_redis_round_trips_are_counted_per_stage_by_the_clients_connections() -> None:
    sent: list[Any] = []

    class FakeConnection:
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(command)

    client = SimpleNamespace(connection_pool=SimpleNamespace(connection_class=FakeConnection))
    count_round_trips(client)  # type: ignore[arg-type]
    count_round_trips(client)  # type: ignore[arg-type]  # twice: still counted once per trip
    connection = client.connection_pool.connection_class()
    with (
        Delta("omnirouter_redis_round_trips_total", stage="t-redis") as trips,
        observe_stage("t-redis", timed=False),
    ):
        await connection.send_packed_command(b"PING")
        await connection.send_packed_command([b"MULTI", b"EXEC"])
    assert trips.change == 2
    assert sent == [b"PING", [b"MULTI", b"EXEC"]]
    assert isinstance(connection, FakeConnection)


def test_end_to_end_latency_is_measured_only_for_a_routed_case() -> None:
    received = datetime(2026, 1, 1, tzinfo=UTC)
    routed = SimpleNamespace(
        topic_key="cases.routed", event=SimpleNamespace(occurred_at=received + timedelta(seconds=2))
    )
    decision = SimpleNamespace(topic_key="routing.decisions", event=SimpleNamespace())
    with (
        Delta("omnirouter_end_to_end_seconds_count") as count,
        Delta("omnirouter_end_to_end_seconds_sum") as total,
        Delta("omnirouter_end_to_end_seconds_bucket", le="2.5") as under_2_5,
        Delta("omnirouter_end_to_end_seconds_bucket", le="1.0") as under_1,
    ):
        observe_end_to_end(received, [decision, routed])
        observe_end_to_end(None, [routed])  # not caused by an inbound interaction
        observe_end_to_end(received, [decision])  # not routed (a replay)
    assert count.change == 1
    assert total.change == pytest.approx(2.0)
    assert (under_2_5.change, under_1.change) == (1, 0)


def test_sla_breaches_deliveries_and_ingress_outcomes_are_counted() -> None:
    with (
        Delta("omnirouter_sla_breaches_total", tenant="acme", queue="t-vip") as breaches,
        Delta(
            "omnirouter_deliveries_total", channel="sms", provider="twilio", result="failed"
        ) as failed,
        Delta("omnirouter_ingress_payloads_total", provider="t-prov", outcome="accepted") as ok,
        Delta(
            "omnirouter_events_total",
            stage="ingress",
            topic="gateway",
            channel="webform",
            direction="in",
        ) as ingress_in,
    ):
        count_sla_breach("t-vip", tenant="acme")
        count_delivery(Channel.SMS, "twilio", delivered=False)
        count_ingress("t-prov", "accepted", channel=Channel.WEBFORM)
    assert (breaches.change, failed.change, ok.change, ingress_in.change) == (1, 1, 1, 1)


# -- the dashboard's maths ------------------------------------------------------------------


def test_the_enqueue_time_is_read_back_from_a_queue_score() -> None:
    enqueued = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    for priority in (0, 3, 100):
        back = enqueued_from_score(queue_score(priority, enqueued))
        assert back == pytest.approx(enqueued.timestamp(), abs=0.01)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    # 10 observations: 5 in (0, 0.1], 4 in (0.1, 0.5], 1 above 1.
    buckets = {0.1: 5.0, 0.5: 9.0, 1.0: 9.0, math.inf: 10.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * (7 - 5) / 4)
    assert histogram_quantile(0.99, buckets) == pytest.approx(1.0)  # in +Inf: the last bound
    assert histogram_quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None


def test_increase_treats_a_counter_that_went_down_as_a_restarted_process() -> None:
    key = ("omnirouter_events_total", (("direction", "in"), ("stage", "identity")))
    snaps = [MetricsSnapshot(t, {key: v}) for t, v in ((0, 10), (5, 30), (10, 4), (15, 10))]
    assert increase(snaps, "omnirouter_events_total", ("stage",)) == {("identity",): 30.0}
    assert throughput(Window(snaps))["identity"]["in"] == pytest.approx(30 / 15)


def test_rates_and_percentiles_come_from_a_registry_and_a_scrape_merged() -> None:
    """The serve process's own registry and the worker's text exposition add up."""
    serve, worker = CollectorRegistry(), CollectorRegistry()
    events = {
        r: Counter("omnirouter_events", "e", ["stage", "direction"], registry=r)
        for r in (serve, worker)
    }
    seconds = {
        r: Histogram("omnirouter_stage_seconds", "s", ["stage"], buckets=(0.01, 0.1, 1), registry=r)
        for r in (serve, worker)
    }

    def snapshot(at: float) -> MetricsSnapshot:
        scraped = text_string_to_metric_families(generate_latest(worker).decode())
        return merge(
            at, snapshot_from_families(serve.collect(), at), snapshot_from_families(scraped, at)
        )

    first = snapshot(100.0)
    events[serve].labels("routing", "in").inc(10)
    events[worker].labels("routing", "in").inc(20)
    for _ in range(9):
        seconds[worker].labels("routing").observe(0.005)
    seconds[serve].labels("routing").observe(0.5)
    second = snapshot(110.0)
    window = Window([first, second])
    assert throughput(window)["routing"] == {"in": pytest.approx(3.0), "out": 0.0}
    routing = latency(window)["stages"]["routing"]
    assert routing["count"] == 10
    assert routing["p50"] == pytest.approx(0.01 * 5 / 9)
    assert routing["p99"] == pytest.approx(0.1 + 0.9 * (9.9 - 9) / 1)
    assert latency(window)["stages"]["identity"]["p95"] is None
