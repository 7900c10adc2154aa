"""The bench keeps a child's log when something went wrong, and only then."""

from __future__ import annotations

import pytest

from omnirouter.bench.processes import RouterProcess
from omnirouter.bench.runner import _with_process


async def noop() -> None:
    return None


async def test_stop_is_told_whether_the_phase_failed() -> None:
    told: list[bool] = []

    async def fine() -> str:
        return "result"

    async def broken() -> str:
        raise RuntimeError("gateway answered 403")

    assert await _with_process(noop, told.append, fine) == "result"
    with pytest.raises(RuntimeError):
        await _with_process(noop, told.append, broken)
    assert told == [False, True]


def test_a_child_folder_is_removed_on_a_clean_stop_and_kept_when_asked() -> None:
    kept = RouterProcess("serve", env={})
    kept.stop(keep_log=True)
    assert kept.log_path.parent.is_dir()
    kept.stop()
    assert not kept.log_path.parent.exists()
