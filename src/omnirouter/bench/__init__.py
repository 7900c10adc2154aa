"""`make bench`: the pipeline against a raw Kafka pass-through, and the gateway alone.

Open-loop load at fixed rates (latency from each event's intended send time), the maximum
sustainable rate found step by step (backlog bounded over a steady window), then p50/p99/p99.9
at 50% and 90% of it, Redis round trips per event, CPU and RSS of each process, a JSON result,
a chart and a markdown table. Run it with ``python -m omnirouter.bench [--quick]``.
"""

from omnirouter.bench.options import PHASES, BenchOptions
from omnirouter.bench.report import markdown_table, target_checks, write_result
from omnirouter.bench.runner import run_bench
from omnirouter.bench.schedule import StepPlan, bench_event_id, due_count, parse_bench_id
from omnirouter.bench.stats import RateSearch, backlog_verdict, summarize_latencies

__all__ = [
    "PHASES",
    "BenchOptions",
    "RateSearch",
    "StepPlan",
    "backlog_verdict",
    "bench_event_id",
    "due_count",
    "markdown_table",
    "parse_bench_id",
    "run_bench",
    "summarize_latencies",
    "target_checks",
    "write_result",
]
