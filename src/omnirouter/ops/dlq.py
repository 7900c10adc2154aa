"""The dead-letter topic for operators: list what failed and why, re-drive it after a fix.

Nothing that fails is dropped: every stage writes the original bytes, the stage and the reason
to ``omni.deadletter``. ``omnirouter dlq list`` shows them; ``omnirouter dlq replay`` publishes
the original bytes back to the topic they came from (stages are idempotent on event_id, so a
record that did get through meanwhile changes nothing). Records from the ingress gateway have
no source topic: an interaction event among them goes to the inbound topic; a provider payload
that made no event cannot be re-driven from here (the provider's own retry or a fix in the
channel is the way) and is reported as skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from omnirouter.connections import read_topic
from omnirouter.events import DeadLetter, InteractionEvent, UndecodableEvent, decode, topic_spec


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A dead letter and where it sits on the dead-letter topic."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter


def read_dead_letters(
    bootstrap_servers: str,
    *,
    topic_prefix: str,
    since: datetime | None = None,
    keep: Callable[[DeadLetter], bool] = lambda _: True,
    limit: int = 1000,
) -> list[DeadLetterRecord]:
    """Dead letters from ``since`` (default: the beginning), oldest first (reads only; no group)."""
    topic = topic_spec("deadletter").name(topic_prefix)
    found: list[DeadLetterRecord] = []
    for record in read_topic(bootstrap_servers, topic, since=since):
        try:
            letter = DeadLetter.model_validate_json(record.value)
        except ValueError:
            continue
        if keep(letter):
            found.append(
                DeadLetterRecord(record.partition, record.offset, record.timestamp, letter)
            )
            if len(found) >= limit:
                break
    return sorted(found, key=lambda r: (r.timestamp_ms, r.partition, r.offset))


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """Where one dead letter would be re-driven, or why it cannot be."""

    record: DeadLetterRecord
    target_topic: str | None
    skipped_because: str | None = None


def plan_replay(records: Iterable[DeadLetterRecord], *, topic_prefix: str) -> list[ReplayPlan]:
    """Decide, for each dead letter, where its original bytes go back to (pure)."""
    inbound = topic_spec("interactions.inbound").name(topic_prefix)
    plans = []
    for record in records:
        letter = record.letter
        if letter.source_topic:
            plans.append(ReplayPlan(record, letter.source_topic))
            continue
        try:
            decode(InteractionEvent, letter.original_value())
        except UndecodableEvent:
            plans.append(
                ReplayPlan(
                    record,
                    None,
                    f"a {letter.stage} payload that made no event: fix the channel, or let the "
                    "provider retry",
                )
            )
            continue
        plans.append(ReplayPlan(record, inbound))
    return plans


def replay(plans: Iterable[ReplayPlan], publish: Callable[[str, bytes | None, bytes], None]) -> int:
    """Publish each planned record's original bytes back; returns how many were re-driven."""
    count = 0
    for plan in plans:
        if plan.target_topic is None:
            continue
        letter = plan.record.letter
        publish(plan.target_topic, letter.original_key(), letter.original_value())
        count += 1
    return count
