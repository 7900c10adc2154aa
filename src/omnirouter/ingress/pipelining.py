"""Redis commands from concurrent requests, sent together: one pipeline in flight at a time.

Every webhook makes two single-key Redis commands (the retry check before publishing, the
retry record after the acknowledgement). Sent one by one they cost a connection, a socket
write and a read each, and under load they held more connections at once than redis-py's pool
allows (100 by default: "Too many connections", so the duplicate check failed open). Queued
and sent as one pipeline they cost one round trip per batch, on one connection, and the
batches grow with the load.

A command whose reply nobody waits for (the retry record) is deferred: it rides with the next
batch, or goes on its own after a short delay when no batch does. At moderate load that halves
the pipelines, each of which costs the gateway more CPU than the commands in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from omnirouter.logs import get_logger

log = get_logger(__name__)

Queue = Callable[[Any], Any]
"""Adds one command to a pipeline (e.g. ``lambda pipe: pipe.exists(key)``)."""


@dataclass(slots=True)
class _Command:
    queue: Queue
    reply: asyncio.Future[Any]


@dataclass
class CommandBatcher:
    """Sends commands issued while the previous batch was in flight as the next batch.

    Bound to the event loop of its first command (as the Redis client it uses is).
    """

    client: aioredis.Redis
    defer_s: float = 0.05
    """How long a deferred command waits for a batch to ride with before it goes alone."""
    _waiting: list[_Command] = field(default_factory=list)
    _deferred: list[Queue] = field(default_factory=list)
    _sending: asyncio.Task[None] | None = None
    _flush: asyncio.TimerHandle | None = None

    async def execute(self, queue: Queue) -> Any:
        """The reply to the command ``queue`` adds to a pipeline.

        Raises:
            RedisError: the batch (or this command in it) failed.
        """
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Command(queue, reply))
        self._start_sending()
        return await reply

    def defer(self, queue: Queue) -> None:
        """Send the command ``queue`` adds with the next batch, or within ``defer_s``; its reply
        is not awaited, and an error is only logged. Commands deferred when the loop stops are
        not sent: use this for what may be lost (the retry record fails open anyway)."""
        self._deferred.append(queue)
        if self._flush is None and self._sending is None:
            self._flush = asyncio.get_running_loop().call_later(self.defer_s, self._start_sending)

    async def aclose(self) -> None:
        """Send what is deferred and wait for the batch in flight; call it before closing the
        client (a timer firing after the close would open a connection nobody closes)."""
        if self._deferred or self._flush is not None:
            self._start_sending()
        if self._sending is not None:
            await asyncio.shield(self._sending)

    def _start_sending(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_batches())

    async def _send_batches(self) -> None:
        # A task starts on the loop's next turn: every request handled in this one joins.
        try:
            while self._waiting or self._deferred:
                batch, self._waiting = self._waiting, []
                deferred, self._deferred = self._deferred, []
                await self._send(batch, deferred)
        finally:
            self._sending = None
            # Empty unless cancelled (the loop is stopping): no waiter may hang.
            left, self._waiting = self._waiting, []
            _fail(left, RedisError("the Redis batch was not sent"))

    async def _send(self, batch: list[_Command], deferred: list[Queue]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                # Deferred first: a check in this batch sees the records queued before it.
                for queue in deferred:
                    queue(pipe)
                for command in batch:
                    command.queue(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # every waiter gets it, as its own command would have
            replies = [exc] * (len(deferred) + len(batch))
        except BaseException:
            _fail(batch, RedisError("the Redis batch was not sent"))
            raise
        failed = [r for r in replies[: len(deferred)] if isinstance(r, BaseException)]
        if failed:
            log.warning("deferred redis commands failed", count=len(failed), error=str(failed[0]))
        for command, reply in zip(batch, replies[len(deferred) :], strict=True):
            if command.reply.done():
                continue  # its request was cancelled meanwhile
            if isinstance(reply, BaseException):
                command.reply.set_exception(reply)
            else:
                command.reply.set_result(reply)


def _fail(commands: list[_Command], error: BaseException) -> None:
    for command in commands:
        if not command.reply.done():
            command.reply.set_exception(error)
