"""What a fault scenario reports: one row of the end-of-run table.

A scenario records its report on its test item (``user_properties``), so the report reaches the
process that prints the tables at the end of the run: pytest's own, or pytest-xdist's
controller when the suite runs in several processes (`make test`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
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


_COLUMNS = (
    ("scenario", 36),
    ("events sent", 11),
    ("acknowledged", 12),
    ("faults injected", 15),
    ("lost", 5),
    ("duplicated", 10),
    ("seconds", 8),
)


def _row(values: tuple[object, ...]) -> str:
    widths = [w for _, w in _COLUMNS]
    cells = [f"{values[0]!s:<{widths[0]}}"]
    cells += [f"{v!s:>{w}}" for v, w in zip(values[1:], widths[1:], strict=True)]
    return " | ".join(cells)


def _print_table(
    terminalreporter: Any,
    rootpath: Path,
    reports: Sequence[FaultReport],
    *,
    title: str,
    artifact: Path,
    extra_lines: Iterable[str] = (),
) -> None:
    """The end-of-run table of fault or scale scenarios (shown without -s too), any extra
    lines, and the reports as JSON in ``artifact`` (under the repository root)."""
    terminalreporter.section(title)
    terminalreporter.line(_row(tuple(name for name, _ in _COLUMNS)))
    for r in reports:
        terminalreporter.line(
            _row(
                (
                    f"{r.scenario} [{r.size}]",
                    r.events_sent,
                    r.acknowledged,
                    r.faults_injected,
                    r.lost,
                    r.duplicated,
                    f"{r.seconds:.1f}",
                )
            )
        )
    for line in extra_lines:
        terminalreporter.line(line)
    path = rootpath / artifact
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    terminalreporter.line(f"written to {artifact}")


@dataclass(frozen=True)
class ScenarioTable:
    """One end-of-run table: the scenarios that recorded a report under ``key``."""

    key: str
    title: str
    artifact: Path
    extra_lines: Callable[[Sequence[FaultReport]], list[str]]

    def recorder(self, item: Any) -> Callable[[FaultReport], None]:
        """Records a report on the test ``item`` (call it before asserting)."""

        def record(report: FaultReport) -> None:
            item.user_properties.append((self.key, asdict(report)))

        return record

    def reports(self, terminalreporter: Any) -> list[FaultReport]:
        """The reports recorded during the run, from the tests' reports of their call phase
        (passed or failed), in the order the scenarios ran (pytest keeps reports by outcome)."""
        calls = [
            report
            for reports in terminalreporter.stats.values()
            for report in reports
            if getattr(report, "when", None) == "call"
        ]
        calls.sort(key=lambda report: getattr(report, "start", 0.0))
        return [
            FaultReport(**value)
            for report in calls
            for key, value in getattr(report, "user_properties", ())
            if key == self.key
        ]

    def show(self, terminalreporter: Any, rootpath: Path) -> None:
        """The table, when any scenario recorded a report for it."""
        reports = self.reports(terminalreporter)
        if reports:
            _print_table(
                terminalreporter,
                rootpath,
                reports,
                title=self.title,
                artifact=self.artifact,
                extra_lines=self.extra_lines(reports),
            )


FAULT_TABLE = ScenarioTable(
    key="fault report",
    title="fault injection",
    artifact=Path("test-artifacts") / "faults.json",
    extra_lines=lambda reports: [
        "seeds: "
        + ", ".join(f"{r.scenario}={r.seed}" for r in reports)
        + " (replay with OMNIROUTER_TEST_FAULTS_SEED=<seed>)"
    ],
)
SCALE_TABLE = ScenarioTable(
    key="scale report",
    title="cluster scale",
    artifact=Path("test-artifacts") / "cluster.json",
    extra_lines=lambda reports: [f"{r.scenario}: {json.dumps(r.details)}" for r in reports],
)
