"""`make test` runs the suite in two pytest-xdist processes; the packages with stacks of their
own must stay together in one of them (tests/support/xdist_grouping.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
PACKAGES = ("cluster", "faults", "unit")
MODULES = 3
TESTS_PER_MODULE = 4


@pytest.mark.parametrize("dist", [["--dist", "loadgroup"], []], ids=["make-test", "plain-n-2"])
def test_two_processes_run_the_own_stack_packages_in_one_and_the_rest_beside_them(
    tmp_path: Path, dist: list[str]
) -> None:
    """A real `pytest -n 2` (as `make test` runs it, and without --dist) with the suite's own
    hook, on a tree of the same shape: it fails if xdist stops calling the scheduler or
    grouping by its work units."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the tree is its own rootdir
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(
        "from support.xdist_grouping import pytest_xdist_make_scheduler  # noqa: F401\n"
    )
    for package in PACKAGES:
        folder = tmp_path / "tests" / package
        folder.mkdir()
        for module in range(MODULES):
            tests = "".join(f"def test_{n}():\n    pass\n\n" for n in range(TESTS_PER_MODULE))
            (folder / f"test_{package}_{module}.py").write_text(tests)
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", *dist, "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = re.findall(r"\[(gw\d)\] .*?PASSED tests/(\w+)/", run.stdout)
    assert len(ran) == len(PACKAGES) * MODULES * TESTS_PER_MODULE, run.stdout[-3000:]
    own_stacks = {process for process, package in ran if package in ("cluster", "faults")}
    assert len(own_stacks) == 1, ran
    assert {process for process, package in ran if package == "unit"} - own_stacks, ran
