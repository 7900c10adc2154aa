"""Fault scenarios run on a Kafka + Redis of their own (they stop and restart them), and report
what they sent, injected, lost and duplicated in a table at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faults.harness import FaultRun
from faults.report import FaultReport, print_reports
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.settings import DevstackSettings

_REPORTS = pytest.StashKey[list[FaultReport]]()
ARTIFACT = Path("test-artifacts") / "faults.json"


@pytest.fixture(scope="package")
def fault_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DevStack, StackAddresses]]:
    """A Kafka broker and redis-server for the fault scenarios alone: stopping them disturbs no
    other test. A stack that cannot start fails the scenarios; it never skips them."""
    stack = DevStack(
        DevstackSettings(state_dir=tmp_path_factory.mktemp("faults-stack")), tie_to_parent=True
    )
    try:
        addresses = stack.up()
    except Exception as exc:
        stack.down()
        pytest.fail(f"the fault stack did not start: {exc}", pytrace=False)
    try:
        yield stack, addresses
    finally:
        stack.down()


@pytest.fixture
def fault_run(
    fault_stack: tuple[DevStack, StackAddresses],
    unique_id: str,
    tmp_path: Path,
    keep_logs_if_failed: Callable[[Path], None],
) -> Iterator[FaultRun]:
    """A router of this scenario's own on the fault stack; its processes stop afterwards."""
    stack, addresses = fault_stack
    # A scenario that failed half-way may have left a server stopped: the next one needs both.
    stack.restart_kafka()
    stack.restart_redis()
    run = FaultRun.create(stack, addresses, unique_id, tmp_path / "logs")
    try:
        yield run
    finally:
        try:
            run.close()
        finally:
            keep_logs_if_failed(run.logs)


@pytest.fixture
def record_fault_report(request: pytest.FixtureRequest) -> Callable[[FaultReport], None]:
    """Add a scenario's figures to the end-of-run table (call it before asserting)."""
    reports = request.config.stash.setdefault(_REPORTS, [])
    return reports.append


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The per-scenario table, also written to test-artifacts/faults.json."""
    reports = config.stash.get(_REPORTS, [])
    if not reports:
        return
    seeds = ", ".join(f"{r.scenario}={r.seed}" for r in reports)
    print_reports(
        terminalreporter,
        config.rootpath,
        reports,
        title="fault injection",
        artifact=ARTIFACT,
        extra_lines=[f"seeds: {seeds} (replay with OMNIROUTER_TEST_FAULTS_SEED=<seed>)"],
    )
