"""A command on a Redis connection another task just closed is retried, not dead-lettered;
any other AttributeError is still a bug and surfaces at once."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from omnirouter.pipeline.retry import is_redis_connection_race, until_it_succeeds


async def _send_on_closed_connection() -> None:
    # What redis-py 8.1 does when a cluster node's connections were closed under a command
    # being sent: the stream writer is gone (seen in CI during a Redis master kill).
    connection = aioredis.Connection()
    assert connection._writer is None  # never connected, or disconnected by another task
    await connection._send_packed_command([b"PING\r\n"])


async def test_redis_py_s_closed_connection_attribute_error_is_retried() -> None:
    attempts = 0

    async def operation() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await _send_on_closed_connection()
        return "applied"

    result = await until_it_succeeds(
        operation, what="test", max_backoff_s=0.01, first_backoff_s=0.001
    )
    assert (result, attempts) == ("applied", 2)


async def test_an_attribute_error_of_our_own_is_not_retried() -> None:
    attempts = 0

    async def operation() -> None:
        nonlocal attempts
        attempts += 1
        None.writelines  # type: ignore[attr-defined]  # noqa: B018

    with pytest.raises(AttributeError):
        await until_it_succeeds(operation, what="test", max_backoff_s=0.01)
    assert attempts == 1


async def test_the_race_is_recognised_by_where_it_was_raised() -> None:
    with pytest.raises(AttributeError) as raised:
        await _send_on_closed_connection()
    assert is_redis_connection_race(raised.value)
    assert not is_redis_connection_race(AttributeError("no traceback"))
    assert not is_redis_connection_race(ValueError("not an AttributeError"))
