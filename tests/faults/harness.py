"""The pieces every fault scenario shares: a router on the fault stack with private topics and
keys, a producer that keeps events flowing, and waiting for the pipeline to drain."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis
from kafka.errors import KafkaError

from faults.probes import TopicProbe
from faults.reconcile import Reconciliation, reconcile
from omnirouter.connections import create_producer, ensure_topics
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.events import DEFAULT_TENANT, InteractionEvent, encode, topic_spec
from omnirouter.redis_keys import CustomerCaseKeys
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import KafkaSettings, Settings
from support.events import identifier, inbound
from support.faults import RouterProcess, router_environment
from support.waiting import eventually

# The topics whose committed offsets say the pipeline has processed everything given to it.
PIPELINE_INPUTS = ("interactions.inbound", "interactions.resolved")
# Lost events traced through the topics in a failure message (reading the topics is slow).
_TRACED = 10


@dataclass
class FaultRun:
    """One scenario's router: its stack, topics, key prefix, processes and probes."""

    stack: DevStack
    addresses: StackAddresses
    prefix: str
    redis_prefix: str
    logs: Path
    probe: TopicProbe
    redis: redis.Redis
    processes: list[RouterProcess] = field(default_factory=list)

    @classmethod
    def create(
        cls, stack: DevStack, addresses: StackAddresses, unique_id: str, logs: Path
    ) -> FaultRun:
        """Create the catalogue's topics (3 partitions each) under a prefix of this run."""
        prefix = f"faults.{unique_id}."
        settings = Settings(
            kafka=KafkaSettings(
                bootstrap_servers=addresses.kafka_bootstrap_servers, topic_prefix=prefix
            )
        )
        ensure_topics(
            addresses.kafka_bootstrap_servers,
            [t._replace(partitions=3) for t in catalogue_topics(settings)],
        )
        return cls(
            stack,
            addresses,
            prefix,
            f"faults:{unique_id}",
            logs,
            TopicProbe(addresses.kafka_bootstrap_servers),
            redis.Redis.from_url(addresses.redis_url),
        )

    def topic(self, key: str) -> str:
        """The full name of a catalogue topic in this run."""
        return topic_spec(key).name(self.prefix)

    def process(self, command: str, **settings: str) -> RouterProcess:
        """An ``omnirouter worker|serve`` of this run, started (``settings``: more environment
        variables, ``OMNIROUTER_…``)."""
        env = router_environment(self.addresses, prefix=self.prefix, redis_prefix=self.redis_prefix)
        process = RouterProcess(command, env | settings, self.logs)
        self.processes.append(process)
        process.start()
        return process

    def wait_drained(self, *, timeout_s: float) -> None:
        """Wait until the worker group committed every record of the pipeline's inputs.

        Offsets are committed only after a batch's side effects are durable, so from here on
        Redis and the output topics hold everything the pipeline will ever make of its input.
        """
        topics = [self.topic(key) for key in PIPELINE_INPUTS]
        eventually(
            lambda: self.probe.drained(*topics),
            timeout_s=timeout_s,
            what=f"the worker group to commit to the end of {topics}",
        )

    def reconcile(self, acknowledged: dict[str, str]) -> Reconciliation:
        """Lost and duplicated events and routings, from Redis and cases.routed."""
        routed = self.probe.read_all(self.topic("cases.routed"))
        return reconcile(self.redis, self.redis_prefix, acknowledged, routed)

    def explain(self, result: Reconciliation) -> str:
        """The reconciliation for an assertion message, with how far the lost events got."""
        if not result.lost_events:
            return result.describe()
        traced = result.lost_events[:_TRACED]
        try:
            where = self.where_lost(traced)
        except Exception as exc:  # the reconciliation must still be reported
            where = f"(could not read the topics: {type(exc).__name__}: {exc})"
        return f"{result.describe()}; where they stopped: {where}"

    def where_lost(self, event_ids: Sequence[str]) -> str:
        """How far each lost event got: its record on the inbound topic (with its text, which
        numbers it in production order), and on the resolved topic if identity published it,
        with the group's committed offset on each partition; then, for each one resolved,
        whether it is on the timeline of the customer identity resolved it to.

        A loss has several possible causes (a write Kafka acknowledged and lost, identity
        committing past an event, the case stage committing past one); this says which."""
        wanted = set(event_ids)
        lines = []
        resolved_to: dict[str, tuple[str, str]] = {}  # event id -> (tenant, customer) identity gave
        for key in ("interactions.inbound", "interactions.resolved"):
            topic = self.topic(key)
            committed = self.probe.committed(topic)
            found: dict[str, list[str]] = {}
            for partition, offset, value in self.probe.read_records(topic):
                record = orjson.loads(value)
                event = record["interaction"] if key == "interactions.resolved" else record
                event_id = event["event_id"]
                if event_id in wanted:
                    text = (event.get("content") or {}).get("text", "")
                    where = f"p{partition}@{offset}" + (f" {text!r}" if text else "")
                    found.setdefault(event_id, []).append(where)
                    if key == "interactions.resolved":
                        tenant = record.get("tenant", DEFAULT_TENANT)
                        resolved_to[event_id] = (tenant, record["customer_id"])
            lines.append(
                f"{key} (committed {committed}): "
                + ", ".join(f"{e[:8]} {found.get(e, ['absent'])}" for e in event_ids)
            )
        # A resolved event on the timeline of the customer identity gave it, but lost to the
        # audit, went to another customer than its address's owner now: identity's doing, not
        # the case stage's.
        if resolved_to:
            lines.append(
                "on the timeline of the customer identity gave it: "
                + ", ".join(
                    f"{e[:8]} {self._on_timeline(e, *resolved_to[e])}"
                    for e in event_ids
                    if e in resolved_to
                )
            )
        return "; ".join(lines)

    def _on_timeline(self, event_id: str, tenant: str, customer_id: str) -> str:
        timeline = CustomerCaseKeys(self.redis_prefix, tenant, customer_id).timeline
        entries = (orjson.loads(raw) for raw in self.redis.lrange(timeline, 0, -1))
        # As the reconciliation counts them: message entries only.
        on_it = any(
            entry.get("kind") == "message" and entry.get("entry_id") == event_id
            for entry in entries
        )
        return f"{'yes' if on_it else 'no'} (customer {customer_id[:8]})"

    def close(self) -> None:
        """Stop the processes (SIGTERM) and close the clients."""
        for process in self.processes:
            process.stop()
        self.probe.close()
        self.redis.close()


