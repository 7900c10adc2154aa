"""Bringing up the router on one machine: services first, then the router's own processes.

Later issues add the gateway, pipeline workers, desktop and ops dashboard to :class:`Router`;
what it does today is find or start Kafka and Redis, create the topic catalogue and say where
everything listens.
"""

from __future__ import annotations

from collections.abc import Callable

from omnirouter.connections import TopicRequest, ensure_topics, wait_for_kafka, wait_for_redis
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.errors import ServiceUnreachableError
from omnirouter.events.topics import TOPICS, topic_name
from omnirouter.logs import get_logger
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
    wait_for_kafka(kafka, timeout_s=settings.kafka.connect_timeout_s)
    wait_for_redis(redis_url, timeout_s=settings.redis.connect_timeout_s)
    return StackAddresses(kafka, redis_url)


def catalogue_topics(settings: Settings) -> list[TopicRequest]:
    """(name, partitions, configs) of every catalogue topic, named with this deployment's prefix."""
    topics = []
    for spec in TOPICS:
        configs: dict[str, str] = {"cleanup.policy": spec.cleanup_policy}
        if spec.retention_ms is not None:
            configs["retention.ms"] = str(spec.retention_ms)
        name = topic_name(spec, settings.kafka.topic_prefix)
        topics.append(TopicRequest(name, spec.partitions, configs, spec.replication_factor))
    return topics


class Router:
    """Everything `omnirouter run` starts, stopped in reverse order."""

    def __init__(self, settings: Settings, *, progress: Callable[[str], None]) -> None:
        """Prepare to run with ``settings``; ``progress`` receives one line per start-up step."""
        self._settings = settings
        self._progress = progress
        self._stack: DevStack | None = None
        self.addresses: StackAddresses | None = None

    def start(self) -> None:
        """Start (or connect to) Kafka and Redis and create the topics."""
        settings = self._settings
        if settings.kafka.bootstrap_servers is None or settings.redis.url is None:
            self._progress("starting devstack (Kafka broker and redis-server)")
            # Tied to this process: Ctrl-C, a crash or a kill leaves no JVM behind.
            self._stack = DevStack(settings.devstack, tie_to_parent=True)
            self._stack.up()
        self._progress("connecting to Kafka and Redis")
        self.addresses = connect_services(settings, start_devstack=False)
        self._progress("creating topics")
        created = ensure_topics(self.addresses.kafka_bootstrap_servers, catalogue_topics(settings))
        log.info("topics ready", created=created)

    def banner(self) -> str:
        """Where everything listens, for the terminal."""
        assert self.addresses is not None, "start() first"
        lines = [
            "omnirouter is running",
            f"  kafka   {self.addresses.kafka_bootstrap_servers}",
            f"  redis   {self.addresses.redis_url}",
            f"  topics  {self._settings.kafka.topic_prefix}*  ({len(TOPICS)} in the catalogue)",
            "Press Ctrl-C to stop.",
        ]
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop what :meth:`start` started."""
        if self._stack is not None:
            self._progress("stopping devstack")
            self._stack.down()
            self._stack = None
