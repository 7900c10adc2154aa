"""Children started with ``start_tied`` get SIGTERM when this process exits, and only then: not
when the thread that asked for them ends (the kernel's parent-death signal follows the forking
thread, and a broker restarted from ``asyncio.to_thread`` was stopped that way in CI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from omnirouter.devstack.processes import end_with_parent_process, start_tied
from support.waiting import eventually

# The child blocks SIGTERM, so a parent-death signal stays pending where /proc shows it.
_BLOCKS_SIGTERM = (
    "import signal, sys\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
    "open(sys.argv[1], 'w').close()\n"
    "signal.pause()  # until killed\n"
)


def _signal_mask(pid: int, *fields: str) -> int:
    """The signals in /proc/<pid>/status's ``fields`` (bit n-1 for signal n), combined."""
    mask = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(tuple(f"{field}:" for field in fields)):
            mask |= int(line.split()[1], 16)
    return mask


def _pending_signals(pid: int) -> int:
    """Signals sent to ``pid`` and not delivered yet (process-wide and thread-directed)."""
    return _signal_mask(pid, "ShdPnd", "SigPnd")


def test_a_child_started_from_a_thread_that_ends_is_not_sent_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    release = threading.Event()
    started: dict[str, subprocess.Popen[bytes]] = {}
    native_ids: list[int] = []

    def short_lived() -> None:
        native_ids.append(threading.get_native_id())
        started["child"] = start_tied([sys.executable, "-c", _BLOCKS_SIGTERM, str(ready)])
        release.wait(timeout=60)

    thread = threading.Thread(target=short_lived)
    thread.start()
    eventually(lambda: "child" in started and ready.exists(), what="the child to block SIGTERM")
    child = started["child"]
    try:
        release.set()
        thread.join(timeout=60)
        # The kernel sends the parent-death signal while the thread exits, before its task
        # leaves /proc: once it is gone, a signal sent on its account is pending in the child.
        eventually(
            lambda: not Path(f"/proc/self/task/{native_ids[0]}").exists(),
            what="the starting thread to be gone",
        )
        assert child.poll() is None
        assert not _pending_signals(child.pid) & (1 << (signal.SIGTERM - 1))
    finally:
        child.kill()
        child.wait(timeout=30)


def test_a_tied_child_is_sent_sigterm_when_its_process_exits(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    parent = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, threading\n"
            "from omnirouter.devstack.processes import start_tied\n"
            "def start():\n"
            "    child = start_tied([sys.executable, '-c', 'import signal; signal.pause()'])\n"
            "    open(sys.argv[1], 'w').write(str(child.pid))\n"
            "t = threading.Thread(target=start)\n"
            "t.start()\n"
            "t.join()\n",
            str(pid_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert parent.returncode == 0, parent.stderr
    child = int(pid_file.read_text())
    # The child is not ours to reap: it is gone once /proc no longer lists it as alive.
    eventually(lambda: _gone(child), what="the orphaned child to be terminated")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in {"Z", "X"}


def test_a_forked_copy_of_the_process_can_start_tied_children() -> None:
    # The forking thread does not survive os.fork(): a forked copy gets one of its own instead
    # of queueing forever for a thread that is not there.
    start_tied([sys.executable, "-c", "pass"]).wait(timeout=30)  # this process's thread exists
    pid = os.fork()
    if pid == 0:  # the copy reports through its exit status only
        status = 1
        try:
            status = start_tied([sys.executable, "-c", "pass"]).wait(timeout=30)
        finally:
            os._exit(status)
    ended: list[int] = []

    def copy_ended() -> bool:
        found, status = os.waitpid(pid, os.WNOHANG)
        if found:
            ended.append(os.waitstatus_to_exitcode(status))
        return bool(found)

    try:
        eventually(copy_ended, timeout_s=60, what="the forked copy to start a tied child")
    finally:
        if not ended:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert ended == [0]


# A multiprocessing child's target must be importable by the spawned interpreter.
_SPAWNED_TARGET = """\
import os, signal
from omnirouter.devstack.processes import end_with_parent_process

def main(pid_file):
    end_with_parent_process()
    with open(pid_file + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    while True:
        signal.pause()  # until a signal ends it
"""

_SPAWNING_PARENT = """\
import multiprocessing, signal, sys
sys.path.insert(0, sys.argv[1])
import spawned_target

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=spawned_target.main, args=(sys.argv[2],), daemon=True)
    child.start()
    while True:
        signal.pause()  # until killed: atexit, which terminates daemon children, never runs
"""


def test_a_multiprocessing_child_ends_when_the_process_that_started_it_is_killed(
    tmp_path: Path,
) -> None:
    # The bench's load generator is such a child: a bench stopped by a signal left it offering
    # load to a broker that was gone.
    (tmp_path / "spawned_target.py").write_text(_SPAWNED_TARGET)
    (tmp_path / "parent.py").write_text(_SPAWNING_PARENT)
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, str(tmp_path / "parent.py"), str(tmp_path), str(pid_file)]
    )
    try:
        eventually(pid_file.exists, timeout_s=60, what="the spawned child to start")
        child = int(pid_file.read_text())
        assert not _gone(child)  # alive as long as its parent is
    finally:
        parent.kill()
        parent.wait(timeout=30)
    eventually(lambda: _gone(child), what="the orphaned multiprocessing child to end")


def test_ending_with_the_parent_process_is_a_no_op_outside_a_multiprocessing_child() -> None:
    before = {thread.name for thread in threading.enumerate()}
    end_with_parent_process()
    assert "parent-watch" not in {thread.name for thread in threading.enumerate()} - before


def test_a_child_that_leaves_interrupts_to_its_parent_ignores_a_ctrl_c(tmp_path: Path) -> None:
    # Ctrl-C reaches the whole process group; the bench's children are stopped by the bench.
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys\n"
            "from omnirouter.devstack.processes import leave_interrupts_to_parent\n"
            "leave_interrupts_to_parent()\n"
            "open(sys.argv[1], 'w').close()\n"
            "signal.pause()  # until killed\n",
            str(ready),
        ]
    )
    try:
        eventually(ready.exists, what="the child to be ready")
        # Ignored as the kernel holds it: an interrupt never reaches the child.
        assert _signal_mask(child.pid, "SigIgn") & (1 << (signal.SIGINT - 1))
    finally:
        child.kill()
        child.wait(timeout=30)
