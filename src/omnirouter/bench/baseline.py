"""The raw baseline: consume and produce across the same number of hops, doing no work.

An event in the pipeline crosses ``interactions.inbound`` → identity → ``interactions.resolved``
→ cases → ``cases.events``: three topics, two consume-and-produce stages. The baseline moves
records over three topics of its own the same way (one process, batches of up to the
pipeline's batch size, ``acks=all``, offsets committed after the writes are acknowledged), but
does nothing with them, so the ratio between the two is what identity, cases and routing cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

__all__ = ["BASELINE_HOPS", "PassThrough"]

BASELINE_HOPS = ("bench.baseline.in", "bench.baseline.mid", "bench.baseline.out")
"""Topic keys (under the run's prefix) the baseline moves records across, in order."""


class PassThrough:
    """The baseline in a process of its own (so its CPU is measured like the worker's)."""

    def __init__(self, bootstrap_servers: str, topics: Sequence[str], *, batch_max: int) -> None:
        """Move records ``topics[0]`` → ``topics[1]`` → … in batches of ``batch_max``."""
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._process = context.Process(
            target=_child_main,
            args=(bootstrap_servers, tuple(topics), batch_max, self._ready, self._stop),
            name="omnirouter-bench-baseline",
            daemon=True,
        )

    @property
    def pid(self) -> int:
        """The pass-through's process id."""
        assert self._process.pid is not None
        return self._process.pid

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start it and return once it consumes.

        Raises:
            TimeoutError: it was not ready within ``timeout_s``.
        """
        self._process.start()
        if not await asyncio.to_thread(self._ready.wait, timeout_s):
            self.stop()
            raise TimeoutError("the baseline pass-through did not start")

    def stop(self) -> None:
        """Ask it to stop, and make sure it did."""
        self._stop.set()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)


def _child_main(
    bootstrap_servers: str, topics: tuple[str, ...], batch_max: int, ready: Any, stop: Any
) -> None:
    asyncio.run(_pass_through(bootstrap_servers, topics, batch_max, ready, stop))


async def _pass_through(
    bootstrap_servers: str, topics: tuple[str, ...], batch_max: int, ready: Any, stop: Any
) -> None:
    following = dict(itertools.pairwise(topics))
    consumer = AIOKafkaConsumer(
        *following,
        bootstrap_servers=bootstrap_servers,
        group_id=f"omnirouter-bench-baseline-{topics[0]}",
        client_id="omnirouter-bench-baseline",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="omnirouter-bench-baseline",
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100, max_records=batch_max)
            if not fetched:
                continue
            acknowledged = [
                await producer.send(
                    following[tp.topic], record.value, key=record.key, partition=tp.partition
                )
                for tp, records in fetched.items()
                for record in records
            ]
            await asyncio.gather(*acknowledged)
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await producer.stop()
