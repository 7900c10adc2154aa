"""Redis commands from concurrent requests, sent together: one pipeline in flight at a time.

Every webhook makes two single-key Redis commands (the retry check before publishing, the
retry record after the acknowledgement). Sent one by one they cost a connection, a socket
write and a read each, and under load they held more connections at once than redis-py's pool
allows (100 by default: "Too many connections", so the duplicate check failed open). Queued
and sent as one pipeline they cost one round trip per batch, on one connection, and the
batches grow with the load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

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
    _waiting: list[_Command] = field(default_factory=list)
    _sending: asyncio.Task[None] | None = None

    async def execute(self, queue: Queue) -> Any:
        """The reply to the command ``queue`` adds to a pipeline.

        Raises:
            RedisError: the batch (or this command in it) failed.
        """
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Command(queue, reply))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_batches())
        return await reply

    async def _send_batches(self) -> None:
        # A task starts on the loop's next turn: every request handled in this one joins.
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sending = None
            # Empty unless cancelled (the loop is stopping): no waiter may hang.
            left, self._waiting = self._waiting, []
            _fail(left, RedisError("the Redis batch was not sent"))

    async def _send(self, batch: list[_Command]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for command in batch:
                    command.queue(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # every waiter gets it, as its own command would have
            replies = [exc] * len(batch)
        except BaseException:
            _fail(batch, RedisError("the Redis batch was not sent"))
            raise
        for command, reply in zip(batch, replies, strict=True):
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
