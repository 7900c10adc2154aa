"""Fault scenarios run on a Kafka + Redis of their own (they stop and restart them), and report
what they sent, injected, lost and duplicated in a table at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faults.harness import FaultRun
from faults.report import FAULT_TABLE, FaultReport
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.settings import DevstackSettings


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
    """Add a scenario's figures to the end-of-run table (call it before asserting); the table
    is printed by tests/conftest.py."""
    return FAULT_TABLE.recorder(request.node)
