"""The thin edge to Kafka and Redis: checked connections and the project's producer settings.

kafka-python probes the broker's version when a client is created and waits up to 30 s when
nothing answers, so every client here is created only after a cheap TCP check succeeded, and an
unreachable service becomes one readable error instead of a long hang and a traceback.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    AuthorizationError,
    IllegalSaslStateError,
    InvalidReplicationFactorError,
    KafkaError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)

from omnirouter.errors import ServiceUnreachableError
from omnirouter.security import kafka_python_security, redis_sync_client

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings, RedisSettings


# Answers that waiting does not change: wrong credentials or a mechanism the broker lacks.
_REFUSED = (
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
    AuthorizationError,
)


def _first_answering(servers: Iterable[str], timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    servers = list(servers)
    while True:
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=0.5):
                    return server
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def wait_for_kafka(
    bootstrap_servers: str, *, timeout_s: float, security: KafkaSettings | None = None
) -> None:
    """Return once a broker answers a metadata request (authenticated with ``security``).

    Raises:
        ServiceUnreachableError: no broker answered within ``timeout_s``, or one refused our
            credentials (at once).
    """
    servers = [s.strip() for s in bootstrap_servers.split(",")]
    deadline = time.monotonic() + timeout_s
    if _first_answering(servers, timeout_s) is None:
        raise ServiceUnreachableError(
            f"Kafka broker at {bootstrap_servers} did not answer within {timeout_s:g} s "
            "(set OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS, or leave it unset to use devstack)"
        )
    # In a cluster, the client may ask a broker that is down but still listed in the metadata
    # (until the controller fences it): a worker restarted during one broker's outage failed
    # here at once. Ask again until the deadline; only then is the cluster unreachable.
    while True:
        remaining = max(1.0, deadline - time.monotonic())
        try:
            _describe_cluster(servers, remaining, security)
            return
        except (KafkaError, OSError) as exc:
            if isinstance(exc, _REFUSED) or time.monotonic() >= deadline:
                raise ServiceUnreachableError(
                    f"Kafka at {bootstrap_servers} accepted a connection but did not answer as "
                    f"a broker: {type(exc).__name__}: {exc}"
                ) from None
        time.sleep(0.2)


class _AdminClient(KafkaAdminClient):  # type: ignore[misc]  # kafka-python ships no types
    """kafka-python's admin client, with nothing left running when it cannot start.

    kafka-python 3.0 starts the client's IO thread before it bootstraps, and when the bootstrap
    fails (no broker answered in time) the constructor raises with that thread still running and
    reconnecting, and nothing can stop it. ``wait_for_kafka`` asks again every 0.2 s and the lag
    monitor every round, so a Kafka outage left one more thread per attempt in the process.
    """

    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            self._stop_what_started()
            raise

    def _stop_what_started(self) -> None:
        # Each part exists only if the constructor got that far.
        for part, stop in (("_client", "close"), ("_net", "stop"), ("_metrics", "close")):
            running = getattr(self, part, None)
            if running is not None:
                with contextlib.suppress(Exception):
                    getattr(running, stop)()


def admin_client(**configs: Any) -> KafkaAdminClient:
    """A connected kafka-python admin client (see :class:`_AdminClient`); the caller closes it.

    Raises:
        KafkaError: as kafka-python's own constructor does.
    """
    return _AdminClient(**configs)


def _describe_cluster(servers: list[str], timeout_s: float, security: KafkaSettings | None) -> None:
    admin = admin_client(
        bootstrap_servers=servers,
        client_id="omnirouter-check",
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
        **kafka_python_security(security),
    )
    try:
        admin.describe_cluster()
    finally:
        admin.close()


def wait_for_redis(url: str, *, timeout_s: float, security: RedisSettings | None = None) -> None:
    """Return once Redis answers PING (as ``security``'s ACL user, over its TLS).

    Raises:
        ServiceUnreachableError: Redis did not answer within ``timeout_s``, or refused our
            credentials (at once: waiting does not make a wrong password right).
    """
    client = redis_sync_client(security, url, socket_connect_timeout=1.0, socket_timeout=1.0)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if client.ping():
                    return
            except (redis.AuthenticationError, redis.ResponseError) as exc:
                raise ServiceUnreachableError(
                    f"Redis at {url} refused omnirouter ({type(exc).__name__}: {exc}); check "
                    "OMNIROUTER_REDIS__USERNAME, OMNIROUTER_REDIS__PASSWORD and the user's ACL"
                ) from None
            except redis.RedisError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise ServiceUnreachableError(
                    f"Redis at {url} did not answer within {timeout_s:g} s ({last})"
                )
            time.sleep(0.2)
    finally:
        client.close()


def create_producer(
    bootstrap_servers: str,
    *,
    client_id: str,
    security: KafkaSettings | None = None,
    **overrides: Any,
) -> KafkaProducer:
    """A kafka-python producer that only reports success once every in-sync replica has the write.

    ``api_version`` stays unset on purpose: a fixed value caps the protocol versions, and
    Kafka 4 removed the old ones.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in bootstrap_servers.split(",")],
        "client_id": client_id,
        # Enforce idempotent, fully acknowledged writes: a 2xx to a provider means durable.
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "compression_type": None,
        **kafka_python_security(security),
    }
    config.update(overrides)
    return KafkaProducer(**config)


