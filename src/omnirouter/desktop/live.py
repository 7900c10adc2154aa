"""Live updates for desktops: case and routing events from Kafka, fanned out per agent.

One consumer per server process (no consumer group: every process sees every event, from the
moment it starts) feeds an in-memory subscriber list; each subscriber gets only what its
agent may see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer

from omnirouter.events import DEFAULT_TENANT, topic_spec
from omnirouter.logs import get_logger
from omnirouter.security import aiokafka_security

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings

log = get_logger(__name__)

Notice = dict[str, Any]


@dataclass
class Subscriber:
    """One open live connection."""

    accepts: Callable[[Notice], bool]
    queue: asyncio.Queue[Notice] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))


def notice_from(topic_key: str, value: bytes) -> Notice | None:
    """The small notice a desktop needs to refresh what changed (pure).

    Every notice names its tenant (an event without one is the contract's default tenant), so
    a subscriber's filter never has to guess whose it is.
    """
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if topic_key == "cases.events":
        case = data.get("case") or {}
        return {
            "type": "case",
            "kind": data.get("kind"),
            "case_id": case.get("case_id"),
            "customer_id": case.get("customer_id"),
            "queue": case.get("queue"),
            "status": case.get("status"),
            "agent_id": case.get("assigned_agent_id"),
            "tenant": data.get("tenant") or DEFAULT_TENANT,
        }
    if topic_key == "routing.decisions":
        return {
            "type": "routing",
            "outcome": data.get("outcome"),
            "case_id": data.get("case_id"),
            "customer_id": data.get("customer_id"),
            "queue": data.get("queue"),
            "agent_id": data.get("agent_id"),
            "tenant": data.get("tenant") or DEFAULT_TENANT,
        }
    return None


class LiveFeed:
    """Consumes case and routing events and hands each to the subscribers that may see it."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str,
        security: KafkaSettings | None = None,
    ) -> None:
        """Read the deployment's topics from ``bootstrap_servers`` (SASL/TLS: ``security``)."""
        self._bootstrap = bootstrap_servers
        self._security = security
        self._topics = {
            topic_spec(key).name(topic_prefix): key for key in ("cases.events", "routing.decisions")
        }
        self._subscribers: list[Subscriber] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Start consuming from the end of the topics."""
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            **aiokafka_security(self._security),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop consuming."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def subscribe(self, accepts: Callable[[Notice], bool]) -> Subscriber:
        """A new subscriber receiving the notices ``accepts`` lets through."""
        subscriber = Subscriber(accepts)
        self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a closed connection."""
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    def dispatch(self, notice: Notice) -> None:
        """Hand a notice to every subscriber that may see it (a full queue drops the oldest)."""
        for subscriber in list(self._subscribers):
            if not subscriber.accepts(notice):
                continue
            if subscriber.queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    subscriber.queue.get_nowait()
            subscriber.queue.put_nowait(notice)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500)
            except Exception as exc:
                log.warning("live feed read failed", error=str(exc))
                await asyncio.sleep(1)
                continue
            for tp, messages in batches.items():
                key = self._topics.get(tp.topic)
                for message in messages:
                    if key is None or message.value is None:
                        continue
                    notice = notice_from(key, message.value)
                    if notice is not None:
                        self.dispatch(notice)
