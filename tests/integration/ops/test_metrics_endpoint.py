"""`omnirouter serve` in-process on the real stack: /metrics shows omnirouter's series after some
gateway traffic, and /ops/api/summary turns them into throughput for operators only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from omnirouter.assembly import serve_http
from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.connections import ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import (
    ApiSettings,
    DesktopSettings,
    IngressSettings,
    KafkaSettings,
    OpsSettings,
    RedisSettings,
    Settings,
)
from support.waiting import eventually_async

pytestmark = pytest.mark.integration

ADMIN = "ops-metrics-admin-token"
TWILIO_TOKEN = "12345678901234567890123456789012"


@dataclass
class Serve:
    """The serve process's app, listening on a loopback port in this event loop."""

    client: httpx.AsyncClient
    base_url: str

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """/metrics as {(sample name, sorted labels): value}."""
        answer = await self.client.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text)
            for s in family.samples
        }

    async def sms(self, fields: dict[str, str]) -> httpx.Response:
        """A Twilio SMS webhook, signed as Twilio signs it."""
        url = f"{self.base_url}/webhooks/twilio/messages"
        return await self.client.post(
            url,
            content=urlencode(fields),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, fields.items()),
            },
        )


def sample(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def serve(stack: StackAddresses, unique_id: str, redis_prefix: str) -> AsyncIterator[Serve]:
    """`serve_http` as `omnirouter serve` runs it, stopped through its stop event."""
    prefix = f"test.{unique_id}."
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        redis=RedisSettings(url=stack.redis_url, key_prefix=redis_prefix),
        api=ApiSettings(port=port, admin_token=SecretStr(ADMIN)),
        ingress=IngressSettings(
            public_url=base_url, twilio_auth_token=SecretStr(TWILIO_TOKEN), smtp_enabled=False
        ),
        desktop=DesktopSettings(live_updates=False),
        # No worker runs here: its port answers nothing, which the summary reports.
        ops=OpsSettings(worker_metrics_port=free_port(), lag_sample_interval_s=0.5),
    )
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_http(settings, stack, stop))
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def healthy() -> bool:
            if serving.done():
                serving.result()  # raises what stopped it
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        try:
            await eventually_async(healthy, timeout_s=60, what="serve to listen")
            yield Serve(client, base_url)
        finally:
            stop.set()
            await asyncio.wait_for(serving, timeout=60)


async def test_metrics_show_gateway_traffic_queues_and_consumer_lag(serve: Serve) -> None:
    before = await serve.metrics()
    message_id = "SM" + uuid.uuid4().hex
    accepted = {"MessageSid": message_id, "From": "+15550102345", "To": "+15017122661"}
    accepted["Body"] = "Where is my parcel?"
    assert (await serve.sms(accepted)).status_code == 200
    assert (await serve.sms(accepted)).status_code == 200  # Twilio retrying: a duplicate
    unusable = {"MessageSid": "SM" + uuid.uuid4().hex, "Body": "no sender"}
    assert (await serve.sms(unusable)).status_code == 422
    agent = await serve.client.put(
        "/api/agents/zoe",
        json={"presence": "available"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert agent.status_code == 200, agent.text
    after = await serve.metrics()

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    payloads = "omnirouter_ingress_payloads_total"
    assert grew(payloads, provider="twilio", outcome="accepted") == 1
    assert grew(payloads, provider="twilio", outcome="duplicate") == 1
    assert grew(payloads, provider="twilio", outcome="rejected") == 1
    published = {"stage": "ingress", "topic": "interactions.inbound", "direction": "out"}
    assert grew("omnirouter_events_total", **published, channel="sms") == 1
    assert grew("omnirouter_dead_letters_total", stage="ingress", reason="Unnormalizable") == 1
    assert grew("omnirouter_stage_seconds_count", stage="ingress") == 2
    # The routing state in Redis: the default rules' queue, empty, and the one agent.
    assert (
        "omnirouter_queue_depth",
        (("queue", "general"), ("tenant", "default")),
    ) in after
    assert sample(after, "omnirouter_queue_depth", tenant="default", queue="general") == 0
    assert sample(after, "omnirouter_agents", tenant="default", presence="available") == 1
    # Consumer lag families are there from the start (samples once the monitor has sampled).
    text = (await serve.client.get("/metrics")).text
    for family in ("kafka_consumergroup_lag", "kafka_consumergroup_status"):
        assert f"# TYPE {family} gauge" in text


async def test_the_summary_is_for_operators_and_shows_throughput_and_lag(serve: Serve) -> None:
    assert (await serve.client.get("/ops/api/summary")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (await serve.client.get("/ops/api/summary", headers=wrong)).status_code == 403
    page = await serve.client.get("/ops")
    assert page.status_code == 200 and "/ops/static/ops.js" in page.text

    for n in range(3):
        fields = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": "+15550102345", "Body": f"#{n}"}
        assert (await serve.sms(fields)).status_code == 200
    auth = {"Authorization": f"Bearer {ADMIN}"}

    async def flowing() -> dict | None:  # type: ignore[type-arg]
        summary = (await serve.client.get("/ops/api/summary", headers=auth)).json()
        ready = summary["throughput"]["ingress"]["in"] > 0 and summary["lag"] is not None
        return summary if ready else None

    summary = await eventually_async(flowing, timeout_s=60, what="throughput and a lag sample")
    assert summary["throughput"]["ingress"]["out"] > 0
    assert summary["latency"]["stages"]["ingress"]["p50"] > 0
    assert summary["sources"]["serve"] == "ok"
    assert summary["sources"]["worker"].startswith("unreachable")
    assert {"groups", "sampled_at"} <= summary["lag"].keys()
    assert summary["history"] and summary["lag_history"]
