"""`--profile`: py-spy's collapsed stacks summarized, written beside the result, and reported;
and py-spy itself attached to a real process until it ends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from omnirouter.bench.profiling import Profile, summarize_stacks
from omnirouter.bench.report import markdown_table, stacks_to_files
from support.waiting import eventually

ENTRY = "<module> (omnirouter/cli.py:530);run (asyncio/runners.py:118)"
CASES = "_resolved (omnirouter/pipeline/cases/worker.py"
STACKS = "\n".join(
    [
        f"{ENTRY};{CASES}:180);encode (omnirouter/events/serialization.py:35) 30",
        f"{ENTRY};{CASES}:177);model_validate (pydantic/main.py:792) 20",
        f"{ENTRY};select (selectors.py:468) 40",
        "walk (omnirouter/x.py:1);walk (omnirouter/x.py:2);walk (omnirouter/x.py:3) 10",
        "not a stack line",
        " 1",  # py-spy's line for a sample with no Python stack
    ]
)


def test_samples_are_shared_by_package_own_function_and_running_frame() -> None:
    summary = summarize_stacks(STACKS.splitlines(), top=3)
    assert summary["samples"] == 100
    shares = lambda key: {e["name"]: e["share"] for e in summary[key]}  # noqa: E731
    # The package of the frame that was running.
    assert shares("by_package") == {"selectors": 0.4, "omnirouter": 0.4, "pydantic": 0.2}
    # The project's own functions with what they call, lines merged, a recursion counted once,
    # the command line's entry point (in nearly every stack) left out.
    assert shares("own_code") == {
        "_resolved (omnirouter/pipeline/cases/worker.py)": 0.5,
        "encode (omnirouter/events/serialization.py)": 0.3,
        "walk (omnirouter/x.py)": 0.1,
    }
    assert shares("hottest_frames") == {
        "select (selectors.py)": 0.4,
        "encode (omnirouter/events/serialization.py)": 0.3,
        "model_validate (pydantic/main.py)": 0.2,
    }


def test_no_samples_is_an_empty_summary_not_a_division_by_zero() -> None:
    assert summarize_stacks([]) == {
        "samples": 0,
        "by_package": [],
        "own_code": [],
        "hottest_frames": [],
    }


def test_stacks_go_to_a_file_beside_the_result_which_names_it(tmp_path: Path) -> None:
    summary = {**summarize_stacks(STACKS.splitlines()), "stacks": STACKS}
    result = {"profiles": {"worker": summary, "serve": {"error": "py-spy is not installed"}}}
    written = stacks_to_files(result, tmp_path)
    assert (tmp_path / "profile-worker.txt").read_text() == STACKS
    assert written["profiles"]["worker"]["stacks_file"] == "profile-worker.txt"
    assert "stacks" not in written["profiles"]["worker"]
    assert written["profiles"]["serve"] == {"error": "py-spy is not installed"}
    assert "stacks" in result["profiles"]["worker"]  # the caller's result is left as it was
    json.dumps(written)  # what result.json holds


def test_the_report_shows_each_profile_or_why_there_is_none() -> None:
    result = {
        "profiles": {
            "worker": summarize_stacks(STACKS.splitlines()),
            "serve": {"error": "py-spy wrote no stacks: Permission denied"},
        }
    }
    table = markdown_table(result)
    assert "Profile of `omnirouter worker`" in table
    assert "100 samples (stacks in profile-worker.txt)" in table
    assert "| _resolved (omnirouter/pipeline/cases/worker.py) | 50.0% |" in table
    assert "select (selectors.py) | 40.0% |" in table
    assert "none: py-spy wrote no stacks: Permission denied" in table


def test_py_spy_samples_a_running_process_until_it_ends(tmp_path: Path) -> None:
    go = tmp_path / "go"
    # Spins until told to go on, then does a fixed amount more work (~0.5 s) and ends: the
    # samples taken meanwhile come from a process py-spy has attached to.
    script = textwrap.dedent(
        f"""
        import pathlib
        def spin_for_the_profiler():
            go = pathlib.Path({str(go)!r})
            while not go.exists():
                sum(range(10_000))
            for _ in range(5_000):
                sum(range(10_000))
        print("ready", flush=True)
        spin_for_the_profiler()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    profile = Profile("spinner", child.pid)
    summary: dict[str, Any] | None = None
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        profile.start()
        assert profile.error is None, profile.error
        eventually(lambda: profile.sampling or profile.ended, timeout_s=30, what="py-spy to attach")
        if not profile.sampling and "Permission denied" in profile.output:
            pytest.skip(
                "py-spy may not attach to another process here (it takes root, CAP_SYS_PTRACE "
                f"or kernel.yama.ptrace_scope=0): {profile.output[:200]}"
            )
        assert profile.sampling, profile.output
        go.touch()
        assert child.wait(timeout=60) == 0
        summary = profile.finish()
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        if summary is None:
            profile.finish()  # py-spy ends with the child; its folder goes
    assert "error" not in summary, summary
    assert summary["samples"] > 0
    hottest = summary["hottest_frames"][0]["name"]
    assert hottest.startswith("spin_for_the_profiler "), summary["hottest_frames"]
    assert summary["own_code"] == []  # nothing of the project's own ran in the child
    assert "spin_for_the_profiler" in summary["stacks"]


def test_a_process_py_spy_cannot_sample_is_reported_with_its_reason() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid no longer names a process
    profile = Profile("gone", gone.pid)
    profile.start()
    summary = profile.finish()
    assert set(summary) == {"error"}
    assert summary["error"].startswith("py-spy wrote no stacks: Error: "), summary
    assert "backtrace" not in summary["error"].lower()
