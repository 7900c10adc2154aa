"""The bench's traffic is what the pipeline accepts: valid ~1 KB events with usable senders."""

from __future__ import annotations

from omnirouter.bench.schedule import bench_event_id
from omnirouter.bench.traffic import build_traffic
from omnirouter.events import InteractionEvent, decode
from omnirouter.pipeline.identity.normalize import normalize_identifiers
from omnirouter.pipeline.identity.policy import IdentityPolicy


def test_every_template_is_a_valid_event_whose_identifiers_identity_can_use() -> None:
    """No benchmark event is dead-lettered for its content (that would measure nothing)."""
    traffic = build_traffic(50, partitions=12, mix_size=400)
    policy = IdentityPolicy()
    event_id = bench_event_id(0xABCDEF01, 1, 42)
    for template in (*traffic.first_contacts, *traffic.mix):
        event = decode(InteractionEvent, template.value(event_id.encode()))
        assert str(event.event_id) == event_id
        normalized = normalize_identifiers(event.identifiers, policy)
        assert normalized.usable, normalized.rejected
        assert not normalized.rejected, normalized.rejected
        assert template.key(event_id.encode()) == event.routing_key.encode()
    assert 900 <= traffic.mean_event_bytes() <= 1100


def test_the_mix_has_returning_customers_on_other_channels_merges_and_new_visitors() -> None:
    """Multi-channel customers, events carrying two identifiers, and never-seen visitors."""
    traffic = build_traffic(200, partitions=12, mix_size=4000)
    event_id = bench_event_id(1, 1, 1).encode()
    events = [decode(InteractionEvent, t.value(event_id)) for t in traffic.mix]
    channels = {e.channel for e in events}
    assert {"email", "sms", "whatsapp", "webchat"} <= {str(c) for c in channels}
    two_identifiers = sum(1 for e in events if len(e.identifiers) == 2) / len(events)
    assert 0.03 <= two_identifiers <= 0.07
    new_visitors = sum(1 for e in events if e.identifiers[0].value.startswith("new-"))
    assert 0.01 <= new_visitors / len(events) <= 0.03
    assert all(
        e.identifiers[0].value == f"new-{event_id.decode()}"
        for e in events
        if e.identifiers[0].value.startswith("new-")
    )
