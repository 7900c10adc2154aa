"""The faust-streaming application every pipeline worker runs in."""

from __future__ import annotations

from typing import Any

import faust


def create_app(
    app_id: str,
    bootstrap_servers: str,
    *,
    replication_factor: int = 1,
    **overrides: Any,
) -> faust.App:
    """A faust app configured for omnirouter's delivery guarantees.

    Agents on this app must be declared with ``concurrency=1``: with more, faust-streaming can
    commit an offset past a message that is still being processed (faust-streaming #606), and a
    crash then loses it. ``processing_guarantee`` stays at-least-once on purpose; idempotency on
    ``event_id`` makes redelivery harmless, while faust's exactly-once mode is not relied on.
    """
    brokers = [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")]
    config: dict[str, Any] = {
        "broker": brokers,
        "store": "memory://",
        # Workers expose metrics through omnirouter's own ops server, not faust's web views.
        "web_enabled": False,
        "topic_replication_factor": replication_factor,
        "topic_allow_declare": True,
        "topic_disable_leader": True,
        # A new consumer group starts from the beginning: nothing already on the log is skipped.
        "consumer_auto_offset_reset": "earliest",
        # Wait for every in-sync replica before a produced record counts as written.
        "producer_acks": -1,
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
    }
    config.update(overrides)
    return faust.App(app_id, **config)
