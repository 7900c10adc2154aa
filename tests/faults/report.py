"""What a fault scenario reports: one row of the end-of-run table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faults.reconcile import Reconciliation


@dataclass
class FaultReport:
    """What one scenario did and found."""

    scenario: str
    size: str
    seed: int
    events_sent: int
    acknowledged: int
    faults_injected: int
    lost: int
    duplicated: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        scenario: str,
        size: str,
        seed: int,
        *,
        sent: int,
        acknowledged: int,
        faults: int,
        result: Reconciliation,
        seconds: float,
        **details: Any,
    ) -> FaultReport:
        """A report from a scenario's counts and its reconciliation."""
        return cls(
            scenario=scenario,
            size=size,
            seed=seed,
            events_sent=sent,
            acknowledged=acknowledged,
            faults_injected=faults,
            lost=result.lost,
            duplicated=result.duplicated,
            seconds=round(seconds, 1),
            details={
                "customers": result.customers,
                "cases": result.cases,
                "lost_events": len(result.lost_events),
                "duplicated_events": len(result.duplicated_events),
                "unrouted_cases": len(result.unrouted_cases),
                "cases_routed_more_than_once": len(result.cases_routed_twice),
                # Same event id published again (at-least-once; consumers drop it by event_id).
                "routed_records_redelivered": result.routed_records_repeated,
                **details,
            },
        )
