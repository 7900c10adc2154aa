"""Running one Lua script many times in one round trip, on Redis or Redis Cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

ScriptCall = tuple[Sequence[str], Sequence[Any]]
"""One call of a script: its keys (all on one hash slot) and its arguments."""


async def run_pipelined(
    client: aioredis.Redis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Each call's reply, in order: all of them sent as EVALSHA in one pipeline.

    Straight into the pipeline because redis-py's ``Script`` adds a SCRIPT EXISTS round trip to
    every pipeline, and as a raw command because its cluster pipeline refuses ``evalsha()``
    (it still sends EVALSHA to the node of the call's first key). A Redis that lost its script
    cache (a restart, a failover to a replica that never loaded it) refuses those calls without
    running them: the script is loaded (on every master) and only they go again. Any other
    error a call gets is raised, the first in order.
    """
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        if not todo:
            break
        if attempt:
            await client.script_load(script.script)
        async with client.pipeline(transaction=False) as pipe:
            for i in todo:
                keys, args = calls[i]
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        refused = []
        for i, result in zip(todo, results, strict=True):
            if isinstance(result, NoScriptError):
                refused.append(i)
            elif isinstance(result, Exception):
                raise result
            else:
                replies[i] = result
        todo = refused
    if todo:
        raise NoScriptError("the script is not in Redis's cache even after loading it")
    return replies
