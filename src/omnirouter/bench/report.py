"""The bench's outputs: result.json, chart.png and the markdown table for the README."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omnirouter.bench.stats import rewrote_aof, wakeups_per_event

__all__ = [
    "TARGETS",
    "chart",
    "markdown_table",
    "stacks_to_files",
    "target_checks",
    "write_result",
]

# (name, the result's value path, comparison, target) — the targets for a 2-core machine.
TARGETS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("events/s end to end, one worker", ("pipeline", "max_sustainable"), ">=", 10_000),
    ("p99 at 50% of max (ms)", ("pipeline", "at_50", "latency", "p99_ms"), "<=", 50),
    (
        "Redis round trips per event",
        ("pipeline", "at_90", "redis", "round_trips_per_event"),
        "<=",
        0.1,
    ),
    ("ratio to raw Kafka baseline", ("ratio",), ">=", 0.3),
    ("gateway webhooks/s, one process", ("gateway", "max_sustainable"), ">=", 3_000),
    ("gateway p99 at 50% (ms)", ("gateway", "at_50", "latency", "p99_ms"), "<=", 20),
)


def _get(result: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = result
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def target_checks(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met (None: not measured)."""
    checks = []
    for name, path, op, target in TARGETS:
        value = _get(result, path)
        if not isinstance(value, int | float) or math.isnan(value):
            met = None
        else:
            met = value >= target if op == ">=" else value <= target
        checks.append({"target": name, "wanted": f"{op} {target:g}", "measured": value, "met": met})
    return checks


