"""The raw baseline: consume and produce across the same number of hops, doing no work.

An event in the pipeline crosses ``interactions.inbound`` → identity → ``interactions.resolved``
→ cases → ``cases.events``: three topics, two consume-and-produce stages. The baseline moves
records over three topics of its own the same way (one process, batches of up to the
pipeline's batch size, ``acks=all``, offsets committed after the writes are acknowledged), but
does nothing with them, so the ratio between the two is what identity, cases and routing cost.

The same pass-through on faust (``framework="faust"``, the "faust floor") runs the worker's
consume → batch → publish path with no stage code in between: its app (``create_app``), its
batching (``pipeline_batches``, with the pipeline settings a worker loads) and its publishing
(``publish_records``). What that costs per event, no stage's code can save.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any, Literal, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from omnirouter.devstack.processes import leave_interrupts_to_parent

__all__ = ["BASELINE_HOPS", "FAUST_HOPS", "FRAMEWORKS", "Framework", "PassThrough"]

BASELINE_HOPS = ("bench.baseline.in", "bench.baseline.mid", "bench.baseline.out")
"""Topic keys (under the run's prefix) the baseline moves records across, in order."""
FAUST_HOPS = ("bench.faust.in", "bench.faust.mid", "bench.faust.out")
"""The same for the pass-through on faust."""
Framework = Literal["aiokafka", "faust"]
FRAMEWORKS: tuple[Framework, ...] = get_args(Framework)
# How often a pass-through looks whether the bench that started it is still there.
_ORPHAN_CHECK_S = 1.0


class PassThrough:
    """A pass-through in a process of its own (so its CPU is measured like the worker's)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        *,
        batch_max: int,
        framework: Framework = "aiokafka",
    ) -> None:
        """Move records ``topics[0]`` → ``topics[1]`` → … in batches of ``batch_max``, with
        aiokafka's consumer and producer or with a worker's faust app."""
        if framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})")
        self.framework = framework
        self.process_name = "faust" if framework == "faust" else "baseline"
        """How the bench's samplers and result name its process."""
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._process = context.Process(
            target=_child_main,
            args=(bootstrap_servers, tuple(topics), batch_max, framework, self._ready, self._stop),
            name=f"omnirouter-bench-{framework}-pass-through",
            daemon=True,
        )

    @property
    def pid(self) -> int:
        """The pass-through's process id."""
        assert self._process.pid is not None
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        """Its process's exit status once it ended (0: it stopped when asked), else None."""
        return self._process.exitcode

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start it and return once it consumes.

        Raises:
            TimeoutError: it was not ready within ``timeout_s``.
        """
        self._process.start()
        if not await asyncio.to_thread(self._ready.wait, timeout_s):
            self.stop()
            raise TimeoutError(f"the {self.framework} pass-through did not start")

    def stop(self) -> None:
        """Ask it to stop, and make sure it did."""
        self._stop.set()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)


def _child_main(
    bootstrap_servers: str,
    topics: tuple[str, ...],
    batch_max: int,
    framework: str,
    ready: Any,
    stop: Any,
) -> None:
    leave_interrupts_to_parent()  # an interrupted bench stops it (stop())
    run = _faust_pass_through if framework == "faust" else _pass_through
    asyncio.run(run(bootstrap_servers, topics, batch_max, ready, stop))


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
        parent = os.getppid()
        while not stop.is_set() and os.getppid() == parent:  # not orphaned by a killed bench
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


async def _faust_pass_through(
    bootstrap_servers: str, topics: tuple[str, ...], batch_max: int, ready: Any, stop: Any
) -> None:
    """``batch_max`` aside, the batch settings are the ones `omnirouter worker` loads."""
    # Imported here: the aiokafka pass-through's process need not import faust.
    from omnirouter.gc_tuning import tune_for_long_running
    from omnirouter.pipeline.app import create_app
    from omnirouter.pipeline.stream import pipeline_batches, publish_records, raw_topic
    from omnirouter.settings import load_settings

    tune_for_long_running()  # as `omnirouter worker` does
    loaded = load_settings().pipeline
    pipeline = loaded.model_copy(update={"batch_max": batch_max})
    app = create_app(f"omnirouter-bench-faust-{topics[0]}", bootstrap_servers)

    def hop(source: str, target: str) -> None:
        async def forward(stream: Any) -> Any:
            async for batch in pipeline_batches(stream, pipeline):
                records = [(target, e.message.key, e.message.value) for e in batch]
                await publish_records(
                    app, records, what="bench.faust", max_backoff_s=pipeline.retry_max_backoff_s
                )
                yield None

        app.agent(raw_topic(app, source), name=f"forward-{source}", concurrency=1)(forward)

    for source, target in itertools.pairwise(topics):
        hop(source, target)
    assigned = asyncio.Event()

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if args and args[0]:  # the partitions assigned
            assigned.set()

    app.on_partitions_assigned.connect(on_assigned)
    stopping = asyncio.ensure_future(asyncio.to_thread(_wait_for_stop, stop))
    try:
        await app.start()
        await asyncio.wait(
            {asyncio.ensure_future(assigned.wait()), stopping},
            return_when=asyncio.FIRST_COMPLETED,
        )
        if assigned.is_set():  # its partitions, so it consumes
            ready.set()
        await stopping
    finally:
        await app.stop()


def _wait_for_stop(stop: Any) -> None:
    """Block until the bench asks to stop, or is gone (killed: nobody would ever ask)."""
    parent = os.getppid()
    while not stop.wait(_ORPHAN_CHECK_S):
        if os.getppid() != parent:
            return
