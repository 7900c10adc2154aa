"""A broker that hangs (SIGSTOP: connections stay open, nothing is answered, as on a frozen
machine or across a partition). Longer than the produce timeout, a worker's sends fail: they are
retried until the broker answers again, and nothing goes to the dead-letter topic. A worker
SIGTERMed meanwhile exits at its stop deadline instead of running on, and a new worker then
processes everything. Nothing is lost or duplicated either way."""

from __future__ import annotations

import random

import pytest

from faults.harness import FaultRun, PacedProducer, sms_traffic
from omnirouter.stopping import EXIT_STOP_DEADLINE
from support.faults import logged_retries
from support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENTS = 60
HANG_AFTER = 30  # events written before the broker hangs


def test_a_worker_stopped_while_the_broker_hangs_exits_at_its_deadline(
    fault_run: FaultRun,
) -> None:
    worker = fault_run.process("worker", OMNIROUTER_OPS__STOP_DEADLINE_S="5")
    producer = PacedProducer(
        fault_run, sms_traffic(10, EVENTS, random.Random(EVENTS)), hold_at=[HANG_AFTER]
    )
    producer.start()
    eventually(lambda: producer.held_at(HANG_AFTER), what=f"{HANG_AFTER} events written")
    resolved = fault_run.topic("interactions.resolved")
    eventually(
        lambda: fault_run.probe.total(resolved) >= HANG_AFTER // 2,
        what="the worker to be processing",
    )
    with fault_run.stack.kafka_hung():
        status = worker.stop()
    # Not the harness's SIGKILL after a minute (-9), nor a clean stop (0): the deadline.
    assert status == EXIT_STOP_DEADLINE, worker.log_tail()
    assert "did not stop within the deadline" in worker.log_tail()

    producer.release()
    fault_run.process("worker")
    producer.finish()
    fault_run.wait_drained(timeout_s=120)
    result = fault_run.reconcile(producer.acknowledged)
    assert len(producer.acknowledged) == EVENTS, f"{producer.refused} writes refused"
    assert (result.lost, result.duplicated) == (0, 0), fault_run.explain(result)


def test_sends_failing_on_a_hung_broker_are_retried_not_dead_lettered(fault_run: FaultRun) -> None:
    worker = fault_run.process("worker")
    # The producer stays a tenth of the run ahead of identity, so when it holds, the worker
    # has up to that many events (and their cases and routings) still to publish: the hang
    # always catches sends in flight.
    events, hang_after = 2 * EVENTS, EVENTS
    producer = PacedProducer(
        fault_run, sms_traffic(10, events, random.Random(events)), hold_at=[hang_after]
    )
    producer.start()
    eventually(lambda: producer.held_at(hang_after), what=f"{hang_after} events written")
    with fault_run.stack.kafka_hung():
        # Until a send has failed in faust's eyes (after the 30 s produce timeout) and been
        # retried: what used to send the whole batch to the dead-letter topic.
        eventually(
            lambda: any(
                str(r.get("what", "")).endswith(".publish")
                for r in logged_retries(worker.log_path, prefix="")
            ),
            timeout_s=120,
            what="a send on the hung broker to fail and be retried",
        )
    producer.release()
    producer.finish()
    fault_run.wait_drained(timeout_s=180)
    result = fault_run.reconcile(producer.acknowledged)
    letters = fault_run.probe.total(fault_run.topic("deadletter"))
    assert len(producer.acknowledged) == events, f"{producer.refused} writes refused"
    assert (result.lost, result.duplicated, letters) == (0, 0, 0), fault_run.explain(result)
