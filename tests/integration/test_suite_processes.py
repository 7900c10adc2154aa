"""`make test` runs the suite in two pytest-xdist processes; the packages with stacks of their
own must stay together in one of them (tests/support/xdist_grouping.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_two_processes_run_the_own_stack_packages_in_one_and_the_rest_beside_them(
    tmp_path: Path,
) -> None:
    """A real `pytest -n 2 --dist loadgroup` with the suite's scheduler, on a tree of the same
    shape: it fails if xdist stops calling the scheduler or grouping by its work units."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(
        "import pytest\n"
        "from support import xdist_grouping\n\n"
        "@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_xdist_make_scheduler(config, log):\n"
        "    return xdist_grouping.scheduler(config, log)\n"
    )
    for package in ("cluster", "faults", "unit"):
        folder = tmp_path / "tests" / package
        folder.mkdir()
        for module in range(3):
            tests = "".join(f"def test_{n}():\n    pass\n\n" for n in range(4))
            (folder / f"test_{package}_{module}.py").write_text(tests)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-v",
            "-p",
            "no:cacheprovider",
            "tests",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = re.findall(r"\[(gw\d)\] .*?PASSED (tests/\w+)/", run.stdout)
    assert len(ran) == 36, run.stdout[-3000:]
    own_stacks = {process for process, path in ran if path in ("tests/cluster", "tests/faults")}
    assert len(own_stacks) == 1, ran
    assert {process for process, path in ran if path == "tests/unit"} - own_stacks, ran
