"""`omnirouter replay --from TIMESTAMP`: rebuild identity and case state from the log.

What is rebuilt and what is not is written in :mod:`omnirouter.ops.replay`; this module reads
the log, asks, and runs the plan on real clients.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from omnirouter.errors import OmnirouterError
from omnirouter.ops.dlq import parse_since
from omnirouter.settings import Settings

if TYPE_CHECKING:
    from omnirouter.ops.replay import RebuildPlan
    from omnirouter.ops.replay_apply import RebuildReport


def add_replay_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``replay`` on the CLI's sub-commands."""
    replay = commands.add_parser(
        "replay",
        help="rebuild identity and case state in Redis from the Kafka log (publishes nothing)",
    )
    replay.add_argument(
        "--from",
        dest="since",
        required=True,
        metavar="TIMESTAMP",
        help="ISO timestamp, or how long ago (6h, 2d), to replay from",
    )
    replay.add_argument("--tenant", help="only this tenant (default: all)")
    replay.add_argument("--yes", action="store_true", help="write to Redis without asking")


def run_replay(
    args: argparse.Namespace, settings: Settings, *, ask: Callable[[str], str] = input
) -> int:
    """Run ``replay``; returns the exit status."""
    from omnirouter.ops.replay import Erase, plan_rebuild, read_log
    from omnirouter.runtime import connect_services

    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        raise OmnirouterError(f"--from {exc}") from None
    addresses = connect_services(settings, start_devstack=False)
    records = read_log(
        addresses.kafka_bootstrap_servers,
        topic_prefix=settings.kafka.topic_prefix,
        since=since,
        security=settings.kafka,
    )
    plan = plan_rebuild(
        records,
        policy=settings.identity,
        intent_rules=settings.cases.intent_rules,
        tenant=args.tenant,
    )
    erasures = sum(1 for step in plan.identity if isinstance(step, Erase))
    print(
        f"{len(records)} records since {since.isoformat()}: {len(plan.identity)} identity steps, "
        f"{len(plan.cases)} case steps, {erasures} erasures",
        flush=True,
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise OmnirouterError("replay writes to Redis: pass --yes to go ahead")
        answer = ask("rebuild identity and case state from these records? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 1
    report = asyncio.run(_apply(plan, addresses.redis_url, settings))
    for line in report.lines():
        print(line)
    return 0


async def _apply(plan: RebuildPlan, redis_url: str, settings: Settings) -> RebuildReport:

    from omnirouter.ops.replay_apply import apply_plan
    from omnirouter.pipeline.cases.store import RedisCaseStore
    from omnirouter.pipeline.identity.erasure import StateErasure
    from omnirouter.pipeline.identity.store import RedisIdentityStore
    from omnirouter.security import redis_client

    client = redis_client(settings.redis, redis_url)
    try:
        prefix = settings.redis.key_prefix
        return await apply_plan(
            plan,
            RedisIdentityStore(client, key_prefix=prefix, policy=settings.identity),
            RedisCaseStore(client, key_prefix=prefix, settings=settings.cases),
            StateErasure(client, key_prefix=prefix),
        )
    finally:
        await client.aclose()
