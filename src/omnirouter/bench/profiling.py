"""`--profile`: py-spy samples a router process through its phase; where its time went.

A profiled run is for finding what stands in the way, not for its figures: py-spy samples
without pausing the process (``--nonblocking``), but its own CPU shares the same cores. The
stacks are kept as collapsed text (one ``frame;frame;... count`` line per stack, what
flamegraph.pl and speedscope read) next to ``result.json``, and summarized in the result.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omnirouter.devstack.processes import start_tied

__all__ = ["Profile", "summarize_stacks"]

SAMPLES_PER_S = 100
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")
# Code of this project, as py-spy names its files (relative to the site or source folder),
# but for the command line's entry point, which holds every sample and says nothing.
_OWN = "omnirouter/"
_ENTRY = "omnirouter/cli.py"


def summarize_stacks(lines: Iterable[str], *, top: int = 12) -> dict[str, Any]:
    """Where the samples of collapsed stacks went: by package of the running frame, the
    project's own functions including what they call, and the frames running themselves.

    Shares are of all samples. A function counts once per stack however deep it recurses.
    """
    samples = 0
    packages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        function, package = _parsed(frames[-1])
        leaves[function] += n
        packages[package] += n
        for name in {_parsed(f)[0] for f in frames if _OWN in f and _ENTRY not in f}:
            own[name] += n

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"name": name, "share": round(n / samples, 4)} for name, n in counter.most_common(top)
        ]

    if samples == 0:
        return {"samples": 0, "by_package": [], "own_code": [], "hottest_frames": []}
    return {
        "samples": samples,
        "by_package": shares(packages),
        "own_code": shares(own),
        "hottest_frames": shares(leaves),
    }


def _parsed(frame: str) -> tuple[str, str]:
    """A frame's function as ``function (path)``, without its line (one entry per function), and
    the package (or module) its file is in."""
    match = _FRAME.match(frame)
    if not match:
        return frame, frame or "?"
    path = match["path"]
    package = path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")
    return f"{match['function']} ({path})", package


class Profile:
    """py-spy attached to one process until that process ends."""

    def __init__(self, name: str, pid: int) -> None:
        """Sample process ``pid``, named ``name`` (worker, serve) in its temporary folder."""
        self._pid = pid
        self._folder = Path(tempfile.mkdtemp(prefix=f"omnirouter-bench-profile-{name}-"))
        self._stacks = self._folder / "stacks.txt"
        self._log = self._folder / "py-spy.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Start sampling; a py-spy that is missing or cannot attach is reported, not raised."""
        beside_python = str(Path(sys.executable).parent)  # the venv's, when not on PATH
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=beside_python)
        if py_spy is None:
            self.error = "py-spy is not installed (pip install -e '.[bench]')"
            return
        argv = [
            py_spy,
            "record",
            "--pid",
            str(self._pid),
            "--rate",
            str(SAMPLES_PER_S),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(self._stacks),
        ]
        # Its error first and alone: with RUST_BACKTRACE set, a backtrace would follow it.
        env = {**os.environ, "RUST_BACKTRACE": "0"}
        try:
            with self._log.open("wb") as log:
                self._process = start_tied(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            self.error = f"py-spy did not start: {exc}"

    @property
    def sampling(self) -> bool:
        """py-spy has attached and says it is sampling."""
        return self._log.exists() and b"Sampling process" in self._log.read_bytes()

    @property
    def ended(self) -> bool:
        """py-spy is not running (it never started, gave up, or its process ended)."""
        return self._process is None or self._process.poll() is not None

    @property
    def output(self) -> str:
        """What py-spy said (why it could not attach, when it could not)."""
        return self._log.read_text(errors="replace").strip() if self._log.exists() else ""

    def finish(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Once the sampled process has ended: py-spy writes its stacks and exits (asked to,
        should it not); the summary, or why there is none."""
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
                try:
                    process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        try:
            if self.error is None and not self._stacks.exists():
                # Attaching to a process that is not this one's child takes root, CAP_SYS_PTRACE
                # or kernel.yama.ptrace_scope=0: py-spy then says "Permission denied".
                self.error = f"py-spy wrote no stacks: {self.output[:500] or 'no output'}"
            if self.error is not None:
                return {"error": self.error}
            stacks = self._stacks.read_text(encoding="utf-8", errors="replace")
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
        summary = summarize_stacks(stacks.splitlines())
        # The stacks themselves go to a file of their own next to result.json (write_result).
        return {**summary, "samples_per_s": SAMPLES_PER_S, "stacks": stacks}
