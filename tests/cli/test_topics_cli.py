"""`omnirouter topics ensure`: what a deployment runs once before `serve` and `worker`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kafka import KafkaAdminClient

from omnirouter.devstack import StackAddresses
from omnirouter.events.topics import TOPICS

pytestmark = pytest.mark.integration


def _ensure(stack: StackAddresses, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env |= {
        "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "OMNIROUTER_KAFKA__TOPIC_PREFIX": prefix,
        "OMNIROUTER_REDIS__URL": stack.redis_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "omnirouter.cli", "topics", "ensure"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_ensure_creates_the_catalogue_once_and_then_finds_it(
    stack: StackAddresses, unique_id: str
) -> None:
    prefix = f"test.{unique_id}."
    first = _ensure(stack, prefix)
    assert first.returncode == 0, first.stderr
    rows = [line.split() for line in first.stdout.splitlines()]
    assert {row[0] for row in rows} == {spec.name(prefix) for spec in TOPICS}
    assert {row[1] for row in rows} == {"created"}

    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    try:
        described = {
            t["name"]: len(t["partitions"])
            for t in admin.describe_topics([spec.name(prefix) for spec in TOPICS])
        }
    finally:
        admin.close()
    assert described == {spec.name(prefix): spec.partitions for spec in TOPICS}

    again = _ensure(stack, prefix)
    assert again.returncode == 0, again.stderr
    assert {line.split()[1] for line in again.stdout.splitlines()} == {"exists"}
