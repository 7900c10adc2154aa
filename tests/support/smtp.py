"""A real SMTP listener in front of a real Kafka, for tests of the e-mail channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from omnirouter.channels.email.smtp import SmtpListener, start_smtp_listener
from omnirouter.connections import ensure_topics
from omnirouter.events import topic_spec
from omnirouter.ingress.publishing import IngressPublisher
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import Settings
from support.kafka import TopicReader


@asynccontextmanager
async def smtp_listener(
    settings: Settings, read: Sequence[str] = ("interactions.inbound",)
) -> AsyncIterator[tuple[SmtpListener, TopicReader]]:
    """``settings``' SMTP listener publishing to its Kafka (topics created, one partition each),
    and a reader of the catalogue topics ``read``; both stopped afterwards."""
    kafka = settings.kafka
    ensure_topics(
        kafka.bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    publisher = IngressPublisher.connect(
        kafka.bootstrap_servers, topic_prefix=kafka.topic_prefix, timeout_s=5
    )
    listener = start_smtp_listener(settings, publisher)
    topics = [topic_spec(key).name(kafka.topic_prefix) for key in read]
    try:
        async with TopicReader(kafka.bootstrap_servers, topics) as reader:
            yield listener, reader
    finally:
        # The producer lives on the listener's loop (its first write made it): close it there,
        # before that loop stops.
        await publisher.aclose()
        listener.stop()
