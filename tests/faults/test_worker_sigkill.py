"""SIGKILL the pipeline worker at random moments while events flow, restart it each time: every
acknowledged event ends up exactly once in its customer's timeline, every case routed once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from faults.harness import FaultRun, PacedProducer, fault_points, sms_traffic
from faults.report import FaultReport
from faults.sizes import Size, seed, sizes
from support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SHORT = Size("short", events=300, customers=75, faults=1, timeout_s=240)
FULL = Size("full", events=20_000, customers=5_000, faults=5, timeout_s=1800)


@pytest.mark.parametrize("size", sizes(SHORT, FULL))
def test_sigkilled_worker_loses_and_duplicates_nothing(
    size: Size, fault_run: FaultRun, record_fault_report: Callable[[FaultReport], None]
) -> None:
    """Every acknowledged event is once in its timeline and every case routed once, however
    often the worker is SIGKILLed mid-batch."""
    run_seed = seed()
    rng = random.Random(run_seed)
    print(f"seed {run_seed}")
    started = time.monotonic()
    worker = fault_run.process("worker")
    producer = PacedProducer(fault_run, sms_traffic(size.customers, size.events, rng))
    producer.start()
    resolved = fault_run.topic("interactions.resolved")
    kills = 0
    for point in fault_points(rng, size.faults, size.events):
        eventually(
            lambda p=point: fault_run.probe.total(resolved) >= p,  # type: ignore[misc]
            timeout_s=300,
            what=f"identity to resolve {point} events",
        )
        worker.kill()
        kills += 1
        worker.start()
    producer.finish()
    fault_run.wait_drained(timeout_s=300)
    result = fault_run.reconcile(producer.acknowledged)
    record_fault_report(
        FaultReport.of(
            "worker SIGKILL",
            size.name,
            run_seed,
            sent=producer.sent,
            acknowledged=len(producer.acknowledged),
            faults=kills,
            result=result,
            seconds=time.monotonic() - started,
            worker_starts=worker.starts,
        )
    )
    assert kills == size.faults
    assert len(producer.acknowledged) == size.events, f"{producer.refused} writes refused"
    assert result.customers == size.customers
    assert (result.lost, result.duplicated) == (0, 0), fault_run.explain(result)
