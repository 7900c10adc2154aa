"""What every stream worker shares: batches that finish, and publishing that is acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust

from omnirouter.events import DeadLetter, EventEnvelope, encode, topic_spec
from omnirouter.events.oversize import RECORD_FRAMING_BYTES, oversized_dead_letter
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_published
from omnirouter.pipeline.retry import until_it_succeeds
from omnirouter.stopping import end_process_now

if TYPE_CHECKING:
    from omnirouter.settings import PipelineSettings

log = get_logger(__name__)

# How long a stopping worker lets an in-flight batch finish, so that its work is committed rather
# than done again after the restart (take_ready leaves a batch closed unfinished unacked).
FINISH_ON_STOP_S = 30.0


# Kafka refuses a record over the producer's max_request_size (see pipeline.app) or the broker's
# message.max.bytes (1 MiB + 12 by default). faust raises the first as ProducerSendError, which
# the retry loop does not retry (its cause is not retriable) and the batch would fail; aiokafka
# reports the second as a KafkaError, which the retry loop treats as transient. Either way one
# oversized record would stop the stream: it becomes a dead letter before it is sent.


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish: the catalogue key of its topic, its Kafka key and the event."""

    topic_key: str
    key: str
    event: EventEnvelope


async def finish_even_if_stopping(
    batch_work: Awaitable[None], *, end_process: Callable[[str], object] | None = None
) -> None:
    """Run a batch to completion even when the agent is cancelled meanwhile.

    A batch still unfinished ``FINISH_ON_STOP_S`` after the cancellation ends the process
    (``end_process``, by default :func:`end_process_now`), as SIGKILL would: the batch stays
    uncommitted and is delivered again. Giving up any other way would hand control back to
    faust, which acks a batch of its own take_events when the agent leaves it and commits on
    stop, or, by raising, send the batch to the dead-letter topic (which it used to do).
    """
    task = asyncio.ensure_future(batch_work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=FINISH_ON_STOP_S)
        except TimeoutError:
            reason = f"a batch did not finish within {FINISH_ON_STOP_S:g} s of the stop"
            (end_process or end_process_now)(reason)
        raise


async def finish_or_dead_letter(
    app: faust.App,
    batch: Sequence[Any],
    batch_work: Awaitable[None],
    *,
    stage: str,
    topic_prefix: str,
    max_backoff_s: float,
) -> None:
    """Run a batch like :func:`finish_even_if_stopping`; should it fail in a way no retry
    inside it handles (a bug, a record no code path foresaw), its records go to the dead-letter
    topic with the stage and the error, and the stream goes on.

    Without this, faust's agent would crash and stop consuming while the process lives on:
    every later event would wait, unseen. Re-driving the letters after a fix is idempotent
    (event_id), so records the batch had already applied change nothing the second time.
    """

    async def work_then_mark_finished() -> None:
        await batch_work
        _mark_finished(batch)

    try:
        await finish_even_if_stopping(work_then_mark_finished())
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("batch failed; its records go to the dead-letter topic", stage=stage)
        reason = f"unexpected {type(exc).__name__} in {stage}: {exc}"[:2000]
        letters = []
        for item in batch:
            message = item.message
            key = message.key or b""
            letter = DeadLetter.for_payload(
                message.value if message.value is not None else b"",
                key,
                stage=stage,
                reason=reason,
                error_type=f"Unexpected.{type(exc).__name__}",
                source_topic=message.topic,
                source_partition=message.partition,
                source_offset=message.offset,
            )
            letters.append(Outgoing("deadletter", key.decode("utf-8", "replace"), letter))
        await publish(
            app,
            letters,
            topic_prefix=topic_prefix,
            what=f"{stage}.deadletter",
            max_backoff_s=max_backoff_s,
        )
        count_published(stage, letters)
        _mark_finished(batch)


def _mark_finished(batch: Sequence[Any]) -> None:
    if isinstance(batch, Batch):
        batch.finished = True


class Batch(list[Any]):
    """Events :func:`take_ready` hands over; ``finished`` once their work is done, which
    :func:`finish_or_dead_letter` records (applied and published, or dead-lettered)."""

    finished = False


def take_ready(
    stream: Any, max_: int, *, within: float, linger: float = 0.0
) -> AsyncGenerator[Batch, None]:
    """Batches of up to ``max_`` events from ``stream``, each handed over once no more are
    waiting (and its first event is at least ``linger`` seconds old).

    faust's ``take_events`` waits the whole ``within`` for every batch that is not full, so
    each stage added that wait to every event's latency even on an idle system (two stages at
    50 ms: a p50 of 140-170 ms at half the sustainable rate). Here a batch goes as soon as the
    stream's queue is empty: at low load an event goes through (nearly) alone, and under load
    the events that arrived while the previous batch was processed make the next one, so
    batches grow with the load without anyone waiting for them. ``linger`` trades a little
    latency for bigger batches (fewer Redis round trips); ``within`` bounds any one wait, so a
    steady trickle that never empties the queue still moves.

    A batch's events are acked when its consumer comes back for the next one, or when the
    generator is closed (the stage stopping) after the batch was finished; never for a batch
    closed unfinished (faust's ``take_events`` acks it then too), so no offset is committed
    past an event whose batch is unfinished. ``linger`` is capped by
    ``within`` (the settings refuse a longer one).
    """
    batches = _take_ready(stream, max_, within, linger)
    # As faust registers its own take generators: a stopping stream closes what is left open.
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(batches)
    return batches


