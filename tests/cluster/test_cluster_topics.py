"""The 3-node devstack cluster, and the catalogue's topics on it: every partition count the
catalogue declares, 3 replicas in sync, and min.insync.replicas 2."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from cluster.harness import cluster_topics
from omnirouter.devstack.kafka_cluster import KafkaCluster
from omnirouter.events.topics import TOPICS, topic_name

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_cluster_has_three_unfenced_brokers(kafka_cluster: KafkaCluster) -> None:
    """Every node is a broker the controller quorum admitted, reachable at its bootstrap."""
    assert kafka_cluster.status().running
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers.split(","))
    try:
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    assert sorted(b["broker_id"] for b in brokers) == [1, 2, 3]
    assert not any(b["is_fenced"] for b in brokers)
    assert {f"{b['host']}:{b['port']}" for b in brokers} == set(
        kafka_cluster.bootstrap_servers.split(",")
    )


def test_catalogue_topics_get_three_replicas_and_min_isr_two(
    kafka_cluster: KafkaCluster, unique_id: str
) -> None:
    """With OMNIROUTER_KAFKA__REPLICATION_FACTOR=3 and …__MIN_INSYNC_REPLICAS=2, every catalogue
    topic has its declared partitions, each on 3 in-sync replicas, and min ISR 2."""
    prefix = f"cluster.{unique_id}."
    names = cluster_topics(kafka_cluster.bootstrap_servers, prefix)
    declared = {topic_name(spec, prefix): spec.partitions for spec in TOPICS}
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers.split(","))
    try:
        described = {t["name"]: t for t in admin.describe_topics(names)}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )["topic"]
    finally:
        admin.close()
    assert set(described) == set(declared)
    for name, topic in described.items():
        partitions = topic["partitions"]
        assert len(partitions) == declared[name], name
        assert {len(p["replica_nodes"]) for p in partitions} == {3}, name
        assert {len(p["isr_nodes"]) for p in partitions} == {3}, name
        assert configs[name]["min.insync.replicas"]["value"] == "2", name
