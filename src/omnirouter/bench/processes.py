"""The processes under test: started as `omnirouter run` starts them, sampled for CPU and RSS.

CPU and memory come from psutil when it is installed, else from ``/proc/<pid>/stat`` and
``/proc/<pid>/status`` (Linux), so the numbers never depend on an optional package. Context
switches (how often a process's threads went to sleep and woke, and how often they were
preempted) come from ``/proc`` alone, summed over the threads: psutil reports the main
thread's only.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnirouter.bench.profiling import Profile
from omnirouter.devstack.processes import start_tied
from omnirouter.errors import StackError

__all__ = [
    "CpuWindow",
    "ProcessSampler",
    "RouterProcess",
    "ThreadSwitches",
    "metric_total",
    "scrape",
    "switches_between",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

ThreadSwitches = dict[int, tuple[int, int]]
"""(voluntary, involuntary) context switches so far, by thread id."""


def switches_between(before: ThreadSwitches, after: ThreadSwitches) -> tuple[int, int]:
    """(voluntary, involuntary) switches a process's threads made between two readings.

    A thread in both readings counts its difference; one started since counts all of its own;
    one that ended since is left out (its last stretch is lost, rather than its whole count
    taken off the others'). A thread id the kernel gave to a new thread meanwhile shows as
    counts that went down: it is counted as the new thread it is.
    """
    voluntary = involuntary = 0
    for thread, (now_voluntary, now_involuntary) in after.items():
        was_voluntary, was_involuntary = before.get(thread, (0, 0))
        if now_voluntary < was_voluntary or now_involuntary < was_involuntary:
            was_voluntary = was_involuntary = 0
        voluntary += now_voluntary - was_voluntary
        involuntary += now_involuntary - was_involuntary
    return voluntary, involuntary


class ProcessSampler:
    """CPU seconds and resident memory of one process."""

    def __init__(self, pid: int) -> None:
        """Sample process ``pid``."""
        self.pid = pid
        self._process: Any = None
        try:
            # Imported by name: psutil is an optional extra and ships no type stubs.
            psutil = importlib.import_module("psutil")
        except ImportError:
            return
        self._process = psutil.Process(pid)

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds the process has used so far."""
        if self._process is not None:
            times = self._process.cpu_times()
            return float(times.user), float(times.system)
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat (utime, stime), counted after the ")" that ends the name.
        return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS

    def context_switches(self) -> ThreadSwitches | None:
        """(voluntary, involuntary) context switches of each of the process's threads so far,
        by thread id, or None where ``/proc`` does not tell them (not Linux, or the process is
        gone).

        A voluntary switch is a thread going to sleep (waiting on a socket, a timer, a lock or
        the GIL), so each one is also a wake-up; an involuntary one is a thread preempted while
        it could run. Compare two readings with :func:`switches_between`.
        """
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return None
        switches: ThreadSwitches = {}
        for task in tasks:
            try:
                status = Path(f"/proc/{self.pid}/task/{task}/status").read_text()
            except OSError:
                continue  # the thread ended meanwhile
            voluntary = involuntary = 0
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary = int(line.split()[1])
            switches[int(task)] = (voluntary, involuntary)
        return switches

    def rss_bytes(self) -> int:
        """Resident set size now."""
        if self._process is not None:
            return int(self._process.memory_info().rss)
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@dataclass
class CpuWindow:
    """CPU use of some processes between :meth:`open` and :meth:`close`, as cores busy, and
    how often their threads slept and woke or were preempted meanwhile."""

    samplers: dict[str, ProcessSampler]
    _start_wall: float = 0.0
    _start_cpu: dict[str, tuple[float, float]] | None = None
    _start_switches: dict[str, ThreadSwitches | None] | None = None

    def open(self) -> None:
        """Start the window."""
        self._start_wall = time.monotonic()
        self._start_cpu = {name: s.cpu_times() for name, s in self.samplers.items()}
        self._start_switches = {
            name: sampler.context_switches() for name, sampler in self.samplers.items()
        }

    def close(self) -> dict[str, dict[str, float]]:
        """Per process: cores used on average over the window and the part of them in the
        kernel, RSS in MiB now, and (where ``/proc`` tells them) wake-ups and preemptions a
        second over the window.

        The kernel's part tells system calls that cost CPU from ones that only wait: a
        sampling profiler counts a thread preempted inside ``send`` as busy there.
        """
        assert self._start_cpu is not None, "open() first"
        assert self._start_switches is not None, "open() first"
        wall = max(1e-9, time.monotonic() - self._start_wall)
        result = {}
        for name, sampler in self.samplers.items():
            try:
                user, system = sampler.cpu_times()
                user_before, system_before = self._start_cpu[name]
                rss = sampler.rss_bytes()
                switches = sampler.context_switches()
            except (OSError, ValueError, LookupError):
                continue  # a process that went away has nothing more to say
            used, in_kernel = user - user_before + system - system_before, system - system_before
            entry = {
                "cpu_cores": round(used / wall, 3),
                "system_cores": round(in_kernel / wall, 3),
                "rss_mib": round(rss / 2**20, 1),
            }
            before = self._start_switches.get(name)
            if switches is not None and before is not None:
                voluntary, involuntary = switches_between(before, switches)
                entry["wakeups_per_s"] = round(voluntary / wall, 1)
                entry["preemptions_per_s"] = round(involuntary / wall, 1)
            result[name] = entry
        return result


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` in Prometheus text whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        found = dict(_LABEL.findall(match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


def scrape(url: str, timeout_s: float = 5.0) -> str:
    """The text of a /metrics page."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own loopback URL
        body: bytes = response.read()
    return body.decode()


class RouterProcess:
    """One `omnirouter worker` or `omnirouter serve`, a child as `omnirouter run` starts it."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        """Prepare ``omnirouter command`` with environment ``env``."""
        self.command = command
        self.env = env
        self._dir = Path(tempfile.mkdtemp(prefix=f"omnirouter-bench-{command}-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.profile: Profile | None = None  # with --profile: py-spy on this process

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._process is not None, "start() first"
        return self._process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the child and return once it says it is ready.

        Raises:
            StackError: it exited or did not get ready in time (its log is in the message).
        """
        ready = self._dir / "ready"
        log = (self._dir / "log").open("wb")
        self._process = start_tied(
            [sys.executable, "-m", "omnirouter.cli", self.command, "--ready-file", str(ready)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop(keep_log=True)
                tail = self.log_tail()
                raise StackError(
                    f"omnirouter {self.command} did not start (log: {self.log_path}):\n{tail}"
                )
            time.sleep(0.1)

    def stop(self, *, keep_log: bool = False) -> None:
        """SIGTERM, then SIGKILL if it does not stop within 45 s. Its folder (log and ready
        file) is removed unless ``keep_log`` or the child ended with an error: every run used
        to leave one behind under the temporary directory."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if not keep_log and (process is None or process.returncode == 0):
            shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def log_path(self) -> Path:
        """The child's output (gone once it stopped cleanly, unless kept)."""
        return self._dir / "log"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the child's output."""
        path = self.log_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
