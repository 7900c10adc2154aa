"""`omnirouter …`: the command line for operators and for `make run`.

Every failure an operator can cause (a bad setting, a missing program, an unreachable broker)
ends with one readable line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from omnirouter import __version__
from omnirouter.errors import OmnirouterError
from omnirouter.logs import configure_logging, get_logger
from omnirouter.settings import Settings, load_settings

_SCHEMAS_DIR = Path("schemas")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnirouter",
        description="Event-driven omni-channel message router.",
    )
    parser.add_argument("--version", action="version", version=f"omnirouter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the router on this machine (starts devstack)")
    run.add_argument("--state-dir", type=Path, help="devstack state directory")

    commands.add_parser("check", help="check that the configured Kafka and Redis answer")
    topics = commands.add_parser("topics", help="the topic catalogue on the configured Kafka")
    topic_commands = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    topic_commands.add_parser(
        "ensure", help="create the catalogue's missing topics (partitions, replication, configs)"
    )
    lag = commands.add_parser("lag", help="consumer lag per group: offsets, time lag, status")
    lag.add_argument("-v", "--verbose", action="store_true", help="a row per partition too")
    lag.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=0.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default: the lag sample interval) until Ctrl-C",
    )
    lag.add_argument("--json", action="store_true", help="print JSON (a line per redraw)")
    for name, text in (
        ("worker", "run the pipeline workers (identity, cases, routing, dispatcher) until SIGTERM"),
        ("serve", "serve the HTTP API until SIGTERM"),
    ):
        long_running = commands.add_parser(name, help=text)
        long_running.add_argument(
            "--ready-file", type=Path, help="touch this file once started (for supervisors)"
        )

    from omnirouter.ops.identity_cli import add_identity_commands

    add_identity_commands(commands)

    devstack = commands.add_parser("devstack", help="local Kafka + Redis for development")
    devstack_commands = devstack.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("up", "start Kafka and Redis (or find them running) and print their addresses"),
        ("down", "stop Kafka and Redis and remove their data"),
        ("status", "show whether Kafka and Redis are running"),
        ("fetch", "fetch the Kafka broker jars into the cache"),
    ):
        sub = devstack_commands.add_parser(action, help=text)
        sub.add_argument("--state-dir", type=Path, help="state directory (default from settings)")
        if action in ("up", "status"):
            sub.add_argument("--json", action="store_true", help="print JSON")
        if action == "down":
            sub.add_argument("--keep-data", action="store_true", help="keep the data folders")
        if action == "up":
            sub.add_argument(
                "--cluster",
                action="store_true",
                help="a 3-node Kafka cluster and a 6-node Redis Cluster instead of one of each",
            )

    agents = commands.add_parser("agents", help="desktop accounts: who may sign in, and where")
    agents.add_argument("--tenant", default="default")
    agent_commands = agents.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = agent_commands.add_parser("add", help="create or update an account")
    add.add_argument("agent_id")
    add.add_argument("--name", default="")
    add.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    add.add_argument("--queues", default="", help="comma-separated queue ids served")
    add.add_argument("--skills", default="", help="skill=level,… (routing profile)")
    add.add_argument("--languages", default="en", help="comma-separated language codes")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    agent_commands.add_parser("list", help="list accounts")

    rules = commands.add_parser("rules", help="check, explain and compare routing rules")
    rules_commands = rules.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = rules_commands.add_parser("validate", help="check a rules file")
    validate.add_argument("file", type=Path)
    explain = rules_commands.add_parser("explain", help="dry-run the rules on one event")
    explain.add_argument("file", type=Path)
    explain.add_argument("--event", type=Path, required=True, help="an InteractionEvent (JSON)")
    explain.add_argument("--json", action="store_true", help="print JSON")
    whatif = rules_commands.add_parser(
        "whatif", help="replay recorded routing against other rules (reads Kafka, changes nothing)"
    )
    whatif.add_argument("file", type=Path)
    whatif.add_argument("--from", dest="since", required=True, help="ISO timestamp to start at")
    whatif.add_argument("--json", action="store_true", help="print JSON")

    from omnirouter.ops.dlq_cli import add_dlq_commands
    from omnirouter.ops.replay_cli import add_replay_command

    add_dlq_commands(commands)
    add_replay_command(commands)

    schemas = commands.add_parser("schemas", help="JSON Schemas and the AsyncAPI topic catalogue")
    schema_commands = schemas.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = schema_commands.add_parser("export", help="write schemas/ from the event models")
    export.add_argument("--out", type=Path, default=_SCHEMAS_DIR)
    export.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when schemas/ has drifted"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``omnirouter`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log)
        return _dispatch(args, settings)
    except OmnirouterError as exc:
        print(f"omnirouter: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "devstack":
        return _devstack(args, settings)
    if args.command == "schemas":
        return _schemas(args, settings)
    if args.command == "check":
        return _check(settings)
    if args.command == "topics":
        return _topics(settings)
    if args.command == "lag":
        return _lag(args, settings)
    if args.command == "run":
        return _run(args, settings)
    if args.command in ("worker", "serve"):
        return _long_running(args.command, settings, args.ready_file)
    if args.command == "identity":
        from omnirouter.ops.identity_cli import run_identity

        return run_identity(args, settings)
    if args.command == "rules":
        return _rules(args, settings)
    if args.command == "agents":
        return asyncio.run(_agents(args, settings))
    if args.command == "dlq":
        from omnirouter.ops.dlq_cli import run_dlq

        return run_dlq(args, settings)
    if args.command == "replay":
        from omnirouter.ops.replay_cli import run_replay

        return run_replay(args, settings)
    raise AssertionError(args.command)  # argparse only accepts the commands above


def _with_state_dir(settings: Settings, state_dir: Path | None) -> Settings:
    if state_dir is None:
        return settings
    devstack = settings.devstack.model_copy(update={"state_dir": state_dir})
    return settings.model_copy(update={"devstack": devstack})


def _devstack(args: argparse.Namespace, settings: Settings) -> int:
    from omnirouter.devstack import DevStack

    cluster = getattr(args, "cluster", False)
    stack = DevStack(_with_state_dir(settings, args.state_dir).devstack, cluster=cluster)
    if args.action == "fetch":
        print(f"kafka broker jars: {stack.fetch()}")
        return 0
    if args.action == "up":
        addresses = stack.up()
        # The settings that make the router use the cluster as a cluster: replicated topics
        # (the catalogue's 3, min ISR 2) and a Redis Cluster client.
        env = (
            {
                "OMNIROUTER_KAFKA__REPLICATION_FACTOR": "3",
                "OMNIROUTER_KAFKA__MIN_INSYNC_REPLICAS": "2",
                "OMNIROUTER_REDIS__CLUSTER": "true",
            }
            if cluster
            else {}
        )
        if args.json:
            found = {"kafka": addresses.kafka_bootstrap_servers, "redis": addresses.redis_url}
            print(json.dumps(found | ({"env": env} if cluster else {})))
        else:
            print(f"kafka  {addresses.kafka_bootstrap_servers}")
            print(f"redis  {addresses.redis_url}")
            for name, value in env.items():
                print(f"env    {name}={value}")
            print(f"state  {stack.state_dir}  (stop with: omnirouter devstack down)")
        return 0
    if args.action == "down":
        stack.down(keep_data=args.keep_data)
        print("devstack stopped")
        return 0
    status = stack.status()
    if args.json:
        print(
            json.dumps(
                {
                    "kafka": status.kafka,
                    "redis": status.redis,
                    "pids": list(status.pids),
                    "cluster": status.cluster,
                    "addresses": None
                    if status.addresses is None
                    else {
                        "kafka": status.addresses.kafka_bootstrap_servers,
                        "redis": status.addresses.redis_url,
                    },
                }
            )
        )
    else:
        where = status.addresses
        print(f"kafka  {status.kafka}" + (f"  {where.kafka_bootstrap_servers}" if where else ""))
        print(f"redis  {status.redis}" + (f"  {where.redis_url}" if where else ""))
    return 0 if status.running else 1


async def _agents(args: argparse.Namespace, settings: Settings) -> int:

    from omnirouter.desktop.accounts import Account, Accounts, enrol
    from omnirouter.pipeline.routing.store import RoutingStore
    from omnirouter.runtime import connect_services
    from omnirouter.security import redis_client

    addresses = await asyncio.to_thread(connect_services, settings, start_devstack=False)
    client = redis_client(settings.redis, addresses.redis_url)
    accounts = Accounts(
        client, key_prefix=settings.redis.key_prefix, session_ttl_s=settings.desktop.session_ttl_s
    )
    try:
        if args.action == "list":
            for account in await accounts.all(tenant=args.tenant):
                queues = ",".join(account.queues) or "-"
                print(f"{account.agent_id}  {account.role}  queues={queues}  {account.name}")
            return 0
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        if password == "":
            raise OmnirouterError("an empty password is not allowed")
        served = tuple(q for q in args.queues.split(",") if q)
        account = Account(agent_id=args.agent_id, name=args.name, role=args.role, queues=served)
        skills: dict[str, int] = {}
        for part in filter(None, args.skills.split(",")):
            skill, _, level = part.partition("=")
            skills[skill] = int(level or 3)
        await enrol(
            accounts,
            RoutingStore(client, key_prefix=settings.redis.key_prefix),
            account,
            tenant=args.tenant,
            password=password,
            skills=skills,
            languages=[code for code in args.languages.split(",") if code],
        )
        print(f"saved {args.agent_id} ({args.role}; queues {', '.join(served) or 'none'})")
        return 0
    finally:
        await client.aclose()


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from omnirouter.pipeline.routing.loader import load_rules

    rules = load_rules(args.file)
    if args.action == "validate":
        print(f"{args.file}: ok ({len(rules.queues)} queues, {len(rules.rules)} rules)")
        return 0
    if args.action == "explain":
        return _rules_explain(args, settings, rules)
    return _rules_whatif(args, settings, rules)


def _rules_explain(args: argparse.Namespace, settings: Settings, rules: Any) -> int:

    from omnirouter.events import InteractionEvent
    from omnirouter.pipeline.routing.decide import decide
    from omnirouter.pipeline.routing.explain import explain, request_for_event

    try:
        event = InteractionEvent.model_validate_json(args.event.read_bytes())
    except (OSError, ValueError) as exc:
        raise OmnirouterError(f"{args.event}: not an InteractionEvent: {str(exc)[:300]}") from None
    request = request_for_event(event, settings.cases.intent_rules)
    decision = decide(rules, request, [], datetime.now(UTC))
    report = explain(decision, request)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    state = "open" if report["open"] else f"closed until {report['opens_at']}"
    print(f"rule      {report['rule'] or '(none: default queue)'}")
    print(f"queue     {report['queue']}  ({state})")
    print(f"priority  {report['priority']}")
    needs = report["requirements"]
    print(f"needs     skills {needs['skills'] or 'none'}, languages {needs['languages'] or 'any'}")
    print(f"intents   {', '.join(report['intents']) or 'none'}")
    print("why:")
    for reason in report["reasons"]:
        print(f"  - {reason}")
    return 0


def _rules_whatif(args: argparse.Namespace, settings: Settings, rules: Any) -> int:

    from omnirouter.pipeline.routing.explain import what_if
    from omnirouter.runtime import connect_services, read_routed_since

    try:
        since = datetime.fromisoformat(args.since)
    except ValueError:
        raise OmnirouterError(f"--from {args.since!r} is not an ISO timestamp") from None
    if since.tzinfo is None:
        raise OmnirouterError("--from needs a time zone, e.g. 2026-11-26T09:00:00+00:00")
    addresses = connect_services(settings, start_devstack=False)
    recorded = read_routed_since(addresses.kafka_bootstrap_servers, settings, since)
    report = what_if(recorded, rules)
    if args.json:
        summary = {
            "cases": report.cases,
            "changed": report.changed,
            "closed_now": report.closed_now,
            "rows": report.rows,
        }
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{report.cases} cases routed since {since.isoformat()}; {report.changed} would be "
        f"routed differently; {report.closed_now} would meet a closed queue"
    )
    for (before, after), count in report.moves.most_common():
        print(f"  {count:6d}  {before} -> {after}")
    for row in report.rows[:20]:
        then, would = row["then"], row["would"]
        print(
            f"  {row['case_id']}: {then['rule']}/{then['queue']}/{then['priority']} -> "
            f"{would['rule']}/{would['queue']}/{would['priority']}"
        )
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from omnirouter.events.schema_export import export_schemas, schema_drift
    from omnirouter.pipeline.routing.rules import RULES_SCHEMA_PATH, rules_json_schema

    rules_schema = args.out / RULES_SCHEMA_PATH
    if args.check:
        drift = schema_drift(args.out)
        if not rules_schema.is_file() or rules_schema.read_text() != rules_json_schema():
            drift.append(RULES_SCHEMA_PATH)
        if drift:
            print(
                f"omnirouter: error: {args.out} has drifted from the event models "
                f"({', '.join(drift[:5])}); run `omnirouter schemas export`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.out} matches the event models")
        return 0
    written = export_schemas(args.out)
    rules_schema.write_text(rules_json_schema())
    print(f"wrote {len(written) + 1} files under {args.out}")
    return 0


def _check(settings: Settings) -> int:
    from omnirouter.runtime import connect_services

    addresses = connect_services(settings, start_devstack=False)
    print(f"kafka  {addresses.kafka_bootstrap_servers}  ok")
    print(f"redis  {addresses.redis_url}  ok")
    return 0


def _topics(settings: Settings) -> int:
    # `omnirouter run` creates the topics itself; a deployment runs this once (a Job, a compose
    # service) before `serve` and `worker`, which expect them.
    from omnirouter.connections import ensure_topics
    from omnirouter.runtime import catalogue_topics, connect_services

    addresses = connect_services(settings, start_devstack=False)
    wanted = catalogue_topics(settings)
    created = ensure_topics(addresses.kafka_bootstrap_servers, wanted, security=settings.kafka)
    for topic in wanted:
        state = "created" if topic.name in created else "exists"
        print(f"{topic.name}  {state}  partitions={topic.partitions}")
    return 0


def _lag(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from omnirouter.ops.lag import LagMonitor, render_table
    from omnirouter.runtime import connect_services

    if args.watch is not None and args.watch < 0:
        raise OmnirouterError("--watch needs a positive number of seconds")
    addresses = connect_services(settings, start_devstack=False)
    interval = settings.ops.lag_sample_interval_s
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() and args.watch is not None else ""
    monitor = LagMonitor(
        addresses.kafka_bootstrap_servers,
        window=settings.ops.lag_window,
        groups=settings.ops.lag_groups,
        security=settings.kafka,
    )
    try:
        # Time lag and the Burrow status compare samples: take a few before the first answer.
        warm_up = 3
        print(
            f"… sampling consumer lag ({warm_up} samples {interval:g} s apart)",
            file=sys.stderr,
            flush=True,
        )
        report = monitor.sample()
        for _ in range(warm_up - 1):
            time.sleep(interval)
            report = monitor.sample()
        while True:
            if args.json:
                indent = None if args.watch is not None else 2
                print(json.dumps(report.as_json(), indent=indent), flush=True)
            else:
                print(clear + render_table(report, verbose=args.verbose), flush=True)
            if args.watch is None:
                return 0
            time.sleep(args.watch or interval)
            report = monitor.sample()
    except KeyboardInterrupt:
        return 0 if args.watch is not None else 130
    finally:
        monitor.close()


def _long_running(command: str, settings: Settings, ready_file: Path | None) -> int:
    from omnirouter.assembly import run_workers, serve_http
    from omnirouter.gc_tuning import tune_for_long_running
    from omnirouter.pipeline.routing.loader import rules_from_settings
    from omnirouter.runtime import connect_services
    from omnirouter.stopping import end_process_now, exit_unless_stopped_within

    rules_from_settings(settings.routing.rules_file)  # a bad rules file stops us here

    addresses = connect_services(settings, start_devstack=False)
    body = run_workers if command == "worker" else serve_http
    tune_for_long_running()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        stopping = threading.Event()

        # Python-level handlers, not the loop's: the deadline must start even when the event
        # loop is what is stuck. A second signal (Ctrl-C twice) ends the process at once.
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            if stopping.is_set():
                end_process_now(f"{signal.Signals(signum).name} while stopping")
                return
            stopping.set()
            exit_unless_stopped_within(settings.ops.stop_deadline_s)
            loop.call_soon_threadsafe(stop.set)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, request_stop)
        await body(settings, addresses, stop, ready_file)

    asyncio.run(main())
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from omnirouter.runtime import Router

    log = get_logger(__name__)
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    router = Router(_with_state_dir(settings, args.state_dir), progress=_progress)
    try:
        router.start()
        print(router.banner(), flush=True)
        stop.wait()
    finally:
        router.stop()
    print("omnirouter stopped", flush=True)
    return 0


def _progress(message: str) -> None:
    print(f"… {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
