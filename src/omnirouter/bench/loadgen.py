"""The load generator: a process of its own that offers pre-built events at a fixed rate.

It runs apart from the process that measures, so building and sending never delays the
consumer that timestamps arrivals (and the other way round). Records go out through aiokafka's
batch API (``acks=all``): one batch per partition in flight, everything due meanwhile joins the
next batch, so a slow acknowledgement never holds back the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from omnirouter.bench.schedule import StepPlan, bench_event_id
from omnirouter.bench.traffic import Template, build_traffic, partition_for
from omnirouter.devstack.processes import end_with_parent_process, leave_interrupts_to_parent

__all__ = ["GeneratorHandle", "StepReport"]

Source = Literal["mix", "first_contacts"]


@dataclass(frozen=True, slots=True)
class StepReport:
    """What the generator did in one step."""

    step: int
    sent: int
    acked: int
    errors: int
    max_lateness_s: float
    elapsed_s: float
    first_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For the JSON result."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Command:
    plan: StepPlan
    topic: str
    source: Source


class GeneratorHandle:
    """The parent's side: start the generator process, run steps on it, stop it."""

    def __init__(
        self, bootstrap_servers: str, *, customers: int, partitions: int, nonce: int
    ) -> None:
        """Prepare a generator for ``customers`` people on topics of ``partitions``."""
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child_main,
            args=(child, bootstrap_servers, customers, partitions, nonce),
            name="omnirouter-bench-loadgen",
            daemon=True,
        )
        self.info: dict[str, Any] = {}
        self._in_step = False

    @property
    def pid(self) -> int:
        """The generator's process id (for CPU sampling)."""
        assert self._process.pid is not None
        return self._process.pid

    async def start(self) -> dict[str, Any]:
        """Start the process; returns once its traffic is built and its producer connected."""
        self._process.start()
        reply = await asyncio.to_thread(self._receive, 300.0)
        self.info = dict(reply)
        return self.info

    def _receive(self, timeout_s: float) -> Any:
        if not self._conn.poll(timeout_s):
            raise TimeoutError(f"the load generator did not answer within {timeout_s:g} s")
        reply = self._conn.recv()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def run(self, plan: StepPlan, *, topic: str, source: Source = "mix") -> StepReport:
        """Offer ``plan`` on ``topic``; returns after the last event was acknowledged."""
        self._in_step = True
        self._conn.send(_Command(plan, topic, source))
        timeout = plan.ends_at - time.monotonic() + 120.0
        report: StepReport = await asyncio.to_thread(self._receive, timeout)
        self._in_step = False  # only once its report came: a step that failed may still run
        return report

    def stop(self) -> None:
        """Stop the process: between steps it closes its producer first; during one (a bench
        interrupted, or a step that failed) it is terminated at once.

        A step cannot be called off: the generator reads nothing until it has sent the whole
        step, so asking it to stop mid-step waited here (and on the thread waiting for the
        step's report) until the step's end, up to a minute of load offered to nobody.
        """
        if self._in_step:
            self._process.terminate()
        else:
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)


def _child_main(
    conn: Connection, bootstrap_servers: str, customers: int, partitions: int, nonce: int
) -> None:
    end_with_parent_process()  # a bench stopped by a signal leaves no generator running
    leave_interrupts_to_parent()  # an interrupted bench stops it (stop())
    try:
        asyncio.run(_serve(conn, bootstrap_servers, customers, partitions, nonce))
    except BaseException as exc:  # the parent must hear why, not wait for a timeout
        with contextlib.suppress(OSError):
            conn.send(RuntimeError(f"load generator failed: {type(exc).__name__}: {exc}"))
        raise


async def _serve(
    conn: Connection, bootstrap_servers: str, customers: int, partitions: int, nonce: int
) -> None:
    started = time.monotonic()
    traffic = build_traffic(customers, partitions=partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="omnirouter-bench-load",
        acks="all",  # the same durability the gateway waits for
        max_batch_size=256 * 1024,
        linger_ms=2,
        request_timeout_ms=30_000,
    )
    await producer.start()
    conn.send(
        {
            "templates": len(traffic.mix),
            "first_contacts": len(traffic.first_contacts),
            "mean_event_bytes": round(traffic.mean_event_bytes(), 1),
            "build_s": round(time.monotonic() - started, 2),
        }
    )
    cursor = 0
    try:
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command is None:
                return
            assert isinstance(command, _Command)
            templates = traffic.mix if command.source == "mix" else traffic.first_contacts
            sender = _StepSender(producer, command, templates, partitions, nonce, cursor)
            conn.send(await sender.run())
            cursor += command.plan.total
    finally:
        await producer.stop()


class _StepSender:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        command: _Command,
        templates: tuple[Template, ...],
        partitions: int,
        nonce: int,
        cursor: int,
    ) -> None:
        self._producer = producer
        self._plan = command.plan
        self._topic = command.topic
        self._templates = templates
        self._partitions = partitions
        self._nonce = nonce
        self._cursor = cursor
        self._pending: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
        self._tasks: list[asyncio.Task[None] | None] = [None] * partitions
        self.acked = 0
        self.errors = 0
        self.first_error: str | None = None

    async def run(self) -> StepReport:
        plan = self._plan
        total = plan.total
        sent = 0
        max_lateness = 0.0
        while sent < total:
            now = time.monotonic()
            due = plan.due(now)
            if due > sent:
                max_lateness = max(max_lateness, now - plan.intended(sent))
                self._build(sent, due)
                sent = due
                self._kick()
            if sent < total:
                # Sleep until the next event is due; a late wake-up only makes a bigger burst.
                await asyncio.sleep(max(0.0005, plan.intended(sent) - time.monotonic()))
        while any(self._pending) or any(t is not None and not t.done() for t in self._tasks):
            self._kick()
            await asyncio.gather(*(t for t in self._tasks if t is not None))
        return StepReport(
            plan.step,
            sent,
            self.acked,
            self.errors,
            round(max_lateness, 4),
            round(time.monotonic() - plan.t0, 3),
            self.first_error,
        )

    def _build(self, start: int, stop: int) -> None:
        templates = self._templates
        count = len(templates)
        for index in range(start, stop):
            template = templates[(self._cursor + index) % count]
            event_id = bench_event_id(self._nonce, self._plan.step, index).encode()
            key = template.key(event_id)
            partition = template.partition
            if partition is None:
                partition = partition_for(key, self._partitions)
            self._pending[partition].append((key, template.value(event_id)))

    def _kick(self) -> None:
        for partition, records in enumerate(self._pending):
            task = self._tasks[partition]
            if records and (task is None or task.done()):
                self._tasks[partition] = asyncio.create_task(self._drain(partition))

    async def _drain(self, partition: int) -> None:
        while self._pending[partition]:
            records, self._pending[partition] = self._pending[partition], []
            sent: list[tuple[asyncio.Future[Any], int]] = []
            try:
                batch = self._producer.create_batch()
                in_batch = 0
                for key, value in records:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        sent.append((await self._send(batch, partition), in_batch))
                        batch = self._producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                        in_batch = 0
                    in_batch += 1
                sent.append((await self._send(batch, partition), in_batch))
            except KafkaError as exc:
                self._failed(len(records) - sum(n for _, n in sent), exc)
            for future, count in sent:
                try:
                    await future
                    self.acked += count
                except KafkaError as exc:
                    self._failed(count, exc)

    def _failed(self, count: int, exc: Exception) -> None:
        self.errors += count
        self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"

    async def _send(self, batch: Any, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, self._topic, partition=partition
        )
        return future
