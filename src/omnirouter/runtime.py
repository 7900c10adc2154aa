"""Bringing up the router on one machine: services first, then the router's own processes.

:class:`Router` finds or starts Kafka and Redis, creates the topic catalogue, starts the
pipeline workers and the HTTP API (gateway, desktop, ops dashboard) as child processes, adds the
demo (a local provider, demo agents, simulated customers) unless settings turn it off, and says
where everything listens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omnirouter.connections import (
    TopicRequest,
    ensure_topics,
    read_topic,
    wait_for_kafka,
    wait_for_redis,
)
from omnirouter.demo.session import DemoSession
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.devstack.processes import start_tied
from omnirouter.errors import ServiceUnreachableError, StackError
from omnirouter.events import CaseRouted, topic_spec
from omnirouter.events.topics import TOPICS, topic_name
from omnirouter.logs import get_logger
from omnirouter.pipeline.routing.loader import rules_from_settings
from omnirouter.settings import Settings

log = get_logger(__name__)


def connect_services(settings: Settings, *, start_devstack: bool) -> StackAddresses:
    """Addresses of a Kafka and a Redis that answer, starting devstack for any not configured.

    Raises:
        ServiceUnreachableError: a configured service does not answer, or (without
            ``start_devstack``) none is configured and devstack is not running.
    """
    kafka = settings.kafka.bootstrap_servers
    redis_url = settings.redis.url
    if kafka is None or redis_url is None:
        stack = DevStack(settings.devstack)
        if start_devstack:
            local = stack.up()
        else:
            status = stack.status()
            if not status.running or status.addresses is None:
                raise ServiceUnreachableError(
                    "no Kafka/Redis configured (OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS, "
                    "OMNIROUTER_REDIS__URL) and devstack is not running (omnirouter devstack up)"
                )
            local = status.addresses
        kafka = kafka or local.kafka_bootstrap_servers
        redis_url = redis_url or local.redis_url
    wait_for_kafka(kafka, timeout_s=settings.kafka.connect_timeout_s, security=settings.kafka)
    wait_for_redis(redis_url, timeout_s=settings.redis.connect_timeout_s, security=settings.redis)
    return StackAddresses(kafka, redis_url)


def catalogue_topics(settings: Settings) -> list[TopicRequest]:
    """(name, partitions, configs, replicas) of every catalogue topic, named with this
    deployment's prefix; ``OMNIROUTER_KAFKA__REPLICATION_FACTOR`` and ``…__MIN_INSYNC_REPLICAS``
    override the catalogue's replication and the broker's default."""
    kafka = settings.kafka
    topics = []
    for spec in TOPICS:
        configs: dict[str, str] = {"cleanup.policy": spec.cleanup_policy}
        if spec.retention_ms is not None:
            configs["retention.ms"] = str(spec.retention_ms)
        if kafka.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
        replicas = kafka.replication_factor or spec.replication_factor
        name = topic_name(spec, kafka.topic_prefix)
        topics.append(TopicRequest(name, spec.partitions, configs, replicas))
    return topics


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    ready_file: Path


class Router:
    """Everything `omnirouter run` starts, stopped in reverse order.

    The pipeline workers and the HTTP API run as child processes of their own (as they would
    in production), tied to this one so that nothing outlives it.
    """

    def __init__(self, settings: Settings, *, progress: Callable[[str], None]) -> None:
        """Prepare to run with ``settings``; ``progress`` receives one line per start-up step."""
        self._settings = settings
        self._progress = progress
        self._stack: DevStack | None = None
        self._children: list[_Child] = []
        self._runtime_dir: Path | None = None
        self.addresses: StackAddresses | None = None
        self.api_port: int | None = None
        self.smtp_port: int | None = None
        self.admin_token: str | None = None
        self.worker_metrics_port: int | None = None
        self.demo: DemoSession | None = None

    def start(self) -> None:
        """Start (or connect to) Kafka and Redis, create the topics, start the processes."""
        settings = self._settings
        rules = rules_from_settings(settings.routing.rules_file)  # a bad file stops us here
        self._progress(
            f"routing rules: {settings.routing.rules_file or 'built-in default'} "
            f"({len(rules.queues)} queues)"
        )
        if settings.kafka.bootstrap_servers is None or settings.redis.url is None:
            self._progress("starting devstack (Kafka broker and redis-server)")
            # Tied to this process: Ctrl-C, a crash or a kill leaves no JVM behind.
            self._stack = DevStack(settings.devstack, tie_to_parent=True)
            self._stack.up()
        self._progress("connecting to Kafka and Redis")
        self.addresses = connect_services(settings, start_devstack=False)
        self._progress("creating topics")
        created = ensure_topics(
            self.addresses.kafka_bootstrap_servers,
            catalogue_topics(settings),
            security=settings.kafka,
        )
        log.info("topics ready", created=created)
        self._runtime_dir = Path(tempfile.mkdtemp(prefix="omnirouter-run-"))
        env = self._child_environment()
        if settings.demo.enabled:
            self.demo = DemoSession(settings)
            self._progress(
                f"starting the demo provider (SMS/WhatsApp API and SMTP) on port "
                f"{self.demo.provider.port}"
            )
            self.demo.start_provider()
            env |= self.demo.child_environment()
        self._progress("starting pipeline workers (identity, cases, routing, dispatcher)")
        self._spawn("worker", env)
        self._progress(
            f"starting gateway, API, desktop and ops dashboard on "
            f"{settings.api.host}:{self.api_port}"
        )
        self._spawn("serve", env)
        for child in self._children:
            self._wait_ready(child)
        if self.demo is not None and self.api_port is not None:
            self._progress(f"creating demo agents ({', '.join(settings.demo.agents)})")
            self.demo.create_agents(self.addresses.redis_url, rules)
            self._progress(
                f"starting the demo simulator (a message every {settings.demo.interval_s:g} s)"
            )
            self.demo.start_simulator(api_port=self.api_port, smtp_port=self.smtp_port)

    def _child_environment(self) -> dict[str, str]:
        assert self.addresses is not None
        env = dict(os.environ)
        env["OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS"] = self.addresses.kafka_bootstrap_servers
        env["OMNIROUTER_REDIS__URL"] = self.addresses.redis_url
        api = self._settings.api
        self.api_port = api.port or free_port()
        env["OMNIROUTER_API__PORT"] = str(self.api_port)
        # Both children get the port: the worker serves /metrics there, serve's /ops scrapes it.
        self.worker_metrics_port = self._settings.ops.worker_metrics_port or free_port()
        env["OMNIROUTER_OPS__WORKER_METRICS_PORT"] = str(self.worker_metrics_port)
        ingress = self._settings.ingress
        self.smtp_port = (ingress.smtp_port or free_port()) if ingress.smtp_enabled else None
        if self.smtp_port is not None:
            env["OMNIROUTER_INGRESS__SMTP_PORT"] = str(self.smtp_port)
        if api.admin_token is None:
            # A fresh operator token per run, printed in the banner, so the API is usable at once
            # without ever being open.
            self.admin_token = secrets.token_urlsafe(24)
            env["OMNIROUTER_API__ADMIN_TOKEN"] = self.admin_token
        return env

    def _spawn(self, command: str, env: dict[str, str]) -> None:
        assert self._runtime_dir is not None
        ready = self._runtime_dir / f"{command}.ready"
        process = start_tied(
            [sys.executable, "-m", "omnirouter.cli", command, "--ready-file", str(ready)], env=env
        )
        self._children.append(_Child(command, process, ready))

    def _wait_ready(self, child: _Child) -> None:
        deadline = time.monotonic() + 120
        while not child.ready_file.exists():
            code = child.process.poll()
            if code is not None:
                raise StackError(
                    f"omnirouter {child.name} exited with status {code} while starting"
                )
            if time.monotonic() > deadline:
                raise StackError(f"omnirouter {child.name} did not start within 120 s")
            time.sleep(0.1)

    def banner(self) -> str:
        """Where everything listens, for the terminal."""
        assert self.addresses is not None, "start() first"
        api = f"http://{self._settings.api.host}:{self.api_port}"
        worker_pid = self._children[0].process.pid
        lines = [
            "omnirouter is running",
            f"  desktop  {api}/desk  (agents sign in here)",
            f"  kafka    {self.addresses.kafka_bootstrap_servers}",
            f"  redis    {self.addresses.redis_url}",
            f"  topics   {self._settings.kafka.topic_prefix}*  ({len(TOPICS)} in the catalogue)",
            f"  workers  identity, cases, routing, dispatcher  (pid {worker_pid})",
            f"  api      {api}  (docs {api}/docs)",
            f"  webhooks {api}/webhooks/…  (Twilio, Meta WhatsApp, e-mail, signed JSON)",
            f'  chat     {api}/chat/demo  (widget: <script src="{api}/chat/widget.js" async>)',
            f"  ops      {api}/ops  (dashboard, for operators)",
            f"  metrics  {api}/metrics (serve)  "
            f"http://{self._settings.api.host}:{self.worker_metrics_port}/metrics (worker)",
        ]
        if self.smtp_port is not None:
            lines.append(f"  smtp     {self._settings.ingress.smtp_host}:{self.smtp_port}")
        if self.admin_token is not None:
            lines.append(f"  operator token  {self.admin_token}  (Authorization: Bearer …)")
        if self.demo is not None:
            lines.append(
                f"  demo     simulated customers write every {self._settings.demo.interval_s:g} s; "
                f"replies are delivered to {self.demo.provider.base_url}/outbox"
            )
            for agent in self.demo.agents:
                lines.append(
                    f"  demo agent  {agent.agent_id} / {agent.password}  "
                    f"({agent.role}, {agent.name})"
                )
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop what :meth:`start` started, newest first."""
        if self.demo is not None:
            self.demo.stop_simulator()
        for child in reversed(self._children):
            if child.process.poll() is None:
                self._progress(f"stopping {child.name}")
                child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=10)
        self._children.clear()
        if self.demo is not None:
            # After the dispatcher: its last deliveries still reach the provider.
            self.demo.stop_provider()
            self.demo = None
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None
        if self._stack is not None:
            self._progress("stopping devstack")
            self._stack.down()
            self._stack = None


def read_routed_since(
    bootstrap_servers: str, settings: Settings, since: datetime
) -> list[CaseRouted]:
    """Every routed case recorded on ``cases.routed`` since ``since`` (reads only; no group)."""
    topic = topic_spec("cases.routed").name(settings.kafka.topic_prefix)
    routed: list[CaseRouted] = []
    for record in read_topic(bootstrap_servers, topic, since=since, security=settings.kafka):
        # A record that does not parse is the dead-letter topic's business, not ours.
        with contextlib.suppress(ValueError):
            routed.append(CaseRouted.model_validate_json(record.value))
    return sorted(routed, key=lambda r: r.decision.occurred_at)
