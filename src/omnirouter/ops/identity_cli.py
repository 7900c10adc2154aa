"""`omnirouter identity show|reviews|unmerge|erase`: identity operations from the terminal.

The decisions are in :mod:`omnirouter.pipeline.identity` (operations, erasure); this module
connects, prints, and asks before what cannot be undone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from omnirouter.errors import OmnirouterError
from omnirouter.settings import Settings

if TYPE_CHECKING:
    from omnirouter.devstack import StackAddresses


def add_identity_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``identity …`` on the CLI's sub-commands."""
    identity = commands.add_parser("identity", help="inspect and correct identity resolution")
    identity.add_argument("--tenant", default="default")
    identity_commands = identity.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = identity_commands.add_parser("show", help="a customer, its identifiers and merges")
    show.add_argument("customer_id")
    identity_commands.add_parser("reviews", help="merges the guardrails held for a person")
    unmerge = identity_commands.add_parser(
        "unmerge", help="split a merged customer back along its merge history"
    )
    unmerge.add_argument("customer_id", help="the customer that absorbed the other")
    unmerge.add_argument("--absorbed", help="which absorbed customer (default: the latest merge)")
    unmerge.add_argument("--operator", required=True, help="who splits (recorded in the event)")
    unmerge.add_argument("--reason", default="", help="why (recorded in the event)")
    erase = identity_commands.add_parser(
        "erase", help="erase a person on request (right to be forgotten); cannot be undone"
    )
    erase.add_argument("customer_id", help="any customer id of the person")
    # SUPPRESS: without it, this default would override `identity --tenant T erase …`.
    erase.add_argument("--tenant", default=argparse.SUPPRESS, help="the customer's tenant")
    erase.add_argument("--dry-run", action="store_true", help="show what would go, erase nothing")
    erase.add_argument("--yes", action="store_true", help="erase without asking")


def run_identity(
    args: argparse.Namespace,
    settings: Settings,
    *,
    ask: Callable[[str], str] | None = None,
) -> int:
    """Run ``identity …``; returns the exit status. ``ask`` defaults to :func:`input`."""
    from omnirouter.runtime import connect_services

    addresses = connect_services(settings, start_devstack=False)
    if args.action == "erase":
        return asyncio.run(_erase(args, settings, addresses, ask or input))
    return asyncio.run(_operate(args, settings, addresses))


async def _operate(args: argparse.Namespace, settings: Settings, addresses: StackAddresses) -> int:
    from omnirouter.assembly import identity_operations
    from omnirouter.pipeline.identity.store import UnmergeRefused

    async with identity_operations(settings, addresses) as operations:
        if args.action == "show":
            record = await operations.customer(args.customer_id, tenant=args.tenant)
            if record is None:
                raise OmnirouterError(f"unknown customer {args.customer_id}")
            print(f"customer  {record.customer_id}  ({record.status})")
            for identifier in record.identifiers:
                print(f"  {identifier.address}")
            for merge in record.merges:
                print(f"  merged {merge.absorbed_id} via {', '.join(merge.linking) or '-'}")
            return 0
        if args.action == "reviews":
            for review in await operations.open_reviews(tenant=args.tenant):
                print(f"{review.review_id}  {' + '.join(review.customer_ids)}  {review.reason}")
            return 0
        try:
            outcome = await operations.unmerge(
                args.customer_id,
                absorbed_id=args.absorbed,
                operator=args.operator,
                reason=args.reason,
                tenant=args.tenant,
            )
        except UnmergeRefused as exc:
            raise OmnirouterError(f"cannot unmerge: {exc}") from None
        split = outcome.split
        print(
            f"split {split.restored_id} from {split.survivor_id}; "
            f"restored {len(split.restored)} identifier(s); event {outcome.event.event_id}"
        )
        return 0


async def _erase(
    args: argparse.Namespace,
    settings: Settings,
    addresses: StackAddresses,
    ask: Callable[[str], str],
) -> int:
    import redis.asyncio as aioredis
    from kafka.errors import KafkaError

    from omnirouter.connections import create_producer
    from omnirouter.pipeline.identity.erasure import CustomerErasure, StateErasure
    from omnirouter.pipeline.identity.operations import KafkaEventPublisher
    from omnirouter.security import redis_client_options

    client = aioredis.Redis.from_url(addresses.redis_url, **redis_client_options(settings.redis))
    prefix, tenant = settings.redis.key_prefix, args.tenant
    try:
        planned = await StateErasure(client, key_prefix=prefix).plan(
            args.customer_id, tenant=tenant
        )
        if planned is None:
            raise OmnirouterError(f"unknown customer {args.customer_id} (tenant {tenant})")
        print(f"customer {planned.customer_id}: {', '.join(planned.customer_ids)}")
        for name, count in planned.counts().items():
            print(f"  {name:<24}{count:>8}")
        if args.dry_run:
            print("dry run: nothing erased")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise OmnirouterError(
                    f"erasing {planned.customer_id} cannot be undone: pass --yes (or --dry-run)"
                )
            if ask(f"erase {planned.customer_id}? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing erased")
                return 1
        producer = await asyncio.to_thread(
            create_producer,
            addresses.kafka_bootstrap_servers,
            client_id="omnirouter-identity-erase",
            security=settings.kafka,
        )
        try:
            erasure = CustomerErasure(
                client,
                key_prefix=prefix,
                publisher=KafkaEventPublisher(producer),
                topic_prefix=settings.kafka.topic_prefix,
            )
            outcome = await erasure.erase(planned.customer_id, tenant=tenant)
        except KafkaError as exc:
            raise OmnirouterError(
                f"Kafka did not acknowledge the erasure's announcement ({type(exc).__name__}); "
                "nothing was erased: run it again"
            ) from None
        finally:
            await asyncio.to_thread(producer.close)
    finally:
        await client.aclose()
    if outcome is None:  # erased by someone else between the plan and now
        raise OmnirouterError(f"unknown customer {args.customer_id} (tenant {tenant})")
    report = outcome.report
    print(
        f"erased {report.customer_id}: {len(report.customer_ids)} customer(s), "
        f"{len(report.case_ids)} case(s), {report.keys_removed} keys; "
        f"announced as event {outcome.event.event_id}"
    )
    return 0
