"""Dead letters for records too big for Kafka: the start of the payload, its size and SHA-256.

Kafka refuses a record over the producer's ``max_request_size`` or the broker's
``message.max.bytes`` (1 MiB + 12 by default). Whoever meets such a record — the gateway with a
provider's payload, a worker with an event it built — keeps it as a dead letter that fits, so
it neither vanishes nor stops the stream.
"""

from __future__ import annotations

import base64
import hashlib

from omnirouter.events.models import DeadLetter, EventEnvelope

RECORD_FRAMING_BYTES = 1024
"""Room left in a request for the record batch's framing around a record's key and value."""
KEPT_WHEN_TOO_LARGE = 64 * 1024
"""How much of an oversized payload its dead letter keeps (with the full size and SHA-256)."""


def oversized_dead_letter(
    event: EventEnvelope, value: bytes, key: bytes, *, topic: str, stage: str, limit: int
) -> DeadLetter:
    """A dead letter for a record too big for Kafka: the start of the payload, its size and
    SHA-256 (a dead letter that is itself too big keeps the start of *its* original)."""
    if isinstance(event, DeadLetter):
        original = event.original_value()
        headers = {**event.headers, **_truncation(original)}
        return event.model_copy(
            update={
                "reason": f"{event.reason} (payload of {len(original)} bytes kept truncated)"[
                    :2000
                ],
                "original_value_b64": base64.b64encode(original[:KEPT_WHEN_TOO_LARGE]).decode(),
                "headers": headers,
            }
        )
    return DeadLetter.for_payload(
        value[:KEPT_WHEN_TOO_LARGE],
        key,
        stage=stage,
        reason=(
            f"record too large: {len(value)} bytes for {topic} exceed the "
            f"{limit}-byte limit; kept truncated with its size and sha256"
        ),
        error_type="RecordTooLarge",
        headers={**_truncation(value), "target_topic": topic},
        tenant=event.tenant,
        causation_id=event.causation_id or event.event_id,
    )


def _truncation(payload: bytes) -> dict[str, str]:
    return {
        "truncated": "true",
        "original_bytes": str(len(payload)),
        "original_sha256": hashlib.sha256(payload).hexdigest(),
    }
