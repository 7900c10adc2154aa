"""The whole router as it runs in production: `omnirouter worker` and `omnirouter serve` as
processes of their own, on the session's real Kafka and Redis, with test-private topics and keys,
fake outbound providers, and known secrets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from omnirouter.connections import ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import KafkaSettings, Settings
from support.fake_providers import TWILIO_SID, TWILIO_TOKEN, FakeProviders
from support.stack import redis_env
from support.waiting import eventually

ADMIN_TOKEN = "full-stack-admin-token"
#: Operator tokens of two tenants (``api.tenant_tokens``): each opens the API for its tenant only.
TENANT_TOKENS = {"acme": "full-stack-acme-token", "globex": "full-stack-globex-token"}
INBOUND_TWILIO_TOKEN = "12345678901234567890123456789012"
SENDGRID_TOKEN = "sendgrid-shared-token"
SMS_FROM = "+15017122661"


@dataclass
class RunningRouter:
    """Where the router's processes listen, and how to reach them."""

    base_url: str
    smtp_port: int
    prefix: str
    redis_prefix: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``omnirouter ARGS`` against this router's settings."""
        return subprocess.run(
            [sys.executable, "-m", "omnirouter.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def add_agent(
        self,
        agent_id: str,
        password: str,
        *,
        queues: str = "general",
        role: str = "agent",
        name: str = "",
        tenant: str = "default",
    ) -> None:
        """Create a desktop account (and its routing profile) in ``tenant``."""
        result = self.cli(
            "agents",
            "--tenant",
            tenant,
            "add",
            agent_id,
            "--queues",
            queues,
            "--role",
            role,
            "--name",
            name or agent_id,
            "--password-stdin",
            stdin=password + "\n",
        )
        assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def running_router(
    stack: StackAddresses,
    *,
    prefix: str,
    redis_prefix: str,
    providers: FakeProviders,
    rules_file: Path | None,
    logs: Path,
) -> Iterator[RunningRouter]:
    """Start worker and serve processes; stop them (SIGTERM) and check they exited."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix)
    )
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=3) for t in catalogue_topics(settings)],
    )
    port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update(
        {
            "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
            "OMNIROUTER_KAFKA__TOPIC_PREFIX": prefix,
            "OMNIROUTER_REDIS__URL": stack.redis_url,
            "OMNIROUTER_REDIS__KEY_PREFIX": redis_prefix,
            "OMNIROUTER_API__PORT": str(port),
            "OMNIROUTER_API__ADMIN_TOKEN": ADMIN_TOKEN,
            "OMNIROUTER_API__TENANT_TOKENS": json.dumps(TENANT_TOKENS),
            "OMNIROUTER_INGRESS__PUBLIC_URL": f"http://127.0.0.1:{port}",
            "OMNIROUTER_INGRESS__TWILIO_AUTH_TOKEN": INBOUND_TWILIO_TOKEN,
            "OMNIROUTER_INGRESS__SENDGRID_TOKEN": SENDGRID_TOKEN,
            "OMNIROUTER_INGRESS__SMTP_PORT": str(smtp_port),
            "OMNIROUTER_OUTBOUND__TWILIO_API_BASE": providers.twilio_api_base,
            "OMNIROUTER_OUTBOUND__TWILIO_ACCOUNT_SID": TWILIO_SID,
            "OMNIROUTER_OUTBOUND__TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "OMNIROUTER_OUTBOUND__TWILIO_SMS_FROM": SMS_FROM,
            "OMNIROUTER_PIPELINE__BATCH_WITHIN_S": "0.02",
            "OMNIROUTER_ROUTING__TIMER_INTERVAL_S": "0.2",
            "OMNIROUTER_LOG__FORMAT": "json",
            # The worker's /metrics on a port of its own; serve's /ops scrapes it from there.
            "OMNIROUTER_OPS__WORKER_METRICS_PORT": str(free_port()),
            "OMNIROUTER_OPS__LAG_SAMPLE_INTERVAL_S": "1",
        }
    )
    env.update(redis_env())
    if rules_file is not None:
        env["OMNIROUTER_ROUTING__RULES_FILE"] = str(rules_file)
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    ready_files = []
    try:
        for command in ("worker", "serve"):
            ready = logs / f"{command}.ready"
            ready.unlink(missing_ok=True)
            with (logs / f"{command}.log").open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "omnirouter.cli",
                            command,
                            "--ready-file",
                            str(ready),
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
            ready_files.append(ready)

        def started() -> bool:
            for process, name in zip(processes, ("worker", "serve"), strict=True):
                if process.poll() is not None:
                    raise AssertionError(
                        f"omnirouter {name} exited: {(logs / f'{name}.log').read_text()[-2000:]}"
                    )
            return all(r.exists() for r in ready_files)

        eventually(started, timeout_s=120, what="the router to start")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        yield RunningRouter(base, smtp_port, prefix, redis_prefix, env, processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
