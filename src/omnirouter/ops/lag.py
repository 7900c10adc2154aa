"""The consumer lag monitor: offset lag, time lag and a Burrow status per group and partition.

:class:`LagMonitor` polls the cluster with kafka-python's admin client, one round per
:meth:`LagMonitor.sample` (callers run it in a thread, every ``lag_sample_interval_s``): the
consumer groups (or the configured ones), their committed offsets, who owns which partition,
and the log end offsets. It keeps what the estimates need between rounds, the end offset table
of :mod:`omnirouter.ops.timelag` per partition and the Burrow window of
:mod:`omnirouter.ops.burrow` per group and partition, and publishes an immutable
:class:`LagReport`. :class:`LagCollector` exports the latest report in the metric names of
kafka-lag-exporter and the Burrow exporters, so existing dashboards and alerts apply.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from omnirouter.connections import admin_client, wait_for_kafka
from omnirouter.errors import OmnirouterError
from omnirouter.logs import get_logger
from omnirouter.ops.burrow import LagStatus, PartitionWindow, worst_status
from omnirouter.ops.timelag import EndOffsetTable
from omnirouter.security import kafka_python_security

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings

__all__ = [
    "GroupLag",
    "LagCollector",
    "LagMonitor",
    "LagReport",
    "LagStatus",
    "PartitionLag",
    "format_seconds",
    "lag_metrics",
    "render_table",
]

log = get_logger(__name__)

_REQUEST_TIMEOUT_MS = 10_000
_CONNECT_TIMEOUT_S = 5.0
# Groups that never commit offsets: Kafka Connect's worker groups and share groups.
_SKIPPED_PROTOCOL_TYPES = frozenset({"connect", "share"})


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition of one group: where the group is, where the log ends, and how far apart."""

    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    time_lag_s: float
    status: str


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One consumer group: its Burrow status, total offset lag and worst time lag."""

    group: str
    status: str
    total_lag: int
    max_time_lag_s: float
    partitions: list[PartitionLag] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LagReport:
    """Every watched group as sampled at ``sampled_at`` (epoch seconds; 0 before any sample)."""

    sampled_at: float = 0.0
    groups: list[GroupLag] = field(default_factory=list)

    def group(self, name: str) -> GroupLag | None:
        """The group called ``name``, if the report has it."""
        return next((g for g in self.groups if g.group == name), None)

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON types, with the dataclasses' field names."""
        # Statuses are stored as plain strings, so asdict yields JSON types only.
        return dataclasses.asdict(self)


@dataclass
class _Round:
    """What one round of admin calls read."""

    groups: list[str]
    committed: dict[str, dict[TopicPartition, int]]
    owned: dict[str, set[TopicPartition]]
    failed: set[str]
    ends: dict[TopicPartition, int]
    starts: dict[TopicPartition, int]


