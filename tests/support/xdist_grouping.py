"""How `make test` spreads the suite over two pytest-xdist processes (`--dist loadgroup`).

The cluster and fault packages run stacks of their own (package-scoped fixtures that start a
3-node Kafka and a Redis Cluster, or stop and restart servers). They form one work unit, so
they run one after the other in one process: each package's stack starts once, and none of
them shares the two cores with another's fixed deadlines, while the other process runs the
rest, one test at a time as it becomes free.

xdist's own loadgroup reads ``xdist_group`` marks from a suffix it writes into the node id,
which pytest 9.2 no longer takes (pytest-dev/pytest-xdist#1386, open): the marks would group
nothing. The grouping is therefore done by a scheduler of our own, for the load-balancing
modes (`-n 2` alone means ``--dist load``); a mode named otherwise is the caller's choice.
tests/conftest.py imports the hook, which registers it.
"""

from __future__ import annotations

from typing import Any

import pytest

OWN_STACK_PACKAGES = ("tests/cluster/", "tests/faults/")
OWN_STACKS = "own stacks"


def work_unit(nodeid: str) -> str:
    """The work unit a test belongs to: one for the packages with stacks of their own, the
    test itself otherwise."""
    return OWN_STACKS if nodeid.startswith(OWN_STACK_PACKAGES) else nodeid


@pytest.hookimpl(optionalhook=True)  # optional: a plain pytest runs without xdist's hooks
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduler (largest work unit first, then one unit at a time to whichever
    process is free) with our work units, for ``--dist load`` and ``loadgroup``."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    # Imported here: without -n, pytest runs (and imports this module) with xdist unused.
    from xdist.scheduler import LoadScopeScheduling

    class OwnStacksTogether(LoadScopeScheduling):
        # _split_scope is xdist's private way to name a test's work unit (3.x); if it
        # changes, tests/integration/test_suite_processes.py fails.
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return OwnStacksTogether(config, log)
