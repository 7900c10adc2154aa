"""Scale scenarios on a cluster stack of their own (`devstack up --cluster`, started once for
the package: 3 Kafka nodes and a 6-node Redis Cluster): workers joining and leaving one
consumer group, a broker killed mid-stream. Each scenario's figures go to a table at the end of
the run, like the fault scenarios'."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.harness import cluster_topics
from faults.harness import FaultRun
from faults.probes import TopicProbe
from faults.report import SCALE_TABLE, FaultReport  # one table for fault and scale runs
from omnirouter.devstack import DevStack
from omnirouter.devstack.kafka_cluster import KafkaCluster
from omnirouter.devstack.stack import stray_broker_pids
from omnirouter.security import redis_sync_client
from omnirouter.settings import DevstackSettings, RedisSettings


@pytest.fixture(scope="package")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`devstack up --cluster` for this package: three Kafka nodes (broker+controller each,
    replication 3, min ISR 2) and a 6-node Redis Cluster, tied to this process. A cluster that
    cannot start fails the scenarios; it never skips them. Stopping it leaves no JVM behind."""
    state_dir = tmp_path_factory.mktemp("cluster-stack")
    stack = DevStack(DevstackSettings(state_dir=state_dir), tie_to_parent=True, cluster=True)
    try:
        stack.up()
    except Exception as exc:
        stack.down()
        pytest.fail(f"the cluster devstack did not start: {exc}", pytrace=False)
    try:
        yield stack
    finally:
        stack.down()
    assert stray_broker_pids(state_dir) == [], "devstack down left Kafka nodes running"


@pytest.fixture
def kafka_cluster(cluster_stack: DevStack) -> KafkaCluster:
    """The Kafka nodes of the cluster stack, to kill and restart — all three running when the
    test starts, whatever an earlier scenario that failed half-way left down."""
    cluster = cluster_stack.kafka_cluster()
    for index in range(len(cluster.nodes())):
        cluster.restart(index)  # returns at once for a node that runs
    return cluster


@pytest.fixture
def cluster_run(
    cluster_stack: DevStack,
    kafka_cluster: KafkaCluster,
    unique_id: str,
    tmp_path: Path,
    keep_logs_if_failed: Callable[[Path], None],
) -> Iterator[FaultRun]:
    """A router of this scenario's own on the cluster stack: the catalogue's topics (its
    partition counts, 3 replicas, min ISR 2) and keys under a private prefix in the Redis
    Cluster."""
    addresses = cluster_stack.status().addresses
    assert addresses is not None, "the cluster stack is not up"
    prefix = f"cluster.{unique_id}."
    cluster_topics(addresses.kafka_bootstrap_servers, prefix)
    run = FaultRun(
        stack=None,  # type: ignore[arg-type]  # nodes are killed through kafka_cluster instead
        addresses=addresses,
        prefix=prefix,
        redis_prefix=f"cluster:{unique_id}",
        logs=tmp_path / "logs",
        probe=TopicProbe(addresses.kafka_bootstrap_servers),
        redis=redis_sync_client(RedisSettings(cluster=True), addresses.redis_url),
    )
    try:
        yield run
    finally:
        try:
            run.close()
        finally:
            keep_logs_if_failed(run.logs)


@pytest.fixture
def record_scale_report(request: pytest.FixtureRequest) -> Callable[[FaultReport], None]:
    """Add a scenario's figures to the end-of-run table (call it before asserting); the table
    is printed by tests/conftest.py."""
    return SCALE_TABLE.recorder(request.node)
