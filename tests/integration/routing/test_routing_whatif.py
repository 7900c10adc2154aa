"""What-if: recorded routing replayed against other rules, reading Kafka and changing nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from omnirouter.events import CaseRouted, topic_spec
from support.redis_state import snapshot_keys
from support.routing_env import T0

pytestmark = pytest.mark.integration

TODAY = """
queues: [{id: billing, skills: {billing: 3}}, {id: general}]
rules: [{id: money, when: {intents: [billing]}, route_to: billing}]
default_queue: general
"""
TOMORROW = """
queues: [{id: billing, skills: {billing: 3}}, {id: general}, {id: refunds}]
rules:
  - {id: refunds-first, when: {intents: [refund]}, route_to: refunds}
  - {id: money, when: {intents: [billing]}, route_to: billing}
default_queue: general
"""


async def test_whatif_reports_how_routing_would_have_differed(routing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = routing.engine(TODAY)
    texts = ["I want a refund for the double charge", "My invoice is wrong", "Where is my parcel?"]
    for n, text in enumerate(texts):
        request = await routing.case(text)
        routing.publish(await engine.route(request, cause=f"r{n}", now=T0 + timedelta(minutes=n)))
    topic = topic_spec("cases.routed").name(routing.prefix)
    await routing.reader.wait_for(lambda r: len(r.on(topic)) == 3, what="three routed cases")
    before = await snapshot_keys(routing.store.client, routing.redis_prefix)
    rules = tmp_path / "tomorrow.yaml"
    rules.write_text(TOMORROW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update(
        OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS=routing.stack.kafka_bootstrap_servers,
        OMNIROUTER_KAFKA__TOPIC_PREFIX=routing.prefix,
        OMNIROUTER_REDIS__URL=routing.stack.redis_url,
    )
    since = (T0 - timedelta(days=3650)).isoformat()  # the records carry the broker's append time

    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "omnirouter.cli",
            "rules",
            "whatif",
            str(rules),
            "--from",
            since,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["cases"], report["changed"]) == (3, 1)
    row = report["rows"][0]
    assert row["then"] == {"rule": "money", "queue": "billing", "priority": 0}
    assert row["would"]["rule"] == "refunds-first"
    assert row["would"]["queue"] == "refunds"
    assert await snapshot_keys(routing.store.client, routing.redis_prefix) == before
    assert len(routing.reader.decoded(topic, CaseRouted)) == 3
