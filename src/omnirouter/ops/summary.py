"""What the /ops dashboard shows, computed from Prometheus samples (pure: data in, data out).

The serve process takes a :class:`MetricsSnapshot` every sampling tick (its own registry plus
the worker's scraped ``/metrics``); throughput and latency percentiles come from the increase
of counters and histogram buckets between snapshots of the last minute, as Prometheus'
``rate()`` and ``histogram_quantile()`` would compute them (counter resets included).

The platform operator sees every tenant; a tenant's operator sees :func:`for_tenant` of it.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from omnirouter.ops.metrics import STAGES

LabelKey = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, LabelKey]

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Every ``omnirouter_*`` sample at one moment: (sample name, labels) -> value."""

    at: float
    values: Mapping[SeriesKey, float] = field(default_factory=dict)

    def select(self, name: str, **match: str) -> Iterable[tuple[dict[str, str], float]]:
        """Samples named ``name`` whose labels include ``match``."""
        for (sample, labels), value in self.values.items():
            if sample != name:
                continue
            found = dict(labels)
            if all(found.get(k) == v for k, v in match.items()):
                yield found, value


def snapshot_from_families(families: Iterable[Metric], at: float) -> MetricsSnapshot:
    """The ``omnirouter_*`` samples of ``families`` (a registry's or a parsed scrape's)."""
    values: dict[SeriesKey, float] = {}
    for family in families:
        for sample in family.samples:
            if not sample.name.startswith("omnirouter_") or sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + float(sample.value)
    return MetricsSnapshot(at, values)


def merge(at: float, *snapshots: MetricsSnapshot) -> MetricsSnapshot:
    """Several processes' samples as one (same series add up, as ``sum()`` would)."""
    values: dict[SeriesKey, float] = defaultdict(float)
    for snapshot in snapshots:
        for key, value in snapshot.values.items():
            values[key] += value
    return MetricsSnapshot(at, dict(values))


def increase(
    window: Sequence[MetricsSnapshot], name: str, by: Sequence[str]
) -> dict[tuple[str, ...], float]:
    """How much counters named ``name`` grew over ``window``, summed by the labels ``by``.

    A series that went down was reset (its process restarted): its new value is the increase.
    """
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for before, after in itertools.pairwise(window):
        for key, value in after.values.items():
            if key[0] != name:
                continue
            previous = before.values.get(key, 0.0)
            grew = value - previous if value >= previous else value
            labels = dict(key[1])
            totals[tuple(labels.get(b, "") for b in by)] += grew
    return dict(totals)


