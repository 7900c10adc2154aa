"""A worker (re)started while one broker of three is down (a crashed machine, a rolling
restart) starts and works: its start-up check goes on to the brokers that answer instead of
giving up on the first it asks, which may be the dead one the metadata still names until the
controller fences it (4 s on this cluster)."""

from __future__ import annotations

import random
import time

import pytest

from cluster.harness import audit, start_worker
from faults.harness import FaultRun, PacedProducer, sms_traffic
from omnirouter.connections import wait_for_kafka
from omnirouter.devstack.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

# Start-up checks made right after the kill, while the metadata still names the dead broker.
CHECKS = 8


def test_worker_starts_and_loses_nothing_with_one_broker_down(
    kafka_cluster: KafkaCluster, cluster_run: FaultRun
) -> None:
    bootstrap = cluster_run.addresses.kafka_bootstrap_servers
    node = random.randrange(len(kafka_cluster.nodes()))
    kafka_cluster.kill(node)
    try:
        killed_at = time.monotonic()
        for _ in range(CHECKS):
            wait_for_kafka(bootstrap, timeout_s=30)
        print(f"{CHECKS} checks passed {time.monotonic() - killed_at:.1f} s after the kill")
        start_worker(cluster_run, 1)
        producer = PacedProducer(cluster_run, sms_traffic(10, 40, random.Random(node)))
        producer.start()
        producer.finish()
        outcome = audit(cluster_run, producer)
    finally:
        kafka_cluster.restart(node)
    assert len(producer.acknowledged) == 40, f"{producer.refused} writes refused"
    outcome.assert_exactly_once_in_order()
