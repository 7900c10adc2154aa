"""Stop and restart the Kafka broker while SMS webhooks arrive at the real HTTP gateway: while
it is down the gateway answers 503 (never a 2xx it cannot keep), and every message it did
acknowledge ends up once in its customer's timeline, every case routed once."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest

from faults.harness import FaultRun, customer_phone, fault_points
from faults.report import FaultReport
from faults.sizes import Size, seed, sizes
from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.ingress.publishing import provider_event_id
from support.faults import PUBLIC_URL, TWILIO_TOKEN
from support.waiting import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SHORT = Size("short", events=200, customers=50, faults=1, timeout_s=240)
FULL = Size("full", events=3_000, customers=600, faults=2, timeout_s=1200)

PATH = "/webhooks/twilio/messages"
SENDERS = 4  # concurrent webhook deliveries, as a provider makes them
# 503s seen inside an outage before the broker comes back (a 503 takes the 2 s publish timeout).
REFUSALS_PER_OUTAGE = {"short": 4, "full": 8}


def sms_form(n: int, customers: int, rng: random.Random) -> dict[str, str]:
    """Twilio's webhook form for message ``n`` from one of ``customers`` customers."""
    return {
        "MessageSid": f"SM{n:032d}",
        "From": customer_phone(rng.randrange(customers)),
        "To": "+15017122661",
        "Body": f"message {n}",
    }


@dataclass
class Delivery:
    """One webhook request: what was sent, when, and the answer."""

    n: int
    started: float
    ended: float
    status: int


@dataclass
class Provider:
    """Delivers webhooks like a provider: signed, concurrently, and again after a refusal."""

    client: httpx.AsyncClient
    forms: list[dict[str, str]]
    deliveries: list[Delivery] = field(default_factory=list)
    acknowledged: set[int] = field(default_factory=set)

    async def deliver(self, n: int) -> int:
        form = self.forms[n]
        signature = twilio_signature(TWILIO_TOKEN, PUBLIC_URL + PATH, form.items())
        started = time.monotonic()
        answer = await self.client.post(
            PATH,
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        self.deliveries.append(Delivery(n, started, time.monotonic(), answer.status_code))
        assert answer.status_code in (200, 503), f"message {n}: {answer.status_code} {answer.text}"
        if answer.status_code == 503:
            assert answer.headers.get("Retry-After"), "a 503 without Retry-After"
        else:
            self.acknowledged.add(n)
        return answer.status_code

    async def deliver_all(self, order: list[int]) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in order:
            queue.put_nowait(n)

        async def sender() -> None:
            while not queue.empty():
                await self.deliver(queue.get_nowait())

        await asyncio.gather(*(sender() for _ in range(SENDERS)))

    async def redeliver_refused(self) -> bool:
        """Deliver again every message not acknowledged yet; True when none is left."""
        for n in sorted(set(range(len(self.forms))) - self.acknowledged):
            await self.deliver(n)
        return len(self.acknowledged) == len(self.forms)


@pytest.mark.parametrize("size", sizes(SHORT, FULL))
async def test_broker_restart_answers_503_and_loses_nothing_acknowledged(
    size: Size, fault_run: FaultRun, record_fault_report: Callable[[FaultReport], None]
) -> None:
    """503 with Retry-After while the broker is down; afterwards every acknowledged message is
    once in its timeline and every case routed once."""
    run_seed = seed()
    rng = random.Random(run_seed)
    print(f"seed {run_seed}")
    started = time.monotonic()
    worker, gateway = await asyncio.gather(
        asyncio.to_thread(fault_run.process, "worker"),
        asyncio.to_thread(fault_run.process, "serve"),
    )
    forms = [sms_form(n, size.customers, rng) for n in range(size.events)]
    outages: list[tuple[float, float]] = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as client:
        provider = Provider(client, forms)
        flow = asyncio.create_task(provider.deliver_all(list(range(size.events))))
        for point in fault_points(rng, size.faults, size.events, low=0.15, high=0.5):

            async def reached(p: int = point) -> bool:
                if flow.done():
                    flow.result()  # a failed delivery fails the test here
                return len(provider.acknowledged) >= p

            await eventually_async(reached, timeout_s=300, what=f"{point} acknowledged messages")
            await asyncio.to_thread(fault_run.stack.stop_kafka)
            down = time.monotonic()

            async def refused_while_down(since: float = down) -> bool:
                return (
                    sum(1 for d in provider.deliveries if d.started >= since and d.status == 503)
                    >= REFUSALS_PER_OUTAGE[size.name]
                )

            await eventually_async(refused_while_down, timeout_s=120, what="503s from the gateway")
            outages.append((down, time.monotonic()))
            await asyncio.to_thread(fault_run.stack.restart_kafka)
        await flow
        await eventually_async(
            provider.redeliver_refused, timeout_s=180, what="every message to be acknowledged"
        )
    inside = [d for d in provider.deliveries for a, b in outages if d.started >= a and d.ended <= b]
    refusals = sum(1 for d in provider.deliveries if d.status == 503)
    await asyncio.to_thread(fault_run.wait_drained, timeout_s=300)
    acknowledged = {
        str(provider_event_id("twilio", forms[n]["MessageSid"])): f"phone:{forms[n]['From']}"
        for n in provider.acknowledged
    }
    result = await asyncio.to_thread(fault_run.reconcile, acknowledged)
    record_fault_report(
        FaultReport.of(
            "broker restart (via gateway)",
            size.name,
            run_seed,
            sent=size.events,
            acknowledged=len(acknowledged),
            faults=len(outages),
            result=result,
            seconds=time.monotonic() - started,
            answered_503=refusals,
            requests=len(provider.deliveries),
        )
    )
    assert len(outages) == size.faults
    assert worker.alive and gateway.alive, "a router process died with the broker down"
    assert inside and {d.status for d in inside} == {503}, "a 2xx while the broker was down"
    assert (result.lost, result.duplicated) == (0, 0), fault_run.explain(result)
