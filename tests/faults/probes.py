"""What Kafka says about a fault run: end offsets, a group's committed offsets, whole topics.

Synchronous (kafka-python) on purpose: the fault scenarios drive child processes and servers
from plain threads, and these reads happen between those steps.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError

from support.waiting import eventually

# faust names the consumer group after the app: `omnirouter worker` runs "omnirouter-pipeline".
PIPELINE_GROUP = "omnirouter-pipeline"


class TopicProbe:
    """One kafka-python consumer (no group) and admin client, for reading offsets."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
        )
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic``."""
        found = self._consumer.partitions_for_topic(topic)
        assert found, f"no partitions for {topic}"
        return [TopicPartition(topic, p) for p in sorted(found)]

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> the offset the next record written there will get."""

        def read() -> dict[int, int] | None:
            try:
                ends = self._consumer.end_offsets(self.partitions(topic))
            except KafkaConnectionError:
                return None  # a broker was just killed: the next attempt asks another one
            return {tp.partition: offset for tp, offset in ends.items()}

        return eventually(read, timeout_s=60, what=f"the end offsets of {topic}")

    def total(self, topic: str) -> int:
        """Records ever written to ``topic`` (all partitions)."""
        return sum(self.end_offsets(topic).values())

    def committed(self, topic: str, group: str = PIPELINE_GROUP) -> dict[int, int]:
        """Partition -> the group's committed offset (0 where it committed nothing yet)."""
        found = self._admin.list_group_offsets({group: None}).get(group, {})
        offsets = {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}
        return {
            p.partition: max(offsets.get((topic, p.partition), 0), 0)
            for p in self.partitions(topic)
        }

    def drained(self, *topics: str, group: str = PIPELINE_GROUP) -> bool:
        """True when ``group`` committed up to the end of every partition of ``topics``; False
        while the broker cannot say yet (its group coordinator is loading after a restart)."""
        try:
            return all(self.committed(t, group) == self.end_offsets(t) for t in topics)
        except KafkaError as exc:
            if exc.retriable:
                return False
            raise

    def read_all(self, topic: str, *, timeout_s: float = 60.0) -> list[bytes]:
        """Every record value of ``topic``, from the beginning up to its current end."""
        return [value for _, _, value in self.read_records(topic, timeout_s=timeout_s)]

    def read_records(self, topic: str, *, timeout_s: float = 60.0) -> list[tuple[int, int, bytes]]:
        """(partition, offset, value) of every record of ``topic`` up to its current end."""
        partitions = self.partitions(topic)
        ends = self._consumer.end_offsets(partitions)
        reader = KafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        try:
            reader.assign(partitions)
            reader.seek_to_beginning(*partitions)
            records: list[tuple[int, int, bytes]] = []
            deadline = time.monotonic() + timeout_s
            while any(reader.position(tp) < ends[tp] for tp in partitions):
                assert time.monotonic() < deadline, f"could not read {topic} in {timeout_s:g} s"
                for batch in reader.poll(timeout_ms=500).values():
                    records.extend((r.partition, r.offset, r.value) for r in batch)
            return [r for r in records if r[1] < ends[TopicPartition(topic, r[0])]]
        finally:
            reader.close()