def fault_points(
    rng: random.Random, faults: int, events: int, *, low: float = 0.05, high: float = 0.9
) -> list[int]:
    """Progress (in events) at which to inject each fault: at random between ``low`` and
    ``high`` of the run, at least 5% of it apart so the pipeline works between faults."""
    while True:
        fractions = sorted(rng.uniform(low, high) for _ in range(faults))
        if all(b - a >= 0.05 for a, b in itertools.pairwise(fractions)):
            return [int(f * events) for f in fractions]


def customer_phone(n: int) -> str:
    """A distinct, valid E.164 number per customer."""
    return f"+1415{n:07d}"


def sms_traffic(customers: int, events: int, rng: random.Random) -> list[InteractionEvent]:
    """``events`` inbound SMS from ``customers`` customers, interleaved at random."""
    order = [n % customers for n in range(events)]
    rng.shuffle(order)
    return [
        inbound(
            "sms",
            identifier("phone", customer_phone(c)),
            text=f"message {i} from customer {c}",
            provider="faults",
        )
        for i, c in enumerate(order)
    ]


class PacedProducer(threading.Thread):
    """Produces events to interactions.inbound (acks=all) while the scenario injects faults.

    It stays at most a tenth of the run (``window``) ahead of identity's output, as a real
    source is held back by its own throughput: events keep flowing while a worker or Redis is
    down, but the run does not turn into "write everything first, then process".
    """

    def __init__(
        self,
        run: FaultRun,
        events: list[InteractionEvent],
        *,
        stall_timeout_s: float = 300.0,
        hold_at: Sequence[int] = (),
    ) -> None:
        super().__init__(name="faults-producer", daemon=True)
        self._run = run
        self._events = events
        self._window = max(50, len(events) // 10)
        self._chunk = max(25, self._window // 10)
        self._stall_timeout_s = stall_timeout_s
        # Fault points the producer stops at until the scenario has injected its fault: a
        # trigger that only watches progress can fire after the producer wrote everything on a
        # slow run, leaving nothing to write while the fault lasts (a CI run failed on that).
        self._hold_at = sorted(set(hold_at))
        self._released = threading.Condition()
        self._holding_at: int | None = None
        self._releases = 0
        self.sent = 0
        self.acknowledged: dict[str, str] = {}
        self.refused = 0
        self.error: BaseException | None = None

    def held_at(self, point: int) -> bool:
        """Whether the producer wrote the events before ``point`` and waits for release."""
        with self._released:
            return self._holding_at == point

    def release(self) -> None:
        """Let the producer go on past the point it holds at."""
        with self._released:
            self._releases += 1
            self._released.notify_all()

    def _hold(self, point: int) -> None:
        with self._released:
            self._holding_at = point
            expected = self._hold_at.index(point) + 1
            if not self._released.wait_for(
                lambda: self._releases >= expected, timeout=self._stall_timeout_s
            ):
                raise TimeoutError(f"the producer was not released at {point} events")
            self._holding_at = None

    def _chunks(self) -> Iterator[tuple[int, int]]:
        """(start, end) of each write, cut at every hold point."""
        bounds = sorted({*range(0, len(self._events), self._chunk), *self._hold_at})
        return zip(bounds, [*bounds[1:], len(self._events)], strict=True)

    def run(self) -> None:
        addresses = self._run.addresses
        producer = create_producer(addresses.kafka_bootstrap_servers, client_id="faults-producer")
        probe = TopicProbe(addresses.kafka_bootstrap_servers)  # clients are not shared by threads
        topic = self._run.topic("interactions.inbound")
        resolved = self._run.topic("interactions.resolved")
        try:
            for start, end in self._chunks():
                if start in self._hold_at:
                    self._hold(start)
                eventually(
                    lambda: self.sent - probe.total(resolved) <= self._window,
                    timeout_s=self._stall_timeout_s,
                    what="identity to catch up with the producer",
                )
                chunk = self._events[start:end]
                futures = [
                    (e, producer.send(topic, encode(e), key=e.routing_key.encode())) for e in chunk
                ]
                self.sent += len(chunk)
                for event, future in futures:
                    try:
                        future.get(timeout=60)
                    except KafkaError:
                        self.refused += 1  # not acknowledged: the source keeps it and retries
                    else:
                        self.acknowledged[str(event.event_id)] = event.identifiers[0].address
        except BaseException as exc:  # reported by finish(), not lost in the thread
            self.error = exc
        finally:
            producer.close(timeout=10)
            probe.close()

    def finish(self, *, timeout_s: float = 600.0) -> None:
        """Wait until every event was sent; fail the test if producing failed."""
        self.join(timeout=timeout_s)
        assert not self.is_alive(), f"the producer did not finish in {timeout_s:g} s"
        if self.error is not None:
            raise AssertionError(f"producing failed: {self.error!r}") from self.error
