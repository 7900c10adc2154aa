"""How `make test` runs the suite in two processes: the packages with stacks of their own stay
together in one, and their scenario tables still come from every process's reports."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faults.report import FAULT_TABLE, SCALE_TABLE, FaultReport
from support.xdist_grouping import OWN_STACKS, work_unit


def test_cluster_and_fault_tests_are_one_work_unit_and_every_other_test_its_own() -> None:
    assert work_unit("tests/cluster/test_broker_failure.py::test_x[short]") == OWN_STACKS
    assert work_unit("tests/faults/test_worker_sigkill.py::test_y") == OWN_STACKS
    for nodeid in (
        "tests/unit/test_bench_stats.py::test_z",
        "tests/integration/ops/test_lag_monitor.py::test_w",
        "tests/clustering/test_v.py::test_v",  # a name that merely starts the same
    ):
        assert work_unit(nodeid) == nodeid


def _report(when: str, start: float, *properties: tuple[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(when=when, start=start, user_properties=list(properties))


def _row(scenario: str, lost: int = 0) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "size": "short",
        "seed": 7,
        "events_sent": 300,
        "acknowledged": 300,
        "faults_injected": 1,
        "lost": lost,
        "duplicated": 0,
        "seconds": 9.5,
        "details": {"customers": 60},
    }


def test_a_table_takes_the_rows_of_passed_and_failed_scenarios_in_the_order_they_ran() -> None:
    """Rows travel on the tests' call reports (user_properties), which xdist sends to the
    process that prints the tables; a failed scenario's row is the one that matters most, and
    pytest keeps reports by outcome, not by when they ran."""
    item = SimpleNamespace(user_properties=[])
    FAULT_TABLE.recorder(item)(FaultReport(**_row("broker restart", lost=2)))
    reporter = SimpleNamespace(
        stats={
            "failed": [_report("call", 1.0, *item.user_properties)],
            "passed": [
                _report("setup", 0.5),
                _report("call", 2.0, (FAULT_TABLE.key, _row("worker SIGKILL"))),
                _report("call", 3.0, (SCALE_TABLE.key, _row("two then three workers"))),
                _report("call", 0.1, ("other", "x"), (FAULT_TABLE.key, _row("hung broker"))),
            ],
            "": [_report("teardown", 4.0, (FAULT_TABLE.key, _row("never a call")))],
        }
    )
    faults = FAULT_TABLE.reports(reporter)
    assert [(r.scenario, r.lost) for r in faults] == [
        ("hung broker", 0),
        ("broker restart", 2),
        ("worker SIGKILL", 0),
    ]
    assert [r.scenario for r in SCALE_TABLE.reports(reporter)] == ["two then three workers"]
