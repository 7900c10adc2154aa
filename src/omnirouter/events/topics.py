"""The topic catalogue: every Kafka topic omnirouter uses, its key, message and retention."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from omnirouter.events.cases import CaseEvent, CaseRouted
from omnirouter.events.desk import AgentAction
from omnirouter.events.identity import CustomerErased, CustomerUnmerged, MergeReview
from omnirouter.events.models import (
    CustomerMerged,
    DeadLetter,
    InteractionEvent,
    ResolvedInteraction,
    RoutingDecision,
)

__all__ = [
    "DEFAULT_TOPIC_PREFIX",
    "RETAIN_FOREVER",
    "TOPICS",
    "TopicSpec",
    "topic_name",
    "topic_spec",
]

DEFAULT_TOPIC_PREFIX = "omni."
RETAIN_FOREVER = -1
"""Kafka's `retention.ms` value for "never delete by age"."""
_DAY_MS = 24 * 60 * 60 * 1000

_KEY = re.compile(r"^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*$")
# Kafka's own limits on topic names (legal characters, at most 249 of them).
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its symbolic key, message model, partitioning key and retention."""

    key: str
    model: type[BaseModel]
    key_description: str
    partitions: int
    retention_ms: int | None
    cleanup_policy: Literal["delete", "compact"]
    description: str
    # Production default; a single-broker dev stack creates topics with 1 replica instead.
    replication_factor: int = 3

    def __post_init__(self) -> None:
        """Reject specs Kafka would refuse, at import time rather than at topic creation."""
        if not _KEY.match(self.key):
            raise ValueError(f"topic key {self.key!r} must be dotted lower-case words")
        if self.partitions < 1 or self.replication_factor < 1:
            raise ValueError(f"topic {self.key}: partitions and replicas must be >= 1")
        if self.retention_ms is not None and self.retention_ms < RETAIN_FOREVER:
            raise ValueError(f"topic {self.key}: retention_ms must be -1 (forever) or >= 0")

    def name(self, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
        """Return the Kafka topic name under `prefix`."""
        return topic_name(self, prefix)


def topic_name(spec: TopicSpec, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """Return the Kafka topic name of `spec` under `prefix`, e.g. "omni.interactions.inbound"."""
    name = f"{prefix}{spec.key}"
    if not _KAFKA_TOPIC.match(name):
        raise ValueError(f"{name!r} is not a legal Kafka topic name (check the topic prefix)")
    return name


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        key="interactions.inbound",
        model=InteractionEvent,
        key_description="channel address of the sender, e.g. phone:+15550102345",
        partitions=12,
        retention_ms=7 * _DAY_MS,
        cleanup_policy="delete",
        description="Normalized inbound touchpoints from every channel, before identity.",
    ),
    TopicSpec(
        key="interactions.resolved",
        model=ResolvedInteraction,
        key_description="customer_id",
        partitions=12,
        retention_ms=7 * _DAY_MS,
        cleanup_policy="delete",
        description="Inbound interactions attributed to a customer; per-customer order from here.",
    ),
    TopicSpec(
        key="interactions.outbound",
        model=InteractionEvent,
        key_description="customer_id",
        partitions=12,
        retention_ms=7 * _DAY_MS,
        cleanup_policy="delete",
        description="Replies and notifications for the outbound dispatcher to deliver.",
    ),
    TopicSpec(
        key="customers.merged",
        model=CustomerMerged,
        key_description="surviving customer_id",
        partitions=6,
        # Kept forever and not compacted: every merge is history needed to rebuild identity,
        # and compaction would keep only the latest merge into each survivor.
        retention_ms=RETAIN_FOREVER,
        cleanup_policy="delete",
        description="Customer records found to be one person, and which identifiers moved.",
    ),
    TopicSpec(
        key="customers.unmerged",
        model=CustomerUnmerged,
        key_description="customer_id that was split (the former survivor)",
        partitions=6,
        # History, like merges: replaying merges without the splits would rebuild wrong customers.
        retention_ms=RETAIN_FOREVER,
        cleanup_policy="delete",
        description="Operator splits of merged customers, along the recorded merge history.",
    ),
    TopicSpec(
        key="customers.erased",
        model=CustomerErased,
        key_description="customer_id that was erased (the canonical one)",
        partitions=6,
        # Kept forever: whoever rebuilds state from the log, or holds copies, must learn of every
        # erasure, however late. The records hold ids and counts only, no personal data.
        retention_ms=RETAIN_FOREVER,
        cleanup_policy="delete",
        description="Customers erased on request; purge every copy of these customer and case ids.",
    ),
    TopicSpec(
        key="identity.reviews",
        model=MergeReview,
        key_description="customer_id the event was attributed to",
        partitions=3,
        retention_ms=30 * _DAY_MS,
        cleanup_policy="delete",
        description="Merges the identity guardrails stopped, for a person to decide.",
    ),
    TopicSpec(
        key="cases.events",
        model=CaseEvent,
        key_description="customer_id",
        partitions=12,
        retention_ms=7 * _DAY_MS,
        cleanup_policy="delete",
        description="Every case change (opened, message added, status transition, merge folded).",
    ),
    TopicSpec(
        key="cases.routed",
        model=CaseRouted,
        key_description="customer_id",
        partitions=12,
        retention_ms=7 * _DAY_MS,
        cleanup_policy="delete",
        description="Cases routed to a queue or agent, with the shared customer context.",
    ),
    TopicSpec(
        key="routing.decisions",
        model=RoutingDecision,
        key_description="customer_id",
        partitions=12,
        retention_ms=7 * _DAY_MS,
        cleanup_policy="delete",
        description="Every routing decision with candidates and reasons, for audit and tuning.",
    ),
    TopicSpec(
        key="desk.actions",
        model=AgentAction,
        key_description="agent_id",
        partitions=3,
        retention_ms=90 * _DAY_MS,
        cleanup_policy="delete",
        description="Every agent action at the desktop (sign-in, accept, reply, transfer…).",
    ),
    TopicSpec(
        key="deadletter",
        model=DeadLetter,
        key_description="the key of the failed record, unchanged",
        partitions=3,
        retention_ms=30 * _DAY_MS,
        cleanup_policy="delete",
        description="Records any stage could not process, with original bytes and the reason.",
    ),
)
"""Every topic, in pipeline order."""

_BY_KEY = {spec.key: spec for spec in TOPICS}


def topic_spec(key: str) -> TopicSpec:
    """Return the catalogue entry for `key`, e.g. "interactions.inbound"."""
    try:
        return _BY_KEY[key]
    except KeyError:
        known = ", ".join(sorted(_BY_KEY))
        raise KeyError(f"unknown topic key {key!r}; known keys: {known}") from None
