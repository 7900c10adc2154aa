"""The stop deadline: once a stop is requested, the process ends at the deadline even if the
event loop (or whatever the stop waits on) never returns."""

from __future__ import annotations

import pytest

from omnirouter.stopping import (
    EXIT_STOP_DEADLINE,
    end_process_now,
    exit_unless_stopped_within,
)
from support.waiting import eventually


def test_the_deadline_ends_a_process_still_running_when_it_expires() -> None:
    exits: list[int] = []
    timer = exit_unless_stopped_within(0.05, exit_process=exits.append)
    eventually(lambda: exits != [], timeout_s=10, what="the deadline to expire")
    assert exits == [EXIT_STOP_DEADLINE]
    assert timer.daemon  # never what keeps a process that stopped in time alive


def test_ending_now_exits_even_when_the_message_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_write(fd: int, data: bytes) -> int:
        raise OSError("stderr is gone")

    monkeypatch.setattr("os.write", broken_write)
    exits: list[int] = []
    end_process_now("test", exit_process=exits.append)
    assert exits == [EXIT_STOP_DEADLINE]
