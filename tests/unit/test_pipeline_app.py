"""The faust app every worker runs in: what it is configured with beyond faust's defaults."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP
from pydantic import ValidationError
from structlog.testing import capture_logs

from omnirouter.pipeline.app import (
    FETCH_MAX_WAIT_MS,
    _log_reset_error,
    create_app,
    partition_for_key,
    starts_to_seek,
)
from omnirouter.pipeline.fetching import BUSY_FETCH, BUSY_FROM_RECORDS_PER_S, FetchSizing
from omnirouter.settings import PipelineSettings


def test_faust_keeps_its_directories_out_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app("datadir-test", "127.0.0.1:9")
    app._create_directories()  # what faust does when the worker starts
    assert list(tmp_path.iterdir()) == []
    assert app.conf.datadir.name == "datadir-test"
    assert app.conf.datadir.is_dir()
    assert not app.conf.datadir.is_relative_to(tmp_path)


def test_a_produce_request_fails_in_seconds_not_faust_s_twenty_minutes() -> None:
    app = create_app("timeout-test", "127.0.0.1:9")
    # publish() gives up on a delivery after 2.5x this and republishes (idempotent on event_id).
    assert app.conf.producer_request_timeout <= 60


async def test_the_worker_consumer_holds_a_fetch_at_most_a_tenth_of_a_second() -> None:
    # faust hard-codes 1.5 s; with one fetch in flight per broker, that stalled a worker whose
    # other partitions had data waiting (see pipeline/app.py).
    app = create_app("fetch-wait-test", "127.0.0.1:9")
    thread = app.consumer._thread
    consumer = thread._create_consumer(asyncio.get_running_loop())
    try:
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS <= 100
        assert consumer._group_id == "fetch-wait-test"  # still faust's worker consumer
    finally:
        await consumer.stop()
        thread.thread_loop.close()  # the consumer thread's own loop, never started here


async def test_a_worker_consumer_starts_with_fetches_answered_at_once() -> None:
    app = create_app("fetch-size-test", "127.0.0.1:9")
    thread = app.consumer._thread
    consumer = thread._create_consumer(asyncio.get_running_loop())
    try:
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (1, FETCH_MAX_WAIT_MS)
    finally:
        await consumer.stop()
        thread.thread_loop.close()


class _Fetcher:
    """What faust's _fetch_records touches of aiokafka's fetcher, handing out given batches."""

    _closed = False

    def __init__(self, batches: list[dict[TP, list[object]]]) -> None:
        self._batches = batches
        self._subscriptions = SimpleNamespace(fetch_context=contextlib.nullcontext)
        self._fetch_min_bytes = 1
        self._fetch_max_wait_ms = FETCH_MAX_WAIT_MS

    async def fetched_records(
        self,
        partitions: object,
        timeout: float | None,  # noqa: ASYNC109 - aiokafka's signature
        max_records: int | None,
    ) -> dict[TP, list[object]]:
        return self._batches.pop(0)


async def test_a_worker_reading_enough_records_asks_for_fuller_fetches_and_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(
        "fetch-busy-test",
        "127.0.0.1:9",
        busy_fetch=FetchSizing(min_bytes=32_768, max_wait_ms=15),
        busy_from_records_per_s=100,
    )
    thread = app.consumer._thread
    consumer = thread._create_consumer(asyncio.get_running_loop())
    clock = iter([0.0, 1.0, 2.0])  # one fetch a second
    monkeypatch.setattr("omnirouter.pipeline.app._monotonic", lambda: next(clock))
    tp = TP("omnirouter.interactions.inbound", 0)
    fetcher = _Fetcher([{tp: [object()] * 150}, {tp: [object()] * 150}, {}])
    stub = SimpleNamespace(_closed=False, _fetcher=fetcher)
    try:
        sizes = []
        for _ in range(3):
            await thread._fetch_records(stub, {tp}, timeout=0.0, max_records=None)
            sizes.append((fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms))
    finally:
        await consumer.stop()
        thread.thread_loop.close()
    # The first fetch opens the window; 150 records in the second second are busy; none in the
    # third is light again.
    assert sizes == [(1, FETCH_MAX_WAIT_MS), (32_768, 15), (1, FETCH_MAX_WAIT_MS)]


async def test_a_client_only_consumer_fetches_without_a_sizer() -> None:
    # faust's start_client() builds another consumer, without _create_worker_consumer.
    app = create_app("fetch-client-test", "127.0.0.1:9")
    thread = app.consumer._thread
    tp = TP("omnirouter.interactions.inbound", 0)
    fetcher = _Fetcher([{tp: [object()] * 5}])
    stub = SimpleNamespace(_closed=False, _fetcher=fetcher)
    try:
        records = await thread._fetch_records(stub, {tp}, timeout=0.0, max_records=None)
    finally:
        thread.thread_loop.close()
    assert len(records[tp]) == 5
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, FETCH_MAX_WAIT_MS)


def test_the_fetch_settings_default_to_the_busy_sizing_the_app_uses_without_them() -> None:
    pipeline = PipelineSettings()
    assert FetchSizing(pipeline.fetch_min_bytes, pipeline.fetch_max_wait_ms) == BUSY_FETCH
    assert pipeline.fetch_busy_records_per_s == BUSY_FROM_RECORDS_PER_S


@pytest.mark.parametrize(
    "field",
    [
        {"fetch_min_bytes": 0},
        {"fetch_min_bytes": 2_000_000},  # over the 1 MiB bound
        {"fetch_max_wait_ms": 0},
        {"fetch_max_wait_ms": 101},  # longer than a light worker's wait, the stall it bounds
        {"fetch_busy_records_per_s": -1},
    ],
)
def test_fetch_settings_out_of_range_are_refused(field: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PipelineSettings(**field)


async def test_offsets_a_fetch_skipped_are_logged_as_an_error_before_faust_commits_them() -> None:
    # faust treats a jump in fetched offsets as transaction markers or compacted records and
    # counts the offsets in between as processed; the pipeline's topics have neither, so such a
    # jump is records about to be committed unseen, and must not pass silently.
    app = create_app("gap-test", "127.0.0.1:9")
    tp = TP("omnirouter.interactions.inbound", 2)
    try:
        with capture_logs() as logs:
            await app.consumer._add_gap(tp, 5, 9)
    finally:
        app.consumer._thread.thread_loop.close()  # the consumer thread's loop, never started
    errors = [e for e in logs if e["log_level"] == "error"]
    # Offsets 5..8 skipped; 9 is the record fetched after them.
    assert [(e["topic"], e["partition"], e["first"], e["last"], e["skipped"]) for e in errors] == [
        ("omnirouter.interactions.inbound", 2, 5, 8, 4)
    ]
    assert app.consumer._gap[tp].span() == 5  # faust's own bookkeeping is unchanged


async def test_the_worker_consumer_hands_a_record_over_in_place_when_its_stream_has_room() -> None:
    # faust's own Service.wait_first starts four tasks per fetched record (pipeline/stepping.py).
    app = create_app("hand-over-test", "127.0.0.1:9")
    consumer = app.consumer
    handed: list[str] = []

    async def hand_over(message: str) -> None:
        handed.append(message)

    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    try:
        await consumer.wait_first(hand_over("record"), consumer.suspend_flow.wait())
    finally:
        consumer._thread.thread_loop.close()  # the consumer thread's loop, never started
    assert handed == ["record"]
    assert turned == []  # no task was started and waited for: the loop never turned


def test_records_go_to_the_partition_aiokafka_s_default_picks_for_their_key() -> None:
    # Every producer of a key must agree on its partition (Kafka's murmur2, as the Java client);
    # the worker only keeps recent keys' hashes instead of computing each in Python again.
    default = DefaultPartitioner()
    partitions = list(range(24))
    keys = [f"cust-{n}".encode() for n in range(500)] + [b"", "émoji 🙂".encode(), b"\x00\xff"]
    for key in keys * 2:  # the second time from the kept hashes
        for count in (1, 3, 24):
            chosen = partition_for_key(key, partitions[:count], partitions[:count])
            assert chosen == default(key, partitions[:count], partitions[:count])


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert partition_for_key(None, [0, 1, 2, 3], [2]) == 2


def test_a_bytearray_key_is_partitioned_as_its_bytes() -> None:
    partitions = list(range(12))
    assert partition_for_key(bytearray(b"cust-7"), partitions, partitions) == partition_for_key(
        b"cust-7", partitions, partitions
    )


def test_the_worker_s_producer_partitions_with_it() -> None:
    app = create_app("partitioner-test", "127.0.0.1:9")
    assert app.producer.partitioner is partition_for_key


def test_partitions_aiokafka_leaves_where_they_were_are_sought_to_0_or_to_their_start() -> None:
    # aiokafka's seek to committed offsets skips None and 0 (see seek_to_committed_or_start);
    # a partition no longer assigned cannot be sought at all.
    committed = {"none": None, "zero": 0, "seven": 7, "gone-none": None, "gone-zero": 0}
    assert starts_to_seek(committed, {"none", "zero", "seven"}) == (["zero"], ["none"])


async def test_a_reset_that_fails_in_the_background_is_logged() -> None:
    # aiokafka forgets the coordinator's error once it raised it there.
    loop = asyncio.get_running_loop()
    failed, cancelled, done = loop.create_future(), loop.create_future(), loop.create_future()
    failed.set_exception(RuntimeError("group authorization failed"))
    cancelled.cancel()
    done.set_result(True)
    with capture_logs() as logs:
        for future in (failed, cancelled, done):
            _log_reset_error(future)
    assert [(e["log_level"], e["error"]) for e in logs] == [
        ("error", "RuntimeError: group authorization failed")
    ]
