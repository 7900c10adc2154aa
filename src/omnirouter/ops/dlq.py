"""The dead-letter topic for operators: list what failed and why, re-drive it after a fix.

Nothing that fails is dropped: every stage writes the original bytes, the stage and the reason
to ``omni.deadletter``. ``omnirouter dlq list`` shows them; ``omnirouter dlq replay`` publishes
the original bytes back to the topic they came from (stages are idempotent on event_id, so a
record that did get through meanwhile changes nothing). Records from the ingress gateway have
no source topic: an interaction event among them goes to the inbound topic; a provider payload
that made no event cannot be re-driven from here (the provider's own retry or a fix in the
channel is the way) and is reported as skipped. So is a letter whose payload was too big for
Kafka and is kept truncated (its headers give the full size and SHA-256).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from omnirouter.connections import read_topic
from omnirouter.events import DeadLetter, InteractionEvent, UndecodableEvent, decode, topic_spec

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings


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
    security: KafkaSettings | None = None,
) -> list[DeadLetterRecord]:
    """Dead letters from ``since`` (default: the beginning), oldest first (reads only; no group)."""
    topic = topic_spec("deadletter").name(topic_prefix)
    found: list[DeadLetterRecord] = []
    for record in read_topic(bootstrap_servers, topic, since=since, security=security):
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
        if letter.headers.get("truncated") == "true":
            size = letter.headers.get("original_bytes", "?")
            plans.append(
                ReplayPlan(
                    record,
                    None,
                    f"only the start of the {size}-byte payload is kept (sha256 "
                    f"{letter.headers.get('original_sha256', '?')[:12]}…): have it sent again",
                )
            )
            continue
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


# "-1h" needs "--since=-1h" on a command line (argparse takes "-1h" for an option): "1h" (ago)
# is accepted too.
_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO timestamp with a time zone, or a time before ``now`` such as ``-1h`` or ``1h``.

    Raises:
        ValueError: neither form; the message says what is expected.
    """
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(seconds=float(relative[1]) * _UNIT_S[relative[2]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO timestamp (2026-11-26T09:00:00+00:00) nor relative "
            "(30m, 1h, 2d ago)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone, e.g. 2026-11-26T09:00:00+00:00")
    return moment


def letter_filter(
    *, stage: str | None = None, reason_contains: str | None = None
) -> Callable[[DeadLetter], bool]:
    """Keep letters of ``stage`` whose reason contains ``reason_contains`` (case-insensitive)."""
    needle = (reason_contains or "").lower()

    def keep(letter: DeadLetter) -> bool:
        if stage is not None and letter.stage != stage:
            return False
        return needle in letter.reason.lower()

    return keep


PREVIEW_CHARS = 60


def describe(record: DeadLetterRecord) -> dict[str, Any]:
    """One dead letter as plain data for a table or a JSON line: never the whole payload."""
    letter = record.letter
    value = letter.original_value()
    truncated = letter.headers.get("truncated") == "true"
    key = letter.original_key()
    return {
        "time": datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).isoformat("T", "seconds"),
        "stage": letter.stage,
        "reason": letter.reason,
        "error_type": letter.error_type,
        "source_topic": letter.source_topic,
        "source_offset": letter.source_offset,
        "key": None if key is None else _printable(key, 40),
        "size": int(letter.headers.get("original_bytes", len(value))),
        "truncated": truncated,
        "sha256": letter.headers.get("original_sha256"),
        "preview": _printable(value, PREVIEW_CHARS),
        "event_id": str(letter.event_id),
        "partition": record.partition,
        "offset": record.offset,
    }


def _printable(raw: bytes, limit: int) -> str:
    # Escaped, so control characters and invalid UTF-8 cannot garble the operator's terminal.
    head = raw[: limit * 4].decode("utf-8", "backslashreplace")
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in head)
    return escaped if len(escaped) <= limit and len(head) == len(raw) else escaped[:limit] + "…"


def render_table(rows: Iterable[dict[str, Any]]) -> str:
    """Dead letters as a table an operator reads in a terminal, oldest first."""
    lines = []
    for row in rows:
        size = f"{row['size']}B" + (" (truncated)" if row["truncated"] else "")
        lines.append(
            f"{row['time']}  {row['stage']:<9} {row['source_topic'] or '-'}  "
            f"key={row['key'] or '-'}  {size}\n"
            f"    why: {row['reason'][:160]}\n"
            f"    payload: {row['preview']}"
        )
    return "\n".join(lines) if lines else "no dead letters"
