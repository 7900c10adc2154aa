"""Crossing between the event loop and kafka-python's threads, a burst at a time.

kafka-python's producer is synchronous: records go in through ``send`` and come back acknowledged
on its sender thread. Crossing threads once per record (a worker thread to send, a
``call_soon_threadsafe`` back for each acknowledgement) was a large part of the gateway's CPU per
webhook; :class:`SendQueue` and :class:`Acknowledgements` cross once per burst of records, so
the cost per record falls as the load grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any


class HandoverClosed(Exception):  # noqa: N818 - reads as the outcome
    """The queue was closed: no record is taken any more."""


def expire(acked: asyncio.Future[None]) -> None:
    """Give up waiting for an acknowledgement (the request answers 503)."""
    if not acked.done():
        acked.set_exception(TimeoutError())


class Acknowledgements:
    """Hands the producer's acknowledgements to one event loop, one wake-up per burst.

    kafka-python settles a whole produce batch at once on its sender thread; waking the loop
    once per record (``call_soon_threadsafe``) was a self-pipe write and a loop turn each.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop``."""
        self._loop = loop
        self._lock = threading.Lock()
        self._settled: list[tuple[asyncio.Future[None], BaseException | None]] = []
        self._wake_pending = False

    def settle(self, acked: asyncio.Future[None], error: BaseException | None) -> None:
        """Resolve ``acked`` on the loop: done when ``error`` is None, failed otherwise.

        Called on kafka-python's sender thread (or on the :class:`SendQueue`'s, for a send that
        failed at once).
        """
        with self._lock:
            self._settled.append((acked, error))
            if self._wake_pending:
                return
            self._wake_pending = True
        # A closed loop raises RuntimeError: nobody waits for these answers any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            settled, self._settled = self._settled, []
            self._wake_pending = False
        for acked, error in settled:
            if acked.done():
                continue  # timed out or cancelled meanwhile
            if error is None:
                acked.set_result(None)
            else:
                acked.set_exception(error)


class SendQueue:
    """One thread hands records to kafka-python's producer, a burst of requests at a time.

    ``send()`` must not run on the event loop: it may wait for a topic's metadata, and it takes
    the partition lock the producer's sender thread holds while it closes a batch. A thread
    hop per request (``asyncio.to_thread``) cost a wake-up there and one back for each record;
    here requests queue records and the thread wakes once for all those queued meanwhile.
    """

    def __init__(self, producer: Any) -> None:
        """Feed ``producer`` (kafka-python's API: ``send`` returns a future with callbacks)."""
        self._producer = producer
        # SimpleQueue is C: a put costs no Python-level locking, and wakes the thread only
        # when it waits for an empty queue.
        self._queued: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        acked: asyncio.Future[None],
        relay: Acknowledgements,
    ) -> None:
        """Queue a record; ``relay`` settles ``acked`` with its acknowledgement or error.

        Raises:
            HandoverClosed: the queue was closed.
        """
        if self._closed:
            raise HandoverClosed("the publisher is closed")
        if self._thread is None:
            self._start()
        self._queued.put(_Queued(topic, key, value, acked, relay))

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="omnirouter-ingress-send", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while (record := self._queued.get()) is not None:
            record.hand_to(self._producer)

    def close(self, timeout_s: float) -> None:
        """Refuse new records; wait up to ``timeout_s`` for the queued ones to be handed over.

        A record queued while it closes is never sent: its request times out (503), and the
        provider retries.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queued.put(None)
            thread.join(timeout_s)


@dataclass(frozen=True, slots=True)
class _Queued:
    topic: str
    key: bytes
    value: bytes
    acked: asyncio.Future[None]
    relay: Acknowledgements

    def hand_to(self, producer: Any) -> None:
        try:
            future = producer.send(self.topic, self.value, key=self.key)
        except Exception as exc:  # the request raises it; this thread carries on
            self.relay.settle(self.acked, exc)
            return
        future.add_callback(lambda _metadata: self.relay.settle(self.acked, None))
        future.add_errback(lambda error: self.relay.settle(self.acked, error))
