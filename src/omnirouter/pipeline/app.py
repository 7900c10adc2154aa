"""The faust-streaming application every pipeline worker runs in."""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import faust
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from omnirouter.logs import get_logger
from omnirouter.pipeline.fetching import (
    BUSY_FETCH,
    BUSY_FROM_RECORDS_PER_S,
    FetchSizer,
    FetchSizing,
)
from omnirouter.pipeline.stepping import FirstStepWins, Waiting, start_eagerly
from omnirouter.security import faust_broker_credentials

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

    from omnirouter.settings import KafkaSettings

log = get_logger(__name__)


def create_app(
    app_id: str,
    bootstrap_servers: str,
    *,
    replication_factor: int = 1,
    security: KafkaSettings | None = None,
    busy_fetch: FetchSizing = BUSY_FETCH,
    busy_from_records_per_s: float = BUSY_FROM_RECORDS_PER_S,
    **overrides: Any,
) -> faust.App:
    """A faust app configured for omnirouter's delivery guarantees.

    Agents on this app must be declared with ``concurrency=1``: with more, faust-streaming can
    commit an offset past a message that is still being processed (faust-streaming #606), and a
    crash then loses it. ``processing_guarantee`` stays at-least-once on purpose; idempotency on
    ``event_id`` makes redelivery harmless, while faust's exactly-once mode is not relied on.

    ``security`` brings the cluster's SASL/TLS settings and its replication factor (for the
    topics faust declares itself).
    """
    if security is not None and security.replication_factor is not None:
        replication_factor = security.replication_factor
    brokers = [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")]
    config: dict[str, Any] = {
        "broker": brokers,
        "store": "memory://",
        # faust creates "<app id>-data/v1/tables" in the working directory even with the memory
        # store: empty, but one per app id (tests use hundreds), littering wherever a worker runs.
        "datadir": str(faust_datadir() / "{conf.name}"),
        # Workers expose metrics through omnirouter's own ops server, not faust's web views.
        "web_enabled": False,
        "topic_replication_factor": replication_factor,
        "topic_allow_declare": True,
        "topic_disable_leader": True,
        # A new consumer group starts from the beginning: nothing already on the log is skipped.
        "consumer_auto_offset_reset": "earliest",
        # Wait for every in-sync replica before a produced record counts as written.
        "producer_acks": -1,
        # faust's default (1,000,000 bytes) is below Kafka's own 1 MiB: an event with a text of
        # the contract's maximum length (1M characters) would not fit on interactions.resolved.
        "producer_max_request_size": 1_048_576,
        # faust's default is 20 minutes: aiokafka's producer uses it both as the broker-side
        # wait for acks=all and as the age at which an undeliverable batch fails. With a broker
        # gone, a batch caught in between then held its stage batch (and every commit, which
        # flushes the producer) for minutes. Failing it after 30 s lets the stage's retry
        # publish again, which is harmless: every record carries its deterministic event_id.
        "producer_request_timeout": 30.0,
        # A case announcement carries the story so far (~10 KB): with faust's 16 KiB producer
        # batches nearly every record was a batch of its own, and aiokafka keeps one batch per
        # partition in flight, so a worker's batch went out as a queue of acks=all round trips
        # per partition. Bigger batches carry a stage batch's records for a partition in a few
        # requests; half of the broker's 1 MiB message.max.bytes, which applies to a batch.
        "producer_max_batch_size": 524_288,
        "producer_partitioner": partition_for_key,
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
    }
    credentials = faust_broker_credentials(security)
    if credentials is not None:
        config["broker_credentials"] = credentials
    config.update(overrides)
    app = _App(app_id, **config)
    app.fetch_policy = (busy_fetch, busy_from_records_per_s)
    return app


def partition_for_key(
    key: bytes | bytearray | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """The partition aiokafka's default partitioner picks (Kafka's murmur2 of the key, as the
    Java client does, so every producer of a key agrees), with each recent key's hash kept.

    aiokafka computes murmur2 in pure Python, for every record: 2.5 % of a worker's CPU in a
    backlog catch-up (py-spy). A worker writes 3.5 records per event, nearly all keyed by the
    same customer, so most hashes are ones it has just computed.
    """
    if key is None:
        return int(_DEFAULT_PARTITIONER(key, all_partitions, available))
    return all_partitions[_positive_murmur2(bytes(key)) % len(all_partitions)]


_DEFAULT_PARTITIONER = DefaultPartitioner()


# A few thousand keys cover the customers of the batches in flight; ~200 bytes each.
@functools.lru_cache(maxsize=4096)
def _positive_murmur2(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


# faust asks the broker to hold a fetch for up to 1.5 s (hard-coded) until one of its partitions
# has data, and aiokafka keeps one fetch in flight per broker, built from the partitions that
# have nothing buffered. So once a worker had consumed what it held, the partitions it had just
# emptied could not be fetched again until that parked request came back: the whole worker
# stood still for up to 1.5 s, again and again under a backlog (measured: getmany returning
# nothing for 1.0 s while thousands of events waited; throughput at 1.4x overload fell to half
# the sustainable rate, with the worker half idle). 100 ms bounds that wait; an idle worker
# then polls ten times a second instead of once every 1.5 s.
FETCH_MAX_WAIT_MS = 100


# A light worker's fetches: answered as soon as there is a record, held at most FETCH_MAX_WAIT_MS.
LIGHT_FETCH = FetchSizing(min_bytes=1, max_wait_ms=FETCH_MAX_WAIT_MS)


# The fetch sizer's clock (a name of its own, so a test can drive it without the event loop's).
_monotonic = time.monotonic


def _size_fetches(target: Any, sizing: FetchSizing) -> None:
    """Set ``sizing`` where aiokafka reads it: on a consumer not yet started, or its fetcher.

    Both keep the two values under the same private names.
    """
    target._fetch_min_bytes = sizing.min_bytes
    target._fetch_max_wait_ms = sizing.max_wait_ms


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    # Set with the worker consumer; a client-only app (faust's start_client) has none, and its
    # fetches keep aiokafka's sizing.
    _sizer: FetchSizer | None = None

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        busy, busy_from = cast("_App", self.app).fetch_policy
        self._sizer = FetchSizer(LIGHT_FETCH, busy, busy_from)
        # Read once, in AIOKafkaConsumer.start(), to build its fetcher; faust offers no setting.
        # Later changes go to the fetcher itself (below).
        _size_fetches(consumer, self._sizer.current)
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - faust's signature, passed on as is
        max_records: int | None = None,
    ) -> Any:
        # Runs on this thread's loop, as the fetcher does: nothing here is shared with another.
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        if self._sizer is None:
            return records
        count = sum(len(batch) for batch in records.values())
        resized = self._sizer.after_fetch(count, _monotonic())
        if resized is not None:
            # aiokafka's fetcher reads both for every fetch request it builds.
            _size_fetches(consumer._fetcher, resized)
            log.debug(
                "worker fetches resized",
                min_bytes=resized.min_bytes,
                max_wait_ms=resized.max_wait_ms,
            )
        return records

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # faust's own calls aiokafka's, which leaves a partition with nothing committed where
        # it is (see seek_to_committed_or_start). faust's type says int, but aiokafka's mapping
        # holds None where nothing is committed, and faust's perform_seek reads it so.
        reset = str(self.app.conf.consumer_auto_offset_reset)
        committed = await self.call_thread(
            seek_to_committed_or_start, self._ensure_consumer(), reset=reset
        )
        return cast("Mapping[TP, int]", committed)


async def seek_to_committed_or_start(
    consumer: AIOKafkaConsumer, *, reset: str = "earliest"
) -> dict[Any, int | None]:
    """Seek every assigned partition to its committed offset, as aiokafka's
    ``seek_to_committed`` does, including one whose committed offset is 0, and one with nothing
    committed to where the reset policy starts it (the beginning, for the worker's
    ``earliest``). Returns the committed offsets, as aiokafka's does (None where there is none).

    faust relies on this seek to fetch again what it fetched and did not process: the records
    of a fetch that came back after a rebalance had stopped its flow (dropped at once, then this
    seek), and those a rebalance left unhandled (records of an earlier generation its streams
    skip, a fetch abandoned half-way), which the seek at the end of the rebalance rewinds.
    aiokafka's seek skips a partition whose committed offset is missing or 0, so on a partition
    nothing had been committed for yet, those records were never fetched again and the first
    ones processed after them were committed past them: acknowledged events lost (the broker
    SIGKILL cluster scenario, early in a run).
    """
    committed: dict[Any, int | None] = await consumer.seek_to_committed()
    # Only what is still assigned: a rebalance may have begun during the committed offsets'
    # round trips, and aiokafka refuses to seek a partition it no longer holds.
    at_zero, unset = starts_to_seek(committed, consumer.assignment())
    for tp in at_zero:
        consumer.seek(tp, 0)
    if unset:
        seek = consumer.seek_to_end if reset == "latest" else consumer.seek_to_beginning
        # Its first step marks the partitions for a reset of their positions and drops what
        # the fetcher holds of them: none is fetched again until its new position is known, and
        # a response in flight from the old one is discarded. The rest only waits for the new
        # positions, up to the request timeout, and a partition whose leader is down would hold
        # every other partition's fetches that long. So that wait is left to run on its own.
        step = start_eagerly(seek(*unset), asyncio.get_running_loop())
        if isinstance(step, Waiting):
            step.task.add_done_callback(_log_reset_error)
    return committed


def starts_to_seek(
    committed: Mapping[Any, int | None], assigned: Collection[Any]
) -> tuple[list[Any], list[Any]]:
    """The partitions aiokafka's seek to committed offsets left where they were, among those
    still ``assigned``: those to seek to 0 (0 committed), and those with nothing committed, to
    reset to where the reset policy starts them."""
    at_zero = [tp for tp, offset in committed.items() if offset == 0 and tp in assigned]
    unset = [tp for tp, offset in committed.items() if offset is None and tp in assigned]
    return at_zero, unset


def _log_reset_error(task: asyncio.Future[Any]) -> None:
    # aiokafka raises here an error its group coordinator had pending (and then forgets it):
    # the worker's own fetches would have raised it, so it must not pass unseen.
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error(
            "resetting partitions with nothing committed failed",
            error=f"{type(error).__name__}: {error}",
        )


class _Consumer(FirstStepWins, faust_aiokafka.Consumer):
    """faust's consumer, handing each fetched record to its stream without a race of four
    tasks when the hand-over finishes at once (``pipeline.stepping``); reading over the thread
    below; and loud about skipped offsets."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # faust counts offsets a fetch skipped as processed (they are transaction markers or
        # compacted records elsewhere). The pipeline's topics have neither, so a gap here means
        # records this worker never saw are about to be committed: say so, loudly, with where.
        # ``offset_to`` is the record just fetched; the ones skipped come before it.
        log.error(
            "the consumer skipped offsets that will be committed unprocessed",
            topic=tp.topic,
            partition=tp.partition,
            first=offset_from,
            last=offset_to - 1,
            skipped=offset_to - offset_from,
        )
        await super()._add_gap(tp, offset_from, offset_to)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _App(faust.App):
    """faust's app on its aiokafka transport, its fetches sized by ``fetch_policy`` (a busy
    worker's sizing, and the records a second from which it applies; see _ConsumerThread)."""

    fetch_policy: tuple[FetchSizing, float] = (BUSY_FETCH, BUSY_FROM_RECORDS_PER_S)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def faust_datadir() -> Path:
    """Where faust's (empty, with the memory store) per-app directories go: the user's own
    folder under the system's temporary directory, created here because faust creates only
    the last level."""
    base = Path(tempfile.gettempdir()) / f"omnirouter-faust-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base