def _num(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _latency(run: Any) -> str:
    latency = _get(run or {}, ("latency",)) or {}
    return " / ".join(_num(latency.get(k), 1) for k in ("p50_ms", "p99_ms", "p999_ms"))


_REWROTE = "an AOF rewrite in or just before the window"


def _latency_and_rewrite(phase: Mapping[str, Any], name: str) -> str:
    """The step's latency; when Redis rewrote its append-only file in or just before its window,
    said so, with the latency of the window measured again after it (see ``phases._search``)."""
    run = phase.get(name) or {}
    text = _latency(run)
    if not rewrote_aof(run):
        return text
    again = phase.get(f"{name}_without_aof_rewrite")
    if again:
        return f"{text} ({_REWROTE}; again without one: {_latency(again)})"
    return f"{text} ({_REWROTE}, and its repeat)"


def _cpu(run: Any, name: str) -> str:
    proc = _get(run or {}, ("processes", name)) or {}
    return f"{_num(proc.get('cpu_cores'), 2)} cores, {_num(proc.get('rss_mib'))} MiB"


def _wakeups(run: Any, name: str) -> str:
    """Wake-ups per event delivered in a step (two decimals: a batch consumer's are a few
    hundredths)."""
    run = run or {}
    per_event = wakeups_per_event(run.get("processes") or {}, run.get("delivered") or 0)
    return _num(per_event.get(name), 2)


def _cases(run: Any) -> str:
    """Interactions per case and document bytes of the cases a step sampled."""
    cases = _get(run or {}, ("cases",)) or {}
    if not cases:
        return "—"
    return (
        f"{_num(cases.get('interactions_per_case'), 1)} (p90 {_num(cases.get('interactions_p90'))};"
        f" {_num(cases.get('document_bytes'))} B)"
    )


def _catch_up(phase: Mapping[str, Any], name: str) -> str:
    run = phase.get("catch_up") or {}
    if not run:
        return "—"
    cost = _get(run, ("cpu_ms_per_event", name))
    rate = ("≥ " if run.get("limited_by_offer") else "") + _num(run.get("events_per_s"))
    text = f"{rate} ({_num(cost, 3)} ms) of {_num(run.get('events'))}"
    return text if run.get("drained") else f"{text}, {_num(run.get('missing'))} missing"


def _faust_floor(result: Mapping[str, Any]) -> str:
    """The faust floor's own catch-up, with its CPU per event as a share of the worker's when
    both backlogs were worked off (an undrained one's CPU window includes the wait for it)."""
    text = _catch_up(result.get("faust") or {}, "faust")
    floor_ms = _get(result, ("faust", "catch_up", "cpu_ms_per_event", "faust"))
    worker_ms = _get(result, ("pipeline", "catch_up", "cpu_ms_per_event", "worker"))
    drained = _get(result, ("faust", "catch_up", "drained")) and _get(
        result, ("pipeline", "catch_up", "drained")
    )
    measured = isinstance(floor_ms, int | float) and isinstance(worker_ms, int | float)
    if measured and drained and worker_ms > 0:
        text += f"; {100 * floor_ms / worker_ms:.0f} % of the worker's CPU per event"
    return text


def markdown_table(result: Mapping[str, Any]) -> str:
    """The measured table, as the README keeps it."""
    pipeline = result.get("pipeline") or {}
    baseline = result.get("baseline") or {}
    gateway = result.get("gateway") or {}
    generator = result.get("generator") or {}
    met = {c["target"]: c["met"] for c in target_checks(result)}

    def mark(name: str) -> str:
        return {True: "✅", False: "❌", None: ""}[met.get(name)]

    p50, b50 = pipeline.get("at_50"), baseline.get("at_50")
    p90, b90 = pipeline.get("at_90"), baseline.get("at_90")
    rows = [
        (
            "max sustainable rate (events/s)",
            _num(pipeline.get("max_sustainable")),
            _num(baseline.get("max_sustainable")),
            f"≥ 10,000 {mark('events/s end to end, one worker')}",
        ),
        (
            "ratio to the baseline",
            _num(result.get("ratio"), 2),
            "1.00",
            f"≥ 0.3 {mark('ratio to raw Kafka baseline')}",
        ),
        (
            "p50 / p99 / p99.9 at 50% (ms)",
            _latency_and_rewrite(pipeline, "at_50"),
            _latency(b50),
            f"p99 ≤ 50 {mark('p99 at 50% of max (ms)')}",
        ),
        (
            "p50 / p99 / p99.9 at 90% (ms)",
            _latency_and_rewrite(pipeline, "at_90"),
            _latency(b90),
            "",
        ),
        (
            "Redis round trips per event (worker counter)",
            _num(_get(p90 or {}, ("redis", "round_trips_per_event")), 3),
            "—",
            f"≤ 0.1 {mark('Redis round trips per event')}",
        ),
        (
            "… in the backlog catch-up (batches as large as they get)",
            _num(_get(pipeline, ("catch_up", "redis", "round_trips_per_event")), 3),
            "—",
            "",
        ),
        (
            "Redis commands per event (INFO)",
            _num(_get(p90 or {}, ("redis", "commands_per_event")), 3),
            "—",
            "",
        ),
        (
            "Redis AOF bytes per event at 90% / in the catch-up (about what a replica is sent)",
            f"{_num(_get(p90 or {}, ('redis', 'aof_bytes_per_event')), 0)} / "
            f"{_num(_get(pipeline, ('catch_up', 'redis', 'aof_bytes_per_event')), 0)}",
            "—",
            "",
        ),
        (
            "cases after the 50% / 90% steps and the catch-up (those of up to 300 customers): "
            "interactions per case, mean (p90; mean case document, which the case script reads "
            "and writes whole on every event of the case)",
            f"{_cases(p50)} / {_cases(p90)} / {_cases(pipeline.get('catch_up'))}",
            "—",
            "",
        ),
        (
            "worker wake-ups per event at 50% / 90% (its threads' sleeps, each ending in one)",
            f"{_wakeups(p50, 'worker')} / {_wakeups(p90, 'worker')}",
            f"{_wakeups(b50, 'baseline')} / {_wakeups(b90, 'baseline')}",
            "",
        ),
        (
            "CPU / RSS at 90% (worker; baseline process)",
            _cpu(p90, "worker"),
            _cpu(b90, "baseline"),
            "",
        ),
        (
            "backlog catch-up: events/s (CPU per event of the worker; baseline process)",
            _catch_up(pipeline, "worker"),
            _catch_up(baseline, "baseline"),
            "",
        ),
        (
            "faust floor, its own: backlog catch-up through the worker's faust app, batching "
            "and publishing with no stage code (2 hops): events/s (CPU per event)",
            _faust_floor(result),
            "—",
            "",
        ),
        (
            "gateway: webhooks/s with 2xx (acks=all), one process",
            _num(gateway.get("max_sustainable")),
            "—",
            f"≥ 3,000 {mark('gateway webhooks/s, one process')}",
        ),
        (
            "gateway: p50 / p99 / p99.9 at 50% (ms)",
            _latency(gateway.get("at_50")),
            "—",
            f"p99 ≤ 20 {mark('gateway p99 at 50% (ms)')}",
        ),
        ("gateway CPU / RSS at 50%", _cpu(gateway.get("at_50"), "serve"), "—", ""),
        ("load generator alone (events/s, acks=all)", _num(generator.get("capacity")), "—", ""),
    ]
    lines = ["| measure | pipeline | raw Kafka baseline | target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    machine = result.get("machine") or {}
    lines.append("")
    lines.append(
        f"Measured by `{result.get('command', 'make bench')}` on {machine.get('cpus', '?')} cores "
        f"({machine.get('platform', '?')}, Python {machine.get('python', '?')}), broker and "
        f"Redis on the same host, {result.get('started_at', '?')}; events ≈ "
        f"{_num(generator.get('mean_event_bytes'))} bytes."
    )
    wakes = machine.get("wake_cpu_us") or {}
    if wakes:
        lines.append(
            "An event-loop wake-up cost this host "
            + " and ".join(f"{_num(us)} µs of CPU at {rate}" for rate, us in wakes.items())
            + " (in the bench's own process, before its phases; see bench.host)."
        )
    routine = machine.get("routine_cpu_us") or {}
    if routine:
        lines.append(
            "The same small piece of Python (a webhook's form parsed and signed, an event "
            "encoded) cost this host "
            + ", ".join(f"{_num(us)} µs of CPU {mode}" for mode, us in routine.items())
            + " (before its phases; see bench.host)."
        )
    warm = result.get("warm_up") or {}
    windows = warm.get("windows", ())
    costs = [c for w in windows if (c := w.get("broker_ms_per_event")) is not None]
    if costs:
        lines.append(
            f"Measured after the broker's warm-up: {len(windows)} windows of "
            f"{_num(warm.get('rate'))} events/s through a pass-through, the broker's CPU "
            f"{costs[0]:.3f} ms per event in the first, {costs[-1]:.3f} in the last"
            + ("." if warm.get("settled") else ", not settled.")
        )
    lines += _fixed_rates_table(pipeline)
    lines += _profiles(result.get("profiles") or {})
    return "\n".join(lines)


def _profiles(profiles: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """With ``--profile``: where each profiled process's samples went (the stacks are in
    ``profile-<process>.txt``; its figures above are those of a process being sampled)."""
    lines = []
    for name, profile in profiles.items():
        lines += ["", f"Profile of `omnirouter {name}` (py-spy, its whole phase):"]
        if profile.get("error") or not profile.get("samples"):
            lines.append(f"none: {profile.get('error') or 'py-spy took no samples'}")
            continue
        packages = ", ".join(
            f"{entry['name']} {entry['share']:.0%}" for entry in profile.get("by_package") or []
        )
        lines += [
            f"{_num(profile.get('samples'))} samples (stacks in profile-{name}.txt); by package "
            f"of the running frame: {packages}.",
            "",
            "The project's own functions, with what they call, and the frames running "
            "themselves (shares of all samples):",
            "",
            "| own function (inclusive) | share | running frame (self) | share |",
            "|---|---|---|---|",
        ]
        own, hot = profile.get("own_code") or [], profile.get("hottest_frames") or []
        for index in range(max(len(own), len(hot))):
            cells = []
            for column in (own, hot):
                entry = column[index] if index < len(column) else None
                cells += [entry["name"], f"{entry['share']:.1%}"] if entry else ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fixed_rates_table(pipeline: Mapping[str, Any]) -> list[str]:
    """The pipeline's steps at the rates asked for (``--pipeline-rates``), if it ran them."""
    steps = pipeline.get("fixed_rates") or []
    if not steps:
        return []
    lines = [
        "",
        "The pipeline at fixed rates (what a worker costs at a given load):",
        "",
        "| offered (events/s) | out (events/s) | p50 / p99 (ms) | worker cores | of them in the "
        "kernel | worker CPU per event (ms) | worker wake-ups per event | Redis round trips per "
        "event | interactions per case, mean (p90; mean case document bytes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for step in steps:
        latency = step.get("latency") or {}
        lines.append(
            f"| {_num(step.get('offered'))} | {_num(step.get('delivered'))} | "
            f"{_num(latency.get('p50_ms'), 1)} / {_num(latency.get('p99_ms'), 1)} | "
            f"{_num(_get(step, ('processes', 'worker', 'cpu_cores')), 2)} | "
            f"{_num(_get(step, ('processes', 'worker', 'system_cores')), 2)} | "
            f"{_num(_get(step, ('cpu_ms_per_event', 'worker')), 2)} | "
            f"{_num(_get(step, ('wakeups_per_event', 'worker')), 1)} | "
            f"{_num(_get(step, ('redis', 'round_trips_per_event')), 3)} | {_cases(step)} |"
        )
    return lines


def chart(result: Mapping[str, Any], path: Path) -> None:
    """Latency (p50, p99) against offered rate, for the pipeline, the baseline and the gateway."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5))
    for name, style in (("pipeline", "tab:blue"), ("baseline", "tab:gray")):
        phase = result.get(name) or {}
        _plot_steps(axes[0], phase.get("steps") or phase.get("fixed_rates") or [], name, style)
    axes[0].set_title("Pipeline (ingress topic → identity → cases → routing) vs raw Kafka")
    axes[0].set_xlabel("offered rate (events/s)")
    _plot_steps(axes[1], (result.get("gateway") or {}).get("steps") or [], "gateway", "tab:green")
    axes[1].set_title("Gateway alone: signed Twilio webhooks, 2xx after Kafka ack")
    axes[1].set_xlabel("offered rate (webhooks/s)")
    for axis in axes:
        axis.set_ylabel("latency from intended send (ms)")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"omnirouter bench {result.get('started_at', '')}  (x: backlog not bounded)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_steps(axis: Any, steps: Sequence[Mapping[str, Any]], name: str, color: str) -> None:
    measured = sorted(
        (s for s in steps if (s.get("latency") or {}).get("count")), key=lambda s: s["offered"]
    )
    if not measured:
        return
    rates = [s["offered"] for s in measured]
    for key, line in (("p50_ms", ":"), ("p99_ms", "-")):
        values = [s["latency"][key] for s in measured]
        axis.plot(
            rates, values, line, color=color, marker="o", markersize=3, label=f"{name} {key[:-3]}"
        )
        bad = [
            (r, v) for r, v, s in zip(rates, values, measured, strict=True) if not s["sustainable"]
        ]
        if bad:
            axis.scatter(*zip(*bad, strict=True), marker="x", color="red", zorder=3)


def write_result(result: Mapping[str, Any], folder: Path) -> tuple[Path, Path, Path]:
    """Write result.json, chart.png and table.md into ``folder``; returns their paths.

    Profiled processes' stacks (``--profile``) go beside them (:func:`stacks_to_files`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    result = stacks_to_files(result, folder)
    data = folder / "result.json"
    data.write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = folder / "table.md"
    table.write_text(markdown_table(result) + "\n")
    picture = folder / "chart.png"
    chart(result, picture)
    return data, picture, table


def stacks_to_files(result: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``result`` with each profiled process's stacks written to ``profile-<process>.txt`` in
    ``folder`` and the file named in their place (megabytes of text, not for result.json)."""
    out = dict(result)
    profiles = {}
    for name, profile in (result.get("profiles") or {}).items():
        kept = dict(profile)
        stacks = kept.pop("stacks", None)
        if stacks is not None:
            stacks_file = folder / f"profile-{name}.txt"
            stacks_file.write_text(stacks)
            kept["stacks_file"] = stacks_file.name
        profiles[name] = kept
    if profiles:
        out["profiles"] = profiles
    return out