class TopicRequest(NamedTuple):
    """A topic to create when missing."""

    name: str
    partitions: int
    configs: dict[str, str] = {}  # noqa: RUF012 - NamedTuple defaults are never mutated here
    replication_factor: int = 1


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[TopicRequest],
    *,
    security: KafkaSettings | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Existing topics are left as they are. A replication factor larger than the cluster is
    lowered to the number of brokers, so the catalogue's production values (replication 3) also
    create topics on a one-node devstack; ``min.insync.replicas`` is lowered with it, or no
    acks=all write could succeed there.
    """
    admin = admin_client(
        bootstrap_servers=[s.strip() for s in bootstrap_servers.split(",")],
        client_id="omnirouter-topics",
        **kafka_python_security(security),
    )
    requested = list(topics)
    # A broker that has just (re)started answers before its controller unfences it, and refuses
    # new topics meanwhile ("All brokers are currently fenced"): a CI run's fault scenario failed
    # on exactly that right after restarting its broker. Retry that for a while.
    deadline = time.monotonic() + _FENCED_WAIT_S
    try:
        while True:
            existing = set(admin.list_topics())
            brokers = max(1, len(admin.describe_cluster().get("brokers", [])))
            wanted = []
            for topic in requested:
                if topic.name in existing:
                    continue
                replicas = min(topic.replication_factor, brokers)
                configs = _fit_to_cluster(topic.configs, replicas)
                wanted.append(
                    NewTopic(topic.name, topic.partitions, replicas, topic_configs=configs)
                )
            if not wanted:
                return []
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                # Another process made some of them: list again and create the rest (until the
                # deadline: the listing can lag behind a creation for a moment).
                if time.monotonic() > deadline:
                    return []
                time.sleep(_FENCED_RETRY_S)
                continue
            except InvalidReplicationFactorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(_FENCED_RETRY_S)
                continue
            created = [t.name for t in wanted]
            # The broker accepts CreateTopics before its metadata has the new topics and their
            # partitions' leaders (KRaft applies them a moment later): a consumer group formed
            # meanwhile is assigned none of their partitions, and kafka-python's consumer did not
            # ask again within 30 s in a CI run. Return once they can be used.
            admin.wait_for_topics(created, timeout_ms=int(_READY_WAIT_S * 1000))
            return created
    finally:
        admin.close()


_FENCED_WAIT_S = 30.0
_READY_WAIT_S = 60.0
_FENCED_RETRY_S = 0.25


def _fit_to_cluster(configs: dict[str, str], replicas: int) -> dict[str, str]:
    fitted = dict(configs)
    if "min.insync.replicas" in fitted:
        fitted["min.insync.replicas"] = str(min(int(fitted["min.insync.replicas"]), replicas))
    return fitted


def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    since: datetime | None = None,
    security: KafkaSettings | None = None,
) -> Iterator[Any]:
    """Every record of ``topic`` from ``since`` (default: the beginning) up to the end it had
    when called; reads only, with no consumer group (operator tools, what-if, dead letters)."""
    consumer = KafkaConsumer(
        bootstrap_servers=[s.strip() for s in bootstrap_servers.split(",")],
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **kafka_python_security(security),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        if since is None:
            consumer.seek_to_beginning(*partitions)
        else:
            starts = consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            for tp in partitions:
                found = starts.get(tp)
                consumer.seek(tp, found.offset if found is not None else ends[tp])

        def at_end() -> bool:
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)

        if at_end():
            return
        for record in consumer:
            yield record
            if at_end():
                return
    finally:
        consumer.close()
