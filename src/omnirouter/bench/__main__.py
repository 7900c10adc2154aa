"""`python -m omnirouter.bench`: run the benchmark and write results/bench-<time>/."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from omnirouter.bench.options import PHASES, BenchOptions
from omnirouter.bench.report import markdown_table, write_result
from omnirouter.bench.runner import run_bench
from omnirouter.errors import ConfigurationError, ServiceUnreachableError, StackError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m omnirouter.bench",
        description="Benchmark the pipeline (one worker) against a raw Kafka pass-through, and "
        "the gateway alone, on the real local stack (devstack unless OMNIROUTER_KAFKA__"
        "BOOTSTRAP_SERVERS and OMNIROUTER_REDIS__URL are set).",
    )
    parser.add_argument("--quick", action="store_true", help="a ~4-minute smoke run")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every step's duration (default 1)"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, from {', '.join(PHASES)} (default: all)",
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--customers", type=int, default=0, help="population size (0: default)")
    parser.add_argument("--pipeline-start", type=float, default=2_000.0, help="events/s")
    parser.add_argument(
        "--pipeline-rates",
        default="",
        help="comma-separated events/s to measure the pipeline at instead of searching for "
        "its maximum (the cost per event at given loads), e.g. 25,100,400",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the worker and the gateway with py-spy through their phases: a summary "
        "in the result and the stacks in profile-<process>.txt (a profiled run's figures are "
        "not comparable with others)",
    )
    parser.add_argument("--baseline-start", type=float, default=5_000.0, help="events/s")
    parser.add_argument("--gateway-start", type=float, default=500.0, help="webhooks/s")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; 0 when it ran (targets missed are reported, not an exit status)."""
    args = _parser().parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        rates = tuple(float(rate) for rate in args.pipeline_rates.split(",") if rate.strip())
        options = BenchOptions(
            quick=args.quick,
            scale=args.scale,
            results_dir=args.results,
            phases=tuple(p for p in args.phases.split(",") if p),
            customers=args.customers,
            pipeline_start=args.pipeline_start,
            pipeline_rates=rates,
            profile=args.profile,
            baseline_start=args.baseline_start,
            gateway_start=args.gateway_start,
            command=shlex.join(["python", "-m", "omnirouter.bench", *given]),
        )
    except ValueError as exc:
        print(f"omnirouter.bench: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    try:
        result = asyncio.run(run_bench(options, progress))
    except (ConfigurationError, ServiceUnreachableError, StackError) as exc:
        print(f"omnirouter.bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Its processes and stack were stopped on the way out (a second Ctrl-C cuts that short;
        # they then end with this process); nothing was written.
        print("omnirouter.bench: interrupted, no result written", file=sys.stderr)
        return 130
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data, picture, _ = write_result(result, options.results_dir / f"bench-{stamp}")
    print()
    print(markdown_table(result))
    print()
    print(f"result {data}\nchart  {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
