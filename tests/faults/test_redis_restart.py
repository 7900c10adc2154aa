"""Restart redis-server (AOF on, as deploy/redis/redis.conf configures it) while events flow: the
workers pause and retry, commit no offset past an event they could not process, and lose
nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import orjson
import pytest

from faults.harness import FaultRun, PacedProducer, fault_points, sms_traffic
from faults.report import FaultReport
from faults.sizes import Size, seed, sizes
from support.faults import logged_retries
from support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SHORT = Size("short", events=300, customers=75, faults=1, timeout_s=240)
FULL = Size("full", events=5_000, customers=1_250, faults=2, timeout_s=1200)

# Retries back off 0.05 s, 0.1 s, 0.2 s… so the 7th attempt of one operation comes after more
# than 3 s of outage: several of faust's 1 s commit intervals have passed by then.
PAUSED_ATTEMPTS = 7


def first_unresolved(run: FaultRun) -> dict[int, int]:
    """Per partition of interactions.inbound, the offset of the first event identity has not
    resolved (published on interactions.resolved) yet; the partition's end if there is none."""
    probe = run.probe
    inbound = run.topic("interactions.inbound")
    resolved = {
        orjson.loads(v)["interaction"]["event_id"]
        for v in probe.read_all(run.topic("interactions.resolved"))
    }
    first = probe.end_offsets(inbound)
    for partition, offset, value in probe.read_records(inbound):
        if orjson.loads(value)["event_id"] not in resolved:
            first[partition] = min(first[partition], offset)
    return first


@pytest.mark.parametrize("size", sizes(SHORT, FULL))
def test_redis_restart_pauses_workers_and_loses_nothing(
    size: Size, fault_run: FaultRun, record_fault_report: Callable[[FaultReport], None]
) -> None:
    """While Redis is down the worker retries and commits nothing past the events it could not
    process; once it is back, every acknowledged event is in its timeline once, every case
    routed once."""
    run_seed = seed()
    rng = random.Random(run_seed)
    print(f"seed {run_seed}")
    started = time.monotonic()
    worker = fault_run.process("worker")
    points = fault_points(rng, size.faults, size.events, low=0.2, high=0.7)
    # The producer holds at each fault point until Redis is down: identity can keep up with
    # it, and without the hold had resolved everything before the outage began (a CI run),
    # leaving nothing to retry.
    producer = PacedProducer(
        fault_run, sms_traffic(size.customers, size.events, rng), hold_at=points
    )
    producer.start()
    probe = fault_run.probe
    inbound = fault_run.topic("interactions.inbound")
    resolved = fault_run.topic("interactions.resolved")
    restarts = 0
    held_back = 0
    for point in points:
        eventually(
            lambda p=point: producer.held_at(p),  # type: ignore[misc]
            timeout_s=300,
            what=f"{point} events written",
        )
        eventually(
            lambda p=point: probe.total(resolved) >= p,  # type: ignore[misc]
            timeout_s=300,
            what=f"identity to resolve {point} events",
        )
        fault_run.stack.stop_redis()
        producer.release()  # events keep coming while Redis is down
        seen = len(logged_retries(worker.log_path, prefix="identity."))
        eventually(
            lambda s=seen: any(  # type: ignore[misc]
                r["attempt"] >= PAUSED_ATTEMPTS
                for r in logged_retries(worker.log_path, prefix="identity.")[s:]
            ),
            timeout_s=60,
            what="identity to retry its Redis call through the outage",
        )
        # Several commit intervals into the outage: had the stream skipped the batch it cannot
        # process, its offsets would have moved past those events by now.
        committed = probe.committed(inbound)
        unresolved = first_unresolved(fault_run)
        assert worker.alive, f"the worker died with Redis down: {worker.log_tail()}"
        assert unresolved != probe.end_offsets(inbound), "identity had nothing left to process"
        assert all(committed[p] <= unresolved[p] for p in committed), (
            f"offsets committed past unprocessed events: committed {committed}, "
            f"first unresolved {unresolved}"
        )
        held_back += sum(probe.end_offsets(inbound).values()) - sum(committed.values())
        fault_run.stack.restart_redis()
        restarts += 1
    producer.finish()
    fault_run.wait_drained(timeout_s=300)
    result = fault_run.reconcile(producer.acknowledged)
    record_fault_report(
        FaultReport.of(
            "Redis restart (AOF)",
            size.name,
            run_seed,
            sent=producer.sent,
            acknowledged=len(producer.acknowledged),
            faults=restarts,
            result=result,
            seconds=time.monotonic() - started,
            uncommitted_during_outages=held_back,
            worker_starts=worker.starts,
        )
    )
    assert worker.alive and worker.starts == 1, "the worker had to be restarted"
    assert len(producer.acknowledged) == size.events, f"{producer.refused} writes refused"
    assert (result.lost, result.duplicated) == (0, 0), fault_run.explain(result)
