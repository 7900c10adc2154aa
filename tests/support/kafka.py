"""Reading what the pipeline published, from the real broker, without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as SyncTopicPartition

from omnirouter.connections import ensure_topics
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import KafkaSettings, Settings
from support.waiting import eventually_async

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class TopicReader:
    """Reads topics from the beginning (no consumer group) and keeps every record seen."""

    def __init__(self, bootstrap_servers: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._consumer: AIOKafkaConsumer | None = None
        self.records: list[Record] = []

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        partitions = []
        for topic in self._topics:
            for partition in self._consumer.partitions_for_topic(topic) or await self._partitions(
                topic
            ):
                partitions.append(TopicPartition(topic, partition))
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        return self

    async def _partitions(self, topic: str) -> set[int]:
        assert self._consumer is not None
        await self._consumer._client.force_metadata_update()
        return self._consumer.partitions_for_topic(topic) or {0}

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> None:
        """Append whatever arrived since the last poll."""
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=100)
        for tp, messages in batches.items():
            for m in messages:
                self.records.append(Record(tp.topic, tp.partition, m.offset, m.key, m.value))

    def on(self, topic: str) -> list[Record]:
        """The records read so far from ``topic``."""
        return [r for r in self.records if r.topic == topic]

    async def wait_for(
        self,
        probe: Callable[[TopicReader], T | None],
        *,
        timeout_s: float = 30.0,
        what: str = "records",
    ) -> T:
        """Poll until ``probe(self)`` is truthy; fail after ``timeout_s``."""

        async def polled() -> T | None:
            await self.poll()
            value: T | None = probe(self)
            return value

        try:
            return await eventually_async(polled, timeout_s=timeout_s, what=what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; have { {t: len(self.on(t)) for t in self._topics} }"
            ) from None

    def decoded(self, topic: str, model: type[Any]) -> list[Any]:
        """The records of ``topic`` parsed as ``model``."""
        return [model.model_validate_json(r.value) for r in self.on(topic)]


async def records_on(bootstrap_servers: str | list[str], topic: str) -> int:
    """How many records ``topic`` holds right now (the sum of its partitions' ends)."""

    def count() -> int:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([SyncTopicPartition(topic, p) for p in partitions])
            return sum(ends.values())
        finally:
            consumer.close()

    return await asyncio.to_thread(count)


def create_catalogue(bootstrap_servers: str, prefix: str, *, max_partitions: int) -> None:
    """The topic catalogue under a test's own ``prefix``, with at most ``max_partitions`` per
    topic (fewer partitions: faster group joins, same semantics)."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap_servers, topic_prefix=prefix)
    )
    ensure_topics(
        bootstrap_servers,
        [
            t._replace(partitions=min(t.partitions, max_partitions))
            for t in catalogue_topics(settings)
        ],
    )
