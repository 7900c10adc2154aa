"""The gateway alone: signed Twilio webhooks at fixed rates against one `omnirouter serve`.

A 2xx from the gateway means Kafka acknowledged the event (``acks=all``), so webhooks per
second with 2xx is the durable ingest rate of one gateway process. Requests are offered open
loop like the pipeline's events: request ``i`` is intended at ``t0 + i / rate`` and its latency
runs from then, so a stalled gateway shows as latency instead of a lower offered rate.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

from omnirouter.bench.http import KeepAlivePool, build_post
from omnirouter.bench.schedule import StepPlan
from omnirouter.bench.stats import (
    BacklogVerdict,
    LatencySummary,
    backlog_verdict,
    summarize_latencies,
)
from omnirouter.channels.twilio.signature import twilio_signature

__all__ = ["GatewayStep", "SignedWebhooks", "offer_webhooks"]

_SENTENCES = (
    "Hi, my parcel never arrived, can you check order 1182?",
    "I was charged twice for my last invoice, please refund one payment.",
    "The reset link is broken, I cannot log in to my account.",
    "Please call me back about the damaged item, it arrived with a cracked screen.",
)


@dataclass(frozen=True)
class SignedWebhooks:
    """Where to post Twilio Messaging webhooks and the auth token to sign them with."""

    url: str
    auth_token: str

    def build(self, count: int, *, seed: int) -> list[bytes]:
        """``count`` distinct signed webhook requests, built ahead as the bytes to send."""
        rng = random.Random(seed)  # noqa: S311 - test traffic, not cryptography
        requests = []
        for _ in range(count):
            fields = {
                "MessageSid": "SM" + uuid.UUID(int=rng.getrandbits(128)).hex,
                "AccountSid": "AC" + "0" * 32,
                "MessagingServiceSid": "MG" + "1" * 32,
                "From": f"+1555{rng.randrange(10**6):06d}",
                "To": "+15017122661",
                "Body": rng.choice(_SENTENCES),
                "NumMedia": "0",
                "NumSegments": "1",
                "SmsStatus": "received",
                "ApiVersion": "2010-04-01",
                "FromCountry": "US",
                "FromCity": "SPRINGFIELD",
            }
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(self.auth_token, self.url, fields.items()),
            }
            requests.append(build_post(self.url, urlencode(fields).encode(), headers))
        return requests


@dataclass
class GatewayStep:
    """The outcome of one fixed-rate step against the gateway."""

    plan: StepPlan
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    backlog: list[tuple[float, int]] = field(default_factory=list)
    completed: int = 0

    @property
    def errors(self) -> int:
        """Requests not answered 2xx."""
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))

    def latency(self) -> LatencySummary:
        """Percentiles over the steady window."""
        return summarize_latencies(self.latencies_s)

    def verdict(self) -> BacklogVerdict:
        """Sustainable: requests in flight stay bounded and (almost) every answer is 2xx."""
        verdict = backlog_verdict(self.backlog, self.plan.rate, max_backlog_s=1.0)
        if verdict.bounded and self.errors > 0.001 * max(1, self.completed):
            return BacklogVerdict(
                False,
                verdict.growth_per_s,
                verdict.final_backlog,
                f"{self.errors} requests not answered 2xx: {dict(self.statuses)}",
            )
        return verdict


async def offer_webhooks(
    plan: StepPlan,
    target: SignedWebhooks,
    requests: list[bytes],
    *,
    connections: int = 256,
    sample_every_s: float = 0.25,
) -> GatewayStep:
    """Post ``requests`` (from :meth:`SignedWebhooks.build`) open loop at ``plan.rate``;
    returns when every request was answered."""
    result = GatewayStep(plan)
    pool = KeepAlivePool(target.url, limit=connections, timeout_s=30.0)
    try:

        async def post(index: int) -> None:
            try:
                status = str(await pool.post(requests[index % len(requests)]))
            except Exception as exc:  # every request is counted, whatever it failed with
                status = type(exc).__name__
            now = time.monotonic()
            result.statuses[status] += 1
            result.completed += 1
            intended = plan.intended(index)
            if intended >= plan.steady_from:
                result.latencies_s.append(now - intended)

        tasks: set[asyncio.Task[None]] = set()
        sent = 0
        next_sample = plan.steady_from
        while sent < plan.total:
            now = time.monotonic()
            due = plan.due(now)
            for index in range(sent, due):
                task = asyncio.create_task(post(index))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent = max(sent, due)
            if now >= next_sample:
                result.backlog.append((now, plan.due(now) - result.completed))
                next_sample += sample_every_s
            if sent < plan.total:
                await asyncio.sleep(max(0.0005, plan.intended(sent) - time.monotonic()))
        result.backlog.append((time.monotonic(), plan.total - result.completed))
        if tasks:
            await asyncio.wait(tasks)
    finally:
        pool.close()
    return result
