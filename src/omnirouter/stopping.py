"""A stop that always ends: `worker` and `serve` exit at a deadline after SIGTERM or SIGINT.

Stopping finishes the batches in flight, flushes the producers and commits offsets; each of
those waits on Kafka or Redis. With a broker that hangs instead of refusing (a frozen machine,
a network partition), a SIGTERMed worker was still running 150 s later, and one stopped during
its start-up never ended at all. Past the deadline the process exits as if killed, which is
safe: offsets are committed only after a batch's effects are durable, so whatever was in
flight is processed again (idempotent on event_id), as after a SIGKILL.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

# As timeout(1) reports a command it had to end; distinct from a clean stop (0) and from the
# CLI's errors (1-3, omnirouter.errors).
EXIT_STOP_DEADLINE = 124


def end_process_now(reason: str, *, exit_process: Callable[[int], object] = os._exit) -> None:
    """Exit at once, without cleanup, as SIGKILL would: nothing more is acknowledged or committed.

    One line straight to the standard error file descriptor, not through logging: the thread
    that holds the logging or stdout lock may be the one that is stuck.
    """
    try:
        line = json.dumps({"event": f"exiting now: {reason}", "level": "error"})
        os.write(2, f"{line}\n".encode())
    except OSError:
        pass
    finally:
        exit_process(EXIT_STOP_DEADLINE)


def exit_unless_stopped_within(
    deadline_s: float, *, exit_process: Callable[[int], object] = os._exit
) -> threading.Timer:
    """From now on, give the process ``deadline_s`` to end; then end it.

    A timer thread rather than a task: the event loop may be the thing that is stuck. Daemonic,
    so a process that stops in time is not kept waiting for it.
    """
    timer = threading.Timer(
        deadline_s,
        end_process_now,
        args=(f"did not stop within the deadline ({deadline_s:g} s)",),
        kwargs={"exit_process": exit_process},
    )
    timer.name = "stop-deadline"
    timer.daemon = True
    timer.start()
    return timer
