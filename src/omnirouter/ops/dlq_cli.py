"""`omnirouter dlq list|replay`: the dead-letter topic from the terminal.

The decisions (filters, previews, where a letter goes back to) are in :mod:`omnirouter.ops.dlq`;
this module reads the topic, prints, asks, and publishes with acks=all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from omnirouter.errors import OmnirouterError
from omnirouter.ops.dlq import (
    DeadLetterRecord,
    describe,
    letter_filter,
    parse_since,
    plan_replay,
    read_dead_letters,
    render_table,
    replay,
)
from omnirouter.settings import Settings


def add_dlq_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``dlq list`` and ``dlq replay`` on the CLI's sub-commands."""
    dlq = commands.add_parser("dlq", help="dead letters: what failed and why; re-drive them")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead letters, oldest first")
    redrive = actions.add_parser(
        "replay", help="publish dead letters back where they came from (after a fix)"
    )
    for sub in (listing, redrive):
        sub.add_argument("--since", help="ISO timestamp, or how long ago (30m, 1h, 2d)")
        sub.add_argument("--stage", help="only this stage (ingress, identity, cases, ...)")
        sub.add_argument("--reason-contains", metavar="TEXT", help="only reasons with TEXT")
        sub.add_argument("--limit", type=int, default=1000, help="at most N letters")
    listing.add_argument("--json", action="store_true", help="a JSON line per letter")
    redrive.add_argument("--dry-run", action="store_true", help="show the plan, publish nothing")
    redrive.add_argument("--yes", action="store_true", help="publish without asking")


def run_dlq(
    args: argparse.Namespace,
    settings: Settings,
    *,
    ask: Callable[[str], str] = input,
) -> int:
    """Run ``dlq list`` or ``dlq replay``; returns the exit status."""
    from omnirouter.runtime import connect_services

    if args.limit < 1:
        raise OmnirouterError("--limit needs a positive number")
    try:
        since = None if args.since is None else parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        raise OmnirouterError(f"--since {exc}") from None
    addresses = connect_services(settings, start_devstack=False)
    records = read_dead_letters(
        addresses.kafka_bootstrap_servers,
        topic_prefix=settings.kafka.topic_prefix,
        since=since,
        keep=letter_filter(stage=args.stage, reason_contains=args.reason_contains),
        limit=args.limit,
        security=settings.kafka,
    )
    if args.action == "list":
        rows = [describe(record) for record in records]
        if args.json:
            for row in rows:
                print(json.dumps(row))
        else:
            print(render_table(rows))
        return 0
    return _replay(records, addresses.kafka_bootstrap_servers, settings, args, ask)


def _replay(
    records: list[DeadLetterRecord],
    bootstrap_servers: str,
    settings: Settings,
    args: argparse.Namespace,
    ask: Callable[[str], str],
) -> int:
    from kafka.errors import KafkaError

    from omnirouter.connections import create_producer

    plans = plan_replay(records, topic_prefix=settings.kafka.topic_prefix)
    for plan in plans:
        row = describe(plan.record)
        where = f"-> {plan.target_topic}" if plan.target_topic else f"skip: {plan.skipped_because}"
        print(f"{row['time']}  {row['stage']:<9} {row['reason'][:70]}  {where}")
    wanted = sum(1 for plan in plans if plan.target_topic is not None)
    skipped = len(plans) - wanted
    if args.dry_run or wanted == 0:
        print(
            f"dry run: {wanted} would be re-driven, {skipped} skipped"
            if args.dry_run
            else f"nothing to re-drive ({skipped} skipped)"
        )
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise OmnirouterError(
                f"{wanted} dead letters would be re-driven: pass --yes (or --dry-run)"
            )
        if ask(f"re-drive {wanted} dead letters? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing re-driven")
            return 1
    producer = create_producer(
        bootstrap_servers, client_id="omnirouter-dlq-replay", security=settings.kafka
    )
    try:

        def publish(topic: str, key: bytes | None, value: bytes) -> None:
            producer.send(topic, value, key=key).get(timeout=settings.kafka.connect_timeout_s)

        count = replay(plans, publish)
    except KafkaError as exc:
        raise OmnirouterError(
            f"Kafka did not acknowledge a re-driven record ({type(exc).__name__}: {exc}); "
            "running the replay again is safe: every stage is idempotent on event_id"
        ) from None
    finally:
        producer.close()
    print(f"re-drove {count}, skipped {skipped}")
    return 0
