"""The outbound dispatcher test environment: a running worker, fake providers, a reader."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from kafka import KafkaProducer
from pydantic import SecretStr, ValidationError

from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    DeadLetter,
    InteractionEvent,
    InteractionKind,
    encode,
    topic_spec,
)
from omnirouter.pipeline.dispatcher import DispatcherWorker
from omnirouter.settings import (
    KafkaSettings,
    OutboundSettings,
    PipelineSettings,
    RedisSettings,
    Settings,
)
from support.fake_providers import (
    META_PHONE_NUMBER_ID,
    META_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeProviders,
    FakeSmtpRelay,
)
from support.kafka import TopicReader, records_on
from support.waiting import eventually_async

SMS_FROM = "+15550001000"
WHATSAPP_FROM = "+15550002000"
EMAIL_FROM = "Acme Support <support@acme.example>"
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.01


@dataclass
class Dispatch:
    """A running dispatcher, the fakes it delivers to, and ways to feed and observe it."""

    prefix: str
    settings: Settings
    producer: KafkaProducer
    reader: TopicReader
    redis: aioredis.Redis
    worker: DispatcherWorker
    providers: FakeProviders
    smtp: FakeSmtpRelay
    waits: list[float]

    def topic(self, key: str) -> str:
        return topic_spec(key).name(self.prefix)

    def send(self, event: InteractionEvent) -> bytes:
        """Put a reply on ``interactions.outbound``; return the bytes written."""
        raw = encode(event)
        self.send_raw(raw, key=event.routing_key)
        return raw

    def send_raw(self, raw: bytes, *, key: str) -> None:
        self.producer.send(self.topic("interactions.outbound"), raw, key=key.encode()).get(30)

    def send_back_to_back(self, *events: InteractionEvent) -> None:
        """Put replies on the topic without waiting between them (likely one batch)."""
        for event in events:
            self.producer.send(
                self.topic("interactions.outbound"), encode(event), key=event.routing_key.encode()
            )
        self.producer.flush(30)

    async def end_offsets(self, key: str) -> int:
        """How many records topic ``key`` holds right now (the sum of its partitions' ends)."""
        return await records_on(self.settings.kafka.server_list(), self.topic(key))

    async def statuses(self, count: int) -> list[InteractionEvent]:
        """Wait for ``count`` delivery-status records and return them all."""
        topic = self.topic("interactions.outbound")

        def probe(reader: TopicReader) -> list[InteractionEvent] | None:
            found = []
            for record in reader.on(topic):
                try:
                    event = InteractionEvent.model_validate_json(record.value)
                except ValidationError:
                    continue  # a test's deliberately undecodable record
                if event.kind is InteractionKind.DELIVERY_STATUS:
                    found.append(event)
            return found if len(found) >= count else None

        return await self.reader.wait_for(probe, what=f"{count} delivery status record(s)")

    async def dead_letters(self, count: int) -> list[DeadLetter]:
        """Wait for ``count`` dead letters and return them all."""
        topic = self.topic("deadletter")
        return await self.reader.wait_for(
            lambda r: (lambda items: items if len(items) >= count else None)(
                r.decoded(topic, DeadLetter)
            ),
            what=f"{count} dead letter(s)",
        )

    async def consumed(self, count: int) -> None:
        """Wait until the dispatcher has consumed ``count`` records (its own included)."""

        async def done() -> bool:
            return self.worker.events_consumed >= count

        await eventually_async(done, what=f"the dispatcher to consume {count} record(s)")


def dispatcher_settings(
    stack: StackAddresses,
    prefix: str,
    redis_prefix: str,
    providers: FakeProviders,
    smtp: FakeSmtpRelay,
) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        redis=RedisSettings(url=stack.redis_url, key_prefix=redis_prefix),
        pipeline=PipelineSettings(batch_max=50, batch_within_s=0.02, retry_max_backoff_s=1.0),
        outbound=OutboundSettings(
            max_attempts=MAX_ATTEMPTS,
            backoff_base_s=BACKOFF_BASE_S,
            backoff_max_s=0.05,
            request_timeout_s=5.0,
            twilio_api_base=providers.twilio_api_base,
            twilio_account_sid=TWILIO_SID,
            twilio_auth_token=SecretStr(TWILIO_TOKEN),
            twilio_sms_from=SMS_FROM,
            twilio_whatsapp_from=WHATSAPP_FROM,
            meta_api_base=providers.meta_api_base,
            meta_phone_number_id=META_PHONE_NUMBER_ID,
            meta_access_token=SecretStr(META_TOKEN),
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            email_from=EMAIL_FROM,
        ),
    )