def pipeline_batches(stream: Any, pipeline: PipelineSettings) -> AsyncGenerator[Batch, None]:
    """:func:`take_ready` with a worker's batch settings."""
    return take_ready(
        stream,
        pipeline.batch_max,
        within=pipeline.batch_within_s,
        linger=pipeline.batch_linger_s,
    )


async def _take_ready(
    stream: Any, max_: int, within: float, linger: float
) -> AsyncGenerator[Batch, None]:
    buffer: list[Any] = []
    loop = asyncio.get_running_loop()
    first_at = 0.0
    linger_timer: asyncio.TimerHandle | None = None
    ready = asyncio.Event()
    taken = asyncio.Event()  # set while the consumer may be handed more events
    taken.set()
    queue_empty = stream.channel.queue.empty  # what the stream itself reads from

    async def add_to_buffer(value: Any) -> Any:
        # Holds the drainer while a batch is being processed, so a batch never changes under
        # its consumer and never exceeds max_.
        nonlocal first_at, linger_timer
        try:
            await taken.wait()
            event = stream.current_event
            if event is None:
                raise RuntimeError("the take buffer found no current event")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as take_events: the stream crashes, it does not stall
            await stream.crash(exc)
            return value
        buffer.append(event)
        if len(buffer) == 1:
            first_at = loop.time()
        if len(buffer) >= max_:
            taken.clear()
            ready.set()
        elif queue_empty():
            wait_s = first_at + linger - loop.time()
            if wait_s <= 0:
                ready.set()
            elif linger_timer is None:
                linger_timer = loop.call_later(wait_s, ready.set)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked below, only once the batch is done
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))  # as take_events: drains into add_to_buffer
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(ready, timeout=within)
            if not buffer:
                continue
            taken.clear()
            batch = Batch(buffer)
            came_back = False
            try:
                yield batch
                came_back = True
            finally:
                buffer.clear()
                ready.clear()
                if linger_timer is not None:
                    linger_timer.cancel()
                    linger_timer = None
                # faust's take_events acks here unconditionally: a generator closed while its
                # batch is still in flight (the stream stopping under a batch that
                # finish_even_if_stopping is completing) would have the batch's offsets
                # committed even if it never finishes. Unacked, it is delivered again.
                if came_back or batch.finished:
                    for event in batch:
                        await stream.ack(event)
                taken.set()
    finally:
        if linger_timer is not None:
            linger_timer.cancel()
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)


def raw_topic(app: faust.App, name: str) -> Any:
    """A faust topic whose keys and values reach the agent as the bytes on the wire.

    Decoding is ours (with dead letters for what does not decode), so nothing is dropped by a
    codec error inside faust.
    """
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


async def publish(
    app: faust.App,
    outgoing: Sequence[Outgoing],
    *,
    topic_prefix: str,
    what: str,
    max_backoff_s: float,
) -> None:
    """Publish every record and return once Kafka acknowledged all of them.

    Retrying a whole batch may publish some records twice; every record carries a
    deterministic event_id and consumers are idempotent on it.
    """
    if not outgoing:
        return
    limit = int(app.conf.producer_max_request_size) - RECORD_FRAMING_BYTES
    stage = what.split(".")[0]
    records = [_fitting(item, topic_prefix, stage=stage, limit=limit) for item in outgoing]

    await publish_records(app, records, what=what, max_backoff_s=max_backoff_s)


async def publish_records(
    app: faust.App,
    records: Sequence[tuple[str, bytes | None, bytes | None]],
    *,
    what: str,
    max_backoff_s: float,
) -> None:
    """Send (topic, key, value) records as they are and return once Kafka acknowledged all of
    them, the whole batch sent again after a failure (see :func:`publish`)."""
    # aiokafka fails a batch it could not deliver within the producer's request timeout, but a
    # delivery that hangs anyway must not hold the stage (and every offset commit) for good:
    # past this deadline the whole batch is published again (idempotent on event_id).
    deadline_s = 2.5 * float(app.conf.producer_request_timeout)

    async def send_all() -> None:
        producer = app.producer
        pending: list[asyncio.Future[Any]] = []
        async with asyncio.timeout(deadline_s):
            for topic, key, value in records:
                sent = await producer.send(topic, key, value, None, None, None)
                pending.append(asyncio.ensure_future(sent))  # already a future: kept as is
        # asyncio.wait, not gather under a timeout: the futures are aiokafka's, left to settle.
        done, late = await asyncio.wait(pending, timeout=deadline_s)
        for future in late:  # their outcome no longer matters, but is retrieved, not warned of
            future.add_done_callback(retrieve_outcome)
        errors = [error for future in done if (error := future.exception()) is not None]
        if errors:
            raise errors[0]
        if late:
            raise TimeoutError(
                f"{len(late)} of {len(pending)} records unacknowledged after {deadline_s:g} s"
            )

    await until_it_succeeds(send_all, what=what, max_backoff_s=max_backoff_s)


def retrieve_outcome(future: asyncio.Future[Any]) -> None:
    """A done-callback for a future nobody awaits any more: reads its error, so asyncio does
    not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _fitting(
    item: Outgoing, topic_prefix: str, *, stage: str, limit: int
) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of ``item``, or of a dead letter in its place when it is too big."""
    topic = topic_spec(item.topic_key).name(topic_prefix)
    key, value = item.key.encode(), encode(item.event)
    if len(key) + len(value) <= limit:
        return topic, key, value
    letter = oversized_dead_letter(item.event, value, key, topic=topic, stage=stage, limit=limit)
    return topic_spec("deadletter").name(topic_prefix), key, encode(letter)
