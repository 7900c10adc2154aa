"""Router processes a fault test can kill: `omnirouter worker` and `omnirouter serve` as real
child processes on a stack of the test's own, started again after each fault."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.devstack.processes import start_tied
from support.waiting import eventually

ADMIN_TOKEN = "faults-admin-token"
TWILIO_TOKEN = "12345678901234567890123456789012"
PUBLIC_URL = "https://cx.example.com"


def router_environment(
    addresses: StackAddresses, *, prefix: str, redis_prefix: str
) -> dict[str, str]:
    """The environment of a router process on ``addresses`` with test-private topics and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update(
        {
            "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": addresses.kafka_bootstrap_servers,
            "OMNIROUTER_KAFKA__TOPIC_PREFIX": prefix,
            "OMNIROUTER_REDIS__URL": addresses.redis_url,
            "OMNIROUTER_REDIS__KEY_PREFIX": redis_prefix,
            "OMNIROUTER_API__ADMIN_TOKEN": ADMIN_TOKEN,
            "OMNIROUTER_INGRESS__PUBLIC_URL": PUBLIC_URL,
            "OMNIROUTER_INGRESS__TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            # A stopped broker is answered with 503 after 2 s, not after the default 10 s.
            "OMNIROUTER_INGRESS__PUBLISH_TIMEOUT_S": "2",
            "OMNIROUTER_ROUTING__TIMER_INTERVAL_S": "0.5",
            "OMNIROUTER_LOG__FORMAT": "json",
            # A SIGKILLed consumer leaves the group only when its session expires: a short
            # session lets the restarted worker take its partitions over in seconds, not the
            # default minute. faust reads these two from the environment.
            "BROKER_SESSION_TIMEOUT": "4",
            "BROKER_HEARTBEAT_INTERVAL": "1",
        }
    )
    return env


class RouterProcess:
    """One ``omnirouter worker`` or ``omnirouter serve`` child that can be killed and restarted.

    Each start gets fresh ports (the API and the worker's /metrics) and appends to one log.
    """

    def __init__(self, command: str, env: dict[str, str], logs: Path) -> None:
        self.command = command
        self._env = env
        self.log_path = logs / f"{command}.log"
        self._ready = logs / f"{command}.ready"
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        logs.mkdir(parents=True, exist_ok=True)

    @property
    def alive(self) -> bool:
        """True while the current process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def base_url(self) -> str:
        """The HTTP API of a ``serve`` process."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 120.0) -> None:
        """Start the process and return once it wrote its ready file."""
        assert not self.alive, f"omnirouter {self.command} is already running"
        self.port = free_port()
        env = {
            **self._env,
            "OMNIROUTER_API__PORT": str(self.port),
            "OMNIROUTER_OPS__WORKER_METRICS_PORT": str(free_port()),
            "OMNIROUTER_INGRESS__SMTP_PORT": str(free_port()),
        }
        self._ready.unlink(missing_ok=True)
        with self.log_path.open("ab") as out:
            # Tied to this process: a test run killed half-way (a CI timeout) leaves no worker
            # behind to spin against a stack that is gone and skew whatever runs next.
            self._process = start_tied(
                [
                    sys.executable,
                    "-m",
                    "omnirouter.cli",
                    self.command,
                    "--ready-file",
                    str(self._ready),
                ],
                env=env,
                cwd=self.log_path.parent,  # faust keeps an app data directory in its cwd
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        process = self._process

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"omnirouter {self.command} exited: {self.log_tail()}")
            return self._ready.exists()

        eventually(ready, timeout_s=timeout_s, what=f"omnirouter {self.command} to start")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, no in-flight batch finishes, no offset is committed."""
        assert self._process is not None and self.alive, f"{self.command} is not running"
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM and wait for it to exit (SIGKILL after a minute); returns its exit status."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def logged_retries(log_path: Path, *, prefix: str) -> list[dict[str, Any]]:
    """The "retrying" records a JSON-logging router process wrote, for operations whose name
    starts with ``prefix`` (e.g. "identity.", "cases.")."""
    if not log_path.exists():
        return []
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"retrying"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by SIGKILL
        if record.get("event") == "retrying" and str(record.get("what", "")).startswith(prefix):
            found.append(record)
    return found
