"""Starting and stopping the stack's child processes without leaving orphans behind."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1

# Servers this process started, kept so that their exit status is collected (no zombies, no
# "subprocess still running" warnings when a handle would otherwise be dropped).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM to the child when the
    # thread that forked it exits, so a test run killed with SIGKILL leaves no JVM behind. Fork
    # through ``start_tied`` so that thread lives as long as the process.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# The parent-death signal follows the *thread* that forked the child, not its process (prctl(2),
# PR_SET_PDEATHSIG): a server started from a short-lived thread (asyncio.to_thread, an executor)
# got SIGTERM as soon as that thread ended. A CI run lost its restarted broker that way between
# two fault scenarios. Every tied child is forked by one daemon thread per process, which lives
# until the process itself exits (a daemon thread is not stopped at interpreter shutdown, so
# tied children still end with the process, as when they were forked by the main thread).
_Fork = Callable[[], "subprocess.Popen[bytes]"]
_Request = tuple[_Fork, "concurrent.futures.Future[subprocess.Popen[bytes]]"]


class _Forker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()

    def run(self, fork: _Fork) -> subprocess.Popen[bytes]:
        done: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked copy without the thread
                self._pid = os.getpid()
                self._requests = queue.SimpleQueue()
                threading.Thread(
                    target=_serve, args=(self._requests,), name="tied-forker", daemon=True
                ).start()
            self._requests.put((fork, done))
        return done.result()


def _serve(requests: queue.SimpleQueue[_Request]) -> None:
    while True:
        fork, done = requests.get()
        try:
            done.set_result(fork())
        except BaseException as exc:  # handed to the caller, which raises it
            done.set_exception(exc)


_FORKER = _Forker()


def start_tied(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    start_new_session: bool = False,
    tied: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a child that gets SIGTERM when this process exits, from whichever thread asks;
    with ``tied=False``, a plain child that outlives this process."""

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=start_new_session,
            preexec_fn=die_with_parent if tied else None,
        )

    return _FORKER.run(popen) if tied else popen()


def end_with_parent_process() -> None:
    """In a child started by ``multiprocessing``: SIGTERM this process as soon as the process
    that started it has ended, however it ended.

    A ``daemon=True`` child is terminated by its parent's ``atexit``, which a parent stopped by
    SIGTERM or SIGKILL never runs: the bench's load generator then went on retrying a broker
    that was gone, writing into the bench's log. The parent's sentinel (a pipe multiprocessing
    gives the child) becomes readable when the parent ends, whichever of its threads started the
    child, so a watching thread needs neither the kernel's parent-death signal, which follows
    the forking thread, nor polling. Does nothing in a process multiprocessing did not start.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # waits on the sentinel
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def leave_interrupts_to_parent() -> None:
    """In a child its parent stops when interrupted: ignore SIGINT.

    Ctrl-C in a terminal reaches the whole foreground process group, so each of the bench's
    multiprocessing children printed a KeyboardInterrupt traceback of its own while the bench
    was stopping them anyway.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    tie_to_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session with its output in ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = start_tied(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            tied=tie_to_parent,
        )
    _CHILDREN[process.pid] = process
    return process


def command_line(pid: int) -> str:
    """The process's command line, or "" when it does not exist (any more)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_running(pid: int, *, expect: str) -> bool:
    """True when ``pid`` is alive (not a zombie) and its command line contains ``expect``.

    Checking the command line guards against signalling an unrelated process that reused a
    pid recorded by an earlier ``devstack up``.
    """
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if status.rpartition(")")[2].split()[0] == "Z":
        _reap(pid)
        return False
    return expect in command_line(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(pid: int, *, expect: str, grace_s: float = 30.0) -> None:
    """SIGTERM the process (then SIGKILL after ``grace_s``) and wait until it is gone."""
    if not is_running(pid, expect=expect):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_until(lambda: not is_running(pid, expect=expect), timeout_s=grace_s):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not is_running(pid, expect=expect), timeout_s=10.0)


def wait_until(condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
