"""What the scale scenarios add to the fault harness: the catalogue's topics replicated on the
cluster, several workers in one consumer group, who owns which partition, and per-customer
order in the timelines."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaAdminClient
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment

from faults.harness import FaultRun, PacedProducer
from faults.probes import PIPELINE_GROUP
from faults.reconcile import Reconciliation
from faults.report import FaultReport
from faults.sizes import Size
from omnirouter.connections import ensure_topics
from omnirouter.events import DEFAULT_TENANT
from omnirouter.redis_keys import CustomerCaseKeys, IdentityKeys
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import KafkaSettings, Settings
from support.faults import RouterProcess, router_environment

# What `omnirouter devstack up --cluster` tells the router to use on the cluster.
CLUSTER_ENVIRONMENT = {
    "OMNIROUTER_KAFKA__REPLICATION_FACTOR": "3",
    "OMNIROUTER_KAFKA__MIN_INSYNC_REPLICAS": "2",
    "OMNIROUTER_REDIS__CLUSTER": "true",
}
# faults.harness.sms_traffic writes "message <n> from customer <c>", n in production order.
_SEQUENCE = re.compile(r"^message (\d+) from customer")


def cluster_settings(bootstrap_servers: str, prefix: str) -> Settings:
    """The router's Kafka settings on the cluster, as CLUSTER_ENVIRONMENT sets them."""
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap_servers,
            topic_prefix=prefix,
            replication_factor=3,
            min_insync_replicas=2,
        )
    )


def cluster_topics(bootstrap_servers: str, prefix: str) -> list[str]:
    """Create the catalogue's topics under ``prefix`` with its partition counts, 3 replicas and
    min ISR 2 (as ``omnirouter`` creates them with CLUSTER_ENVIRONMENT); returns their names."""
    topics = catalogue_topics(cluster_settings(bootstrap_servers, prefix))
    ensure_topics(bootstrap_servers, topics)  # returns once the new topics have leaders
    return [t.name for t in topics]


def start_worker(run: FaultRun, number: int) -> RouterProcess:
    """``omnirouter worker`` number ``number`` of the run, started; it joins the one group.

    Each worker has a folder of its own: its log, its ready file and faust's data directory.
    """
    env = router_environment(run.addresses, prefix=run.prefix, redis_prefix=run.redis_prefix)
    worker = RouterProcess("worker", env | CLUSTER_ENVIRONMENT, run.logs / f"worker-{number}")
    run.processes.append(worker)
    worker.start()
    return worker


def group_assignment(
    bootstrap_servers: str, topics: list[str], group: str = PIPELINE_GROUP
) -> dict[str, set[tuple[str, int]]] | None:
    """Member id -> the partitions of ``topics`` it owns, once the group is Stable (else None)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if described["group_state"] != "Stable":
        return None
    owned: dict[str, set[tuple[str, int]]] = {}
    for member in described["members"]:
        assignment = member["member_assignment"]
        if isinstance(assignment, bytes):  # kafka-python leaves what it could not decode
            assignment = ConsumerProtocolAssignment.decode(assignment).to_dict()
        owned[member["member_id"]] = {
            (t["topic"], p)
            for t in assignment["assigned_partitions"]
            if t["topic"] in topics
            for p in t["partitions"]
        }
    return owned


def timeline_sequences(run: FaultRun, acknowledged: dict[str, str]) -> dict[str, list[int]]:
    """Customer -> the sequence numbers of the messages on their timeline, in timeline order."""
    addresses = sorted(set(acknowledged.values()))
    identity = IdentityKeys(run.redis_prefix, DEFAULT_TENANT)
    owners = {o.decode() for o in run.redis.hmget(identity.identifier_owner, addresses) if o}
    found: dict[str, list[int]] = defaultdict(list)
    for customer in sorted(owners):
        keys = CustomerCaseKeys(run.redis_prefix, DEFAULT_TENANT, customer)
        for raw in run.redis.lrange(keys.timeline, 0, -1):
            entry = orjson.loads(raw)
            match = _SEQUENCE.match(entry.get("text") or "")
            if entry.get("kind") == "message" and match:
                found[customer].append(int(match.group(1)))
    return dict(found)


def out_of_order(sequences: dict[str, list[int]]) -> dict[str, list[int]]:
    """The customers whose messages are not on their timeline in the order they were produced
    (sms_traffic numbers events in production order), with their sequence."""
    return {c: seq for c, seq in sequences.items() if seq != sorted(seq)}


@dataclass
class Audit:
    """After a scenario drained: what was lost, duplicated and reordered."""

    producer: PacedProducer
    result: Reconciliation
    sequences: dict[str, list[int]]
    explanation: str

    @property
    def disorder(self) -> dict[str, list[int]]:
        """Customers whose timeline is out of production order."""
        return out_of_order(self.sequences)

    def report(
        self,
        scenario: str,
        size: Size,
        run_seed: int,
        *,
        faults: int,
        started: float,
        **details: Any,
    ) -> FaultReport:
        """The scenario's row in the end-of-run table."""
        return FaultReport.of(
            scenario,
            size.name,
            run_seed,
            sent=self.producer.sent,
            acknowledged=len(self.producer.acknowledged),
            faults=faults,
            result=self.result,
            seconds=time.monotonic() - started,
            customers_out_of_order=len(self.disorder),
            **details,
        )

    def assert_exactly_once_in_order(self) -> None:
        """Nothing lost or duplicated, every acknowledged event seen by the order check, and
        every customer's messages in the order they were produced."""
        assert (self.result.lost, self.result.duplicated) == (0, 0), self.explanation
        checked = sum(len(s) for s in self.sequences.values())
        assert checked == len(self.producer.acknowledged), f"order checked on {checked} events"
        shown = dict(list(self.disorder.items())[:3])
        assert not self.disorder, f"timelines out of production order: {shown}"


def audit(run: FaultRun, producer: PacedProducer, *, drain_timeout_s: float = 120) -> Audit:
    """Wait until the group committed everything, then reconcile Redis and cases.routed."""
    run.wait_drained(timeout_s=drain_timeout_s)
    result = run.reconcile(producer.acknowledged)
    sequences = timeline_sequences(run, producer.acknowledged)
    return Audit(producer, result, sequences, run.explain(result))
