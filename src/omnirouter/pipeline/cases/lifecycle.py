"""The case lifecycle: which status may follow which, and why (pure)."""

from __future__ import annotations

from omnirouter.events import CaseStatus

S = CaseStatus

OPEN_STATUSES = frozenset({S.NEW, S.QUEUED, S.OFFERED, S.ASSIGNED, S.WAITING_ON_CUSTOMER})
"""A case in one of these is the customer's open case; at most one at a time."""

ALLOWED_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.NEW: frozenset({S.QUEUED, S.OFFERED, S.ASSIGNED, S.RESOLVED, S.CLOSED}),
    S.QUEUED: frozenset({S.OFFERED, S.ASSIGNED, S.RESOLVED, S.CLOSED}),
    # A declined or expired offer goes back to the queue.
    S.OFFERED: frozenset({S.QUEUED, S.ASSIGNED, S.RESOLVED, S.CLOSED}),
    S.ASSIGNED: frozenset({S.QUEUED, S.OFFERED, S.WAITING_ON_CUSTOMER, S.RESOLVED, S.CLOSED}),
    S.WAITING_ON_CUSTOMER: frozenset({S.QUEUED, S.ASSIGNED, S.RESOLVED, S.CLOSED}),
    # Reopening goes back to routing as a new case would.
    S.RESOLVED: frozenset({S.NEW, S.CLOSED}),
    S.CLOSED: frozenset(),
}


def can_transition(current: CaseStatus, target: CaseStatus) -> bool:
    """True when ``target`` may follow ``current``."""
    return target in ALLOWED_TRANSITIONS[current]


def transition_table() -> dict[str, list[str]]:
    """The table as plain strings, for the Lua script that applies transitions atomically."""
    return {str(k): sorted(str(v) for v in targets) for k, targets in ALLOWED_TRANSITIONS.items()}
