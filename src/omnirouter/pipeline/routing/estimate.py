"""The estimated wait a queued customer is told (pure)."""

from __future__ import annotations

import math


def estimate_wait_s(
    *,
    position: int,
    serving_slots: int,
    avg_handle_s: float | None,
    sla_first_response_s: int,
    opens_in_s: float = 0.0,
) -> float:
    """Seconds until an agent is likely to pick the case up.

    ``position`` cases are ahead of it (counting itself), served by ``serving_slots``
    concurrent slots (agents online who serve the queue times their capacity) that each take
    ``avg_handle_s`` per case. With no history or nobody online, the SLA target is the honest
    answer. A closed queue adds the time until it opens.
    """
    if serving_slots <= 0 or avg_handle_s is None:
        base = float(sla_first_response_s)
    else:
        base = math.ceil(max(position, 1) / serving_slots) * avg_handle_s
        base = min(base, float(sla_first_response_s) * 4)
    return max(0.0, opens_in_s) + base


def describe_wait(seconds: float) -> str:
    """A wait as a customer reads it: "a few minutes", "about 20 minutes", "about 3 hours"."""
    minutes = seconds / 60
    if minutes < 3:
        return "a few minutes"
    if minutes < 55:
        # Halves round up (12.5 -> 15), as people read "about".
        return f"about {int(math.floor(minutes / 5.0 + 0.5) * 5) or 5} minutes"
    hours = minutes / 60
    if hours < 23.5:
        rounded = max(1, round(hours))
        return f"about {rounded} hour{'s' if rounded != 1 else ''}"
    days = max(1, round(hours / 24))
    return f"about {days} day{'s' if days != 1 else ''}"
