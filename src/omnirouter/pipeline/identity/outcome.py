"""Turning a resolution into the events the identity worker publishes (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from omnirouter.events import (
    CustomerMerged,
    DeadLetter,
    Identifier,
    InteractionEvent,
    MergeReview,
    RejectedIdentifier,
    ResolvedInteraction,
    derived_event_id,
    identifier_from_address,
)
from omnirouter.pipeline.identity.normalize import NormalizedIdentifiers
from omnirouter.pipeline.identity.store import Resolution
from omnirouter.pipeline.stream import Outgoing

STAGE = "identity"


def _identifier(address: str) -> Identifier:
    return identifier_from_address(address)


def _cut(rejected: RejectedIdentifier) -> str:
    return "…" if rejected.value_length > len(rejected.value_preview) else ""


def no_usable_identifier(
    event: InteractionEvent,
    normalized: NormalizedIdentifiers,
    raw_value: bytes,
    raw_key: bytes | None,
    *,
    source_topic: str,
    partition: int,
    offset: int,
) -> DeadLetter:
    """The dead letter of an event none of whose identifiers can identify anybody."""
    reasons = "; ".join(
        f"{r.kind} {r.value_preview!r}{_cut(r)}: {r.reason}" for r in normalized.rejected
    )
    return DeadLetter.for_payload(
        raw_value,
        raw_key,
        stage=STAGE,
        reason=f"no usable identifier ({reasons})"[:2000],
        error_type="NoUsableIdentifier",
        source_topic=source_topic,
        source_partition=partition,
        source_offset=offset,
        tenant=event.tenant,
        causation_id=event.event_id,
    )


def resolution_events(
    event: InteractionEvent, normalized: NormalizedIdentifiers, resolution: Resolution
) -> list[Outgoing]:
    """The merged, review and resolved events one resolution publishes, in that order."""
    out: list[Outgoing] = []
    for merge in resolution.merges:
        linking = merge.linking[0] if merge.linking else None
        out.append(
            Outgoing(
                "customers.merged",
                merge.survivor_id,
                CustomerMerged(
                    event_id=derived_event_id(
                        event.event_id, f"identity:merge:{merge.absorbed_id}"
                    ),
                    tenant=event.tenant,
                    occurred_at=event.occurred_at,
                    causation_id=event.event_id,
                    survivor_id=merge.survivor_id,
                    absorbed_id=merge.absorbed_id,
                    cause=(
                        f"event {event.event_id} on {event.channel} carried identifiers of both "
                        f"customers ({', '.join(merge.linking) or 'via customer_id'}); "
                        "the oldest customer survives"
                    ),
                    linking_identifier=_identifier(linking) if linking else None,
                    moved_identifiers=tuple(_identifier(a) for a in merge.moved),
                    triggered_by_event_id=event.event_id,
                ),
            )
        )
    for review in resolution.reviews:
        out.append(
            Outgoing(
                "identity.reviews",
                review.resolved_to,
                MergeReview(
                    event_id=derived_event_id(event.event_id, "identity:review"),
                    tenant=event.tenant,
                    occurred_at=event.occurred_at,
                    causation_id=event.event_id,
                    review_id=review.review_id,
                    customer_ids=review.customer_ids,
                    resolved_to=review.resolved_to,
                    reason=review.reason,
                    guardrail=review.guardrail,
                    identifiers=tuple(_identifier(a) for a in review.identifiers),
                    triggered_by_event_id=event.event_id,
                ),
            )
        )
    held = dict(resolution.not_attached)
    rejected: list[RejectedIdentifier] = list(normalized.rejected)
    for identifier in normalized.usable:
        why = held.get(identifier.address)
        if why is not None:
            rejected.append(
                RejectedIdentifier(
                    kind=identifier.kind,
                    value_preview=identifier.value[:64],
                    value_length=len(identifier.value),
                    reason=f"not linked: {why}",
                )
            )
    out.append(
        Outgoing(
            "interactions.resolved",
            resolution.customer_id,
            ResolvedInteraction(
                event_id=derived_event_id(event.event_id, STAGE),
                tenant=event.tenant,
                occurred_at=event.occurred_at,
                causation_id=event.event_id,
                customer_id=resolution.customer_id,
                interaction=event,
                is_new_customer=resolution.is_new,
                merged_customer_ids=tuple(m.absorbed_id for m in resolution.merges),
                identifiers=normalized.usable,
                rejected_identifiers=tuple(rejected),
                review_ids=tuple(r.review_id for r in resolution.reviews),
            ),
        )
    )
    return out


def summarize(outgoing: Sequence[Outgoing]) -> dict[str, int]:
    """Counts of records per topic key, for logs and metrics."""
    counts: dict[str, int] = {}
    for item in outgoing:
        counts[item.topic_key] = counts.get(item.topic_key, 0) + 1
    return counts
