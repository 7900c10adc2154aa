"""omnirouter's own Prometheus metrics: one registry, and one-line helpers for each point.

Every process registers the same metric families in :data:`REGISTRY` (``/metrics`` serves it),
and each instrumentation point is one call: ``count_consumed``, ``count_published``,
``observe_stage`` / ``observed``, ``count_sla_breach``... Per-queue and per-agent series carry
a ``tenant`` label (queue and agent ids repeat across tenants); the others (stages, topics,
dead letters, deliveries, end-to-end latency) are the platform's, over every tenant. Label
values are bounded on purpose: topics are catalogue keys (the deployment's prefix removed),
dead-letter reasons are the letter's short ``error_type`` code (never its free-text reason),
channels are the channel enum.

Redis round trips are counted per stage without touching the stores: :func:`count_round_trips`
makes a client's connections count every socket write (one per command or pipeline, as
``tests/support/redis_trips.py`` defines a round trip), labelled with the stage the current
task is in (set by ``observe_stage``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = [
    "DEAD_LETTERS",
    "DELIVERIES",
    "END_TO_END_SECONDS",
    "EVENTS",
    "INGRESS_PAYLOADS",
    "REDIS_ROUND_TRIPS",
    "REGISTRY",
    "SLA_BREACHES",
    "STAGES",
    "STAGE_SECONDS",
    "count_consumed",
    "count_dead_letter",
    "count_delivery",
    "count_events",
    "count_ingress",
    "count_published",
    "count_round_trips",
    "count_sla_breach",
    "current_stage",
    "observe_end_to_end",
    "observe_stage",
    "observed",
    "reason_code",
]

P = ParamSpec("P")
T = TypeVar("T")

#: omnirouter's own metrics; the lag collector and queue collector live in registries of the
#: serve process's /metrics route, so that tests and several apps in one process never clash.
REGISTRY = CollectorRegistry()

#: The stages with a latency histogram; the /ops dashboard shows them in this order.
STAGES = ("ingress", "identity", "cases", "routing", "dispatcher")

# Batches take milliseconds; a Redis or Kafka outage stretches one to seconds or minutes.
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_END_TO_END_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

EVENTS = Counter(
    "omnirouter_events",
    "Events each stage consumed (direction=in) and published (direction=out), per topic "
    "(catalogue key) and channel.",
    ["stage", "topic", "channel", "direction"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "omnirouter_stage_seconds",
    "Time to process one batch (workers), one routing, or one payload (ingress).",
    ["stage"],
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
END_TO_END_SECONDS = Histogram(
    "omnirouter_end_to_end_seconds",
    "From an interaction's received_at (the gateway) to its case being routed.",
    buckets=_END_TO_END_BUCKETS,
    registry=REGISTRY,
)
REDIS_ROUND_TRIPS = Counter(
    "omnirouter_redis_round_trips",
    "Redis round trips (a command or a pipeline) per stage.",
    ["stage"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "omnirouter_dead_letters",
    "Records written to the dead-letter topic, by stage and short reason code (error_type).",
    ["stage", "reason"],
    registry=REGISTRY,
)
SLA_BREACHES = Counter(
    "omnirouter_sla_breaches",
    "Cases still waiting when their queue's first-response SLA ran out, by tenant and queue "
    '(tenant "" when the caller did not say).',
    ["tenant", "queue"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "omnirouter_deliveries",
    "Replies the outbound dispatcher delivered (result=delivered) or gave up on (failed).",
    ["channel", "provider", "result"],
    registry=REGISTRY,
)
INGRESS_PAYLOADS = Counter(
    "omnirouter_ingress_payloads",
    "Provider payloads at the gateway: accepted, duplicate, rejected (422) or unavailable (503).",
    ["provider", "outcome"],
    registry=REGISTRY,
)

_stage: ContextVar[str] = ContextVar("omnirouter_stage", default="other")


def current_stage() -> str:
    """The stage the running task works for ("other" outside any)."""
    return _stage.get()


# Looked up once per stage: the gateway observes every webhook (labels() takes a lock).
_stage_seconds: dict[str, Any] = {}


@contextlib.contextmanager
def observe_stage(stage: str, *, timed: bool = True) -> Iterator[None]:
    """Label what runs inside (Redis round trips) with ``stage``, and time it.

    Works around ``await``: the label is a context variable, so tasks started inside inherit it.
    ``timed=False`` only labels (for loops too frequent and too empty to be worth a histogram).
    """
    token = _stage.set(stage)
    start = time.perf_counter()
    try:
        yield
    finally:
        if timed:
            seconds = _stage_seconds.get(stage)
            if seconds is None:
                seconds = _stage_seconds[stage] = STAGE_SECONDS.labels(stage)
            seconds.observe(time.perf_counter() - start)
        # A token from another context (never expected) must not turn metrics into an error.
        with contextlib.suppress(ValueError):
            _stage.reset(token)


def observed(
    stage: str, *, timed: bool = True
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorator form of :func:`observe_stage` for coroutine functions."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with observe_stage(stage, timed=timed):
                return await function(*args, **kwargs)

        return run

    return decorate


# Children of labelled counters, looked up once: a worker counts every event it moves.
_event_children: dict[tuple[str, str, str, str], Any] = {}


def count_events(stage: str, topic: str, channel: object, direction: str, n: int = 1) -> None:
    """Add ``n`` events of ``stage`` on ``topic`` (a catalogue key) and ``channel``."""
    key = (stage, topic, _label(channel), direction)
    child = _event_children.get(key)
    if child is None:
        child = _event_children[key] = EVENTS.labels(*key)
    child.inc(n)


def _label(value: object) -> str:
    if value is None:
        return "none"
    return str(value)


# Per event type: (has a channel field, has an interaction field), or None when the type is not
# a pydantic model. getattr() with a default on a model that lacks the field goes through
# pydantic's __getattr__ and an exception, for every record counted.
_channel_fields: dict[type, tuple[bool, bool] | None] = {}


def _channel_of(event: object) -> str:
    kind = type(event)
    if kind not in _channel_fields:
        fields = getattr(kind, "model_fields", None)
        _channel_fields[kind] = (
            ("channel" in fields, "interaction" in fields) if isinstance(fields, dict) else None
        )
    has = _channel_fields[kind]
    if has is None:
        channel = getattr(event, "channel", None)
        has_interaction = True
    else:
        channel = getattr(event, "channel") if has[0] else None  # noqa: B009 - typed object
        has_interaction = has[1]
    if channel is None and has_interaction:
        # A resolved interaction carries its channel on the interaction it wraps.
        channel = getattr(getattr(event, "interaction", None), "channel", None)
    return _label(channel)


def count_consumed(stage: str, topic: str, decoded: object, *, prefix: str = "") -> None:
    """One record ``stage`` consumed from Kafka ``topic``, decoded to ``decoded``.

    ``decoded`` is the event (its channel labels the count) or the dead letter it became.
    """
    count_events(stage, topic.removeprefix(prefix), _channel_of(decoded), "in")


class OutgoingRecord(Protocol):
    """What :func:`count_published` reads of ``pipeline.stream.Outgoing``."""

    @property
    def topic_key(self) -> str: ...

    @property
    def event(self) -> Any: ...


def count_published(stage: str, outgoing: Iterable[OutgoingRecord]) -> None:
    """Records ``stage`` published (after Kafka acknowledged them); dead letters among them
    count in ``omnirouter_dead_letters_total`` under their own stage and reason code."""
    events: Tally[tuple[str, str]] = Tally()
    for record in outgoing:
        events[(record.topic_key, _channel_of(record.event))] += 1
        if record.topic_key == "deadletter":
            letter = record.event
            count_dead_letter(getattr(letter, "stage", stage), getattr(letter, "error_type", ""))
    for (topic, channel), n in events.items():
        count_events(stage, topic, channel, "out", n)


_REASON_CHARS = re.compile(r"[^A-Za-z0-9_.]+")
_REASON_MAX = 48


def reason_code(error_type: str) -> str:
    """A dead letter's ``error_type`` as a short, stable label value.

    Error types are code-defined names ("NoUsableIdentifier", "UndecodableEvent.validation_failed",
    "DeliveryFailed.permanent"): anything else is squeezed to the same alphabet and length, so a
    surprising value can never explode the number of series.
    """
    code = _REASON_CHARS.sub("_", error_type).strip("_.")[:_REASON_MAX]
    return code or "unknown"


def count_dead_letter(stage: str, error_type: str) -> None:
    """One record written to the dead-letter topic by ``stage``."""
    DEAD_LETTERS.labels(stage, reason_code(error_type)).inc()


def count_ingress(provider: str, outcome: str, *, channel: object = None) -> None:
    """What the gateway did with one provider payload (``accepted``, ``duplicate``,
    ``rejected``, ``unavailable``); payloads that made an event count as ingress events in."""
    INGRESS_PAYLOADS.labels(provider, outcome).inc()
    count_events("ingress", "gateway", channel, "in")


def count_delivery(channel: object, provider: str, *, delivered: bool) -> None:
    """One reply the dispatcher delivered or gave up on."""
    DELIVERIES.labels(_label(channel), provider, "delivered" if delivered else "failed").inc()


def count_sla_breach(queue: str, *, tenant: str = "") -> None:
    """A queued case of ``tenant`` outlived its queue's first-response SLA.

    Queue ids repeat across tenants, so the tenant is part of the series: one tenant's breaches
    never add up with another's. An empty tenant (a caller that does not pass one) is a series
    of its own that only the platform operator sees.
    """
    SLA_BREACHES.labels(tenant, queue).inc()


def observe_end_to_end(received_at: datetime | None, routed: Iterable[OutgoingRecord]) -> None:
    """Time from the gateway receiving an interaction to its case being routed.

    ``routed`` is what routing announced for it; only a ``cases.routed`` record counts, timed
    at its ``occurred_at`` (the moment of the decision).
    """
    if received_at is None:
        return
    for record in routed:
        if record.topic_key == "cases.routed":
            at = getattr(record.event, "occurred_at", None) or datetime.now(UTC)
            END_TO_END_SECONDS.observe(max(0.0, (at - received_at).total_seconds()))


class _RoundTripCounting:
    """Mixed into a redis-py asyncio connection class: counts each write to the socket."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REDIS_ROUND_TRIPS.labels(_stage.get()).inc()
        await super().send_packed_command(command, check_health)  # type: ignore[misc]


def count_round_trips(client: aioredis.Redis) -> aioredis.Redis:
    """Make ``client`` count its Redis round trips per stage (before it connects).

    The pool's own connection class (TCP, TLS or Unix socket) is kept; counting is mixed in.
    """
    nodes = getattr(client, "nodes_manager", None)
    if nodes is not None:
        # Redis Cluster: a pool per node, made as nodes are discovered, from these arguments.
        base = nodes.connection_kwargs.get("connection_class", aioredis.Connection)
        nodes.connection_kwargs["connection_class"] = _counting(base)
        for node in nodes.startup_nodes.values():
            node.connection_class = _counting(node.connection_class)
        return client
    pool = client.connection_pool
    pool.connection_class = _counting(pool.connection_class)
    return client


def _counting(base: type[Any]) -> type[Any]:
    if issubclass(base, _RoundTripCounting):
        return base
    return type(f"RoundTripCounting{base.__name__}", (_RoundTripCounting, base), {})