class LagMonitor:
    """Samples consumer lag on a Kafka cluster and keeps the state its estimates need.

    Thread-safe: :meth:`sample` runs one round at a time (in a worker thread, typically) while
    :meth:`report` may be read from anywhere.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        window: int,
        groups: tuple[str, ...] = (),
        security: KafkaSettings | None = None,
    ) -> None:
        """Watch ``groups`` (every consumer group when empty) on ``bootstrap_servers``.

        Args:
            bootstrap_servers: host:port[,host:port].
            window: samples per partition that Burrow's rules evaluate (at least 2).
            groups: consumer group ids to watch; empty means every group on the cluster.
            security: the cluster's SASL/TLS settings (None: PLAINTEXT).
        """
        if window < 2:
            raise ValueError(f"window must be at least 2 samples, got {window}")
        self._bootstrap = bootstrap_servers
        self._security = security
        self._window = window
        self._groups = tuple(groups)
        self._admin: KafkaAdminClient | None = None
        self._tables: dict[TopicPartition, EndOffsetTable] = {}
        self._windows: dict[tuple[str, TopicPartition], PartitionWindow] = {}
        self._report = LagReport()
        self._sampling = threading.Lock()

    def report(self) -> LagReport:
        """The latest report (empty before the first :meth:`sample`)."""
        return self._report

    def sample(self, now: float | None = None) -> LagReport:
        """Run one round of admin calls, update the estimates and return the new report.

        Args:
            now: the time to record the round at (epoch seconds); default: when the log end
                offsets were read.

        A round the broker does not answer returns the previous groups with status ERR (and
        their last known figures) rather than raising; the next round reconnects.
        """
        with self._sampling:
            try:
                round_ = self._read_round()
            except (KafkaError, OSError, OmnirouterError) as exc:
                log.warning("lag sample failed", error=f"{type(exc).__name__}: {exc}")
                self._disconnect()
                report = self._failed_report(time.time() if now is None else now)
            else:
                report = self._evaluate(round_, time.time() if now is None else now)
            self._report = report
            return report

    def close(self) -> None:
        """Close the admin client (a later :meth:`sample` opens a new one)."""
        with self._sampling:
            self._disconnect()

    def __enter__(self) -> LagMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading the cluster -------------------------------------------------------------

    def _client(self) -> KafkaAdminClient:
        if self._admin is None:
            # kafka-python waits for a broker for a long time when none answers: check first.
            wait_for_kafka(self._bootstrap, timeout_s=_CONNECT_TIMEOUT_S, security=self._security)
            self._admin = admin_client(
                bootstrap_servers=[s.strip() for s in self._bootstrap.split(",")],
                client_id="omnirouter-lag-monitor",
                request_timeout_ms=_REQUEST_TIMEOUT_MS,
                bootstrap_timeout_ms=_REQUEST_TIMEOUT_MS,
                **kafka_python_security(self._security),
            )
        return self._admin

    def _disconnect(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            try:
                admin.close()
            except (KafkaError, OSError) as exc:
                log.debug("closing the lag monitor's admin client failed", error=str(exc))

    def _read_round(self) -> _Round:
        admin = self._client()
        groups = list(self._groups) or _consumer_groups(admin)
        committed, failed = _committed_offsets(admin, groups)
        owned, unknown = _owned_partitions(admin, groups)
        for group in groups:
            # A configured group the cluster does not know, with no offsets either.
            if group in unknown and not committed.get(group):
                failed.add(group)
        # End offsets after committed ones, so a group that keeps up never shows negative lag.
        wanted = {tp for offsets in committed.values() for tp in offsets}
        wanted |= {tp for tps in owned.values() for tp in tps}
        ends = _log_offsets(admin, wanted, OffsetSpec.LATEST)
        uncommitted = {
            tp
            for group in groups
            for tp in owned.get(group, ())
            if tp not in committed.get(group, {})
        }
        starts = _log_offsets(admin, uncommitted & ends.keys(), OffsetSpec.EARLIEST)
        return _Round(groups, committed, owned, failed, ends, starts)

    # -- evaluating ----------------------------------------------------------------------

    def _evaluate(self, round_: _Round, at: float) -> LagReport:
        for tp, end in round_.ends.items():
            self._tables.setdefault(tp, EndOffsetTable()).add(end, at)
        for tp in set(self._tables) - round_.ends.keys():
            del self._tables[tp]
        seen: set[tuple[str, TopicPartition]] = set()
        groups: list[GroupLag] = []
        for group in sorted(round_.groups):
            if group in round_.failed:
                groups.append(GroupLag(group, LagStatus.ERR.value, 0, 0.0, []))
                continue
            committed = round_.committed.get(group, {})
            owned = round_.owned.get(group, set())
            partitions = []
            for tp in sorted(committed.keys() | owned):
                seen.add((group, tp))
                partitions.append(
                    self._partition(group, tp, committed.get(tp), tp in owned, round_, at)
                )
            groups.append(_group_lag(group, partitions))
        for key in set(self._windows) - seen:
            del self._windows[key]
        return LagReport(at, groups)

    def _partition(
        self,
        group: str,
        tp: TopicPartition,
        committed: int | None,
        alive: bool,
        round_: _Round,
        at: float,
    ) -> PartitionLag:
        end = round_.ends.get(tp)
        table = self._tables.get(tp)
        if end is None or table is None:
            # The topic is gone (or its leader did not answer): nothing to measure against.
            self._windows.pop((group, tp), None)
            return PartitionLag(tp.topic, tp.partition, committed, 0, 0, 0.0, LagStatus.ERR.value)
        if committed is None:
            # Never committed: lag counts what the group has not read yet, from the log start.
            start = round_.starts.get(tp, end)
            lag = max(0, end - start)
            if lag == 0 or not alive:
                status = LagStatus.OK if lag == 0 else LagStatus.ERR
                return PartitionLag(
                    tp.topic, tp.partition, None, end, lag, table.time_lag(start, at), status.value
                )
            # A live member owns it and its first records just arrived: the first commit is
            # due within the commit interval. Judge it by Burrow's rules from the log start
            # (a stalled consumer still shows, after a window) rather than alarm at once.
            position = start
        else:
            position = committed
        lag = max(0, end - position)
        window = self._windows.get((group, tp))
        if window is None:
            window = self._windows[(group, tp)] = PartitionWindow(self._window)
        window.record(at, position, lag, consumer_alive=alive)
        return PartitionLag(
            tp.topic,
            tp.partition,
            committed,
            end,
            lag,
            table.time_lag(position, at),
            window.status(at).value,
        )

    def _failed_report(self, at: float) -> LagReport:
        previous = {g.group: g for g in self._report.groups}
        names = sorted(set(self._groups) | previous.keys())
        groups = []
        for name in names:
            before = previous.get(name)
            partitions = [] if before is None else before.partitions
            groups.append(
                GroupLag(
                    name,
                    LagStatus.ERR.value,
                    0 if before is None else before.total_lag,
                    0.0 if before is None else before.max_time_lag_s,
                    [dataclasses.replace(p, status=LagStatus.ERR.value) for p in partitions],
                )
            )
        return LagReport(at, groups)


def _group_lag(group: str, partitions: list[PartitionLag]) -> GroupLag:
    # A group with offsets on no partition has nothing behind it.
    status = worst_status(p.status for p in partitions) if partitions else LagStatus.OK
    return GroupLag(
        group,
        status.value,
        sum(p.lag for p in partitions),
        max((p.time_lag_s for p in partitions), default=0.0),
        partitions,
    )


def _consumer_groups(admin: KafkaAdminClient) -> list[str]:
    listed = admin.list_groups()
    return sorted(
        str(g["group_id"])
        for g in listed
        if g.get("protocol_type") not in _SKIPPED_PROTOCOL_TYPES and g.get("group_type") != "share"
    )


def _committed_offsets(
    admin: KafkaAdminClient, groups: list[str]
) -> tuple[dict[str, dict[TopicPartition, int]], set[str]]:
    if not groups:
        return {}, set()
    try:
        results: dict[str, Any] = dict(admin.list_group_offsets(dict.fromkeys(groups)))
        failed: set[str] = set()
    except KafkaError:
        # One group's error fails the whole batch: ask again one group at a time.
        results, failed = {}, set()
        for group in groups:
            try:
                results.update(admin.list_group_offsets({group: None}))
            except KafkaError as exc:
                log.warning("committed offsets unavailable", group=group, error=str(exc))
                failed.add(group)
    committed: dict[str, dict[TopicPartition, int]] = {}
    for group, offsets in results.items():
        committed[group] = {
            TopicPartition(tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if meta.offset >= 0
        }
    return committed, failed


def _owned_partitions(
    admin: KafkaAdminClient, groups: list[str]
) -> tuple[dict[str, set[TopicPartition]], set[str]]:
    """Which partitions live members hold, per group, and the groups the cluster does not know.

    Best effort: groups on the KIP-848 protocol (or a broker that refuses the call) count as
    having no live members, so their status rests on offset movement alone.
    """
    owned: dict[str, set[TopicPartition]] = defaultdict(set)
    unknown: set[str] = set()
    if not groups:
        return owned, unknown
    try:
        described: Mapping[str, Any] = admin.describe_groups(groups)
    except KafkaError as exc:
        log.debug("describe_groups failed; liveness unknown", error=str(exc))
        return owned, unknown
    for group, description in described.items():
        if not isinstance(description, Mapping):
            continue
        error = description.get("error")
        if error:
            if "GroupIdNotFound" in str(error):
                unknown.add(group)
            continue
        for member in description.get("members") or ():
            owned[group].update(_assigned(member.get("member_assignment")))
    return owned, unknown


def _assigned(assignment: object) -> Iterator[TopicPartition]:
    if not isinstance(assignment, Mapping):
        return  # an assignment kafka-python could not decode (not the consumer protocol)
    for entry in assignment.get("assigned_partitions") or ():
        topic = entry.get("topic") if isinstance(entry, Mapping) else None
        if topic is None:
            continue
        for partition in entry.get("partitions") or ():
            yield TopicPartition(str(topic), int(partition))


def _log_offsets(
    admin: KafkaAdminClient, partitions: Iterable[TopicPartition], spec: OffsetSpec
) -> dict[TopicPartition, int]:
    wanted = set(partitions)
    if not wanted:
        return {}
    try:
        answered = admin.list_partition_offsets(dict.fromkeys(wanted, spec))
    except KafkaError:
        # One unknown topic (deleted while a group still has offsets) fails the whole call:
        # ask again topic by topic, and leave out the ones that fail.
        answered = {}
        by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in wanted:
            by_topic[tp.topic].append(tp)
        for topic, tps in by_topic.items():
            try:
                answered.update(admin.list_partition_offsets(dict.fromkeys(tps, spec)))
            except KafkaError as exc:
                log.debug("log offsets unavailable", topic=topic, error=str(exc))
    return {TopicPartition(tp.topic, tp.partition): int(o.offset) for tp, o in answered.items()}


# -- Prometheus ------------------------------------------------------------------------------


def _families(report: LagReport) -> list[Metric]:
    lag = GaugeMetricFamily(
        "kafka_consumergroup_lag",
        "Offset lag of a consumer group on a partition (log end offset - committed offset).",
        labels=["group", "topic", "partition"],
    )
    lag_seconds = GaugeMetricFamily(
        "kafka_consumergroup_lag_seconds",
        "Estimated age of the oldest record a consumer group has not consumed on a partition.",
        labels=["group", "topic", "partition"],
    )
    group_lag = GaugeMetricFamily(
        "kafka_consumergroup_group_lag",
        "Sum of a consumer group's offset lag over its partitions.",
        labels=["group"],
    )
    group_seconds = GaugeMetricFamily(
        "kafka_consumergroup_group_max_lag_seconds",
        "A consumer group's largest time lag over its partitions.",
        labels=["group"],
    )
    status = GaugeMetricFamily(
        "kafka_consumergroup_status",
        "Burrow status of a consumer group: 1 for the current status, 0 for the others.",
        labels=["group", "status"],
    )
    latest = GaugeMetricFamily(
        "kafka_partition_latest_offset",
        "Log end offset of a partition some watched consumer group reads.",
        labels=["topic", "partition"],
    )
    latest_seen: dict[tuple[str, int], int] = {}
    for group in report.groups:
        group_lag.add_metric([group.group], group.total_lag)
        group_seconds.add_metric([group.group], group.max_time_lag_s)
        for candidate in LagStatus:
            status.add_metric([group.group, candidate.value], 1 if group.status == candidate else 0)
        for p in group.partitions:
            if p.status == LagStatus.ERR and p.end == 0:
                continue  # nothing was measured for this partition
            labels = [group.group, p.topic, str(p.partition)]
            lag.add_metric(labels, p.lag)
            lag_seconds.add_metric(labels, p.time_lag_s)
            latest_seen[(p.topic, p.partition)] = p.end
    for (topic, partition), end in sorted(latest_seen.items()):
        latest.add_metric([topic, str(partition)], end)
    return [lag, lag_seconds, group_lag, group_seconds, status, latest]


class LagCollector(Collector):
    """Exports the monitor's latest report at every scrape (no Kafka call while scraping)."""

    def __init__(self, monitor: LagMonitor) -> None:
        """Export ``monitor.report()``; register with ``registry.register(LagCollector(m))``."""
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        """The metric families of the latest report."""
        return _families(self._monitor.report())

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples (so registering does not read a report)."""
        return _families(LagReport())


class _ReportCollector(Collector):
    def __init__(self, report: LagReport) -> None:
        self.report = report

    def collect(self) -> Iterable[Metric]:
        return _families(self.report)

    def describe(self) -> Iterable[Metric]:
        return _families(LagReport())


_shown: weakref.WeakKeyDictionary[CollectorRegistry, _ReportCollector] = weakref.WeakKeyDictionary()
_shown_lock = threading.Lock()


def lag_metrics(report: LagReport, registry: CollectorRegistry | None = None) -> list[Metric]:
    """The Prometheus metric families of ``report``.

    With ``registry``, that registry's /metrics also shows ``report`` from now on, in place of
    the report given in the previous call (partitions and groups that disappeared disappear
    from /metrics too, which gauges set one by one would keep).
    """
    if registry is not None:
        with _shown_lock:
            collector = _shown.get(registry)
            if collector is None:
                collector = _shown[registry] = _ReportCollector(report)
                registry.register(collector)
            collector.report = report
    return _families(report)


# -- terminal --------------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """A duration for people: ``0.4s``, ``12.3s``, ``4m05s``, ``2h03m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def render_table(report: LagReport, *, verbose: bool = False) -> str:
    """The report as a terminal table: one row per group, and per partition with ``verbose``."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.sampled_at))
    if not report.groups:
        return f"no consumer groups to show (sampled {when})"
    header = ["GROUP", "STATUS", "LAG", "TIME LAG"]
    if verbose:
        header = ["GROUP / PARTITION", *header[1:], "COMMITTED", "END"]
    rows = [header]
    for g in report.groups:
        row = [g.group, g.status, str(g.total_lag), format_seconds(g.max_time_lag_s)]
        rows.append([*row, "", ""] if verbose else row)
        if verbose:
            for p in g.partitions:
                committed = "-" if p.committed is None else str(p.committed)
                rows.append(
                    [
                        f"  {p.topic}[{p.partition}]",
                        p.status,
                        str(p.lag),
                        format_seconds(p.time_lag_s),
                        committed,
                        str(p.end),
                    ]
                )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.append(f"sampled {when}")
    return "\n".join(lines)
