"""Pipeline workers in one consumer group on the cluster: two, then three share every
partition; a worker joins and another leaves while events flow. Afterwards every acknowledged
event is once in its customer's timeline, in the order it was produced, every case routed once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from cluster.harness import audit, group_assignment, start_worker
from faults.harness import PIPELINE_INPUTS, FaultRun, PacedProducer, fault_points, sms_traffic
from faults.report import FaultReport
from faults.sizes import Size, seed, sizes
from support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

# Backstops (each wait has its own timeout); 180 s proved tight on a loaded 2-core machine.
SHARE_SHORT = Size("short", events=300, customers=60, faults=0, timeout_s=360)
SHARE_FULL = Size("full", events=10_000, customers=1_000, faults=0, timeout_s=900)
CHURN_SHORT = Size("short", events=300, customers=60, faults=2, timeout_s=360)
CHURN_FULL = Size("full", events=10_000, customers=1_000, faults=2, timeout_s=900)


def shared_by(run: FaultRun, members: int) -> dict[str, set[tuple[str, int]]] | None:
    """The group's assignment once ``members`` workers own every input partition between them,
    each partition exactly once and each worker some; else None."""
    inputs = [run.topic(key) for key in PIPELINE_INPUTS]
    owned = group_assignment(run.addresses.kafka_bootstrap_servers, inputs)
    if owned is None or len(owned) != members:
        return None
    every = {(t, p.partition) for t in inputs for p in run.probe.partitions(t)}
    taken = [tp for parts in owned.values() for tp in parts]
    if sorted(taken) != sorted(every) or not all(owned.values()):
        return None
    return owned


def resolved_at_least(run: FaultRun, count: int) -> None:
    """Wait until identity has resolved ``count`` events (progress mid-stream)."""
    resolved = run.topic("interactions.resolved")
    eventually(
        lambda: run.probe.total(resolved) >= count,
        timeout_s=120,
        what=f"identity to resolve {count} events",
    )


@pytest.mark.parametrize("size", sizes(SHARE_SHORT, SHARE_FULL))
def test_two_then_three_workers_share_every_partition(
    size: Size, cluster_run: FaultRun, record_scale_report: Callable[[FaultReport], None]
) -> None:
    """Two workers own every input partition between them, then three do; the events that
    flowed through both splits are each once in their timeline, in order."""
    run_seed = seed()
    rng = random.Random(run_seed)
    started = time.monotonic()
    start_worker(cluster_run, 1)
    start_worker(cluster_run, 2)
    two = eventually(lambda: shared_by(cluster_run, 2), timeout_s=60, what="2 workers to share")
    producer = PacedProducer(cluster_run, sms_traffic(size.customers, size.events, rng))
    producer.start()
    resolved_at_least(cluster_run, size.events // 2)
    start_worker(cluster_run, 3)
    three = eventually(lambda: shared_by(cluster_run, 3), timeout_s=60, what="3 workers to share")
    producer.finish()
    outcome = audit(cluster_run, producer)
    record_scale_report(
        outcome.report(
            "2 then 3 workers share",
            size,
            run_seed,
            faults=0,
            started=started,
            partitions_per_worker_of_2=sorted(len(p) for p in two.values()),
            partitions_per_worker_of_3=sorted(len(p) for p in three.values()),
        )
    )
    assert len(producer.acknowledged) == size.events, f"{producer.refused} writes refused"
    outcome.assert_exactly_once_in_order()


@pytest.mark.parametrize("size", sizes(CHURN_SHORT, CHURN_FULL))
def test_worker_joining_and_leaving_mid_stream_loses_nothing(
    size: Size, cluster_run: FaultRun, record_scale_report: Callable[[FaultReport], None]
) -> None:
    """A third worker joins, then the first leaves (SIGTERM) while events flow: the group
    rebalances twice and every event is once in its timeline, in production order."""
    run_seed = seed()
    rng = random.Random(run_seed)
    started = time.monotonic()
    first = start_worker(cluster_run, 1)
    start_worker(cluster_run, 2)
    eventually(lambda: shared_by(cluster_run, 2), timeout_s=60, what="2 workers to share")
    producer = PacedProducer(cluster_run, sms_traffic(size.customers, size.events, rng))
    producer.start()
    join_at, leave_at = fault_points(rng, 2, size.events, low=0.1, high=0.7)
    resolved_at_least(cluster_run, join_at)
    start_worker(cluster_run, 3)
    eventually(lambda: shared_by(cluster_run, 3), timeout_s=60, what="3 workers to share")
    resolved_at_least(cluster_run, leave_at)
    first.stop()
    eventually(lambda: shared_by(cluster_run, 2), timeout_s=60, what="2 workers to take over")
    producer.finish()
    outcome = audit(cluster_run, producer)
    record_scale_report(
        outcome.report(
            "worker joins, one leaves",
            size,
            run_seed,
            faults=2,
            started=started,
            joined_at=join_at,
            left_at=leave_at,
        )
    )
    assert len(producer.acknowledged) == size.events, f"{producer.refused} writes refused"
    outcome.assert_exactly_once_in_order()
