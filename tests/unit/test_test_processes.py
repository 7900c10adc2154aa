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


def _report(when: str, *properties: tuple[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(when=when, user_properties=list(properties))


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


def test_a_table_takes_the_rows_of_passed_and_failed_scenarios_and_only_its_own() -> None:
    """Rows travel on the tests' call reports (user_properties), which xdist sends to the
    process that prints the tables; a failed scenario's row is the one that matters most."""
    item = SimpleNamespace(user_properties=[])
    FAULT_TABLE.recorder(item)(FaultReport(**_row("broker restart", lost=2)))
    reporter = SimpleNamespace(
        stats={
            "passed": [
                _report("setup"),
                _report("call", (FAULT_TABLE.key, _row("worker SIGKILL"))),
                _report("call", (SCALE_TABLE.key, _row("two then three workers"))),
                _report("call", ("other", "x")),
            ],
            "failed": [_report("call", *item.user_properties)],
            "": [_report("teardown", (FAULT_TABLE.key, _row("never a call")))],
        }
    )
    faults = FAULT_TABLE.reports(reporter)
    assert [(r.scenario, r.lost) for r in faults] == [("worker SIGKILL", 0), ("broker restart", 2)]
    assert [r.scenario for r in SCALE_TABLE.reports(reporter)] == ["two then three workers"]
