"""The lag monitor on the real broker: a faust consumer keeps up, stops, and catches up again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient, OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.ops.lag import GroupLag, LagCollector, LagMonitor, LagReport, lag_metrics
from omnirouter.pipeline import create_app
from support.waiting import eventually, eventually_async

pytestmark = pytest.mark.integration

RATE = 50  # events per second, spread over the partitions
PARTITIONS = 2
WINDOW = 6  # samples per partition Burrow evaluates
INTERVAL_S = 0.5  # between samples: 3 s of window
ALARMS = {"STALL", "STOP"}


class SteadyProducer:
    """Writes events at a steady rate from a thread and remembers when it wrote each offset."""

    def __init__(self, bootstrap_servers: str, topic: str, *, max_seconds: float) -> None:
        self.produced_at: dict[tuple[int, int], float] = {}
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _acked(self, sent_at: float, metadata: Any) -> None:
        self.produced_at[(metadata.partition, metadata.offset)] = sent_at

    def _run(self) -> None:
        try:
            producer = create_producer(self._bootstrap, client_id="lag-test-producer", linger_ms=0)
            try:
                self._produce(producer)
            finally:
                producer.close()
        except Exception as exc:  # surfaced by the test, not lost in the thread
            self.error = exc

    def _produce(self, producer: Any) -> None:
        started = time.time()
        sent = 0
        while not self._stop.is_set() and time.time() - started < self._max_seconds:
            # Pacing, not synchronization: the producer's whole job is a steady rate.
            self._stop.wait(max(0.0, started + sent / RATE - time.time()))
            sent_at = time.time()
            future = producer.send(self._topic, b"event-%d" % sent, partition=sent % PARTITIONS)
            future.add_callback(self._acked, sent_at)
            sent += 1
        producer.flush(timeout=30)


async def _start_consumer(stack: StackAddresses, group: str, topic_name: str) -> Any:
    """A faust worker in ``group`` that commits after every event."""
    app = create_app(
        group, stack.kafka_bootstrap_servers, broker_commit_every=1, broker_commit_interval=0.1
    )
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")

    @app.agent(topic, concurrency=1)
    async def consume(stream):  # type: ignore[no-untyped-def]
        async for _event in stream:
            pass

    await app.start()
    return app


@contextlib.asynccontextmanager
async def _sampling(monitor: LagMonitor, reports: list[LagReport]) -> Any:
    """Sample every INTERVAL_S in a thread, as the dashboard does, keeping every report."""
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            reports.append(await asyncio.to_thread(monitor.sample))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL_S)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task


def _group(reports: list[LagReport], group: str) -> GroupLag | None:
    return reports[-1].group(group) if reports else None


@pytest.mark.timeout(120)
async def test_group_is_ok_then_stalls_when_its_worker_stops_and_recovers_after_restart(
    stack: StackAddresses, topic_factory: Callable[..., str], unique_id: str
) -> None:
    topic = topic_factory("events", partitions=PARTITIONS)
    group = f"lag-{unique_id}"
    producer = SteadyProducer(stack.kafka_bootstrap_servers, topic, max_seconds=55)
    monitor = LagMonitor(stack.kafka_bootstrap_servers, window=WINDOW, groups=(group,))
    reports: list[LagReport] = []
    app = await _start_consumer(stack, group, topic)
    producer.start()
    try:
        async with _sampling(monitor, reports):

            async def committed_everywhere() -> bool:
                g = _group(reports, group)
                return g is not None and sum(p.committed is not None for p in g.partitions) == 2

            await eventually_async(committed_everywhere, timeout_s=30, what="first commits")
            first = len(reports)

            async def ok_over_a_full_window() -> bool:
                g = _group(reports, group)
                return len(reports) >= first + WINDOW and g is not None and g.status == "OK"

            await eventually_async(ok_over_a_full_window, timeout_s=20, what="the group OK")
            healthy_from = len(reports)

            async def another_window() -> bool:
                return len(reports) >= healthy_from + WINDOW

            await eventually_async(another_window, timeout_s=20, what="a healthy window")
            healthy = [r.group(group) for r in reports[healthy_from:]]
            # A worker that keeps up never raises an alarm (WARN is Burrow's "slow", not an alarm).
            assert {g.status for g in healthy if g is not None} <= {"OK", "WARN"}

            # The worker stops; production goes on.
            stop_called = time.time()
            await app.stop()
            stopped = time.time()
            stopped_at_sample = len(reports)

            async def alarm() -> GroupLag | None:
                g = _group(reports, group)
                return g if g is not None and g.status in ALARMS else None

            alarmed = await eventually_async(alarm, timeout_s=20, what="STALL or STOP")
            took = time.time() - stopped
            samples_to_alarm = len(reports) - stopped_at_sample
            # Within the window: the last sample that saw the worker keep up has left it.
            assert samples_to_alarm <= WINDOW + 1, f"{alarmed.status} after {took:.1f} s"

            async def lag_grew() -> GroupLag | None:
                g = _group(reports, group)
                return g if g is not None and g.total_lag >= alarmed.total_lag + RATE else None

            await eventually_async(lag_grew, timeout_s=10, what="the lag to grow")

            async def old_enough() -> tuple[LagReport, GroupLag] | None:
                report = reports[-1]
                g = report.group(group)
                if g is None or g.status not in ALARMS:
                    return None
                ages = [report.sampled_at - _produced(producer, p) for p in g.partitions]
                return (report, g) if min(ages) >= 3.0 else None

            report, stalled = await eventually_async(old_enough, timeout_s=15, what="3 s of lag")
            errors = []
            for p in stalled.partitions:
                true_age = report.sampled_at - _produced(producer, p)
                errors.append(abs(p.time_lag_s - true_age) / true_age)
                assert p.time_lag_s == pytest.approx(true_age, rel=0.2), (p, true_age)
            assert stalled.max_time_lag_s == max(p.time_lag_s for p in stalled.partitions)

            # A new worker in the same group resumes from the committed offsets and catches up.
            restarted = time.time()
            app = await _start_consumer(stack, group, topic)

            async def caught_up() -> GroupLag | None:
                g = _group(reports, group)
                return g if g is not None and g.status == "OK" and g.total_lag < RATE else None

            recovered = await eventually_async(caught_up, timeout_s=30, what="the catch-up")
            recovery = time.time() - restarted
            producer.stop()

            async def drained() -> bool:
                g = _group(reports, group)
                return g is not None and g.status == "OK" and g.total_lag == 0

            await eventually_async(drained, timeout_s=15, what="every event consumed")
    finally:
        producer.stop()
        await app.stop()
        monitor.close()
    assert producer.error is None
    print(
        f"\nalarm {alarmed.status} {took:.2f} s ({samples_to_alarm} samples) after the worker "
        f"stopped ({stopped - stop_called:.2f} s to stop it); time-lag error "
        f"{', '.join(f'{e:.1%}' for e in errors)} at true age "
        f"{report.sampled_at - _produced(producer, stalled.partitions[0]):.1f} s; "
        f"OK again {recovery:.1f} s after restart (lag {recovered.total_lag})"
    )


def _produced(producer: SteadyProducer, partition: Any) -> float:
    """When the oldest event the group has not consumed on ``partition`` was produced."""
    return producer.produced_at[(partition.partition, partition.committed)]


# -- a group that stopped ------------------------------------------------------------------


@pytest.fixture
def stopped_group(
    stack: StackAddresses, topic_factory: Callable[..., str], unique_id: str
) -> tuple[str, str]:
    """(group, topic): 10 events on the topic, offset 4 committed, no member in the group."""
    topic = topic_factory("events", partitions=1)
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="lag-test")
    try:
        for n in range(10):
            producer.send(topic, b"event-%d" % n, partition=0).get(timeout=30)
    finally:
        producer.close()
    group = f"stopped-{unique_id}"
    admin = KafkaAdminClient(
        bootstrap_servers=stack.kafka_bootstrap_servers, client_id="lag-test-admin"
    )
    try:
        admin.alter_group_offsets(group, {TopicPartition(topic, 0): OffsetAndMetadata(4, "", -1)})
    finally:
        admin.close()
    return group, topic


def test_metrics_show_the_report_under_kafka_lag_exporter_names(
    stack: StackAddresses, stopped_group: tuple[str, str]
) -> None:
    group, topic = stopped_group
    registry = CollectorRegistry()
    with LagMonitor(stack.kafka_bootstrap_servers, window=3, groups=(group,)) as monitor:
        registry.register(LagCollector(monitor))
        monitor.sample()
        report = monitor.sample(now=time.time() + 1.0)
    exposed = generate_latest(registry).decode()
    partition = f'group="{group}",partition="0",topic="{topic}"'
    assert f"kafka_consumergroup_lag{{{partition}}} 6.0" in exposed
    assert f"kafka_consumergroup_lag_seconds{{{partition}}}" in exposed
    assert f'kafka_consumergroup_group_lag{{group="{group}"}} 6.0' in exposed
    assert f'kafka_consumergroup_group_max_lag_seconds{{group="{group}"}}' in exposed
    assert f'kafka_consumergroup_status{{group="{group}",status="STOP"}} 1.0' in exposed
    assert f'kafka_consumergroup_status{{group="{group}",status="OK"}} 0.0' in exposed
    assert f'kafka_partition_latest_offset{{partition="0",topic="{topic}"}} 10.0' in exposed
    # The push form shows the same report on another registry.
    pushed = CollectorRegistry()
    lag_metrics(report, pushed)
    assert (
        f'kafka_consumergroup_group_lag{{group="{group}"}} 6.0' in generate_latest(pushed).decode()
    )
    assert json.loads(json.dumps(report.as_json()))["groups"][0]["status"] == "STOP"


def _cli(stack: StackAddresses, group: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "OMNIROUTER_REDIS__URL": stack.redis_url,
        "OMNIROUTER_OPS__LAG_SAMPLE_INTERVAL_S": "0.2",
        "OMNIROUTER_OPS__LAG_GROUPS": json.dumps([group]),
    }
    return subprocess.run(
        [sys.executable, "-m", "omnirouter.cli", "lag", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_the_groups_lag_and_status_as_json(
    stack: StackAddresses, stopped_group: tuple[str, str]
) -> None:
    group, topic = stopped_group
    result = _cli(stack, group, "--json")
    assert result.returncode == 0, result.stderr
    assert "sampling consumer lag" in result.stderr
    report = json.loads(result.stdout)
    [stopped] = report["groups"]
    assert stopped["group"] == group
    assert stopped["status"] == "STOP"
    assert stopped["total_lag"] == 6
    [partition] = stopped["partitions"]
    assert partition["topic"] == topic
    assert (partition["committed"], partition["end"], partition["lag"]) == (4, 10, 6)
    assert partition["status"] == "STOP"
    assert partition["time_lag_s"] >= 0


def test_cli_prints_a_table_with_partition_rows_when_verbose(
    stack: StackAddresses, stopped_group: tuple[str, str]
) -> None:
    group, topic = stopped_group
    result = _cli(stack, group, "-v")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["GROUP", "/", "PARTITION"]
    assert lines[1].split()[:3] == [group, "STOP", "6"]
    assert lines[2].split()[0] == f"{topic}[0]"
    assert lines[2].split()[-2:] == ["4", "10"]
    assert "\x1b[" not in result.stdout  # not a terminal: no screen clearing


def test_a_broker_that_does_not_answer_marks_the_groups_err_instead_of_raising() -> None:
    monitor = LagMonitor(f"127.0.0.1:{free_port()}", window=3, groups=("orders",))
    try:
        report = monitor.sample(now=1000.0)
    finally:
        monitor.close()
    assert report.sampled_at == 1000.0
    assert [(g.group, g.status) for g in report.groups] == [("orders", "ERR")]
    assert monitor.report() is report


def test_a_live_member_before_its_first_commit_is_judged_by_the_rules_not_alarmed(
    stack: StackAddresses, topic_factory: Callable[..., str], unique_id: str
) -> None:
    """Records just arrived on a partition a live consumer owns; its first commit is still due.
    That is no missing data (ERR): the window starts from the log start, and only a consumer that
    then makes no progress for a whole window is flagged (STALL)."""
    from kafka import KafkaConsumer

    topic = topic_factory("events", partitions=1)
    group = f"fresh-{unique_id}"
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="lag-test")
    # A broker that has not yet applied the new topic answers the consumer's first metadata
    # request without it, and the group then assigns nothing ("No partition metadata"); on a
    # busy host (two test processes) the rejoin a later metadata refresh should bring did not
    # come within 30 s in CI. The consumer joins only once the broker's metadata has the topic
    # (partitions_for waits for it, up to the producer's max_block_ms).
    consumer = None
    try:
        assert producer.partitions_for(topic) == {0}
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Should the first metadata answer still miss the topic: ask again soon (the default is
            # 5 minutes).
            metadata_max_age_ms=500,
        )
        # Joined and owning the partition, never committing.
        eventually(
            lambda: consumer.poll(timeout_ms=200) is not None and consumer.assignment(),
            timeout_s=30,
            what="the consumer to own the partition",
        )
        for n in range(3):
            producer.send(topic, b"event-%d" % n, partition=0).get(timeout=30)
        with LagMonitor(stack.kafka_bootstrap_servers, window=3, groups=(group,)) as monitor:
            first = monitor.sample(now=1000.0).group(group)
            assert first is not None
            assert (first.status, first.partitions[0].committed, first.partitions[0].lag) == (
                "OK",
                None,
                3,
            )
            monitor.sample(now=1001.0)
            stalled = monitor.sample(now=1002.0).group(group)
        assert stalled is not None and stalled.status == "STALL"
    finally:
        producer.close()
        if consumer is not None:
            consumer.close()