def latest(snapshot: MetricsSnapshot, name: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
    """Current values named ``name``, summed by the labels ``by``."""
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in snapshot.select(name):
        totals[tuple(labels.get(b, "") for b in by)] += value
    return dict(totals)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile from cumulative bucket counts (upper bound -> count), interpolated
    linearly within the bucket as Prometheus does; None without observations."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0 or not math.isinf(bounds[-1]):
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the highest finite bucket: its bound is all we know
            inside = count - below
            if inside <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / inside
        lower, below = upper, count
    return lower


def _percentiles(bucket_counts: Mapping[float, float]) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": histogram_quantile(q, bucket_counts) for q in QUANTILES}


def _buckets(
    grouped: Mapping[tuple[str, ...], float],
) -> dict[str, dict[float, float]]:
    by_group: dict[str, dict[float, float]] = defaultdict(dict)
    for (group, le), count in grouped.items():
        by_group[group][float(le)] = count
    return dict(by_group)


@dataclass(frozen=True, slots=True)
class Window:
    """Snapshots of the last minute (or whatever is kept), oldest first."""

    snapshots: Sequence[MetricsSnapshot]

    @property
    def seconds(self) -> float:
        """Time the window spans (0 with fewer than two snapshots)."""
        if len(self.snapshots) < 2:
            return 0.0
        return self.snapshots[-1].at - self.snapshots[0].at

    def rates(self, name: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
        """Per-second increase of ``name`` by ``by`` over the window."""
        span = self.seconds
        if span <= 0:
            return {}
        return {k: v / span for k, v in increase(self.snapshots, name, by).items()}


def throughput(window: Window) -> dict[str, dict[str, float]]:
    """Events per second per stage, consumed (``in``) and published (``out``)."""
    rates = window.rates("omnirouter_events_total", ("stage", "direction"))
    out: dict[str, dict[str, float]] = {s: {"in": 0.0, "out": 0.0} for s in STAGES}
    for (stage, direction), rate in rates.items():
        out.setdefault(stage, {"in": 0.0, "out": 0.0})[direction] = rate
    return out


def latency(window: Window) -> dict[str, Any]:
    """p50/p95/p99 per stage and end to end, of what was observed during the window."""
    grew = increase(window.snapshots, "omnirouter_stage_seconds_bucket", ("stage", "le"))
    stages: dict[str, dict[str, float | None]] = {s: _percentiles({}) for s in STAGES}
    for stage, buckets in _buckets(grew).items():
        stages[stage] = _percentiles(buckets)
    counts = increase(window.snapshots, "omnirouter_stage_seconds_count", ("stage",))
    for stage, values in stages.items():
        values["count"] = counts.get((stage,), 0.0)
    e2e = increase(window.snapshots, "omnirouter_end_to_end_seconds_bucket", ("le",))
    e2e_buckets = {float(le): n for (le,), n in e2e.items()}
    end_to_end: dict[str, float | None] = _percentiles(e2e_buckets)
    end_to_end["count"] = e2e_buckets.get(math.inf, 0.0)
    return {"stages": stages, "end_to_end": end_to_end}


def queues(window: Window) -> list[dict[str, Any]]:
    """Depth, oldest wait, SLA target and SLA breaches of every queue of every tenant."""
    if not window.snapshots:
        return []
    now = window.snapshots[-1]
    depth = latest(now, "omnirouter_queue_depth", ("tenant", "queue"))
    oldest = latest(now, "omnirouter_queue_oldest_wait_seconds", ("tenant", "queue"))
    sla = latest(now, "omnirouter_queue_sla_seconds", ("tenant", "queue"))
    # Queue ids repeat across tenants: breaches are matched by (tenant, queue), never by queue.
    breaches = latest(now, "omnirouter_sla_breaches_total", ("tenant", "queue"))
    per_min = {
        k: v * 60
        for k, v in window.rates("omnirouter_sla_breaches_total", ("tenant", "queue")).items()
    }
    rows = []
    for (tenant, queue), n in sorted(depth.items()):
        rows.append(
            {
                "tenant": tenant,
                "queue": queue,
                "depth": int(n),
                "oldest_wait_s": oldest.get((tenant, queue), 0.0),
                "sla_first_response_s": sla.get((tenant, queue)),
                "sla_breaches_total": int(breaches.get((tenant, queue), 0)),
                "sla_breaches_per_min": per_min.get((tenant, queue), 0.0),
            }
        )
    for (tenant, queue), n in sorted(breaches.items()):
        # Breached in the worker before the serve process saw the queue, or counted without a
        # tenant (tenant ""): shown as a row of its own, never added to another tenant's.
        if (tenant, queue) not in depth:
            rows.append(
                {
                    "tenant": tenant,
                    "queue": queue,
                    "depth": 0,
                    "oldest_wait_s": 0.0,
                    "sla_first_response_s": None,
                    "sla_breaches_total": int(n),
                    "sla_breaches_per_min": per_min.get((tenant, queue), 0.0),
                }
            )
    return rows


def dead_letters(window: Window) -> list[dict[str, Any]]:
    """Dead letters by stage and reason code: total, and per minute over the window."""
    if not window.snapshots:
        return []
    totals = latest(window.snapshots[-1], "omnirouter_dead_letters_total", ("stage", "reason"))
    rates = window.rates("omnirouter_dead_letters_total", ("stage", "reason"))
    return [
        {"stage": s, "reason": r, "total": int(n), "per_min": rates.get((s, r), 0.0) * 60}
        for (s, r), n in sorted(totals.items())
    ]


def agents(window: Window) -> list[dict[str, Any]]:
    """Agents by tenant and presence."""
    if not window.snapshots:
        return []
    found = latest(window.snapshots[-1], "omnirouter_agents", ("tenant", "presence"))
    return [{"tenant": t, "presence": p, "count": int(n)} for (t, p), n in sorted(found.items())]


def deliveries(window: Window) -> dict[str, Any]:
    """Replies delivered and failed: totals and per second."""
    if not window.snapshots:
        return {"delivered": 0, "failed": 0, "delivered_per_s": 0.0, "failed_per_s": 0.0}
    totals = latest(window.snapshots[-1], "omnirouter_deliveries_total", ("result",))
    rates = window.rates("omnirouter_deliveries_total", ("result",))
    return {
        "delivered": int(totals.get(("delivered",), 0)),
        "failed": int(totals.get(("failed",), 0)),
        "delivered_per_s": rates.get(("delivered",), 0.0),
        "failed_per_s": rates.get(("failed",), 0.0),
    }


def history_point(window: Window) -> dict[str, Any]:
    """One point of the dashboard's time series, as of the window's last snapshot."""
    flow = throughput(window)
    lat = latency(window)
    rows = queues(window)
    dead = dead_letters(window)
    return {
        "t": window.snapshots[-1].at if window.snapshots else 0.0,
        "throughput": {stage: rates["in"] for stage, rates in flow.items()},
        "p50": {s: v["p50"] for s, v in lat["stages"].items()},
        "p95": {s: v["p95"] for s, v in lat["stages"].items()},
        "p99": {s: v["p99"] for s, v in lat["stages"].items()},
        "end_to_end_p95": lat["end_to_end"]["p95"],
        "queues": {f"{r['tenant']}/{r['queue']}": r["depth"] for r in rows if r["tenant"]},
        "oldest_wait_s": {
            f"{r['tenant']}/{r['queue']}": r["oldest_wait_s"] for r in rows if r["tenant"]
        },
        "sla_breaches_per_min": sum(r["sla_breaches_per_min"] for r in rows),
        "sla_breaches_per_min_by_tenant": _sum_by_tenant(rows, "sla_breaches_per_min"),
        "dead_letters_per_min": sum(d["per_min"] for d in dead),
    }


def _sum_by_tenant(rows: Iterable[Mapping[str, Any]], field: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["tenant"]] += row[field]
    return dict(totals)


def for_tenant(summary: Mapping[str, Any], tenant: str) -> dict[str, Any]:
    """What one tenant's operator sees of the dashboard's ``summary``.

    Their own queues (depth, waits, SLA breaches) and agents by presence, in the summary and
    its history: no other tenant's queue, agent count or name. The platform's infrastructure
    is shared and shown as it is, over every tenant: consumer-group lag and its history,
    throughput and latency per stage, end-to-end latency, dead letters by stage and reason
    code, and delivery totals; none of it names a tenant, a queue or a customer.
    """
    mine = f"{tenant}/"
    history = []
    for point in summary.get("history", ()):
        point = dict(point)
        by_tenant = point.pop("sla_breaches_per_min_by_tenant", None) or {}
        point["sla_breaches_per_min"] = by_tenant.get(tenant, 0.0)
        for key in ("queues", "oldest_wait_s"):
            point[key] = {k: v for k, v in point.get(key, {}).items() if k.startswith(mine)}
        history.append(point)
    return {
        **summary,
        "tenant": tenant,
        "queues": [r for r in summary.get("queues", ()) if r["tenant"] == tenant],
        "agents": [a for a in summary.get("agents", ()) if a["tenant"] == tenant],
        "history": history,
    }


def lag_point(at: float, report: Mapping[str, Any]) -> dict[str, Any]:
    """One point of the lag time series from ``LagReport.as_json()``."""
    return {
        "t": at,
        "groups": {
            g["group"]: {
                "lag": g.get("total_lag"),
                "time_lag_s": g.get("max_time_lag_s"),
                "status": g.get("status"),
            }
            for g in report.get("groups", ())
        },
    }
