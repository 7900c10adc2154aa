"""``omnirouter.Publisher``: the Python SDK for third-party channel adapters.

An adapter for a channel omnirouter does not ship (a social network, a CRM, an in-app
messenger) turns its messages into :class:`~omnirouter.events.InteractionEvent` and publishes
them with this class. ``publish`` returns only once Kafka acknowledged the write (acks=all,
idempotent producer), so an adapter can acknowledge its own source right after::

    from omnirouter import Publisher

    with Publisher("kafka-1:9092,kafka-2:9092") as publisher:
        receipt = publisher.publish_message(
            channel="api",
            provider="acme-messenger",
            message_id="msg-8812",              # the source's id: retries become no-ops
            sender={"kind": "external_id", "value": "acme:user:551"},
            text="Where is my order 1182?",
            display_name="Ana Silva",
        )
        print(receipt.event_id, receipt.partition, receipt.offset)

Events are validated against the contract before anything is sent; a failed write raises
:class:`PublishError`, and the adapter should retry it (the event id stays the same, so the
router drops the duplicate if the first write did land).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kafka.errors import KafkaError

from omnirouter.connections import create_producer, wait_for_kafka

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings
from omnirouter.events import (
    Channel,
    Content,
    Direction,
    Identifier,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
    encode,
    topic_spec,
)
from omnirouter.ingress.publishing import provider_event_id

__all__ = ["PublishError", "PublishReceipt", "Publisher"]


class PublishError(Exception):
    """Kafka did not acknowledge the write; retry it."""


@dataclass(frozen=True, slots=True)
class PublishReceipt:
    """Where an acknowledged event was written."""

    event_id: str
    topic: str
    partition: int
    offset: int


class Publisher:
    """Publishes inbound interaction events to omnirouter's Kafka topic."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "omni.",
        client_id: str = "omnirouter-sdk",
        timeout_s: float = 10.0,
        security: KafkaSettings | None = None,
        **producer_config: Any,
    ) -> None:
        """Connect to the cluster (waiting up to ``timeout_s`` for it to answer).

        Args:
            bootstrap_servers: "host:port[,host:port]".
            topic_prefix: the deployment's topic prefix (default "omni.").
            client_id: how the producer shows up in broker logs and metrics.
            timeout_s: how long a write may wait for its acknowledgement.
            security: SASL/TLS, as omnirouter's own ``KafkaSettings`` (e.g.
                ``KafkaSettings(security_protocol="SASL_SSL", sasl_username=…, sasl_password=…)``).
            producer_config: extra kafka-python producer settings.
        """
        wait_for_kafka(bootstrap_servers, timeout_s=timeout_s, security=security)
        self._timeout_s = timeout_s
        self._topic = topic_spec("interactions.inbound").name(topic_prefix)
        self._producer = create_producer(
            bootstrap_servers,
            client_id=client_id,
            security=security,
            max_block_ms=int(timeout_s * 1000),
            **producer_config,
        )

    def publish(self, event: InteractionEvent) -> PublishReceipt:
        """Write one inbound event and wait for Kafka's acknowledgement.

        Raises:
            ValueError: the event is not an inbound interaction.
            PublishError: the write was not acknowledged in time.
        """
        if event.direction is not Direction.INBOUND:
            raise ValueError("Publisher sends inbound interactions; replies go through the desktop")
        try:
            metadata = self._producer.send(
                self._topic, encode(event), key=event.routing_key.encode()
            ).get(timeout=self._timeout_s)
        except KafkaError as exc:
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
        return PublishReceipt(
            str(event.event_id), metadata.topic, metadata.partition, metadata.offset
        )

    def publish_message(
        self,
        *,
        channel: str | Channel,
        provider: str,
        sender: dict[str, str] | Identifier,
        text: str,
        message_id: str | None = None,
        subject: str | None = None,
        display_name: str | None = None,
        occurred_at: datetime | None = None,
        tenant: str = "default",
        attributes: dict[str, str] | None = None,
        more_identifiers: list[dict[str, str] | Identifier] | None = None,
    ) -> PublishReceipt:
        """Build an inbound message from plain values and publish it.

        With ``message_id`` the event id is derived from (provider, message_id), so publishing
        the same source message twice never makes two interactions.
        """
        identifiers = [sender, *(more_identifiers or [])]
        now = datetime.now(UTC)
        fields: dict[str, Any] = {}
        if message_id:
            fields["event_id"] = provider_event_id(provider, message_id)
        event = InteractionEvent(
            **fields,
            tenant=tenant,
            occurred_at=occurred_at or now,
            received_at=now,
            channel=Channel(channel),
            direction=Direction.INBOUND,
            kind=InteractionKind.MESSAGE,
            identifiers=tuple(
                i if isinstance(i, Identifier) else Identifier.model_validate(i)
                for i in identifiers
            ),
            display_name=display_name,
            content=Content(text=text, subject=subject),
            provider=ProviderRefs(provider=provider, message_id=message_id),
            attributes=attributes or {},
        )
        return self.publish(event)

    def close(self) -> None:
        """Send what is buffered and close the connection."""
        # Anything not acknowledged was reported as a PublishError already.
        with contextlib.suppress(KafkaError):
            self._producer.close(timeout=self._timeout_s)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
